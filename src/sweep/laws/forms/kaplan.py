"""Fit Kaplan et al. 2020's joint form L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (eq. 1.5).

Fit in log space with the same summed Huber loss (δ = 1e-3) as the Chinchilla fit, so the two forms'
objectives compare directly. Parametrised as
    log L̂ = α_D · LSE(r (u - log N), v - log D),  u = log N_c, v = log D_c, r = α_N / α_D,
which is stable for the huge ratios N_c/N (Kaplan's N_c ≈ 8.8e13) and keeps N_c, D_c positive.
theta layout: (u, v, r, α_D).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from sweep.laws.forms.equations import KaplanParams
from sweep.laws.forms.huber import HUBER_DELTA, MAX_EXPONENT, best_starts, huber, huber_slope, minimize_from_starts
from sweep.laws.table import require_points

N_PARAMETERS = 4
DEFAULT_REFINED_STARTS = 10
REFIT_GRID_STARTS = 8  # as `chinchilla.REFIT_GRID_STARTS`


@dataclass(frozen=True)
class KaplanFit:
    params: KaplanParams
    objective: float  # summed Huber loss on log loss
    converged: bool
    n_points: int


@dataclass(frozen=True)
class KaplanObjective:
    log_params: np.ndarray  # (n,)
    log_tokens: np.ndarray  # (n,)
    log_loss: np.ndarray  # (n,)
    delta: float = HUBER_DELTA

    def _terms(self, thetas: np.ndarray) -> np.ndarray:
        """(S, 4) -> (S, n, 2): the arguments of the log-sum-exp."""
        u, v, ratio = thetas[:, 0:1], thetas[:, 1:2], thetas[:, 2:3]  # (S, 1)
        return np.stack([ratio * (u - self.log_params), v - self.log_tokens], axis=2)

    @property
    def bounds(self) -> list[tuple[float | None, float | None]]:
        """α_D within [0, MAX_EXPONENT] as in `huber.py`; r = α_N/α_D (Kaplan's: 0.8) within [0, 20]."""
        return [(None, None), (None, None), (0.0, 20.0), (0.0, MAX_EXPONENT)]

    def values(self, thetas: np.ndarray) -> np.ndarray:
        log_pred = thetas[:, 3:4] * logsumexp(self._terms(thetas), axis=2)  # (S, n)
        return huber(log_pred - self.log_loss, self.delta).sum(axis=1)

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        u, _, ratio, alpha_tokens = theta
        terms = self._terms(theta[None])[0]  # (n, 2)
        lse = logsumexp(terms, axis=1)  # (n,)
        share = np.exp(terms - lse[:, None])  # (n, 2): softmax
        residuals = alpha_tokens * lse - self.log_loss
        slope = huber_slope(residuals, self.delta)  # (n,)
        grad = np.array(
            [
                alpha_tokens * ratio * (slope @ share[:, 0]),
                alpha_tokens * (slope @ share[:, 1]),
                alpha_tokens * (slope @ (share[:, 0] * (u - self.log_params))),
                slope @ lse,
            ]
        )
        return float(huber(residuals, self.delta).sum()), grad


def kaplan_grid() -> np.ndarray:
    """Starts spanning Kaplan's fitted values (N_c ≈ 8.8e13, D_c ≈ 5.4e13, r ≈ 0.8, α_D ≈ 0.095) by
    orders of magnitude: log N_c, log D_c ∈ {15, 20, ..., 40}, r ∈ {0.5, 1, 1.5, 2},
    α_D ∈ {0.05, 0.1, 0.2, 0.4}: 576 starts."""
    logs = np.arange(15.0, 40.01, 5.0)
    ratios = np.arange(0.5, 2.01, 0.5)
    alphas = np.array([0.05, 0.1, 0.2, 0.4])
    return np.array(list(itertools.product(logs, logs, ratios, alphas)))


def theta_of(p: KaplanParams) -> np.ndarray:
    """The inverse of `params_of`: (log N_c, log D_c, α_N/α_D, α_D). A fit at its bound α_D = 0 gives
    a NaN ratio, a start that `best_starts` ranks last."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.array([np.log(p.N_c), np.log(p.D_c), np.divide(p.alpha_N, p.alpha_D), p.alpha_D])


def params_of(theta: np.ndarray) -> KaplanParams:
    log_params_c, log_tokens_c, ratio, alpha_tokens = theta
    with np.errstate(over="ignore"):  # a refit on a degenerate sample may run off: inf, dropped later
        return KaplanParams(
            N_c=float(np.exp(log_params_c)),
            D_c=float(np.exp(log_tokens_c)),
            alpha_N=float(ratio * alpha_tokens),
            alpha_D=float(alpha_tokens),
        )


def fit_kaplan(
    params, tokens, loss, *, starts: np.ndarray | None = None, n_refined: int = DEFAULT_REFINED_STARTS
) -> KaplanFit:
    """Fit on arrays of N, D and loss. `starts` (S, 4) in theta layout replaces `kaplan_grid` (bootstrap
    refits pass `refit_starts`); the best `n_refined` of them are refined."""
    require_points(len(params), N_PARAMETERS, "Kaplan's joint law [(N_c/N)^(α_N/α_D) + D_c/D]^α_D")
    objective = KaplanObjective(np.log(params), np.log(tokens), np.log(loss))
    grid = kaplan_grid() if starts is None else np.atleast_2d(starts)
    minimum = minimize_from_starts(objective, best_starts(objective, grid, n_refined))
    return KaplanFit(
        params=params_of(minimum.theta),
        objective=minimum.objective,
        converged=minimum.converged,
        n_points=len(params),
    )


def refit_starts(params, tokens, loss, fit: KaplanFit) -> np.ndarray:
    """As `chinchilla.refit_starts`: the fit's optimum plus the full data's best grid starts."""
    objective = KaplanObjective(np.log(params), np.log(tokens), np.log(loss))
    return np.vstack([theta_of(fit.params), best_starts(objective, kaplan_grid(), REFIT_GRID_STARTS)])
