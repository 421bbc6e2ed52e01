"""`FitReport`: what `fit_report` (`fitting.py`) found on one table of points, and its JSON.

Every part that could not be fit or has no honest interval is None, with the reason under `skipped`
(and an estimate's `why`). The "degradation" key is there only when the points carry delta_<variant>
columns (post-training compression).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from sweep.columns import describe
from sweep.laws.allocation import EmpiricalAllocation
from sweep.laws.bootstrap import intervals
from sweep.laws.degradation import DegradationLaws
from sweep.laws.forms.chinchilla import ChinchillaFit
from sweep.laws.forms.cost import CostFit
from sweep.laws.forms.equations import ChinchillaParams
from sweep.laws.forms.joint import FORMS, JointFit
from sweep.laws.forms.powerlaw import VARIABLES, PowerLawFit
from sweep.laws.predict import ComputeOptimalPrediction, Laws
from sweep.laws.rollout import Rollout
from sweep.laws.table import Excluded


@dataclass(frozen=True)
class HoldoutPoint:
    params: float
    tokens: float
    flops: float
    loss: float  # measured
    predicted_loss: float  # by the chosen law, fit without this point
    relative_error: float  # (predicted - measured) / measured
    interval: tuple[float, float] | None  # 95% prediction interval: where the measured loss should fall
    ci: tuple[float, float] | None  # 95% interval of the law's value alone (its parameters' uncertainty)
    why: str | None  # why interval or ci is None
    predicted_loss_flops_law: float | None  # L(C) = E + A·C^-α, when it could be fit
    relative_error_flops_law: float | None


@dataclass(frozen=True)
class LawChoice:
    """Which joint form predicts, and why; the scale of the data's scatter around it."""

    form: str
    chosen_by: str  # "rollout" (lowest rollout error), "--form" (asked for) or "default" (no rollout folds)
    noise_scale: float | None  # s, the residual scale in log loss (0.01 ≈ 1%); None without the bootstrap
    residual_dof: int | None  # n - p
    n_bootstrap: int  # usable bootstrap refits


@dataclass(frozen=True)
class FitReport:
    points: pd.DataFrame  # the points fit, one per (N, D), see `table.FitTable`
    held_out: pd.DataFrame  # the highest-compute points left out of every fit
    excluded: tuple[Excluded, ...]
    aggregate: str
    compute_tolerance: float  # how runs were grouped into compute levels
    chinchilla: ChinchillaFit
    chinchilla_samples: tuple[ChinchillaParams, ...]  # its bootstrap refits
    joint: Mapping[str, JointFit]  # every joint form that could be fit, by name (chinchilla among them)
    joint_intervals: Mapping[str, Mapping[str, tuple[float, float] | None]]  # 95%, for bootstrapped forms
    choice: LawChoice
    rollout: Rollout | None
    laws: Laws  # the chosen law with its bootstrap: what laws.json keeps for prediction
    power_laws: Mapping[str, PowerLawFit]  # by variable; those that could be fit
    power_law_samples: Mapping[str, Mapping[str, np.ndarray]]  # by variable, then parameter
    approach1: EmpiricalAllocation | None
    isoflop: EmpiricalAllocation | None
    cost: Mapping[str, Mapping[str, CostFit]]  # by resource, then scale
    holdout: tuple[HoldoutPoint, ...]
    predictions: tuple[ComputeOptimalPrediction, ...]
    degradation: DegradationLaws  # one law per compression variant the points have δ for
    skipped: Mapping[str, str]  # part ("isoflop", "cost.wall_s", ...) -> why it was not fit
    warnings: tuple[str, ...]

    @property
    def chinchilla_intervals(self) -> Mapping[str, tuple[float, float] | None] | None:
        return self.joint_intervals.get("chinchilla")

    def to_json(self) -> dict:
        return _json_safe(
            {
                "n_points": len(self.points),
                "n_runs": int(self.points["n_runs"].sum()),
                "excluded": [asdict(excluded) for excluded in self.excluded],
                "conventions": {
                    "params": self.laws.params_convention,
                    "flops": self.laws.flops_source,
                    "aggregate": self.aggregate,
                    "compute_tolerance": self.compute_tolerance,
                },
                "law": {
                    **asdict(self.choice),
                    "formula": FORMS[self.choice.form].formula,
                    "n_parameters": FORMS[self.choice.form].n_parameters,
                    "why": self.laws.why,
                },
                **{name: self._joint_json(name) for name in FORMS},
                "rollout": None if self.rollout is None else _rollout_json(self.rollout),
                "power_laws": {variable: self._power_law_json(variable) for variable in VARIABLES},
                "approach1": _allocation_json(self.approach1, "optima"),
                "isoflop": _allocation_json(self.isoflop, "minima"),
                "cost": {
                    resource: {scale: {**asdict(fit.law), "n_points": fit.n_points} for scale, fit in by_scale.items()}
                    or None
                    for resource, by_scale in self.cost.items()
                },
                "holdout": [asdict(point) for point in self.holdout],
                "predictions": [prediction.to_json() for prediction in self.predictions],
                **({"degradation": self._degradation_json()} if self.degradation.variants else {}),
                "skipped": dict(self.skipped),
                "warnings": list(self.warnings),
            }
        )

    def _degradation_json(self) -> dict:
        """Per variant its fit, or what it is and why it has no law."""
        fits, why_not = self.degradation.fits, self.degradation.why_not
        return {
            variant: fits[variant].to_json()
            if variant in fits
            else {"variant": variant, "what": describe(variant), "why": why_not[variant]}
            for variant in self.degradation.variants
        }

    def _joint_json(self, name: str) -> dict | None:
        fit = self.joint.get(name)
        if fit is None:
            return None
        n_bootstrap = len(self.chinchilla_samples) if name == "chinchilla" else None
        if name == self.choice.form:
            n_bootstrap = self.choice.n_bootstrap
        return {
            "formula": FORMS[name].formula,
            "n_parameters": FORMS[name].n_parameters,
            **FORMS[name].values(fit.params),
            "huber_objective": fit.objective,
            "converged": fit.converged,
            "n_points": fit.n_points,
            "n_bootstrap": n_bootstrap,
            "ci": self.joint_intervals.get(name),
        }

    def _power_law_json(self, variable: str) -> dict | None:
        fit = self.power_laws.get(variable)
        if fit is None:
            return None
        samples = self.power_law_samples.get(variable)
        return {
            **asdict(fit.saturating),
            "pure": {"A": fit.pure.A, "alpha": fit.pure.alpha},
            "n_points": fit.n_points,
            "ci": intervals(samples) if samples else None,
        }


def _rollout_json(result: Rollout) -> dict:
    return {
        "n_folds": result.n_folds,
        "min_fitted": result.min_fitted,
        "last_fold_extrapolation": result.last_fold_extrapolation,
        "forms": {name: asdict(summary) for name, summary in result.forms.items()},
        "predictions": [asdict(prediction) for prediction in result.predictions],
    }


def _allocation_json(allocation: EmpiricalAllocation | None, optima_key: str) -> dict | None:
    if allocation is None:
        return None
    optima = [
        {key: value for key, value in asdict(optimum).items() if value is not None} for optimum in allocation.optima
    ]
    return {
        "a": allocation.a,
        "b": allocation.b,
        "params_coefficient": allocation.params_coefficient,
        "tokens_coefficient": allocation.tokens_coefficient,
        optima_key: optima,
    }


def _json_safe(value):
    """Plain Python for json.dump: numpy numbers become floats, tuples lists, and NaN or inf (a value
    that could not be computed, e.g. G when α + β = 0) becomes null, since JSON has neither."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
