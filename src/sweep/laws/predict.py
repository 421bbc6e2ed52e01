"""Predictions from a fitted Chinchilla law, with 95% intervals from its bootstrap refits.

`Laws` is what `laws.json` holds for prediction (see `lawsfile.py`): the full-data fit, the bootstrap
parameter samples, and the conventions N and C were measured in. An interval is the percentile
interval of the prediction recomputed with each bootstrap sample; without samples it is None.

On a small sweep some bootstrap refits are far from the data (an exponent
near 0 or negative, a huge coefficient). Their predictions can overflow to inf or be NaN (no
optimum when α or β <= 0); the interval is taken over the finite ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from sweep.errors import InputError
from sweep.laws.bootstrap import interval
from sweep.laws.forms import ChinchillaParams, allocate, predict_loss


@dataclass(frozen=True)
class Laws:
    chinchilla: ChinchillaParams
    samples: tuple[ChinchillaParams, ...]  # bootstrap refits; empty when fit without the bootstrap
    params_convention: str  # "non_embedding" or "total": what N counts
    flops_source: str  # the column C came from, or "6ND"


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None  # 95% interval; None without bootstrap samples
    high: float | None

    def to_json(self) -> dict:
        """JSON has no NaN or inf: a value that could not be computed is null."""
        return {name: value if value is None or math.isfinite(value) else None for name, value in asdict(self).items()}


@dataclass(frozen=True)
class ComputeOptimalPrediction:
    """The compute-optimal model for a budget C (Hoffmann et al. eq. 4), taking C = 6·N·D."""

    flops: float
    params: Estimate  # N_opt
    tokens: Estimate  # D_opt
    tokens_per_param: Estimate
    loss: Estimate  # the law's loss at (N_opt, D_opt)

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
    loss: Estimate

    def to_json(self) -> dict:
        return {"params": self.params, "tokens": self.tokens, "loss": self.loss.to_json()}


def _estimate(value: float, sampled: list[float]) -> Estimate:
    if not sampled:
        return Estimate(value=float(value), low=None, high=None)
    low, high = interval(np.array(sampled, dtype=float))
    return Estimate(value=float(value), low=low, high=high)


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"{name} must be a positive number, got {value}")


def predict_compute_optimal(laws: Laws, flops: float) -> ComputeOptimalPrediction:
    """N_opt, D_opt, D_opt/N_opt and the loss at the optimum for a budget of `flops` FLOPs."""
    _require_positive(flops=flops)
    if not (laws.chinchilla.alpha > 0 and laws.chinchilla.beta > 0):
        raise InputError(
            f"the fitted law has alpha = {laws.chinchilla.alpha:.3g}, beta = {laws.chinchilla.beta:.3g}: loss does "
            "not fall with both N and D, so no compute-optimal allocation exists; fit on a wider sweep"
        )

    def optimum(p: ChinchillaParams) -> tuple[float, float, float]:
        params_opt, tokens_opt = allocate(flops, p)
        return float(params_opt), float(tokens_opt), float(predict_loss(params_opt, tokens_opt, p))

    params_opt, tokens_opt, loss_opt = optimum(laws.chinchilla)
    with np.errstate(over="ignore", invalid="ignore"):  # wild refits: see the module docstring
        sampled = [optimum(sample) for sample in laws.samples]
    return ComputeOptimalPrediction(
        flops=float(flops),
        params=_estimate(params_opt, [s[0] for s in sampled]),
        tokens=_estimate(tokens_opt, [s[1] for s in sampled]),
        tokens_per_param=_estimate(tokens_opt / params_opt, [s[1] / s[0] for s in sampled]),
        loss=_estimate(loss_opt, [s[2] for s in sampled]),
    )


def predict_loss_at(laws: Laws, params: float, tokens: float) -> LossPrediction:
    """The law's loss for N = `params` (in the laws' convention) trained on D = `tokens`."""
    _require_positive(params=params, tokens=tokens)
    with np.errstate(over="ignore", invalid="ignore"):  # wild refits: see the module docstring
        sampled = [float(predict_loss(params, tokens, sample)) for sample in laws.samples]
    return LossPrediction(
        params=float(params),
        tokens=float(tokens),
        loss=_estimate(float(predict_loss(params, tokens, laws.chinchilla)), sampled),
    )
