"""Laws of post-training degradation: how much a run's loss rises when its weights are compressed
after training, with no retraining, as a function of N and D.

A compression variant is named `q<bits>` (round-to-nearest weight quantisation to that many bits) or
`p<percent>` (unstructured magnitude pruning of that share of the matmul weights, `p87.5` for 0.875).
Its degradation δ = the variant's validation loss − the run's own (nats/token) sits in the column
`delta_<variant>` of a run table (names: `sweep.columns`).

**The form.** Kumar et al. 2024, "Scaling Laws for Precision" (arXiv 2411.04330), §3.1, eq. 2, fit
post-train quantisation's degradation as

    δ_PTQ(N, D, P_post) = C_T · (D^γ_D / N^γ_N) · e^(−P_post/γ_post),    C_T, γ_D, γ_N, γ_post > 0.

At one bit width P_post the last factor is a constant, folded here into C, which leaves

    δ(N, D) = C · D^γ_D / N^γ_N,    one law per variant,

linear in logs: log δ = log C + γ_D log D − γ_N log N, fit by least squares (the scatter of a
post-training evaluation is multiplicative, like a loss's). Their finding: δ rises with D at fixed N
(γ_D > 0, overtrained models quantise worse) and falls with N. The exponents are not constrained to
be positive here, so the data can say otherwise, and the trend sentence reports which they say.

**Pruning** uses the same form, one law per sparsity, fit empirically. Frantar et al. 2023, "Scaling
Laws for Sparsely-Connected Foundation Models" (arXiv 2309.08520), fit L(S, N, D) for models *trained*
sparse (the sparsity applied during training), which does not describe one-shot magnitude pruning of
a dense model after training; the same multiplicative power law in N and D is the nearest cited form.

**Points.** One per (N, D), from `table.prepare_table`: δ is the mean over the runs the point's loss
comes from (see there). log δ needs δ > 0; a δ <= 0 means the compression cost less than the
evaluation's own noise (8-bit rounding lowers the loss by chance about as often as it raises it), so
those points are left out and counted: it biases the law up where δ is near that noise, and a
variant with many left out is one whose δ is mostly noise. NaN (not measured) is left out too.

**Intervals.** Points are resampled with replacement (the scheme `bootstrap.py` uses for the
one-variable power laws), the law refit on each resample; a resample that loses rank (one N, one D,
or D ∝ N^k) cannot identify the law and is dropped. 95% percentile intervals of C, γ_D, γ_N come from
the refits. A prediction's `ci` is the law's own uncertainty (the prediction under each refit); its
`interval`, for a measured δ, also carries the points' scatter around the law: each refit's
prediction times exp(ε_b), ε_b = σ_b z_b with σ_b² = ν s² / χ²_ν, s² = Σ e_i² / ν the log-residual
variance on ν = n − 3 degrees of freedom: the same construction as the joint laws' (`bootstrap.py`
steps 2-3, Davison & Hinkley 1997 §6.3). For a linear model it approximates the Student-t prediction
interval ŷ₀ ± t_ν · s · √(1 + h₀).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from sweep.columns import DELTA_PREFIX, describe, order, parse
from sweep.errors import InputError
from sweep.laws import bootstrap as bootstrapping
from sweep.laws.bootstrap import interval, why_no_interval
from sweep.laws.predict import LossEstimate

FORMULA = "δ = C·D^γ_D/N^γ_N"
N_PARAMETERS = 3  # C, γ_D, γ_N
MIN_POINTS = N_PARAMETERS + 1  # and one residual degree of freedom to measure the scatter with
PARAMETERS = ("C", "gamma_D", "gamma_N")


def variants_in(frame: pd.DataFrame) -> list[str]:
    """The variants with a delta_<variant> column in `frame`: quantisation first, most bits first,
    then pruning, smallest share first. Other delta_ columns are no variant and are ignored."""
    names = [str(column)[len(DELTA_PREFIX) :] for column in frame.columns if str(column).startswith(DELTA_PREFIX)]
    return sorted((name for name in names if parse(name) is not None), key=order)


@dataclass(frozen=True)
class DegradationLaw:
    """δ(N, D) = C · D^γ_D / N^γ_N (Kumar et al. 2024 eq. 2 at one precision, see the module docstring)."""

    C: float
    gamma_D: float
    gamma_N: float


def degradation(params, tokens, law: DegradationLaw):
    """δ at N = `params`, D = `tokens`; computed in logs, so large D^γ_D and N^γ_N do not overflow."""
    return np.exp(np.log(law.C) + law.gamma_D * np.log(tokens) - law.gamma_N * np.log(params))


@dataclass(frozen=True)
class DegradationFit:
    variant: str
    law: DegradationLaw  # the full-data fit
    samples: tuple[DegradationLaw, ...]  # bootstrap refits that identified the law
    noise: tuple[float, ...]  # ε_b, one log-δ draw per sample (see the module docstring)
    n_points: int  # points fit (δ > 0)
    n_left_out: int  # points with δ <= 0
    n_unmeasured: int  # points with no δ (NaN)
    residual_rms: float  # √(mean e_i²), e_i the log residuals: 0.1 ≈ 10% scatter around the law
    noise_scale: float  # s = √(Σ e_i² / (n − 3)), the scatter the prediction interval uses
    why: str | None = None  # why there are no intervals

    def intervals(self) -> dict[str, tuple[float, float] | None]:
        """95% percentile intervals of C, γ_D, γ_N over the refits; None where they give none."""
        if self.why:
            return dict.fromkeys(PARAMETERS)
        result = {}
        for name in PARAMETERS:
            values = np.array([getattr(sample, name) for sample in self.samples])
            result[name] = None if why_no_interval(values) else interval(values)
        return result

    def trend(self) -> str:
        """The sign of γ_D in plain words, claimed only where its 95% interval excludes 0."""
        bounds = self.intervals()["gamma_D"]
        if bounds is None:
            return "no clear trend with D: γ_D has no interval"
        if bounds[0] > 0:
            return "δ rises with D at fixed N"
        if bounds[1] < 0:
            return "δ falls with D at fixed N"
        return "no clear trend with D (the γ_D interval includes 0)"

    def to_json(self) -> dict:
        """Everything but the samples (laws.json keeps those apart, see `lawsfile.py`)."""
        return {
            "variant": self.variant,
            "what": describe(self.variant),
            "formula": FORMULA,
            **asdict(self.law),
            "ci": self.intervals(),
            "trend": self.trend(),
            "n_points": self.n_points,
            "n_left_out": self.n_left_out,
            "n_unmeasured": self.n_unmeasured,
            "residual_rms": self.residual_rms,
            "noise_scale": self.noise_scale,
            "n_bootstrap": len(self.samples),
            "why": self.why,
        }


@dataclass(frozen=True)
class DegradationLaws:
    """Every variant of a table: its fit, or why it has none (`why_not`), in `variants_in` order."""

    variants: tuple[str, ...]
    fits: Mapping[str, DegradationFit]
    why_not: Mapping[str, str]

    def law_for(self, variant: str) -> DegradationFit:
        """The fit of `variant`, or InputError naming the variants there are."""
        if variant in self.fits:
            return self.fits[variant]
        if variant in self.why_not:
            raise InputError(f"the laws file has no law for δ after {describe(variant)}: {self.why_not[variant]}")
        if not self.variants:
            raise InputError(
                "the laws file holds no post-training degradation laws: the table it was fit on had no delta_<variant> "
                "columns (δ after quantising or pruning each run)"
            )
        kind = parse(variant)[0]
        # As the options take them: --bits 4, --prune 0.5.
        same_kind = [parse(name)[1] for name in self.fits if parse(name)[0] == kind]
        scale = 1 if kind == "quantisation" else 100
        available = ", ".join(f"{amount / scale:g}" for amount in same_kind) or "none"
        what = "bit widths" if kind == "quantisation" else "pruning shares"
        raise InputError(
            f"the laws file has no law for δ after {describe(variant)} ({variant}); {what} available: {available} "
            f"(fitted variants: {', '.join(self.fits) or 'none'})"
        )


def _design(params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """(n, 3): the columns log δ is linear in, for (log C, γ_D, γ_N)."""
    return np.column_stack([np.ones(len(params)), np.log(tokens), -np.log(params)])


def _least_squares(design: np.ndarray, log_delta: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """θ = (log C, γ_D, γ_N) minimising Σ w_i (log δ_i − design_i·θ)², or None when the points with
    weight > 0 do not identify it (rank < 3). Integer weights are a resample's counts."""
    if np.linalg.matrix_rank(design[weights > 0]) < N_PARAMETERS:
        return None
    root = np.sqrt(weights)
    theta, *_ = np.linalg.lstsq(design * root[:, None], log_delta * root, rcond=None)
    return theta


