"""`fit_report`: every law of this package fit to one table of points, gathered in a `FitReport`
(`fitreport.py`).

The Chinchilla law is always fit, and too few points for it is an InputError. The law that predicts
(held-out points, compute-optimal models, laws.json) is one of the joint forms of `forms/joint.py`: the
one asked for, or with `form="auto"` the one that extrapolated best in the rollout check
(`rollout.py`). Its intervals come from its parametric bootstrap (`bootstrap.py`): `interval` is a
95% prediction interval for a run's loss, `ci` the law's own (parameter) uncertainty. Every part
that cannot be fit or has no honest interval (too few compute levels for IsoFLOP, no wall_s column,
no residual degrees of freedom, ...) is None, with the reason under `skipped` (and an estimate's
`why`), and the report goes on.

When the points carry delta_<variant> columns (post-training compression), each variant's law
δ = C·D^γ_D/N^γ_N is fit too (`degradation.py`), under "degradation"; without them the report is as
it was, with no such key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields

import numpy as np
import pandas as pd

from sweep.errors import InputError, shown
from sweep.laws import FORM_CHOICES
from sweep.laws import bootstrap as bootstrapping
from sweep.laws.allocation import DEFAULT_COMPUTE_TOLERANCE, EmpiricalAllocation, fit_approach1, fit_isoflop
from sweep.laws.bootstrap import LawSamples, intervals, why_no_interval
from sweep.laws.degradation import DegradationLaws, fit_all
from sweep.laws.fitreport import FitReport, HoldoutPoint, LawChoice
from sweep.laws.forms.chinchilla import N_PARAMETERS as CHINCHILLA_PARAMETERS
from sweep.laws.forms.chinchilla import ChinchillaFit
from sweep.laws.forms.cost import RESOURCES, SCALES, CostFit, fit_cost
from sweep.laws.forms.equations import power_law, quiet_floats
from sweep.laws.forms.huber import MAX_EXPONENT
from sweep.laws.forms.joint import FORMS, JointFit, JointForm, LawParams
from sweep.laws.forms.powerlaw import VARIABLES, PowerLawFit, fit_power_law, points_for
from sweep.laws.predict import (
    ComputeOptimalPrediction,
    Laws,
    bootstrapped_laws,
    predict_compute_optimal,
    predict_loss_at,
)
from sweep.laws.rollout import Rollout, choose_form, rollout
from sweep.laws.table import FitTable

# Without explicit budgets the report predicts at the largest C in the data and 10x, 100x beyond it.
PREDICTION_MULTIPLES = (1.0, 10.0, 100.0)
POWER_LAW_PARAMETERS = 3  # E, A, α
# The chosen law's rollout error beyond this many times the points' own scatter s is warned about. A
# right form misses by about s plus what its fit on fewer points gets wrong extrapolating (~1-1.5 s
# on synthetic sweeps); well beyond that, the form itself extrapolates badly.
ROLLOUT_WARNING_RATIO = 3.0


@quiet_floats
def fit_report(
    table: FitTable,
    *,
    bootstrap: int = bootstrapping.DEFAULT_SAMPLES,
    seed: int = 0,
    holdout: int = 0,
    compute_tolerance: float = DEFAULT_COMPUTE_TOLERANCE,
    prediction_flops: Sequence[float] | None = None,
    form: str = "auto",
    with_rollout: bool = False,
) -> FitReport:
    """Fit every law on `table`'s points except the `holdout` highest-compute ones, which are then
    predicted. `bootstrap` refits (0 = none) give the 95% intervals; `seed` makes them repeatable.
    `form` is the joint law to predict with, or "auto": the lowest rollout error. The rollout check
    runs for "auto" or `with_rollout`. `compute_tolerance` groups runs into compute levels for the
    rollout and Approaches 1 and 2 (see `allocation.py`). Predictions are made at `prediction_flops`,
    by default the largest C fit and 10x, 100x that."""
    if bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, got {bootstrap}")
    if form not in FORM_CHOICES:
        raise InputError(f"--form must be one of {', '.join(FORM_CHOICES)}, got {shown(form)}")
    points, held_out = _split_off_holdout(table.points, holdout)
    skipped: dict[str, str] = {}
    warnings: list[str] = list(table.warnings)

    joint = _fit_joint_forms(points, skipped)
    rolled = None
    if form == "auto" or with_rollout:
        rolled = _or_skip("rollout", skipped, rollout, points, compute_tolerance)
    chosen, chosen_by = _choose(form, rolled, joint, skipped, warnings)
    # The Chinchilla table's intervals, and the chosen law's.
    laws_by_form, law_samples = _bootstrap_forms(
        ["chinchilla", chosen], joint, points, table, bootstrap, seed, skipped, warnings
    )
    laws = laws_by_form[chosen]
    joint_intervals = {
        name: _law_intervals(FORMS[name], samples.laws) for name, samples in law_samples.items() if samples.laws
    }
    warnings += _chinchilla_warnings(joint["chinchilla"], joint_intervals.get("chinchilla"))
    choice = LawChoice(
        form=chosen,
        chosen_by=chosen_by,
        noise_scale=law_samples[chosen].noise_scale if chosen in law_samples else None,
        residual_dof=law_samples[chosen].residual_dof if chosen in law_samples else None,
        n_bootstrap=len(laws.samples),
    )
    warnings += _rollout_warnings(rolled, choice)
    power_laws, power_law_samples = _fit_power_laws(points, bootstrap, seed, skipped)
    approach1, isoflop = _fit_allocations(points, compute_tolerance, skipped, warnings)
    budgets = prediction_flops or [points["flops"].max() * multiple for multiple in PREDICTION_MULTIPLES]
    predictions = _or_skip("predictions", skipped, _predictions, laws, budgets)
    degradation = _fit_degradation(points, bootstrap, seed, skipped)
    return FitReport(
        points=points,
        held_out=held_out,
        excluded=table.excluded,
        aggregate=table.aggregate,
        compute_tolerance=compute_tolerance,
        chinchilla=joint["chinchilla"],
        chinchilla_samples=laws_by_form["chinchilla"].samples,
        joint=joint,
        joint_intervals=joint_intervals,
        choice=choice,
        rollout=rolled,
        laws=laws,
        power_laws=power_laws,
        power_law_samples=power_law_samples,
        approach1=approach1,
        isoflop=isoflop,
        cost=_fit_costs(points, skipped),
        holdout=tuple(_holdout_points(held_out, laws, power_laws.get("flops"))),
        predictions=predictions or (),
        degradation=degradation,
        skipped=skipped,
        warnings=tuple(warnings),
    )


def _split_off_holdout(points: pd.DataFrame, holdout: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the points to fit, the `holdout` highest-compute ones to predict): `points` are sorted by flops."""
    _check_holdout(len(points), holdout)
    n_points = len(points)
    return (
        points.iloc[: n_points - holdout].reset_index(drop=True),
        points.iloc[n_points - holdout :].reset_index(drop=True),
    )


