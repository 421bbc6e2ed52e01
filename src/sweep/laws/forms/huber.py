"""The fitting objective of Hoffmann et al. 2022 (§3.3, App. D.2), as Besiroglu et al. 2024 (Epoch AI,
"Chinchilla Scaling: A replication attempt") reproduce it, and the multi-start minimiser around it.

Objective: Huber loss with δ = 1e-3 between log predicted and log observed loss, SUMMED over points.
Besiroglu et al. traced the gap between their refit and Hoffmann's numbers to averaging instead of
summing: a mean shrinks the objective and its gradient by 1/n, L-BFGS-B's stopping tests are absolute
below 1, and the optimiser stops before the minimum. We sum, and set the tolerances tight as well.

Model ("power sum"): L̂ = Σ_j exp(c_j) · X_j^(-k_j) [+ exp(e)], evaluated in log space as
    log L̂ = LSE(c_1 - k_1 log X_1, ..., c_m - k_m log X_m [, e])
which is stable and keeps every coefficient positive. m = 2 with the constant is Chinchilla's
E + A/N^α + B/D^β; m = 1 with it is E + A·X^-α; m = 1 without it is the pure power law A·X^-α.
theta layout: (c_1..c_m, k_1..k_m[, e]).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp
from threadpoolctl import ThreadpoolController

HUBER_DELTA = 1e-3  # Hoffmann et al. App. D.2
# Exponents are kept within [0, MAX_EXPONENT] (L-BFGS-B's bounds). Published exponents of loss in
# N, D or C are 0.05-0.8 (Kaplan et al., Hoffmann et al., Besiroglu et al.), so the bound never binds
# on data a power law describes. On a small noisy sweep the unbounded optimum can run off: α → ∞
# with A → ∞ turns A/N^α into a step at the smallest N and overflows A; a negative exponent has
# loss rise with size. Both mean "not determined by this data", and the report warns at a bound.
MAX_EXPONENT = 5.0
# A fitted constant exp(e) underflows to 0.0 for e < -745; restarting from it uses this floor instead.
SMALLEST_POSITIVE = float(np.finfo(float).tiny)

# Scoring many starts at once builds a (starts, points, terms) array; chunks keep it near 10 MB.
_SCORE_CHUNK_ELEMENTS = 1_500_000

# L-BFGS-B stops when the relative decrease falls below ftol (relative to max(|f|, 1), so absolute
# here: summed Huber values are far below 1) or the largest gradient entry below gtol. Defaults
# (2.2e-9, 1e-5) stop early on near-noiseless data; these run to the real minimum.
LBFGS_OPTIONS = {"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-11, "maxcor": 20}


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The BLAS and OpenMP libraries loaded (numpy's and scipy's wheels each bundle an OpenBLAS), found
    once: `threadpool_limits` would search the process's libraries again on every call, about 2 ms,
    and a bootstrap makes thousands of calls; a limit through this controller costs about 10 µs."""
    return ThreadpoolController()


def _one_blas_thread():
    """scipy's L-BFGS-B (C since scipy 1.15) calls BLAS/LAPACK on matrices of a few dozen entries, and
    OpenBLAS hands some of that work to its worker threads. When the cores are busy (a training run
    beside `sweep fit`, on 2 cores) every hand-off waits for a time slice: we measured 4-8 ms per
    objective evaluation instead of 70 µs, a 100x slowdown, gone with one thread. Matrices this small
    gain nothing from threads. Where no BLAS is found this limits nothing."""
    return _thread_pools().limit(limits=1, user_api="blas")


def huber_slope(residuals: np.ndarray, delta: float) -> np.ndarray:
    """d huber / d r: the residual clipped to ±δ."""
    return np.clip(residuals, -delta, delta)


def huber(residuals: np.ndarray, delta: float) -> np.ndarray:
    """½r² inside ±δ, δ(|r| - ½δ) outside: quadratic near zero, linear (outlier-robust) beyond.
    Both branches are s·(r - ½s) with s the slope, which costs one clip instead of a branch."""
    slope = huber_slope(residuals, delta)
    return slope * (residuals - 0.5 * slope)


class Objective(Protocol):
    """What `minimize_from_starts` needs: many starts scored at once, one value with its gradient,
    and L-BFGS-B bounds per parameter ((low, high), None for no bound)."""

    @property
    def bounds(self) -> list[tuple[float | None, float | None]]: ...

    def values(self, thetas: np.ndarray) -> np.ndarray: ...  # (S, P) -> (S,)

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]: ...  # (P,) -> ((), (P,))


