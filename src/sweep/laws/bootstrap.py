"""Uncertainty by the bootstrap (Efron 1979), in two schemes, with 95% percentile intervals.

**Joint laws L(N, D): a parametric bootstrap that also gives prediction intervals.** A sweep is a
designed grid of 9-50 points, so its points are not a random sample to resample (Davison & Hinkley
1997, "Bootstrap Methods and their Application", §6.2: for a fixed design resample residuals, not
cases); on 9-20 points a resample of cases holds ~63% distinct points, often too few to identify
5 parameters. Instead, in log-loss space where the fit is made (the noise is multiplicative):
  1. fit θ̂; residuals e_i = log L_i - log L̂(x_i; θ̂); ν = n - p residual degrees of freedom;
     s² = Σ e_i² / ν, the noise variance estimate corrected for the p fitted parameters (squared
     residuals shrink by about (n - p)/n: on 9 points and 5 parameters s is 1.5x their RMS). The
     Huber fit (δ = 1e-3) is close to least absolute deviations at 0.5-1% scatter, and its residuals
     are never smaller in sum of squares than least squares', so s errs on the wide side;
  2. per sample b: σ_b² = ν s² / χ²_ν, the noise variance's own uncertainty with ν degrees of
     freedom (Gelman et al., Bayesian Data Analysis 3rd ed., §14.2); synthetic losses
     L*_i = L̂(x_i; θ̂) · exp(σ_b z_i), z ~ N(0, 1); refit → θ_b; and one more draw ε_b = σ_b z_b,
     the scatter a new run has around the law;
  3. at a point x₀, the 95% percentile interval of log L̂(x₀; θ_b) is the confidence interval of
     the law (`ci`), and that of log L̂(x₀; θ_b) + ε_b the prediction interval for a run's loss
     (`interval`, Davison & Hinkley §6.3). For a linear model the latter is exactly the Student-t
     prediction interval ŷ₀ ± t_ν · s · √(1 + h₀); the refits carry the law's nonlinearity, which
     makes intervals skewed where the law extrapolates. `scripts/calibration.py` measures how
     often they cover held-out runs on synthetic sweeps.
With ν < 1 there is nothing to measure the noise with, and no interval: `parametric_bootstrap`
raises. Refits start from θ̂ and a few of the full data's best grid starts (`refit_starts`).

**Power laws L(X): resampling points** (Besiroglu et al. 2024 give their intervals this way). A
resample is a vector of counts passed to the fit as weights: the summed Huber objective with integer
weights equals the one over the resampled rows. A resample with fewer distinct points than the law
needs cannot identify it; its refit is NaN.

Either way, refits that fail or run off to infinity are dropped, and `why_no_interval` refuses an
interval from too few surviving refits, or one of zero width, rather than print false precision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from sweep.errors import InputError
from sweep.laws.forms import powerlaw
from sweep.laws.forms.huber import best_starts
from sweep.laws.forms.joint import JointFit, JointForm, LawParams
from sweep.laws.forms.powerlaw import PowerLawFit

DEFAULT_SAMPLES = 200
CONFIDENCE = 0.95
JOINT_REFINED = 3  # of the refit starts, how many each refit polishes
POWER_LAW_GRID_STARTS = 4
POWER_LAW_REFINED = 1  # a one-variable law has one basin near the data: polishing the best start is enough
# Fewer finite samples than this give no interval: 2.5% and 97.5% percentiles of a handful of
# samples are their extremes, not a 95% interval.
MIN_SAMPLES = 10

POWER_LAW_NAMES = ("E", "A", "alpha", "pure_A", "pure_alpha")

Refit = Callable[[np.ndarray], Mapping[str, float]]  # counts per point -> fitted parameters by name


@dataclass(frozen=True)
class LawSamples:
    """A parametric bootstrap of one joint law (see the module docstring)."""

    laws: tuple[LawParams, ...]  # the refits θ_b that came out finite
    noise: tuple[float, ...]  # ε_b for each of them: log-loss scatter of a new run around the law
    noise_scale: float  # s, in log loss (0.01 ≈ 1% scatter)
    residual_dof: int  # ν = n - p
    n_failed: int  # refits dropped as non-finite


def residual_dof_or_raise(n_points: int, form: JointForm) -> int:
    residual_dof = n_points - form.n_parameters
    if residual_dof < 1:
        raise InputError(
            f"{n_points} points for the {form.n_parameters}-parameter law {form.name} leave no residual degrees "
            "of freedom to measure the data's scatter with, so there is no interval; add points"
        )
    return residual_dof


def parametric_bootstrap(
    form: JointForm, params, tokens, loss, fit: JointFit, n_samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> LawSamples:
    """`n_samples` refits of `form` on losses simulated around `fit` (see the module docstring)."""
    residual_dof = residual_dof_or_raise(len(params), form)
    fitted = form.loss(params, tokens, fit.params)  # (n,)
    residuals = np.log(loss) - np.log(fitted)
    noise_scale = float(np.sqrt(np.sum(residuals**2) / residual_dof))
    rng = np.random.default_rng(seed)
    scales = noise_scale * np.sqrt(residual_dof / rng.chisquare(residual_dof, n_samples))  # (K,): σ_b
    draws = rng.standard_normal((n_samples, len(params) + 1))  # (K, n + 1): z_i for the refit, then z_b
    starts = form.refit_starts(params, tokens, loss, fit)
    laws, noise = [], []
    for scale, z in zip(scales, draws, strict=True):
        try:
            law = form.fit(params, tokens, fitted * np.exp(scale * z[:-1]), starts=starts, n_refined=JOINT_REFINED)
        except FloatingPointError:  # every start gave a non-finite objective
            continue
        if np.all(np.isfinite(list(asdict(law.params).values()))):
            laws.append(law.params)
            noise.append(float(scale * z[-1]))
    return LawSamples(
        laws=tuple(laws),
        noise=tuple(noise),
        noise_scale=noise_scale,
        residual_dof=residual_dof,
        n_failed=n_samples - len(laws),
    )


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


def why_no_interval(samples: np.ndarray) -> str | None:
    """Why `samples` give no honest interval, or None when they do."""
    finite = samples[np.isfinite(samples)]
    if finite.size < MIN_SAMPLES:
        return f"only {finite.size} of {samples.size} bootstrap refits are usable (at least {MIN_SAMPLES} are needed)"
    if np.ptp(finite) == 0:
        return "every bootstrap refit gives the same value: the points determine the law exactly, no scatter is left"
    return None


def intervals(samples: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float] | None]:
    """95% intervals by name; None where the samples give none (see `why_no_interval`)."""
    return {name: None if why_no_interval(values) else interval(values) for name, values in samples.items()}


def power_law_refit(x, loss, fit: PowerLawFit) -> Refit:
    """Refits of both one-variable forms from the full-data optimum plus the full data's best grid
    starts; parameters named E, A, alpha (saturating) and pure_A, pure_alpha."""
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