def _check_holdout(n_points: int, holdout: int) -> None:
    """Enough points left to fit the Chinchilla law; --holdout is named only when it was given."""
    if holdout < 0:
        raise InputError(f"--holdout must be 0 or more, got {holdout}")
    if n_points - holdout >= CHINCHILLA_PARAMETERS:
        return
    if holdout:
        raise InputError(
            f"--holdout {holdout} leaves {n_points - holdout} of {n_points} points; "
            f"the Chinchilla law needs at least {CHINCHILLA_PARAMETERS}"
        )
    raise InputError(
        f"the Chinchilla law needs at least {CHINCHILLA_PARAMETERS} points (one per (N, D)); the table holds {n_points}"
    )


def _finite_fit(form: JointForm, params, tokens, loss) -> JointFit:
    """`form` fit from its grid; InputError when no start gives a finite objective or the fit runs off
    to infinity: then the data do not determine the law, and it cannot predict or be saved."""
    try:
        fit = form.fit(params, tokens, loss)
    except FloatingPointError:
        raise InputError(f"the {form.name} law could not be fit: every start gave a non-finite objective") from None
    off = [name for name, value in asdict(fit.params).items() if not math.isfinite(value)]
    if off:
        raise InputError(
            f"the {form.name} fit ran off to infinity ({', '.join(off)}): these points do not determine it"
        )
    return fit


def _fit_joint_forms(points: pd.DataFrame, skipped: dict[str, str]) -> dict[str, JointFit]:
    """Every joint form that can be fit on `points`, by name; without the Chinchilla law, no report."""
    params, tokens, loss = (points[column].to_numpy() for column in ("params", "tokens", "loss"))
    joint = {
        name: fit
        for name, joint_form in FORMS.items()
        if (fit := _or_skip(name, skipped, _finite_fit, joint_form, params, tokens, loss)) is not None
    }
    if "chinchilla" not in joint:
        raise InputError(skipped["chinchilla"])
    return joint


def _bootstrap_forms(
    names: Sequence[str],
    joint: Mapping[str, JointFit],
    points: pd.DataFrame,
    table: FitTable,
    bootstrap: int,
    seed: int,
    skipped: dict[str, str],
    warnings: list[str],
) -> tuple[dict[str, Laws], dict[str, LawSamples]]:
    """`Laws` for each form in `names`, and the bootstrap samples of those that have them."""
    law_samples: dict[str, LawSamples] = {}
    laws_by_form: dict[str, Laws] = {}
    for name in dict.fromkeys(names):
        laws_by_form[name], samples = bootstrapped_laws(
            FORMS[name], joint[name], points, bootstrap, seed, table.params_convention, table.flops_source
        )
        if samples is not None:
            law_samples[name] = samples
            if samples.n_failed:
                warnings.append(
                    f"{samples.n_failed} of {bootstrap} bootstrap refits of the {name} law failed (a coefficient ran "
                    "off to infinity); intervals use the rest"
                )
        if laws_by_form[name].why:
            skipped[f"{name}.ci"] = laws_by_form[name].why
    return laws_by_form, law_samples


