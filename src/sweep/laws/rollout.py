"""Rollout check: how well each joint law, fit on the cheaper runs, predicts the next compute level.

This is rolling-origin evaluation (Tashman 2000, "Out-of-sample tests of forecasting accuracy",
Int. J. Forecasting 16:437), ordered by compute instead of time: it asks the question a scaling law
is for, extrapolation to larger C, on the sweep's own data, and answers it for every form on the
same folds, so the form to predict with can be chosen by it (`choose_form`).

Folds. Points are grouped into compute levels by `allocation.compute_levels` (points within 10% of
each other's C form one level; on an N × D grid nearly every point is its own level). For each level
k with at least `min_fitted` points in at least 2 compute levels below it, every form is fit on all
points with C below level k and predicts level k's points. `min_fitted` is the largest form's parameter count + 2, so every form
sees the same folds and none is fit with no residual degrees of freedom. With more such levels than
MAX_FOLDS (a large sweep), MAX_FOLDS of them spread evenly are the folds' origins, and each fold
predicts every level up to the next origin. Fits are single fits from
each form's grid, without the bootstrap, which keeps the check to seconds.

Each prediction's relative error (predicted - measured) / measured is reported against its
extrapolation factor C / (largest C fit). A form's score is its mean |relative error| over every
prediction: a mean, not a median, so that a form that blows up on one fold pays for it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweep.errors import InputError
from sweep.laws.allocation import compute_levels
from sweep.laws.forms.joint import FORMS, MOST_PARAMETERS, JointForm

# A fold is fit on at least this many compute levels: points of one level all lie on one line of
# constant C (an IsoFLOP budget), which says nothing about how loss changes with C.
MIN_LEVELS_FITTED = 2
# At most this many folds (3 fits each): a large or irregular sweep has a level per point.
MAX_FOLDS = 12
# Each fold's fit refines the best 3 of its form's grid starts, not 10: on 9-50 points the best few
# starts already share one basin (checked against 10 on synthetic sweeps: the same minimum).
ROLLOUT_REFINED = 3
# Extrapolation factors C / (largest C fit), binned for the summary: (label, low, high], high inclusive.
FACTOR_BINS = (("<=2", 0.0, 2.0), ("2-4", 2.0, 4.0), (">4", 4.0, np.inf))


@dataclass(frozen=True)
class RolloutPrediction:
    fold: int  # 0, 1, ... in order of compute
    params: float
    tokens: float
    flops: float
    loss: float  # measured
    n_fitted: int  # points the laws were fit on: every point with C below this level
    extrapolation: float  # C / (largest C fit)
    predicted: Mapping[str, float]  # by form; NaN where the fit failed
    relative_error: Mapping[str, float]  # (predicted - measured) / measured, by form


@dataclass(frozen=True)
class FormRollout:
    mean_abs_error: float  # over every prediction; the score `choose_form` ranks by
    median_abs_error_by_factor: Mapping[str, float | None]  # by FACTOR_BINS label; None: no prediction there
    last_fold_error: float  # mean signed relative error of the last fold, fit on the most points
    n_failed: int  # predictions that are NaN or inf: a fit that failed, or a law that blew up there


@dataclass(frozen=True)
class Rollout:
    predictions: tuple[RolloutPrediction, ...]
    forms: Mapping[str, FormRollout]
    n_folds: int
    min_fitted: int
    last_fold_extrapolation: float  # the largest extrapolation factor of the last fold


def rollout(
    points: pd.DataFrame,
    tolerance: float,
    forms: Mapping[str, JointForm] = FORMS,
    min_fitted: int = MOST_PARAMETERS + 2,
) -> Rollout:
    """Every form's predictions of each compute level from the levels below it (module docstring)."""
    levels = compute_levels(points["flops"].to_numpy(), tolerance)
    n_levels = int(levels.max()) + 1
    origins = _fold_origins(points, levels, min_fitted)
    predictions: list[RolloutPrediction] = []
    for fold, (origin, end) in enumerate(zip(origins, [*origins[1:], n_levels])):
        below, target = points[levels < origin], points[(levels >= origin) & (levels < end)]
        predicted = {name: _predict(form, below, target) for name, form in forms.items()}  # each (m,)
        largest_fitted = below["flops"].max()
        for index, row in enumerate(target.itertuples()):
            by_form = {name: float(values[index]) for name, values in predicted.items()}
            predictions.append(
                RolloutPrediction(
                    fold=fold,
                    params=float(row.params),
                    tokens=float(row.tokens),
                    flops=float(row.flops),
                    loss=float(row.loss),
                    n_fitted=len(below),
                    extrapolation=float(row.flops / largest_fitted),
                    predicted=by_form,
                    relative_error={name: value / row.loss - 1.0 for name, value in by_form.items()},
                )
            )
    if not predictions:
        raise InputError(
            f"the rollout check needs a compute level with at least {min_fitted} points in {MIN_LEVELS_FITTED}+ "
            f"compute levels, 2 sizes and 2 token counts below it; these {len(points)} points in "
            f"{n_levels} compute levels have none"
        )
    last_fold = predictions[-1].fold
    return Rollout(
        predictions=tuple(predictions),
        forms={name: _summary(predictions, name, last_fold) for name in forms},
        n_folds=last_fold + 1,
        min_fitted=min_fitted,
        last_fold_extrapolation=max(p.extrapolation for p in predictions if p.fold == last_fold),
    )


