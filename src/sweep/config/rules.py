"""The rules that fill in what a config leaves to them: a shape for a target parameter count (the
params rule, one dial: depth follows width) and a learning rate for a size (`lr: auto`, `lr: kaplan`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sweep.model.flops import param_counts
from sweep.model.shape import ModelShape, default_d_ff, default_heads

if TYPE_CHECKING:  # the model section calls these rules in its checks; they only read its settings
    from sweep.config.sections import ModelConfig, TrainConfig


def build_shape(model: ModelConfig, n_layers, d_model, n_heads, d_ff, seq_len, vocab_size) -> ModelShape:
    """The shape of one rung: `model`'s settings at these sizes; n_heads or d_ff 0 = their defaults."""
    return ModelShape(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads or default_heads(d_model, model.head_dim),
        d_ff=d_ff or default_d_ff(d_model, model.activation),
        vocab_size=vocab_size,
        seq_len=seq_len,
        norm=model.norm,
        activation=model.activation,
        positions=model.positions,
        tie_embeddings=model.tie_embeddings,
    )


# --- the shape rule ------------------------------------------------------------------------------


def _width_grid(limit: int = 8192):
    """d_model values the params rule steps through: fine where one step moves N most (N grows as
    d², so a step of g moves it by about 2g/d): multiples of 4 below 128, 8 below 512, 16 below 2048,
    then 32, so a step moves N by at most 7% from d = 128 on."""
    return [*range(8, 128, 4), *range(128, 512, 8), *range(512, 2048, 16), *range(2048, limit + 1, 32)]


def depth_for_width(d_model: int, aspect_ratio: int) -> int:
    """The params rule's one dial: depth follows width, n_layers = round(d_model / aspect_ratio), at
    least 1 (nanochat derives width from depth the same way). Never decreasing in d_model."""
    return max(1, round(d_model / aspect_ratio))


def shape_for_params(target: int, model: ModelConfig, seq_len: int, vocab_size: int) -> ModelShape:
    """The shape on the one-dial path (d_model, depth_for_width(d_model)) whose non-embedding count is
    nearest `target` in log terms. N grows with d_model along the path, so a larger target never gets
    fewer layers or a narrower model: a ladder never jumps in depth the way a free search did
    (targets 1e4, 3e4, 1e5, 3e5 gave L3-d16, L1-d48, L2-d64, L2-d112). Where the depth steps up N
    jumps by (L+1)/L at equal width, so a target between the two ends lands up to √2 (L = 1 → 2)
    away; from L = 5 (about 1e6 at aspect 32) the nearest shape is within 10%. Heads follow
    `default_heads`; rotary needs an even head size."""
    best, best_score = None, math.inf
    for d_model in _width_grid():
        shape = build_shape(model, depth_for_width(d_model, model.aspect_ratio), d_model, 0, 0, seq_len, vocab_size)
        if model.positions == "rotary" and shape.head_dim % 2:
            continue
        n = param_counts(shape).non_embedding
        score = abs(math.log(n / target))
        if score < best_score:
            best, best_score = shape, score
        if n > 2 * target:
            break
    return best


def params_rule_limit(model: ModelConfig) -> int:
    """The most non-embedding parameters `shape_for_params` reaches: those of its widest shape."""
    widest = _width_grid()[-1]
    shape = build_shape(model, depth_for_width(widest, model.aspect_ratio), widest, 0, 0, seq_len=256, vocab_size=256)
    return param_counts(shape).non_embedding


# --- the learning-rate rules ---------------------------------------------------------------------

# `lr: auto`: lr*(N) = LR_AUTO_COEFFICIENT · N^-LR_AUTO_EXPONENT, N non-embedding, fit to the best
# learning rate of an lr grid (1e-3 to 3.2e-2) at 12k, 99k and 332k parameters on this engine: wsd,
# 2M tokens, 1024-token batches, AdamW, byte-level stdlib text; optima 0.0164, 0.0067, 0.0028
# (`python scripts/lr_rule.py`, README "A learning rate per size"). Outside 1e4-3e5 it extrapolates.
LR_AUTO_COEFFICIENT = 2.537
LR_AUTO_EXPONENT = 0.5294
# Longer training wants a lower rate: lr* ∝ D^-0.32 for AdamW (Bjorck et al. 2024, arXiv 2409.19913,
# "Scaling Optimal LR Across Token Horizons"). Measured here only in direction (docs/learning-rates.md:
# at 332k the rule's rate wins to 2.6M tokens and loses at 8M), so their exponent.
LR_AUTO_TOKENS = 2e6
LR_HORIZON_EXPONENT = 0.32


def lr_for_params(non_embedding_params: int, tokens: float = LR_AUTO_TOKENS) -> float:
    """`lr: auto`, the rule measured on this engine (see LR_AUTO_COEFFICIENT), moved from the 2M
    tokens it was measured at to a horizon of `tokens` (see LR_HORIZON_EXPONENT)."""
    horizon = (tokens / LR_AUTO_TOKENS) ** -LR_HORIZON_EXPONENT
    return LR_AUTO_COEFFICIENT * non_embedding_params**-LR_AUTO_EXPONENT * horizon


def kaplan_lr(non_embedding_params: int, tokens: float = 0) -> float:
    """`lr: kaplan`: Kaplan et al. 2020, App. D.6, eq. D.1: LR(N) ≈ 0.003239 − 0.0001395·ln N, for Adam
    with warmup and decay; N non-embedding parameters. It does not depend on the horizon."""
    return 0.003239 - 0.0001395 * math.log(non_embedding_params)


LR_RULE = {"auto": lr_for_params, "kaplan": kaplan_lr}  # keyed by the names of sections.LR_RULES


def rule_horizon(train: TrainConfig, tokens: int, size_tokens: list[int]) -> int:
    """The training length an lr rule tunes for. A cosine run is tuned for its own budget; under wsd
    every budget of a size branches off one trunk at one rate, which is tuned for the largest budget:
    the one a sweep extrapolates from, and where a too-high rate costs most."""
    return max(size_tokens) if train.schedule == "wsd" else tokens
