"""The run table's contract: the columns a run store's table has and what they mean, read by the
producers (the store, the runner) and by the laws alike. Standard library only.

- FLOPs columns by convention (`FLOPS_COLUMNS`; the conventions are defined in `sweep.model.flops`).
- Post-training compression variants, one spelling for the whole package: `q4` for 4-bit
  quantisation, `p50` for pruning half the weights, `p87.5` for 0.875. They key result.json's
  `compression`, name the table's loss_<v> / delta_<v> columns and the laws `sweep fit` fits."""

from __future__ import annotations

import re

from sweep.errors import InputError

# Each FLOPs convention (`sweep.model.flops`) and the column that records it (`training_flops`, `sweep ls`,
# `sweep fit --flops-convention`).
FLOPS_COLUMNS = {"6n": "flops", "6n_total": "flops_6nd_total", "6n_attn": "flops_attn", "matmul": "flops_matmul"}
FLOPS_CONVENTIONS = tuple(FLOPS_COLUMNS)

VARIANT = re.compile(r"q(?P<bits>[1-9]\d*)|p(?P<percent>\d+(?:\.\d+)?)")
KINDS = ("quantisation", "pruning")  # the order variants are listed in
# A run table's columns per variant v: the compressed copy's validation loss, and δ = that − the run's loss.
LOSS_PREFIX, DELTA_PREFIX = "loss_", "delta_"


def variant_name(*, bits: int | None = None, prune: float | None = None) -> str:
    if (bits is None) == (prune is None):
        raise InputError("name a variant by bits or by a pruning share, one of the two")
    return f"q{int(bits)}" if bits is not None else f"p{round(prune * 100, 4):g}"


def requested(quantize, prune) -> list[str]:
    """The variants of an `eval` section's bit widths and shares, in its order."""
    return [variant_name(bits=b) for b in quantize] + [variant_name(prune=s) for s in prune]


def parse(variant: str) -> tuple[str, float] | None:
    """("quantisation", bits) or ("pruning", percent), or None for a name that is no variant."""
    match = VARIANT.fullmatch(variant)
    if match is None:
        return None
    if match["bits"] is not None:
        return "quantisation", float(match["bits"])
    percent = float(match["percent"])
    return ("pruning", percent) if 0 < percent < 100 else None


def describe(variant: str) -> str:
    """'4-bit quantisation', '50% pruning'."""
    kind, amount = parse(variant)
    return f"{amount:g}-bit quantisation" if kind == "quantisation" else f"{amount:g}% pruning"


def order(variant: str) -> tuple[int, float]:
    """Sort key: quantisation first, most bits first, then pruning, smallest share first."""
    kind, amount = parse(variant)
    return KINDS.index(kind), -amount if kind == "quantisation" else amount