def _choose(
    form: str, rolled: Rollout | None, joint: Mapping[str, JointFit], skipped: dict[str, str], warnings: list[str]
) -> tuple[str, str]:
    """(the form to predict with, why it is the one), among the forms whose full fit succeeded."""
    if form != "auto":
        if form not in joint:
            raise InputError(f"--form {form}: {skipped[form]}")
        return form, "--form"
    if rolled is None:
        warnings.append(f"--form auto: no rollout check ({skipped['rollout']}); predicting with the chinchilla law")
        return "chinchilla", "default"
    return choose_form(rolled, among=joint), "rollout"


def _rollout_warnings(rolled: Rollout | None, choice: LawChoice) -> list[str]:
    if rolled is None or choice.noise_scale is None:
        return []
    error = rolled.forms[choice.form].mean_abs_error
    if not error > ROLLOUT_WARNING_RATIO * choice.noise_scale:
        return []
    return [
        f"fit on cheaper runs, the {choice.form} law missed the next compute level by {100 * error:.2g}% on average "
        f"(rollout check), more than {ROLLOUT_WARNING_RATIO:g}x the points' own scatter ({100 * choice.noise_scale:.2g}%): "
        "it extrapolates worse than it fits; its intervals assume the form is right, so trust predictions far "
        "beyond the data less than they suggest"
    ]


def _law_intervals(form: JointForm, samples: Sequence[LawParams]) -> dict[str, tuple[float, float] | None]:
    """95% intervals of the law's fitted parameters and the allocation a, b, G they imply."""
    values = [form.values(sample) for sample in samples]
    names = [*form.names, *(field.name for field in fields(form.allocation(samples[0])))]
    return intervals({name: np.array([value[name] for value in values]) for name in names})


# Intervals wider than this factor (for E, A, B) mean the sweep does not pin the law down.
LOOSE_INTERVAL_RATIO = 100.0


def _chinchilla_warnings(fit: ChinchillaFit, intervals: Mapping[str, tuple[float, float] | None] | None) -> list[str]:
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
        known = {name: bounds for name, bounds in intervals.items() if bounds is not None}
        loose = [name for name in ("alpha", "beta") if name in known and not known[name][0] > 0]
        loose += [
            name
            for name in ("E", "A", "B")
            if name in known and not known[name][1] < LOOSE_INTERVAL_RATIO * known[name][0]
        ]
        if loose:
            shown = ", ".join(f"{name} [{known[name][0]:.3g}, {known[name][1]:.3g}]" for name in loose)
            warnings.append(
                f"the data pin the Chinchilla law down poorly, 95% intervals: {shown}; "
                "add sizes and token counts spanning more orders of magnitude"
            )
    return warnings


def _fit_power_laws(points: pd.DataFrame, bootstrap: int, seed: int, skipped: dict[str, str]):
    """L(N), L(D), L(C) on their point selections, and their bootstrap samples (resampling points)."""
    laws, samples = {}, {}
    for variable in VARIABLES:
        selected = points_for(points, variable)
        x, loss = selected[variable].to_numpy(), selected["loss"].to_numpy()
        fit = _or_skip(f"power_laws.{variable}", skipped, fit_power_law, variable, x, loss)
        if fit is None:
            continue
        laws[variable] = fit
        if not bootstrap:
            continue
        if len(x) <= POWER_LAW_PARAMETERS:
            skipped[f"power_laws.{variable}.ci"] = (
                f"{len(x)} points for the {POWER_LAW_PARAMETERS}-parameter law L({variable}) leave no residual degrees "
                "of freedom, so there is no interval"
            )
            continue
        samples[variable] = bootstrapping.bootstrap(
            bootstrapping.power_law_refit(x, loss, fit), len(x), bootstrap, seed
        )
        why = why_no_interval(samples[variable]["alpha"])
        if why:
            skipped[f"power_laws.{variable}.ci"] = why
    return laws, samples


def _fit_allocations(
    points: pd.DataFrame, compute_tolerance: float, skipped: dict[str, str], warnings: list[str]
) -> tuple[EmpiricalAllocation | None, EmpiricalAllocation | None]:
    """Hoffmann et al.'s Approaches 1 and 2 (IsoFLOP), each None when it cannot be fit."""
    approach1 = _or_skip("approach1", skipped, fit_approach1, points, compute_tolerance)
    isoflop = _or_skip("isoflop", skipped, fit_isoflop, points, compute_tolerance)
    for allocation in (approach1, isoflop):
        warnings += list(allocation.warnings) if allocation else []
    return approach1, isoflop


def _fit_degradation(points: pd.DataFrame, bootstrap: int, seed: int, skipped: dict[str, str]) -> DegradationLaws:
    """A law per compression variant the points have δ for; why not, or why no interval, under `skipped`."""
    degradation = fit_all(points, bootstrap, seed)
    skipped.update({f"degradation.{variant}": why for variant, why in degradation.why_not.items()})
    skipped.update({f"degradation.{variant}.ci": fit.why for variant, fit in degradation.fits.items() if fit.why})
    return degradation


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
            interval=prediction.interval,
            ci=prediction.ci,
            why=prediction.why,
            predicted_loss_flops_law=flops_prediction,
            relative_error_flops_law=None if flops_prediction is None else flops_prediction / row.loss - 1.0,
        )
