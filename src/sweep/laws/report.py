"""`fit_report`: every law of this package fit to one table of points, gathered in a `FitReport`.

The Chinchilla law is the one the rest depends on (allocation, predictions, laws.json), so too few
points for it is an InputError. Every other part that cannot be fit (too few compute levels for
IsoFLOP, no wall_s column, ...) is None, with the reason under `skipped`, and the report goes on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from sweep.errors import InputError
from sweep.laws import bootstrap as bootstrapping
from sweep.laws.allocation import DEFAULT_COMPUTE_TOLERANCE, EmpiricalAllocation, fit_approach1, fit_isoflop
from sweep.laws.chinchilla import N_PARAMETERS as CHINCHILLA_PARAMETERS
from sweep.laws.chinchilla import ChinchillaFit, fit_chinchilla
from sweep.laws.cost import RESOURCES, SCALES, CostFit, fit_cost
from sweep.laws.forms import ChinchillaParams, allocation_of, power_law
from sweep.laws.huber import MAX_EXPONENT
from sweep.laws.kaplan import KaplanFit, fit_kaplan
from sweep.laws.powerlaw import VARIABLES, PowerLawFit, fit_power_law, points_for
from sweep.laws.predict import ComputeOptimalPrediction, Laws, predict_compute_optimal, predict_loss_at
from sweep.laws.table import Excluded, FitTable

# Without explicit budgets the report predicts at the largest C in the data and 10x, 100x beyond it.
PREDICTION_MULTIPLES = (1.0, 10.0, 100.0)


@dataclass(frozen=True)
class HoldoutPoint:
    params: float
    tokens: float
    flops: float
    loss: float  # measured
    predicted_loss: float  # Chinchilla law fit without this point
    relative_error: float  # (predicted - measured) / measured
    interval: tuple[float, float] | None  # 95% bootstrap interval of predicted_loss
    predicted_loss_flops_law: float | None  # L(C) = E + A·C^-α, when it could be fit
    relative_error_flops_law: float | None


@dataclass(frozen=True)
class FitReport:
    points: pd.DataFrame  # the points fit, one per (N, D), see `table.FitTable`
    held_out: pd.DataFrame  # the highest-compute points left out of every fit
    excluded: tuple[Excluded, ...]
    aggregate: str
    compute_tolerance: float  # how runs were grouped into compute levels
    chinchilla: ChinchillaFit
    chinchilla_intervals: Mapping[str, tuple[float, float]] | None  # 95%, by parameter; None without samples
    laws: Laws  # the Chinchilla fit with its bootstrap samples: what laws.json keeps for prediction
    power_laws: Mapping[str, PowerLawFit]  # by variable; those that could be fit
    power_law_samples: Mapping[str, Mapping[str, np.ndarray]]  # by variable, then parameter
    kaplan: KaplanFit | None
    approach1: EmpiricalAllocation | None
    isoflop: EmpiricalAllocation | None
    cost: Mapping[str, Mapping[str, CostFit]]  # by resource, then scale
    holdout: tuple[HoldoutPoint, ...]
    predictions: tuple[ComputeOptimalPrediction, ...]
    skipped: Mapping[str, str]  # part ("isoflop", "cost.wall_s", ...) -> why it was not fit
    warnings: tuple[str, ...]

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
                "chinchilla": self._chinchilla_json(),
                "power_laws": {variable: self._power_law_json(variable) for variable in VARIABLES},
                "kaplan": None
                if self.kaplan is None
                else {**asdict(self.kaplan.params), "huber_objective": self.kaplan.objective},
                "approach1": _allocation_json(self.approach1, "optima"),
                "isoflop": _allocation_json(self.isoflop, "minima"),
                "cost": {
                    resource: {scale: {**asdict(fit.law), "n_points": fit.n_points} for scale, fit in by_scale.items()}
                    or None
                    for resource, by_scale in self.cost.items()
                },
                "holdout": [asdict(point) for point in self.holdout],
                "predictions": [prediction.to_json() for prediction in self.predictions],
                "skipped": dict(self.skipped),
                "warnings": list(self.warnings),
            }
        )

    def _chinchilla_json(self) -> dict:
        fit = self.chinchilla
        return {
            **_chinchilla_values(fit.params),
            "huber_objective": fit.objective,
            "converged": fit.converged,
            "n_points": fit.n_points,
            "n_bootstrap": len(self.laws.samples),
            "ci": self.chinchilla_intervals,
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
            "ci": {name: list(bootstrapping.interval(column)) for name, column in samples.items()} if samples else None,
        }


def _chinchilla_values(p: ChinchillaParams) -> dict[str, float]:
    return {**asdict(p), **asdict(allocation_of(p))}


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


def fit_report(
    table: FitTable,
    *,
    bootstrap: int = bootstrapping.DEFAULT_SAMPLES,
    seed: int = 0,
    holdout: int = 0,
    compute_tolerance: float = DEFAULT_COMPUTE_TOLERANCE,
    prediction_flops: Sequence[float] | None = None,
) -> FitReport:
    """Fit every law on `table`'s points except the `holdout` highest-compute ones, which are then
    predicted. `bootstrap` resamples (0 = none) give the 95% intervals; `seed` makes them repeatable.
    `compute_tolerance` groups runs into compute levels for Approaches 1 and 2 (see `allocation.py`).
    Predictions are made at `prediction_flops`, by default the largest C fit and 10x, 100x that."""
    if bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, got {bootstrap}")
    n_points = len(table.points)
    if holdout < 0 or n_points - holdout < CHINCHILLA_PARAMETERS:
        raise InputError(
            f"--holdout {holdout} leaves {n_points - holdout} of {n_points} points; "
            f"the Chinchilla law needs at least {CHINCHILLA_PARAMETERS}"
        )
    points = table.points.iloc[: n_points - holdout].reset_index(drop=True)  # sorted by flops
    held_out = table.points.iloc[n_points - holdout :].reset_index(drop=True)
    params, tokens, loss = (points[column].to_numpy() for column in ("params", "tokens", "loss"))
    skipped: dict[str, str] = {}
    warnings: list[str] = []

    chinchilla = fit_chinchilla(params, tokens, loss)
    samples = _chinchilla_samples(params, tokens, loss, chinchilla, bootstrap, seed, warnings)
    intervals = _chinchilla_intervals(samples)
    if not samples:
        skipped["chinchilla.ci"] = "the bootstrap is off (0 resamples)" if not bootstrap else "no resample could be fit"
    warnings += _chinchilla_warnings(chinchilla, intervals)
    laws = Laws(chinchilla.params, samples, table.params_convention, table.flops_source)
    power_laws, power_law_samples = _fit_power_laws(points, bootstrap, seed, skipped)

    kaplan = _or_skip("kaplan", skipped, fit_kaplan, params, tokens, loss)
    approach1 = _or_skip("approach1", skipped, fit_approach1, points, compute_tolerance)
    isoflop = _or_skip("isoflop", skipped, fit_isoflop, points, compute_tolerance)
    for allocation in (approach1, isoflop):
        warnings += list(allocation.warnings) if allocation else []

    budgets = prediction_flops or [points["flops"].max() * multiple for multiple in PREDICTION_MULTIPLES]
    predictions = _or_skip("predictions", skipped, _predictions, laws, budgets)
    return FitReport(
        points=points,
        held_out=held_out,
        excluded=table.excluded,
        aggregate=table.aggregate,
        compute_tolerance=compute_tolerance,
        chinchilla=chinchilla,
        chinchilla_intervals=intervals,
        laws=laws,
        power_laws=power_laws,
        power_law_samples=power_law_samples,
        kaplan=kaplan,
        approach1=approach1,
        isoflop=isoflop,
        cost=_fit_costs(points, skipped),
        holdout=tuple(_holdout_points(held_out, laws, power_laws.get("flops"))),
        predictions=predictions or (),
        skipped=skipped,
        warnings=tuple(warnings),
    )


def _chinchilla_samples(params, tokens, loss, fit, bootstrap: int, seed: int, warnings: list[str]):
    """The bootstrap refits that came out finite, as parameter sets."""
    if not bootstrap:
        return ()
    refit = bootstrapping.chinchilla_refit(params, tokens, loss, fit)
    columns = bootstrapping.bootstrap(refit, len(params), bootstrap, seed)
    finite = np.all([np.isfinite(column) for column in columns.values()], axis=0)  # (bootstrap,)
    if not finite.all():
        warnings.append(
            f"{bootstrap - finite.sum()} of {bootstrap} bootstrap refits of the Chinchilla law failed (too few "
            "distinct points in the resample, or a coefficient ran off to infinity); intervals use the rest"
        )
    return tuple(
        ChinchillaParams(**{name: float(column[index]) for name, column in columns.items()})
        for index in np.flatnonzero(finite)
    )


def _chinchilla_intervals(samples: Sequence[ChinchillaParams]) -> dict[str, tuple[float, float]] | None:
    """95% intervals of E, A, B, alpha, beta and the allocation a, b, G they imply."""
    if not samples:
        return None
    values = [_chinchilla_values(sample) for sample in samples]
    return {name: bootstrapping.interval(np.array([value[name] for value in values])) for name in values[0]}


# Intervals wider than this factor (for E, A, B) mean the sweep does not pin the law down.
LOOSE_INTERVAL_RATIO = 100.0


def _chinchilla_warnings(fit: ChinchillaFit, intervals: Mapping[str, tuple[float, float]] | None) -> list[str]:
    warnings = []
    if not fit.converged:
        warnings.append("the Chinchilla fit's L-BFGS-B did not report convergence; check the fit against the data")
    for name in ("alpha", "beta"):
        value = getattr(fit.params, name)
        if value <= 0 or value >= MAX_EXPONENT:
            warnings.append(
                f"the Chinchilla {name} = {value:.3g} sits at its bound [0, {MAX_EXPONENT:g}]: the data do not "
                "determine it (at 0 loss does not fall along that axis and there is no compute-optimal allocation)"
            )
    if intervals:
        loose = [name for name in ("alpha", "beta") if not intervals[name][0] > 0]
        loose += [
            name for name in ("E", "A", "B") if not intervals[name][1] < LOOSE_INTERVAL_RATIO * intervals[name][0]
        ]
        if loose:
            shown = ", ".join(f"{name} [{intervals[name][0]:.3g}, {intervals[name][1]:.3g}]" for name in loose)
            warnings.append(
                f"the data pin the Chinchilla law down poorly, 95% intervals: {shown}; "
                "add sizes and token counts spanning more orders of magnitude"
            )
    return warnings


def _fit_power_laws(points: pd.DataFrame, bootstrap: int, seed: int, skipped: dict[str, str]):
    """L(N), L(D), L(C) on their point selections, and their bootstrap samples."""
    laws, samples = {}, {}
    for variable in VARIABLES:
        selected = points_for(points, variable)
        x, loss = selected[variable].to_numpy(), selected["loss"].to_numpy()
        fit = _or_skip(f"power_laws.{variable}", skipped, fit_power_law, variable, x, loss)
        if fit is None:
            continue
        laws[variable] = fit
        if bootstrap:
            samples[variable] = bootstrapping.bootstrap(
                bootstrapping.power_law_refit(x, loss, fit), len(x), bootstrap, seed
            )
    return laws, samples


def _predictions(laws: Laws, budgets: Sequence[float]) -> tuple[ComputeOptimalPrediction, ...]:
    return tuple(predict_compute_optimal(laws, flops) for flops in budgets)


def _or_skip(part: str, skipped: dict[str, str], fit, *args):
    """fit(*args), or None with the InputError's message recorded as why `part` was skipped."""
    try:
        return fit(*args)
    except InputError as error:
        skipped[part] = str(error)
        return None


