"""Fit L(N, D) = E + A/N^α + B/D^β as Besiroglu et al. 2024 replicate Hoffmann et al. 2022
(§3.3, App. D.2): summed Huber loss (δ = 1e-3) on log loss, log-sum-exp parametrisation
    log L̂ = LSE(a - α log N, b - β log D, e),  A = e^a, B = e^b, E = e^e,
Hoffmann's grid of 4500 starts scored at once, the best few refined by L-BFGS-B with analytic gradients.
One addition: α and β are bounded to [0, 5] (`huber.MAX_EXPONENT`), which never binds on data the
law describes and keeps a tiny sweep's fit finite.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from sweep.laws.forms import ChinchillaParams
from sweep.laws.huber import (
    HUBER_DELTA,
    SMALLEST_POSITIVE,
    PowerSumObjective,
    best_starts,
    minimize_from_starts,
)
from sweep.laws.table import require_points

N_PARAMETERS = 5
DEFAULT_REFINED_STARTS = 10


@dataclass(frozen=True)
class ChinchillaFit:
    params: ChinchillaParams
    objective: float  # summed Huber loss at the optimum
    converged: bool  # L-BFGS-B's own verdict for the winning start
    n_points: int


def hoffmann_grid() -> np.ndarray:
    """Hoffmann et al. App. D.2's starts, in theta layout (a, b, α, β, e):
    α, β ∈ {0, 0.5, ..., 2}, e ∈ {-1, -0.5, ..., 1}, a, b ∈ {0, 5, ..., 25}: 5·5·5·6·6 = 4500."""
    exponents = np.arange(0.0, 2.01, 0.5)
    constants = np.arange(-1.0, 1.01, 0.5)
    coefficients = np.arange(0.0, 25.01, 5.0)
    grid = itertools.product(coefficients, coefficients, exponents, exponents, constants)
    return np.array(list(grid))


def chinchilla_objective(params, tokens, loss, weights=None, delta: float = HUBER_DELTA):
    log_x = np.column_stack([np.log(params), np.log(tokens)])  # (n, 2)
    weights = np.ones(len(log_x)) if weights is None else np.asarray(weights, dtype=float)
    return PowerSumObjective(log_x, np.log(loss), weights, with_constant=True, delta=delta)


def theta_of(p: ChinchillaParams) -> np.ndarray:
    """The inverse of `params_of`. E is 0.0 when a fit drove e below -745 (exp underflows), so it
    is floored at the smallest positive float to keep the start finite."""
    return np.array([np.log(p.A), np.log(p.B), p.alpha, p.beta, np.log(max(p.E, SMALLEST_POSITIVE))])


def params_of(theta: np.ndarray) -> ChinchillaParams:
    a, b, alpha, beta, e = theta
    with np.errstate(over="ignore"):  # a refit on a degenerate resample may run off: inf, dropped later
        return ChinchillaParams(
            E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha), beta=float(beta)
        )


def fit_chinchilla(
    params,
    tokens,
    loss,
    *,
    weights=None,
    starts: np.ndarray | None = None,
    n_refined: int = DEFAULT_REFINED_STARTS,
    delta: float = HUBER_DELTA,
) -> ChinchillaFit:
    """Fit on arrays of N, D and loss. `starts` (S, 5) in theta layout replaces Hoffmann's grid (the
    bootstrap passes the full-data optimum and a few grid points); the best `n_refined` of them are
    refined. `weights` counts each point that many times."""
    require_points(len(params), N_PARAMETERS, "the Chinchilla law E + A/N^α + B/D^β")
    for name, values in (("params", params), ("tokens", tokens)):
        require_points(len(np.unique(values)), 2, "the Chinchilla law", unit=f"distinct {name} values")
    objective = chinchilla_objective(params, tokens, loss, weights, delta)
    grid = hoffmann_grid() if starts is None else np.atleast_2d(starts)
    minimum = minimize_from_starts(objective, best_starts(objective, grid, n_refined))
    return ChinchillaFit(
        params=params_of(minimum.theta),
        objective=minimum.objective,
        converged=minimum.converged,
        n_points=len(params),
    )
