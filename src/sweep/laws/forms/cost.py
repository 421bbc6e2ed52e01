"""Cost laws: what a run costs as a function of its size, to budget a bigger sweep.

resource = C0 · S^n for resource ∈ {wall_s, peak_mem_bytes, flops} and S ∈ {N, N·D}, fit by least
squares in log-log. Wall time should scale like N·D (n ≈ 1) once the hardware is saturated, memory
like N (weights, gradients, optimizer state) plus activations, and FLOPs like N·D exactly (C = 6ND
gives C0 = 6, n = 1), which makes the flops law a check on the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweep.errors import InputError
from sweep.laws.forms.equations import CostLaw
from sweep.laws.table import require_points

RESOURCES = ("wall_s", "peak_mem_bytes", "flops")
SCALES = ("params", "params_x_tokens")


@dataclass(frozen=True)
class CostFit:
    resource: str
    scale: str
    law: CostLaw
    n_points: int


def scale_of(points: pd.DataFrame, scale: str) -> np.ndarray:
    if scale == "params":
        return points["params"].to_numpy(dtype=float)
    return points["params"].to_numpy(dtype=float) * points["tokens"].to_numpy(dtype=float)


def fit_cost(points: pd.DataFrame, resource: str, scale: str) -> CostFit:
    """InputError when the column is missing, or fewer than 2 rows hold a positive value at distinct S."""
    if resource not in points.columns:
        raise InputError(f"the cost law for {resource} needs a '{resource}' column; the table has none")
    values = points[resource].to_numpy(dtype=float)
    sizes = scale_of(points, scale)
    usable = np.isfinite(values) & (values > 0)
    require_points(
        len(np.unique(sizes[usable])),
        2,
        f"the cost law {resource} vs {scale}",
        unit=f"distinct sizes with a {resource} > 0",
    )
    exponent, log_coefficient = np.polyfit(np.log(sizes[usable]), np.log(values[usable]), 1)
    return CostFit(
        resource=resource,
        scale=scale,
        law=CostLaw(C0=float(np.exp(log_coefficient)), n=float(exponent)),
        n_points=int(usable.sum()),
    )
