"""Uncertainty by the bootstrap (Efron 1979; Besiroglu et al. 2024 give their Chinchilla intervals
this way): refit on K resamples of the points drawn with replacement, report 95% percentile
intervals. A point is a row of the fit table, one (N, D) after seeds and learning rates are merged.

A resample is a vector of counts, how many times each point was drawn, passed to the fit as weights:
the summed Huber objective with integer weights equals the one over the resampled rows, at the cost
of the original rows. Refits start from the full-data optimum and a few of the best grid starts
(see `chinchilla_refit`), which keeps 200 of them to seconds.

A resample with fewer distinct points than its law needs (likely for a 1-D law on a handful of
points) cannot identify the parameters; its refit is NaN, and intervals are taken over the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, fields

import numpy as np

from sweep.laws import chinchilla, powerlaw
from sweep.laws.chinchilla import ChinchillaFit
from sweep.laws.forms import ChinchillaParams
from sweep.laws.huber import best_starts
from sweep.laws.powerlaw import PowerLawFit

DEFAULT_SAMPLES = 200
CONFIDENCE = 0.95
CHINCHILLA_GRID_STARTS = 8  # best grid starts on the full data, kept as bootstrap starts
CHINCHILLA_REFINED = 3  # of those plus the full-data optimum, how many each refit polishes
POWER_LAW_GRID_STARTS = 4
POWER_LAW_REFINED = 1  # a one-variable law has one basin near the data: polishing the best start is enough

CHINCHILLA_NAMES = tuple(field.name for field in fields(ChinchillaParams))
POWER_LAW_NAMES = ("E", "A", "alpha", "pure_A", "pure_alpha")

Refit = Callable[[np.ndarray], Mapping[str, float]]  # counts per point -> fitted parameters by name


def bootstrap(refit: Refit, n_points: int, n_samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """{parameter name: (n_samples,) values}, one refit per resample of the n_points points."""
    rng = np.random.default_rng(seed)
    fitted = []
    for _ in range(n_samples):
        counts = np.bincount(rng.integers(0, n_points, n_points), minlength=n_points).astype(float)
        fitted.append(refit(counts))
    names = fitted[0].keys() if fitted else ()
    return {name: np.array([values[name] for values in fitted]) for name in names}


def interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central percentile interval, e.g. [2.5%, 97.5%] for 95%. Non-finite samples are ignored."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def chinchilla_refit(params, tokens, loss, fit: ChinchillaFit) -> Refit:
    """Refits from the full-data optimum plus the full data's best grid starts; of these the best
    `CHINCHILLA_REFINED` on each resample are polished. A resample that moves the optimum far
    still has grid starts near other basins."""
    objective = chinchilla.chinchilla_objective(params, tokens, loss)
    starts = np.vstack(
        [chinchilla.theta_of(fit.params), best_starts(objective, chinchilla.hoffmann_grid(), CHINCHILLA_GRID_STARTS)]
    )

    def refit(counts: np.ndarray) -> dict[str, float]:
        drawn = counts > 0
        distinct_sizes = min(len(np.unique(params[drawn])), len(np.unique(tokens[drawn])))
        if distinct_sizes < 2 or drawn.sum() < chinchilla.N_PARAMETERS:
            return dict.fromkeys(CHINCHILLA_NAMES, np.nan)  # a resample that cannot identify the law
        resampled = chinchilla.fit_chinchilla(
            params, tokens, loss, weights=counts, starts=starts, n_refined=CHINCHILLA_REFINED
        )
        return asdict(resampled.params)

    return refit


def power_law_refit(x, loss, fit: PowerLawFit) -> Refit:
    """As `chinchilla_refit`, for both one-variable forms; parameters named E, A, alpha (saturating)
    and pure_A, pure_alpha."""
    starts = []
    for with_constant, law in ((True, fit.saturating), (False, fit.pure)):
        objective = powerlaw.power_law_objective(x, loss, with_constant)
        grid = best_starts(objective, powerlaw.power_law_grid(with_constant), POWER_LAW_GRID_STARTS)
        starts.append(np.vstack([powerlaw.theta_of(law, with_constant), grid]))

    def refit(counts: np.ndarray) -> dict[str, float]:
        if len(np.unique(x[counts > 0])) < 3:
            return dict.fromkeys(POWER_LAW_NAMES, np.nan)  # a resample that cannot identify E, A and α
        resampled = powerlaw.fit_power_law(
            fit.variable, x, loss, weights=counts, starts=tuple(starts), n_refined=POWER_LAW_REFINED
        )
        return {**asdict(resampled.saturating), "pure_A": resampled.pure.A, "pure_alpha": resampled.pure.alpha}

    return refit
