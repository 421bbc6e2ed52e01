"""One-variable laws L(X) = E + A·X^-α and the pure A·X^-α, for X = params, tokens or flops.

Each is fit on the points that isolate X (Kaplan et al. 2020 fit L(N) on runs not limited by data,
L(C) on the compute-efficient frontier):
- L(N): for each N, the run with the largest D (the least data-limited);
- L(D): for each D, the run with the largest N;
- L(C): the lower envelope of loss against C, the runs no cheaper run beats.
The objective is the same summed Huber loss on log loss as the Chinchilla fit (`huber.py`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweep.laws.forms.equations import PowerLaw
from sweep.laws.forms.huber import SMALLEST_POSITIVE, PowerSumObjective, best_starts, minimize_from_starts
from sweep.laws.table import require_points

VARIABLES = ("params", "tokens", "flops")
DEFAULT_REFINED_STARTS = 5


@dataclass(frozen=True)
class PowerLawFit:
    variable: str
    saturating: PowerLaw  # E + A·X^-α
    pure: PowerLaw  # A·X^-α, E = 0
    objective: float  # summed Huber loss of the saturating fit
    n_points: int


def points_for(points: pd.DataFrame, variable: str) -> pd.DataFrame:
    """The rows a law in `variable` is fit on (see the module docstring), sorted by that variable."""
    if variable == "flops":
        by_compute = points.sort_values(["flops", "loss"], kind="stable")
        on_frontier = by_compute["loss"] < by_compute["loss"].cummin().shift(fill_value=np.inf)
        return by_compute[on_frontier]
    other = "tokens" if variable == "params" else "params"
    largest_other = points.groupby(variable)[other].transform("max")
    return points[points[other] == largest_other].sort_values(variable, kind="stable")


def power_law_grid(with_constant: bool) -> np.ndarray:
    """Hoffmann et al.'s grid cut down to one term, theta layout (a, α[, e]): 6·5·5 = 150 starts."""
    coefficients = np.arange(0.0, 25.01, 5.0)
    exponents = np.arange(0.0, 2.01, 0.5)
    constants = np.arange(-1.0, 1.01, 0.5) if with_constant else np.array([np.nan])
    grid = np.array(list(itertools.product(coefficients, exponents, constants)))
    return grid if with_constant else grid[:, :2]


def power_law_objective(x, loss, with_constant: bool, weights=None) -> PowerSumObjective:
    weights = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    log_x = np.log(np.asarray(x, dtype=float))[:, None]  # (n, 1)
    return PowerSumObjective(log_x, np.log(loss), weights, with_constant=with_constant)


def theta_of(law: PowerLaw, with_constant: bool) -> np.ndarray:
    """The inverse of `law_of`; E floored as in `chinchilla.theta_of`."""
    theta = [np.log(law.A), law.alpha]
    return np.array(theta + [np.log(max(law.E, SMALLEST_POSITIVE))] if with_constant else theta)


def law_of(theta: np.ndarray) -> PowerLaw:
    with np.errstate(over="ignore"):  # a refit on a degenerate resample may run off: inf, dropped later
        constant = float(np.exp(theta[2])) if len(theta) == 3 else 0.0
        return PowerLaw(E=constant, A=float(np.exp(theta[0])), alpha=float(theta[1]))


def fit_power_law(
    variable: str,
    x,
    loss,
    *,
    weights=None,
    starts: tuple[np.ndarray, np.ndarray] | None = None,
    n_refined: int = DEFAULT_REFINED_STARTS,
) -> PowerLawFit:
    """Fit both forms on arrays x, loss. `starts` = (saturating starts, pure starts) replaces the grids."""
    require_points(len(x), 3, f"the power law L({variable}) = E + A·{variable}^-α")
    require_points(len(np.unique(x)), 3, f"the power law L({variable})", unit=f"distinct {variable} values")
    fitted = []
    for index, with_constant in enumerate((True, False)):
        objective = power_law_objective(x, loss, with_constant, weights)
        grid = power_law_grid(with_constant) if starts is None else starts[index]
        fitted.append(minimize_from_starts(objective, best_starts(objective, grid, n_refined)))
    saturating, pure = fitted
    return PowerLawFit(
        variable=variable,
        saturating=law_of(saturating.theta),
        pure=law_of(pure.theta),
        objective=saturating.objective,
        n_points=len(x),
    )


def fit_power_law_on(points: pd.DataFrame, variable: str) -> PowerLawFit:
    """L(variable) on its own selection of `points` (see `points_for`)."""
    selected = points_for(points, variable)
    return fit_power_law(variable, selected[variable].to_numpy(), selected["loss"].to_numpy())