def _fold_origins(points: pd.DataFrame, levels: np.ndarray, min_fitted: int) -> list[int]:
    """The compute levels each fold predicts from: those with enough below them (module docstring),
    thinned to MAX_FOLDS spread evenly over them."""
    eligible = []
    for level in range(MIN_LEVELS_FITTED, int(levels.max()) + 1):
        below = points[levels < level]
        if len(below) >= min_fitted and min(below[["params", "tokens"]].nunique()) >= 2:
            eligible.append(level)  # else too few points, or one size or token count only: no form is identified
    if len(eligible) <= MAX_FOLDS:
        return eligible
    return [eligible[index] for index in np.unique(np.linspace(0, len(eligible) - 1, MAX_FOLDS).round().astype(int))]


def _predict(form: JointForm, fitted: pd.DataFrame, target: pd.DataFrame) -> np.ndarray:
    params, tokens, loss = (fitted[column].to_numpy() for column in ("params", "tokens", "loss"))
    try:
        law = form.fit(params, tokens, loss, n_refined=ROLLOUT_REFINED).params
    except FloatingPointError:  # every start gave a non-finite objective
        return np.full(len(target), np.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(form.loss(target["params"].to_numpy(), target["tokens"].to_numpy(), law), dtype=float)


def _summary(predictions: list[RolloutPrediction], name: str, last_fold: int) -> FormRollout:
    errors = np.array([p.relative_error[name] for p in predictions])  # (m,)
    factors = np.array([p.extrapolation for p in predictions])
    usable = np.isfinite(errors)
    by_factor = {}
    for label, low, high in FACTOR_BINS:
        selected = np.abs(errors[usable & (factors > low) & (factors <= high)])
        by_factor[label] = float(np.median(selected)) if selected.size else None
    last = [p.relative_error[name] for p in predictions if p.fold == last_fold]
    return FormRollout(
        mean_abs_error=float(np.mean(np.abs(errors[usable]))) if usable.any() else float("nan"),
        median_abs_error_by_factor=by_factor,
        last_fold_error=float(np.mean(last)),
        n_failed=int((~usable).sum()),
    )


def choose_form(result: Rollout, among: Collection[str] | None = None) -> str:
    """The form with the lowest mean |relative error|, of those `among` (default: all); a form with a
    failed fit ranks after every form without one, and ties go to the first in `forms.joint.FORMS` order."""
    names = [name for name in result.forms if among is None or name in among]
    return min(names, key=lambda name: (result.forms[name].n_failed > 0, result.forms[name].mean_abs_error))