def _law_of(theta: np.ndarray) -> DegradationLaw:
    with np.errstate(over="ignore"):  # a wild refit's C may overflow: inf, dropped with the non-finite
        return DegradationLaw(C=float(np.exp(theta[0])), gamma_D=float(theta[1]), gamma_N=float(theta[2]))


def fit_degradation(
    points: pd.DataFrame, variant: str, bootstrap: int = bootstrapping.DEFAULT_SAMPLES, seed: int = 0
) -> DegradationFit:
    """δ = C·D^γ_D/N^γ_N for `variant` on `points` (one row per (N, D), columns params, tokens and
    delta_<variant>), with `bootstrap` resampling refits (0 = none) seeded by `seed`. InputError, with
    the counts, when too few points have δ > 0 or they do not separate D from N."""
    column = DELTA_PREFIX + variant
    if column not in points.columns:
        raise InputError(f"the points have no {column} column")
    delta = points[column].to_numpy(dtype=float)
    measured = np.isfinite(delta)
    positive = measured & (delta > 0)
    n_left_out, n_unmeasured = int((measured & ~positive).sum()), int((~measured).sum())
    params, tokens = points["params"].to_numpy(dtype=float)[positive], points["tokens"].to_numpy(dtype=float)[positive]
    counted = (
        f"{positive.sum()} of {len(points)} points have δ > 0 ({n_left_out} have δ <= 0, "
        f"{n_unmeasured} were not measured)"
    )
    if positive.sum() < MIN_POINTS:
        raise InputError(f"{counted}; the law's {N_PARAMETERS} parameters and its scatter need at least {MIN_POINTS}")
    for values, name, exponent in ((params, "N", "γ_N"), (tokens, "D", "γ_D")):
        if len(np.unique(values)) < 2:
            raise InputError(f"{counted}, all at one {name}: {exponent} needs at least 2 distinct values of {name}")
    design, log_delta = _design(params, tokens), np.log(delta[positive])
    theta = _least_squares(design, log_delta, np.ones(len(params)))
    if theta is None:
        raise InputError(
            f"{counted}, but D and N move together across them (D ∝ N^k), so γ_D and γ_N cannot be "
            "told apart; add points at several D per N"
        )
    residuals = log_delta - design @ theta
    residual_dof = len(params) - N_PARAMETERS
    noise_scale = float(np.sqrt(np.sum(residuals**2) / residual_dof))
    samples, noise, why = _bootstrap(design, log_delta, noise_scale, residual_dof, bootstrap, seed)
    return DegradationFit(
        variant=variant,
        law=_law_of(theta),
        samples=samples,
        noise=noise,
        n_points=len(params),
        n_left_out=n_left_out,
        n_unmeasured=n_unmeasured,
        residual_rms=float(np.sqrt(np.mean(residuals**2))),
        noise_scale=noise_scale,
        why=why,
    )


