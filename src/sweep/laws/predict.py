"""Predictions from a fitted joint law, with 95% intervals from its parametric bootstrap.

`Laws` is what `laws.json` holds for prediction (see `lawsfile.py`): the chosen form and its
full-data fit, the bootstrap refits with one noise draw each, and the conventions N and C were
measured in. Two intervals, both percentile intervals over the refits (see `bootstrap.py`):
- `ci`, the law's own uncertainty: the prediction recomputed with each refit;
- `interval`, for a loss: where a run trained at that (N, D) should land, the refit's prediction
  times the data's own scatter exp(ε_b). This is the one to check a measured loss against.
Where there are no samples (bootstrap off, no residual degrees of freedom) both are None and `why`
says so.

On a small sweep some refits are far from the data (an exponent near 0, a huge coefficient). Their
predictions can overflow to inf or be NaN (no optimum when an exponent is <= 0); intervals are taken
over the finite ones, and the public functions run under `forms.quiet_floats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweep.errors import InputError
from sweep.laws.bootstrap import LawSamples, interval, parametric_bootstrap, why_no_interval
from sweep.laws.forms.equations import quiet_floats
from sweep.laws.forms.joint import FORMS, JointFit, JointForm, LawParams


@dataclass(frozen=True)
class Laws:
    form: str  # a key of `forms.joint.FORMS`
    law: LawParams  # the full-data fit
    samples: tuple[LawParams, ...]  # bootstrap refits; empty when there are none (see `why`)
    noise: tuple[float, ...]  # one log-loss draw per sample; empty: no prediction intervals (see `why`)
    params_convention: str  # "non_embedding" or "total": what N counts
    flops_source: str  # the column C came from, or "6ND"
    why: str | None = None  # why samples or noise are missing


def _finite_or_none(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


@dataclass(frozen=True)
class Estimate:
    value: float
    ci: tuple[float, float] | None  # 95% over the bootstrap refits; None with the reason in `why`
    why: str | None

    def to_json(self) -> dict:
        """JSON has no NaN or inf: a value that could not be computed is null."""
        return {
            "value": _finite_or_none(self.value),
            "ci": None if self.ci is None else [_finite_or_none(bound) for bound in self.ci],
            "why": self.why,
        }


@dataclass(frozen=True)
class LossEstimate:
    value: float
    interval: tuple[float, float] | None  # 95% prediction interval for a run's measured loss
    ci: tuple[float, float] | None  # 95% of the law's value alone (parameter uncertainty)
    why: str | None  # why an interval is None

    def to_json(self) -> dict:
        bounds = {name: getattr(self, name) for name in ("interval", "ci")}
        return {
            "value": _finite_or_none(self.value),
            **{name: None if pair is None else [_finite_or_none(b) for b in pair] for name, pair in bounds.items()},
            "why": self.why,
        }


@dataclass(frozen=True)
class ComputeOptimalPrediction:
    """The compute-optimal model for a budget C under the chosen law, taking C = 6·N·D."""

    flops: float
    params: Estimate  # N_opt
    tokens: Estimate  # D_opt
    tokens_per_param: Estimate
    loss: LossEstimate  # the law's loss at (N_opt, D_opt)

    def to_json(self) -> dict:
        estimates = {
            "params": self.params,
            "tokens": self.tokens,
            "tokens_per_param": self.tokens_per_param,
            "loss": self.loss,
        }
        return {"flops": self.flops, **{name: estimate.to_json() for name, estimate in estimates.items()}}


@dataclass(frozen=True)
class LossPrediction:
    params: float
    tokens: float
    loss: LossEstimate

    def to_json(self) -> dict:
        return {"params": self.params, "tokens": self.tokens, "loss": self.loss.to_json()}


def _ci(samples: list[float], why: str | None) -> tuple[tuple[float, float] | None, str | None]:
    """The 95% interval of `samples`, or None with the reason."""
    if not samples:
        return None, why
    samples_array = np.array(samples, dtype=float)
    refused = why_no_interval(samples_array)
    return (None, refused) if refused else (interval(samples_array), None)


def _estimate(value: float, sampled: list[float], laws: Laws) -> Estimate:
    ci, why = _ci(sampled, laws.why)
    return Estimate(value=float(value), ci=ci, why=why)


def _loss_estimate(value: float, sampled: list[float], laws: Laws) -> LossEstimate:
    """`sampled` holds the law's loss under each refit; the prediction interval multiplies each by
    the refit's own noise draw exp(ε_b)."""
    ci, why = _ci(sampled, laws.why)
    prediction_interval = None
    if ci is not None and laws.noise:
        scattered = (np.array(sampled) * np.exp(np.array(laws.noise))).tolist()
        prediction_interval, why = _ci(scattered, None)
    elif ci is not None:
        why = laws.why  # samples without noise draws (a sweep-laws/1 file): the law's spread only
    return LossEstimate(value=float(value), interval=prediction_interval, ci=ci, why=why)


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"{name} must be a positive number, got {value}")


