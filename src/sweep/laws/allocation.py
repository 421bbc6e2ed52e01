"""Compute-optimal allocation measured directly from runs: Hoffmann et al. 2022 Approaches 1 and 2.
(Approach 3, the allocation implied by the fitted Chinchilla law, is `forms.allocate`.)

Both need runs grouped by compute. Runs only have a final loss, so a compute level is a group of runs
of (nearly) the same C: sorted by C, a group opens at its smallest run and takes every run within a
factor (1 + tolerance) of it. An IsoFLOP sweep (one D per N at each budget, D rounded to whole
batches) lands each budget in one group; budgets usually differ by 2x or more, far above the 10%
default. Each level's C is the geometric mean of its runs' C.

Both fit N_opt = k_N · C^a and D_opt = k_D · C^b by least squares in log-log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweep.laws.table import require_points

DEFAULT_COMPUTE_TOLERANCE = 0.1


@dataclass(frozen=True)
class ComputeOptimum:
    """The best N (and D) found at one compute level."""

    flops: float
    params: float
    tokens: float
    loss: float  # measured (Approach 1) or the parabola's minimum (Approach 2)
    n_points: int  # runs in the compute level
    params_range: tuple[float, float]  # smallest and largest N in the level
    parabola: tuple[float, float, float] | None = None  # Approach 2: loss = c2 x² + c1 x + c0, x = ln N


@dataclass(frozen=True)
class EmpiricalAllocation:
    """N_opt = params_coefficient · C^a, D_opt = tokens_coefficient · C^b, fit on `optima`."""

    a: float
    b: float
    params_coefficient: float
    tokens_coefficient: float
    optima: tuple[ComputeOptimum, ...]
    warnings: tuple[str, ...]


def compute_levels(flops: np.ndarray, tolerance: float = DEFAULT_COMPUTE_TOLERANCE) -> np.ndarray:
    """A compute-level label per run (0, 1, ... by increasing C); see the module docstring."""
    order = np.argsort(flops, kind="stable")
    labels = np.empty(len(flops), dtype=int)
    level, anchor = -1, -np.inf
    for index in order:
        if flops[index] > anchor * (1.0 + tolerance):
            level, anchor = level + 1, flops[index]
        labels[index] = level
    return labels


def _levels(points: pd.DataFrame, tolerance: float, min_sizes: int):
    """(level C, rows) for each compute level holding at least `min_sizes` distinct N."""
    labels = compute_levels(points["flops"].to_numpy(), tolerance)
    for _, rows in points.groupby(labels):
        if rows["params"].nunique() >= min_sizes:
            yield float(np.exp(np.log(rows["flops"]).mean())), rows


def _edge_warning(method: str, flops: float, params_opt: float, rows: pd.DataFrame) -> str | None:
    """A minimum at or beyond the smallest/largest N of its level may lie outside what was sampled."""
    smallest, largest = rows["params"].min(), rows["params"].max()
    best_measured = rows["params"].iloc[int(np.argmin(rows["loss"].to_numpy()))]
    if params_opt < smallest or params_opt > largest:
        where = f"N_opt = {params_opt:.3g} lies outside the sampled N range [{smallest:.3g}, {largest:.3g}]"
    elif best_measured in (smallest, largest):
        edge = "smallest" if best_measured == smallest else "largest"
        where = f"the lowest loss is at the {edge} N sampled ({best_measured:.3g})"
    else:
        return None
    return f"{method}: at C = {flops:.3g}, {where}; the optimum may be outside the range, add sizes beyond it"


def _fit_exponents(optima: list[ComputeOptimum], warnings: list[str]) -> EmpiricalAllocation:
    log_flops = np.log([optimum.flops for optimum in optima])
    a, log_params_coefficient = np.polyfit(log_flops, np.log([optimum.params for optimum in optima]), 1)
    b, log_tokens_coefficient = np.polyfit(log_flops, np.log([optimum.tokens for optimum in optima]), 1)
    return EmpiricalAllocation(
        a=float(a),
        b=float(b),
        params_coefficient=float(np.exp(log_params_coefficient)),
        tokens_coefficient=float(np.exp(log_tokens_coefficient)),
        optima=tuple(optima),
        warnings=tuple(warnings),
    )


def fit_approach1(points: pd.DataFrame, tolerance: float = DEFAULT_COMPUTE_TOLERANCE) -> EmpiricalAllocation:
    """Hoffmann et al. §3.1: at each compute level the lowest-loss run is the optimum. Levels with
    fewer than 3 distinct N are skipped: their best run is always at an edge, so it cannot show that
    the optimum was bracketed."""
    optima, warnings = [], []
    for _, rows in _levels(points, tolerance, min_sizes=3):
        best = rows.iloc[int(np.argmin(rows["loss"].to_numpy()))]
        optima.append(
            ComputeOptimum(
                flops=float(best["flops"]),
                params=float(best["params"]),
                tokens=float(best["tokens"]),
                loss=float(best["loss"]),
                n_points=len(rows),
                params_range=(float(rows["params"].min()), float(rows["params"].max())),
            )
        )
        warning = _edge_warning("Approach 1", float(best["flops"]), float(best["params"]), rows)
        warnings += [warning] if warning else []
    require_points(len(optima), 2, "Approach 1 (N_opt ∝ C^a)", unit="compute levels with 3+ distinct N")
    return _fit_exponents(optima, warnings)


def fit_isoflop(points: pd.DataFrame, tolerance: float = DEFAULT_COMPUTE_TOLERANCE) -> EmpiricalAllocation:
    """Hoffmann et al. §3.2: at each compute level fit loss as a parabola in ln N; its vertex is N_opt
    and D_opt = C / (6 N_opt), exact when C is 6ND and approximate for other FLOPs counts. Levels need
    3+ distinct N; a parabola opening downwards has no minimum and its level is skipped with a warning."""
    optima, warnings = [], []
    for flops, rows in _levels(points, tolerance, min_sizes=3):
        log_params = np.log(rows["params"].to_numpy())
        curvature, slope, intercept = np.polyfit(log_params, rows["loss"].to_numpy(), 2)
        if curvature <= 0:
            warnings.append(f"IsoFLOP: at C = {flops:.3g} the loss-vs-ln N parabola opens downwards; level skipped")
            continue
        log_params_opt = -slope / (2.0 * curvature)
        params_opt = float(np.exp(log_params_opt))
        optima.append(
            ComputeOptimum(
                flops=flops,
                params=params_opt,
                tokens=flops / (6.0 * params_opt),
                loss=float(intercept - slope**2 / (4.0 * curvature)),
                n_points=len(rows),
                params_range=(float(rows["params"].min()), float(rows["params"].max())),
                parabola=(float(curvature), float(slope), float(intercept)),
            )
        )
        warning = _edge_warning("IsoFLOP", flops, params_opt, rows)
        warnings += [warning] if warning else []
    require_points(len(optima), 2, "IsoFLOP (Approach 2)", unit="compute levels with 3+ distinct N and a minimum")
    return _fit_exponents(optima, warnings)