def _bootstrap(design, log_delta, noise_scale: float, residual_dof: int, n_samples: int, seed: int):
    """(refits, their noise draws ε_b, why there is no interval or None); see the module docstring."""
    if not n_samples:
        return (), (), "the bootstrap is off (--bootstrap 0), so there are no intervals"

    def refit(counts: np.ndarray) -> dict[str, float]:
        theta = _least_squares(design, log_delta, counts)
        return dict.fromkeys(PARAMETERS, np.nan) if theta is None else asdict(_law_of(theta))

    fitted = bootstrapping.bootstrap(refit, len(log_delta), n_samples, seed)  # {name: (K,)}
    noise_rng = np.random.default_rng((seed, 1))  # a stream apart from the resampling's
    scales = noise_scale * np.sqrt(residual_dof / noise_rng.chisquare(residual_dof, n_samples))  # (K,): σ_b
    draws = scales * noise_rng.standard_normal(n_samples)  # (K,): ε_b
    usable = np.all([np.isfinite(fitted[name]) for name in PARAMETERS], axis=0)  # (K,)
    samples = tuple(
        DegradationLaw(**{name: float(fitted[name][index]) for name in PARAMETERS}) for index in np.flatnonzero(usable)
    )
    why = why_no_interval(np.where(usable, fitted["gamma_D"], np.nan))  # counts the unusable among all K
    return samples, tuple(float(value) for value in draws[usable]), why


def predict_degradation(fit: DegradationFit, params: float, tokens: float) -> LossEstimate:
    """δ at (N, D) with its 95% prediction interval (`interval`, where a measured δ should land) and the
    law's own 95% interval (`ci`); both None, with `why`, when the fit has no bootstrap."""
    for name, value in (("params", params), ("tokens", tokens)):
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"{name} must be a positive number, got {value}")
    value = float(degradation(params, tokens, fit.law))
    if fit.why:
        return LossEstimate(value=value, interval=None, ci=None, why=fit.why)
    sampled = np.array([degradation(params, tokens, sample) for sample in fit.samples])  # (K,)
    scattered = sampled * np.exp(np.array(fit.noise))  # (K,): a measured δ under each refit
    refused = why_no_interval(sampled)
    if refused:
        return LossEstimate(value=value, interval=None, ci=None, why=refused)
    return LossEstimate(value=value, interval=interval(scattered), ci=interval(sampled), why=None)


def fit_all(points: pd.DataFrame, bootstrap: int, seed: int) -> DegradationLaws:
    """Every variant with a delta column in `points`, fit; a variant that cannot be, with its reason."""
    variants = variants_in(points)
    fits, why_not = {}, {}
    for variant in variants:
        try:
            fits[variant] = fit_degradation(points, variant, bootstrap, seed)
        except InputError as error:
            why_not[variant] = str(error)
    return DegradationLaws(variants=tuple(variants), fits=fits, why_not=why_not)
