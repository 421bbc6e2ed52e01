"""Fit L(N, D) = E + A/N^α + B/D^β as Besiroglu et al. 2024 replicate Hoffmann et al. 2022
(§3.3, App. D.2): summed Huber loss (δ = 1e-3) on log loss, log-sum-exp parametrisation
    log L̂ = LSE(a - α log N, b - β log D, e),  A = e^a, B = e^b, E = e^e,
Hoffmann's grid of 4500 starts scored at once, the best few refined by L-BFGS-B with analytic gradients.
One addition: α and β are bounded to [0, 5] (`huber.MAX_EXPONENT`), which never binds on data the
law describes and keeps a tiny sweep's fit finite.

`irreducible=False` fits the same law with E = 0, a pure sum of two power laws (4 parameters). On a
small sweep E and the exponents trade off against each other (a lower E with smaller α, β fits
nearly as well), and the form with one parameter less can extrapolate better; `rollout.py` measures
which does on the data at hand.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from sweep.laws.forms.equations import ChinchillaParams
from sweep.laws.forms.huber import (
    HUBER_DELTA,
    SMALLEST_POSITIVE,
    PowerSumObjective,
    best_starts,
    minimize_from_starts,
)
from sweep.laws.table import require_points

N_PARAMETERS = 5  # E, A, B, α, β
N_PARAMETERS_WITHOUT_E = 4
DEFAULT_REFINED_STARTS = 10
REFIT_GRID_STARTS = 8  # best grid starts on the full data, kept as starts for bootstrap refits


@dataclass(frozen=True)
class ChinchillaFit:
    params: ChinchillaParams
    objective: float  # summed Huber loss at the optimum
    converged: bool  # L-BFGS-B's own verdict for the winning start
    n_points: int


def hoffmann_grid(irreducible: bool = True) -> np.ndarray:
    """Hoffmann et al. App. D.2's starts, in theta layout (a, b, α, β, e):
    α, β ∈ {0, 0.5, ..., 2}, e ∈ {-1, -0.5, ..., 1}, a, b ∈ {0, 5, ..., 25}: 5·5·5·6·6 = 4500.
    With E = 0 there is no e: the 900 distinct (a, b, α, β)."""
    exponents = np.arange(0.0, 2.01, 0.5)
    constants = np.arange(-1.0, 1.01, 0.5) if irreducible else np.array([np.nan])
    coefficients = np.arange(0.0, 25.01, 5.0)
    grid = np.array(list(itertools.product(coefficients, coefficients, exponents, exponents, constants)))
    return grid if irreducible else grid[:, :4]


def chinchilla_objective(params, tokens, loss, weights=None, delta: float = HUBER_DELTA, irreducible: bool = True):
    log_x = np.column_stack([np.log(params), np.log(tokens)])  # (n, 2)
    weights = np.ones(len(log_x)) if weights is None else np.asarray(weights, dtype=float)
    return PowerSumObjective(log_x, np.log(loss), weights, with_constant=irreducible, delta=delta)


def theta_of(p: ChinchillaParams, irreducible: bool = True) -> np.ndarray:
    """The inverse of `params_of`. E is 0.0 when a fit drove e below -745 (exp underflows), so it
    is floored at the smallest positive float to keep the start finite."""
    theta = [np.log(p.A), np.log(p.B), p.alpha, p.beta]
    return np.array(theta + [np.log(max(p.E, SMALLEST_POSITIVE))] if irreducible else theta)


def params_of(theta: np.ndarray) -> ChinchillaParams:
    """theta (a, b, α, β[, e]) as parameters; without e, E = 0."""
    a, b, alpha, beta = theta[:4]
    with np.errstate(over="ignore"):  # a refit on a degenerate resample may run off: inf, dropped later
        return ChinchillaParams(
            E=float(np.exp(theta[4])) if len(theta) == 5 else 0.0,
            A=float(np.exp(a)),
            B=float(np.exp(b)),
            alpha=float(alpha),
            beta=float(beta),
        )


def fit_chinchilla(
    params,
    tokens,
    loss,
    *,
    irreducible: bool = True,
    weights=None,
    starts: np.ndarray | None = None,
    n_refined: int = DEFAULT_REFINED_STARTS,
    delta: float = HUBER_DELTA,
) -> ChinchillaFit:
    """Fit on arrays of N, D and loss; `irreducible=False` holds E at 0. `starts` (S, 5), or (S, 4)
    without E, in theta layout replaces Hoffmann's grid (bootstrap refits pass `refit_starts`); the
    best `n_refined` of them are refined. `weights` counts each point that many times."""
    n_parameters = N_PARAMETERS if irreducible else N_PARAMETERS_WITHOUT_E
    what = "the Chinchilla law E + A/N^α + B/D^β" if irreducible else "the law A/N^α + B/D^β"
    require_points(len(params), n_parameters, what)
    for name, values in (("params", params), ("tokens", tokens)):
        require_points(len(np.unique(values)), 2, "the Chinchilla law", unit=f"distinct {name} values")
    objective = chinchilla_objective(params, tokens, loss, weights, delta, irreducible)
    grid = hoffmann_grid(irreducible) if starts is None else np.atleast_2d(starts)
    minimum = minimize_from_starts(objective, best_starts(objective, grid, n_refined))
    return ChinchillaFit(
        params=params_of(minimum.theta),
        objective=minimum.objective,
        converged=minimum.converged,
        n_points=len(params),
    )


def refit_starts(params, tokens, loss, fit: ChinchillaFit, irreducible: bool = True) -> np.ndarray:
    """Starts for refits on data near (params, tokens, loss): the fit's own optimum plus the full
    data's `REFIT_GRID_STARTS` best grid starts, so a refit whose optimum moves far still has starts
    near other basins."""
    objective = chinchilla_objective(params, tokens, loss, irreducible=irreducible)
    grid = best_starts(objective, hoffmann_grid(irreducible), REFIT_GRID_STARTS)
    return np.vstack([theta_of(fit.params, irreducible), grid])
