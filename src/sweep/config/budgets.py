"""The ladder of shapes a sweep trains and each one's training-token budgets: given outright (an N × D
grid), from compute budgets C (IsoFLOP groups) or from tokens-per-parameter ratios."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from sweep.config.rules import build_shape, shape_for_params
from sweep.model.flops import param_counts
from sweep.model.shape import ModelShape

if TYPE_CHECKING:  # the sweep section checks its budgets with these; they only read its settings
    from sweep.config.root import SweepConfig


def model_shapes(config: SweepConfig, vocab_size: int = 256) -> list[ModelShape]:
    """The ladder, smallest first, in the order given."""
    model, seq_len = config.model, config.data.seq_len
    if model.sizes:
        return [build_shape(model, s.n_layers, s.d_model, s.n_heads, s.d_ff, seq_len, vocab_size) for s in model.sizes]
    return [shape_for_params(n, model, seq_len, vocab_size) for n in model.params]


def tokens_for_flops(shape: ModelShape, flops: float, batch_tokens: int) -> int:
    """Tokens that spend `flops` on `shape` under C = 6·N·D (N non-embedding, the FLOPs convention
    `sweep fit` groups by), in whole batches: runs of one budget form an IsoFLOP group
    (Hoffmann et al. 2022, Approach 2)."""
    return round(flops / (6 * param_counts(shape).non_embedding) / batch_tokens) * batch_tokens


def tokens_for_ratio(shape: ModelShape, tokens_per_param: float, batch_tokens: int) -> int:
    """r·N tokens, N non-embedding (the N `sweep fit` uses by default), in whole batches: every rung
    of the ladder sits at the same tokens per parameter, as the OLMo and Marin ladders train."""
    return round(tokens_per_param * param_counts(shape).non_embedding / batch_tokens) * batch_tokens


def budgets(config: SweepConfig, vocab_size: int = 256) -> list[tuple[ModelShape, int]]:
    """(shape, training tokens) pairs of the grid: sizes × tokens, × compute budgets, or × ratios."""
    shapes = model_shapes(config, vocab_size)
    batch = config.train.batch_tokens
    if config.flops:
        return [(shape, tokens_for_flops(shape, c, batch)) for shape in shapes for c in config.flops]
    if config.tokens_per_param:
        return [(shape, tokens_for_ratio(shape, r, batch)) for shape in shapes for r in config.tokens_per_param]
    return list(itertools.product(shapes, config.tokens))
