"""The rollout check predicts each compute level from the levels below it, and `--form auto` picks the
form that extrapolates best: the true one, on data drawn from a known law."""

import numpy as np
import pandas as pd
import pytest

from sweep.errors import InputError
from sweep.laws import fit_report, prepare_table
from sweep.laws.forms import ChinchillaParams, KaplanParams, kaplan_loss, predict_loss
from sweep.laws.rollout import choose_form, rollout

KAPLAN = KaplanParams(N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095)  # Kaplan et al. 2020
CHINCHILLA = ChinchillaParams(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)  # Besiroglu et al.


def grid(loss_of, sizes=4, budgets=4, noise=0.003, seed=0) -> pd.DataFrame:
    """An N × D grid (30x in N, 16x in D) with multiplicative noise, sorted by C as the fit table is."""
    rng = np.random.default_rng(seed)
    params, tokens = (
        axis.ravel() for axis in np.meshgrid(np.geomspace(1e6, 3e7, sizes), np.geomspace(2e8, 3.2e9, budgets))
    )
    loss = loss_of(params, tokens) * np.exp(noise * rng.standard_normal(len(params)))
    return prepare_table(pd.DataFrame({"params": params, "tokens": tokens, "loss": loss})).points


def test_each_level_is_predicted_from_every_point_below_it():
    points = grid(lambda n, d: predict_loss(n, d, CHINCHILLA))
    result = rollout(points, tolerance=0.1)
    assert result.min_fitted == 7  # Chinchilla's 5 parameters + 2
    assert result.n_folds == len(points) - 7  # on this grid every point is its own compute level
    for prediction in result.predictions:
        assert prediction.n_fitted == np.sum(points.flops < prediction.flops)
        assert prediction.extrapolation == pytest.approx(
            prediction.flops / points.flops[points.flops < prediction.flops].max()
        )
        for form, error in prediction.relative_error.items():
            assert error == pytest.approx(prediction.predicted[form] / prediction.loss - 1)
    assert set(result.forms) == {"chinchilla", "chinchilla_e0", "kaplan"}
    assert result.forms["chinchilla"].mean_abs_error < 0.01  # the true form, 0.3% noise


@pytest.mark.parametrize(
    "loss_of, form",
    [
        (lambda n, d: kaplan_loss(n, d, KAPLAN), "kaplan"),
        (lambda n, d: predict_loss(n, d, CHINCHILLA), "chinchilla"),
    ],
)
@pytest.mark.slow
def test_auto_predicts_with_the_form_that_extrapolates_best(loss_of, form):
    points = grid(loss_of, sizes=5, budgets=4)
    assert choose_form(rollout(points, tolerance=0.1)) == form
    report = fit_report(prepare_table(points), bootstrap=0)
    assert report.choice.form == form and report.choice.chosen_by == "rollout"
    assert report.laws.form == form


def test_too_few_points_for_a_fold_says_so_and_auto_falls_back_to_chinchilla():
    points = grid(lambda n, d: predict_loss(n, d, CHINCHILLA), sizes=3, budgets=2)  # 6 points
    with pytest.raises(InputError, match="rollout check needs a compute level with at least 7 points"):
        rollout(points, tolerance=0.1)
    report = fit_report(prepare_table(points), bootstrap=0)
    assert report.choice.form == "chinchilla" and report.choice.chosen_by == "default"
    assert "rollout" in report.to_json()["skipped"]
    assert any("--form auto: no rollout check" in warning for warning in report.warnings)