def _fit_costs(points: pd.DataFrame, skipped: dict[str, str]) -> dict[str, dict[str, CostFit]]:
    """Every resource against every scale; a resource the table lacks is skipped as a whole."""
    costs: dict[str, dict[str, CostFit]] = {resource: {} for resource in RESOURCES}
    for resource in RESOURCES:
        if resource not in points.columns or points[resource].isna().all():
            skipped[f"cost.{resource}"] = f"no '{resource}' values in the table"
            continue
        for scale in SCALES:
            fit = _or_skip(f"cost.{resource}.{scale}", skipped, fit_cost, points, resource, scale)
            if fit is not None:
                costs[resource][scale] = fit
    return costs


def _holdout_points(held_out: pd.DataFrame, laws: Laws, flops_law: PowerLawFit | None):
    for row in held_out.itertuples():
        prediction = predict_loss_at(laws, row.params, row.tokens).loss
        flops_prediction = float(power_law(row.flops, flops_law.saturating)) if flops_law else None
        yield HoldoutPoint(
            params=float(row.params),
            tokens=float(row.tokens),
            flops=float(row.flops),
            loss=float(row.loss),
            predicted_loss=prediction.value,
            relative_error=prediction.value / row.loss - 1.0,
            interval=None if prediction.low is None else (prediction.low, prediction.high),
            predicted_loss_flops_law=flops_prediction,
            relative_error_flops_law=None if flops_prediction is None else flops_prediction / row.loss - 1.0,
        )