def form_of(laws: Laws) -> JointForm:
    return FORMS[laws.form]


@quiet_floats
def predict_compute_optimal(laws: Laws, flops: float) -> ComputeOptimalPrediction:
    """N_opt, D_opt, D_opt/N_opt and the loss at the optimum for a budget of `flops` FLOPs."""
    _require_positive(flops=flops)
    form = form_of(laws)
    if not all(getattr(laws.law, name) > 0 for name in form.exponents):
        shown = ", ".join(f"{name} = {getattr(laws.law, name):.3g}" for name in form.exponents)
        raise InputError(
            f"the fitted law has {shown}: loss does not fall with both N and D, so no compute-optimal "
            "allocation exists; fit on a wider sweep"
        )

    def optimum(law: LawParams) -> tuple[float, float, float]:
        params_opt, tokens_opt = form.allocate(flops, law)
        return float(params_opt), float(tokens_opt), float(form.loss(params_opt, tokens_opt, law))

    params_opt, tokens_opt, loss_opt = optimum(laws.law)
    sampled = [optimum(sample) for sample in laws.samples]
    return ComputeOptimalPrediction(
        flops=float(flops),
        params=_estimate(params_opt, [s[0] for s in sampled], laws),
        tokens=_estimate(tokens_opt, [s[1] for s in sampled], laws),
        tokens_per_param=_estimate(_ratio(tokens_opt, params_opt), [_ratio(s[1], s[0]) for s in sampled], laws),
        loss=_loss_estimate(loss_opt, [s[2] for s in sampled], laws),
    )


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, inf or NaN where a wild refit puts an optimum at 0 or inf (float
    division would raise)."""
    return float(np.divide(numerator, denominator))


@quiet_floats
def predict_loss_at(laws: Laws, params: float, tokens: float) -> LossPrediction:
    """The law's loss for N = `params` (in the laws' convention) trained on D = `tokens`."""
    _require_positive(params=params, tokens=tokens)
    form = form_of(laws)
    sampled = [float(form.loss(params, tokens, sample)) for sample in laws.samples]
    return LossPrediction(
        params=float(params),
        tokens=float(tokens),
        loss=_loss_estimate(float(form.loss(params, tokens, laws.law)), sampled, laws),
    )


def bootstrapped_laws(
    form: JointForm,
    fit: JointFit,
    points: pd.DataFrame,
    bootstrap: int,
    seed: int,
    params_convention: str,
    flops_source: str,
) -> tuple[Laws, LawSamples | None]:
    """`fit` of `form` on `points` with its parametric bootstrap of `bootstrap` refits, as `Laws` to
    predict with; without refits (bootstrap off, no residual degrees of freedom) `Laws.why` says why."""
    params, tokens, loss = (points[column].to_numpy() for column in ("params", "tokens", "loss"))
    samples, why = None, None
    if not bootstrap:
        why = "the bootstrap is off (--bootstrap 0), so there are no intervals"
    else:
        try:
            samples = parametric_bootstrap(form, params, tokens, loss, fit, bootstrap, seed)
        except InputError as error:
            why = str(error)
        if samples is not None and not samples.laws:
            why = f"none of the {bootstrap} bootstrap refits of the {form.name} law could be fit"
    laws = Laws(
        form=form.name,
        law=fit.params,
        samples=samples.laws if samples else (),
        noise=samples.noise if samples else (),
        params_convention=params_convention,
        flops_source=flops_source,
        why=why,
    )
    return laws, samples