@dataclass(frozen=True)
class PowerSumObjective:
    """Summed Huber loss of log L̂ = LSE(c_j - k_j log X_j [, e]) against log L, for n points."""

    log_x: np.ndarray  # (n, m): log of each variable at each point
    log_loss: np.ndarray  # (n,)
    weights: np.ndarray  # (n,): how often each point counts; a bootstrap resample sets these
    with_constant: bool
    delta: float = HUBER_DELTA

    @property
    def n_terms(self) -> int:
        return self.log_x.shape[1]

    @property
    def bounds(self) -> list[tuple[float | None, float | None]]:
        free, exponent = (None, None), (0.0, MAX_EXPONENT)
        return [free] * self.n_terms + [exponent] * self.n_terms + [free] * self.with_constant

    def _exponents(self, thetas: np.ndarray) -> np.ndarray:
        """(S, P) -> (S, n, m [+1]): the arguments of the log-sum-exp."""
        m = self.n_terms
        coefs, powers = thetas[:, None, :m], thetas[:, None, m : 2 * m]  # (S, 1, m)
        terms = coefs - powers * self.log_x[None]  # (S, n, m)
        if self.with_constant:
            constant = np.broadcast_to(thetas[:, None, 2 * m : 2 * m + 1], terms.shape[:2] + (1,))
            terms = np.concatenate([terms, constant], axis=2)
        return terms

    def values(self, thetas: np.ndarray) -> np.ndarray:
        n, m = self.log_x.shape
        chunk = max(1, _SCORE_CHUNK_ELEMENTS // (n * (m + 1)))
        out = np.empty(len(thetas))
        for start in range(0, len(thetas), chunk):
            block = thetas[start : start + chunk]
            residuals = logsumexp(self._exponents(block), axis=2) - self.log_loss  # (S, n)
            out[start : start + chunk] = huber(residuals, self.delta) @ self.weights
        return out

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        m = self.n_terms
        terms = theta[:m] - theta[m : 2 * m] * self.log_x  # (n, m)
        if self.with_constant:
            terms = np.column_stack([terms, np.full(len(terms), theta[2 * m])])  # (n, m + 1)
        peak = terms.max(axis=1)
        shifted = np.exp(terms - peak[:, None])
        total = shifted.sum(axis=1)  # (n,); the softmax shifted / total is d LSE / d term
        residuals = peak + np.log(total) - self.log_loss  # (n,)
        slope = huber_slope(residuals, self.delta)
        value = float((slope * (residuals - 0.5 * slope)) @ self.weights)
        per_point = slope * self.weights / total  # (n,): d objective / d LSE, over the softmax denominator
        by_term = per_point @ shifted  # (m [+1],)
        grad = np.empty_like(theta)
        grad[:m] = by_term[:m]
        grad[m : 2 * m] = -(per_point @ (shifted[:, :m] * self.log_x))
        if self.with_constant:
            grad[2 * m] = by_term[m]
        return value, grad


@dataclass(frozen=True)
class Minimum:
    theta: np.ndarray
    objective: float
    converged: bool


def best_starts(objective: Objective, starts: np.ndarray, count: int) -> np.ndarray:
    """The `count` starts with the lowest objective, scored all at once (Hoffmann et al. App. D.2
    minimise from every point of a grid; scoring first and refining the best few finds the same
    minimum at a fraction of the cost)."""
    with _one_blas_thread():
        scores = objective.values(starts)
    scores = np.where(np.isfinite(scores), scores, np.inf)
    return starts[np.argsort(scores, kind="stable")[:count]]


def minimize_from_starts(objective: Objective, starts: np.ndarray) -> Minimum:
    """L-BFGS-B with the analytic gradient from each start; the lowest minimum wins."""
    best: Minimum | None = None
    with _one_blas_thread():
        results = [
            minimize(
                objective.value_and_grad,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=objective.bounds,
                options=LBFGS_OPTIONS,
            )
            for start in starts
        ]
    for result in results:
        if np.isfinite(result.fun) and (best is None or result.fun < best.objective):
            best = Minimum(theta=result.x, objective=float(result.fun), converged=bool(result.success))
    if best is None:
        raise FloatingPointError("every start gave a non-finite objective")
    return best
