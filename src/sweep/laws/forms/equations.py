"""Scaling-law forms: small frozen parameter dataclasses and the pure functions that evaluate them.

Nothing here fits anything (that is `chinchilla.py`, `powerlaw.py`, `kaplan.py`, `cost.py`). Every
function takes numbers or numpy arrays and broadcasts. Conventions: N = parameters, D = training
tokens, C = training FLOPs, L = validation loss in nats/token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Fitting and predicting on a small or noisy sweep overflows and divides by zero as a matter of course
# (an exponent run to its bound, a refit run off to infinity). Each such value is dealt with where it
# matters (non-finite starts rank last, non-finite refits are dropped, intervals use the finite ones,
# a fit that runs off is skipped with its reason), so numpy's RuntimeWarnings would only repeat that,
# unreadably, in the output of `sweep fit` and `sweep predict`. Their entry points run under this.
quiet_floats = np.errstate(all="ignore")


@dataclass(frozen=True)
class ChinchillaParams:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, eq. 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float


def predict_loss(params, tokens, p: ChinchillaParams):
    """Loss of a model with `params` parameters trained on `tokens` tokens (Hoffmann et al. eq. 2)."""
    return p.E + p.A * np.power(params, -p.alpha) + p.B * np.power(tokens, -p.beta)


@dataclass(frozen=True)
class Allocation:
    """How compute is best split between N and D under a law (Hoffmann et al. eq. 4 for Chinchilla's,
    `kaplan_allocation_of` for Kaplan's): N_opt(C) = G (C/6)^a, D_opt(C) = G^-1 (C/6)^b, with a + b = 1."""

    a: float
    b: float
    G: float


def allocation_of(p: ChinchillaParams) -> Allocation:
    """Minimising E + A/N^α + B/D^β subject to 6ND = C gives a = β/(α+β), b = α/(α+β) and
    G = (αA / (βB))^(1/(α+β)) (Hoffmann et al. 2022, eq. 4). With α or β <= 0 the
    loss does not fall along one axis, there is no optimum, and all three are NaN."""
    if p.alpha <= 0 or p.beta <= 0:
        return Allocation(a=math.nan, b=math.nan, G=math.nan)
    exponent_sum = p.alpha + p.beta
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # wild bootstrap refits: G is 0, inf or NaN
        log_ratio = np.log(p.alpha * p.A) - np.log(p.beta * p.B)
        G = float(np.exp(log_ratio / exponent_sum))
    return Allocation(a=p.beta / exponent_sum, b=p.alpha / exponent_sum, G=G)


def allocate(flops, p: ChinchillaParams):
    """(N_opt, D_opt) for a compute budget `flops` = C, taking C = 6·N·D (Hoffmann et al. eq. 4)."""
    return _allocate(flops, allocation_of(p))


def _allocate(flops, allocation: Allocation):
    params_opt = allocation.G * np.power(np.divide(flops, 6.0), allocation.a)
    tokens_opt = np.power(np.divide(flops, 6.0), allocation.b) / allocation.G
    return params_opt, tokens_opt


@dataclass(frozen=True)
class PowerLaw:
    """L(X) = E + A · X^-alpha for one variable X (params, tokens or flops).
    E = 0 is the pure power law of Kaplan et al. 2020 (eqs. 1.1-1.3)."""

    E: float
    A: float
    alpha: float


def power_law(x, p: PowerLaw):
    return p.E + p.A * np.power(x, -p.alpha)


@dataclass(frozen=True)
class KaplanParams:
    """L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D (Kaplan et al. 2020, eq. 1.5).
    No irreducible term: the loss goes to zero as N and D grow."""

    N_c: float
    D_c: float
    alpha_N: float
    alpha_D: float


def kaplan_loss(params, tokens, p: KaplanParams):
    """A fit stopped at its bound α_D = 0 (α_N/α_D is 0/0) gives L = 1 everywhere, as the fit's own
    parametrisation log L = α_D · log(bracket) has it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.divide(p.alpha_N, p.alpha_D)
    params_term = np.power(np.divide(p.N_c, params), ratio)
    return np.power(params_term + np.divide(p.D_c, tokens), p.alpha_D)


def kaplan_allocation_of(p: KaplanParams) -> Allocation:
    """The compute-optimal split under Kaplan's eq. 1.5 with C = 6·N·D, in closed form. L rises with
    the bracket (N_c/N)^r + D_c/D, r = α_N/α_D, so the optimum minimises the bracket on D = C/6N;
    its derivative in N vanishes at N^(1+r) = r·N_c^r·(C/6)/D_c, which is N_opt = G·(C/6)^a with
    a = 1/(1+r) = α_D/(α_N + α_D), b = 1 - a and G = (r·N_c^r / D_c)^(1/(1+r)). With an exponent
    <= 0 there is no optimum and all three are NaN."""
    if p.alpha_N <= 0 or p.alpha_D <= 0:
        return Allocation(a=math.nan, b=math.nan, G=math.nan)
    ratio = p.alpha_N / p.alpha_D
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # wild bootstrap refits: inf or NaN
        log_G = (np.log(ratio) + ratio * np.log(p.N_c) - np.log(p.D_c)) / (1.0 + ratio)
        G = float(np.exp(log_G))
    return Allocation(a=1.0 / (1.0 + ratio), b=ratio / (1.0 + ratio), G=G)


def kaplan_allocate(flops, p: KaplanParams):
    """(N_opt, D_opt) for a compute budget `flops` = C under Kaplan's eq. 1.5, taking C = 6·N·D."""
    return _allocate(flops, kaplan_allocation_of(p))


@dataclass(frozen=True)
class CostLaw:
    """resource = C0 · S^n: a cost (seconds, bytes, FLOPs) against a size S (N, or N·D)."""

    C0: float
    n: float


def predict_cost(size, law: CostLaw):
    return law.C0 * np.power(size, law.n)
