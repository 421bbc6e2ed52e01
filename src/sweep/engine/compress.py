"""Post-training compression of a finished run: its validation loss after quantising or pruning a copy
of its final weights, with no retraining (`eval.quantize`, `eval.prune`).

- Quantisation is round-to-nearest, symmetric, per output channel (the setting of Kumar et al. 2024,
  "Scaling Laws for Precision", arXiv 2411.04330, whose δ_PTQ `sweep fit` fits): each row of a weight
  (out, in) gets the scale max|row| / (2^(b−1) − 1), so its values take the 2^b − 1 levels
  −(2^(b−1) − 1)…(2^(b−1) − 1) times that scale.
- Pruning is unstructured magnitude pruning, matrix by matrix: the stated share of each weight's
  entries, those of least magnitude, set to zero (the one-shot baseline SparseGPT, Frantar & Alistarh
  2023, arXiv 2301.00774, compares against).

Both touch the matmul weights, the parameters N counts (non-embedding). The token and position
embeddings and the output head (the embedding matrix itself when tied) are left in full precision
unless `eval.embeddings` is set: a common choice for post-training quantisers, and it keeps δ a
function of the N the laws are fit in. The evaluation is the run's own (`steps.evaluate`, same windows, same dtype), so
δ = variant loss − run loss measures the compression alone.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from sweep.columns import variant_name
from sweep.config import EvalConfig
from sweep.model.gpt import GPT

EMBEDDING_NAMES = ("token_embedding.weight", "position_embedding.weight", "head.weight")


def quantize_rows(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """weight (out, in) rounded to `bits` bits, symmetric, one scale per output row."""
    levels = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1, keepdim=True) / levels  # (out, 1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row stays zero
    return (weight / scale).round().clamp(-levels, levels) * scale


def prune_smallest(weight: torch.Tensor, share: float) -> torch.Tensor:
    """weight with round(share × numel) of its entries of least magnitude set to zero (exactly that
    many, ties broken by position)."""
    count = round(share * weight.numel())
    pruned = weight.clone()
    if count:
        pruned.view(-1)[weight.abs().flatten().argsort()[:count]] = 0
    return pruned


def compressed_weights(model: GPT, include_embeddings: bool) -> list[torch.nn.Parameter]:
    """The weights compression touches: every matrix of the model, less the embeddings and head unless
    `include_embeddings`. A tied head is the embedding's tensor, listed once."""
    chosen, seen = [], set()
    for name, param in model.named_parameters():  # named_parameters lists a shared tensor once
        if param.dim() == 2 and (include_embeddings or name not in EMBEDDING_NAMES) and id(param) not in seen:
            chosen.append(param)
            seen.add(id(param))
    return chosen


def compression_losses(
    model: GPT, eval_config: EvalConfig, loss: float, evaluate: Callable[[GPT], float]
) -> dict[str, dict[str, float]]:
    """{variant: {'loss': validation loss, 'delta': that − `loss`}} for each width of
    `eval_config.quantize` and share of `eval_config.prune`, each on a fresh copy of `model`'s weights
    (which stay as they are); `evaluate(model)` is the run's validation loss of a model."""
    variants = [("quantize", bits) for bits in eval_config.quantize] + [("prune", s) for s in eval_config.prune]
    if not variants:
        return {}
    work = copy.deepcopy(model)  # the copy the variants are made in; a tied head stays tied
    originals = [p.detach().clone() for p in compressed_weights(model, eval_config.embeddings)]
    targets = compressed_weights(work, eval_config.embeddings)
    losses = {}
    with torch.no_grad():
        for kind, amount in variants:
            for target, original in zip(targets, originals):
                target.copy_(
                    quantize_rows(original, amount) if kind == "quantize" else prune_smallest(original, amount)
                )
            variant_loss = evaluate(work)
            name = variant_name(bits=amount) if kind == "quantize" else variant_name(prune=amount)
            losses[name] = {"loss": variant_loss, "delta": variant_loss - loss}
    return losses
