"""The whole fit: the report's JSON shape, held-out points, parts that cannot be fit, laws.json and
the predictions `sweep predict` makes from it."""

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from sweep.errors import InputError
from sweep.laws import (
    ChinchillaParams,
    Laws,
    allocate,
    fit_report,
    load_laws,
    predict_compute_optimal,
    predict_loss,
    predict_loss_at,
    prepare_table,
    save_laws,
)
from sweep.laws.bootstrap import why_no_interval
from sweep.laws.fitreport import LawChoice
from sweep.laws.forms import kaplan_allocate, kaplan_loss

TRUTH = ChinchillaParams(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)  # Besiroglu et al.


def isoflop_store(noise=0.005, seed=0):
    """A run store's DataFrame from an IsoFLOP sweep: 5 budgets x 7 sizes around the optimum, one
    failed run, wall time proportional to N·D and memory to N."""
    rng = np.random.default_rng(seed)
    rows = []
    for flops in np.geomspace(1e16, 1e20, 5):
        params_opt, _ = allocate(flops, TRUTH)
        for params in params_opt * np.geomspace(1 / 5, 5, 7):
            tokens = flops / (6 * params)
            rows.append(
                {
                    "run_id": f"run{len(rows)}",
                    "status": "done",
                    "params": params,
                    "params_total": params * 1.1,
                    "tokens": tokens,
                    "flops": 6 * params * tokens,
                    "loss": predict_loss(params, tokens, TRUTH) * np.exp(noise * rng.standard_normal()),
                    "wall_s": 2e-11 * params * tokens,
                    "peak_mem_bytes": 16 * params + 1e8,
                }
            )
    rows.append({"run_id": "boom", "status": "failed", "params": 1e9, "tokens": 1e9, "loss": np.nan})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report():
    return fit_report(prepare_table(isoflop_store()), bootstrap=20, seed=0, holdout=2)


def test_json_has_the_promised_shape(report):
    result = report.to_json()
    json.dumps(result, allow_nan=False)  # plain JSON, no NaN
    assert result["n_points"] == 33  # 35 done runs, 2 held out
    assert result["excluded"] == [{"run_id": "boom", "reason": "status 'failed'"}]
    chinchilla = result["chinchilla"]
    for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
        low, high = chinchilla["ci"][name]
        assert low <= chinchilla[name] <= high, name
    assert chinchilla["alpha"] == pytest.approx(TRUTH.alpha, rel=0.05)
    assert chinchilla["a"] == pytest.approx(TRUTH.beta / (TRUTH.alpha + TRUTH.beta), abs=0.02)
    assert set(result["power_laws"]) == {"params", "tokens", "flops"}
    assert {"E", "A", "alpha"} <= set(result["power_laws"]["flops"])
    assert set(result["approach1"]) >= {"a", "b"}
    assert result["isoflop"]["a"] == pytest.approx(chinchilla["a"], abs=0.03)
    assert len(result["isoflop"]["minima"]) == 5
    assert result["kaplan"]["alpha_D"] > 0
    assert isinstance(result["warnings"], list)


def test_cost_laws_recover_their_exponents(report):
    cost = report.to_json()["cost"]
    assert cost["flops"]["params_x_tokens"]["C0"] == pytest.approx(6.0, rel=1e-9)
    assert cost["flops"]["params_x_tokens"]["n"] == pytest.approx(1.0, rel=1e-9)
    assert cost["wall_s"]["params_x_tokens"]["n"] == pytest.approx(1.0, rel=1e-9)
    assert 0.5 < cost["peak_mem_bytes"]["params"]["n"] < 1.0  # 16 N + a constant


def test_holdout_predicts_the_highest_compute_points(report):
    holdout = report.to_json()["holdout"]
    assert len(holdout) == 2
    for point in holdout:
        assert point["flops"] == pytest.approx(1e20)
        assert point["relative_error"] == pytest.approx(point["predicted_loss"] / point["loss"] - 1)
        assert abs(point["relative_error"]) < 0.03  # 0.5% noise, extrapolating one decade of C
        assert point["predicted_loss_flops_law"] is not None
    assert len(report.points) == 33 and report.points.flops.max() <= min(point["flops"] for point in holdout)


def test_parts_that_cannot_be_fit_are_null_with_a_reason():
    rows = [
        {"params": params, "tokens": tokens, "loss": float(predict_loss(params, tokens, TRUTH))}
        for params in (1e6, 3e6, 1e7)
        for tokens in (1e8, 1e9)
    ]
    result = fit_report(prepare_table(pd.DataFrame(rows)), bootstrap=0).to_json()
    assert result["isoflop"] is None and "IsoFLOP" in result["skipped"]["isoflop"]
    assert result["power_laws"]["tokens"] is None
    assert "L(tokens)" in result["skipped"]["power_laws.tokens"]
    assert "needs at least 3 points, but only 2" in result["skipped"]["power_laws.tokens"]
    assert result["cost"]["wall_s"] is None and "wall_s" in result["skipped"]["cost.wall_s"]
    assert result["chinchilla"]["ci"] is None and "bootstrap" in result["skipped"]["chinchilla.ci"]


def test_bad_report_options():
    table = prepare_table(isoflop_store())
    with pytest.raises(InputError, match="--holdout 33 leaves 2 of 35 points; the Chinchilla law needs at least 5"):
        fit_report(table, holdout=33, bootstrap=0)
    with pytest.raises(InputError, match="--bootstrap must be 0 or more"):
        fit_report(table, bootstrap=-1)


def test_laws_json_round_trip_and_predictions(report, tmp_path):
    path = save_laws(report, tmp_path / "laws.json")
    laws = load_laws(path)
    assert laws == report.laws
    assert len(laws.samples) == 20
    assert laws.params_convention == "non_embedding" and laws.flops_source == "flops"

    assert laws.form == "chinchilla"  # the true form extrapolates best in the rollout check
    prediction = predict_compute_optimal(laws, 1e21)
    params_opt, tokens_opt = allocate(1e21, report.chinchilla.params)
    assert prediction.params.value == pytest.approx(params_opt)
    assert 6 * prediction.params.value * prediction.tokens.value == pytest.approx(1e21)
    for estimate in (prediction.params, prediction.tokens, prediction.tokens_per_param, prediction.loss):
        assert estimate.ci[0] <= estimate.value <= estimate.ci[1]
    assert prediction.loss.interval[0] <= prediction.loss.value <= prediction.loss.interval[1]
    assert prediction.loss.value == pytest.approx(predict_loss(params_opt, tokens_opt, TRUTH), rel=0.01)

    at_size = predict_loss_at(laws, params=1e9, tokens=2e10)
    low, high = at_size.loss.interval
    assert low <= at_size.loss.value <= high
    assert low < at_size.loss.ci[0] and at_size.loss.ci[1] < high  # a run's loss scatters beyond the law's spread
    assert at_size.loss.value == pytest.approx(predict_loss(1e9, 2e10, TRUTH), rel=0.01)
    json.dumps(prediction.to_json(), allow_nan=False)
    with pytest.raises(InputError, match="flops must be a positive number"):
        predict_compute_optimal(laws, -1.0)


def test_load_laws_rejects_what_it_cannot_read(tmp_path):
    with pytest.raises(InputError, match="no such laws file"):
        load_laws(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not a JSON file"):
        load_laws(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"E": 1}')
    with pytest.raises(InputError, match="not a laws file written by `sweep fit`"):
        load_laws(tmp_path / "other.json")
    (tmp_path / "cut.json").write_text('{"format": "sweep-laws/1", "chinchilla": {"E": 1.0}}')
    with pytest.raises(InputError, match="damaged"):
        load_laws(tmp_path / "cut.json")


def test_a_law_without_an_optimum_says_so():
    flat_in_params = Laws(
        form="chinchilla",
        law=ChinchillaParams(E=1.8, A=400.0, B=2000.0, alpha=0.0, beta=0.36),
        samples=(),
        noise=(),
        params_convention="non_embedding",
        flops_source="flops",
    )
    with pytest.raises(InputError, match=r"alpha = 0, beta = 0\.36.*no compute-optimal allocation"):
        predict_compute_optimal(flat_in_params, 1e20)
    assert predict_loss_at(flat_in_params, 1e9, 1e10).loss.value == pytest.approx(1.8 + 400 + 2000 / 1e10**0.36)


def test_no_residual_degrees_of_freedom_gives_no_interval_and_says_why():
    """5 points for the 5-parameter law (and 3 per power law): nothing is left to measure the scatter
    with, so there is no interval, rather than a zero-width one."""
    rng = np.random.default_rng(1)
    sizes_tokens = [(1e6, 1e8), (3e6, 1e8), (1e7, 1e8), (1e6, 1e9), (1e7, 1e9), (3e7, 1e9)]
    rows = [
        {"params": n, "tokens": d, "loss": float(predict_loss(n, d, TRUTH)) * np.exp(0.01 * rng.standard_normal())}
        for n, d in sizes_tokens
    ]
    result = fit_report(prepare_table(pd.DataFrame(rows)), bootstrap=20, holdout=1, form="chinchilla").to_json()
    assert result["chinchilla"]["ci"] is None
    assert "5 points for the 5-parameter law chinchilla leave no residual degrees of freedom" in result["law"]["why"]
    (point,) = result["holdout"]
    assert point["interval"] is None and point["ci"] is None and point["why"] == result["law"]["why"]
    loss = result["predictions"][0]["loss"]
    assert loss["interval"] is None and loss["ci"] is None and "no residual degrees of freedom" in loss["why"]
    assert result["power_laws"]["params"]["ci"] is None
    assert "3 points for the 3-parameter law L(params)" in result["skipped"]["power_laws.params.ci"]


def test_refits_that_all_agree_or_are_too_few_give_no_interval():
    assert "every bootstrap refit gives the same value" in why_no_interval(np.full(20, 2.548))
    assert "only 3 of 20 bootstrap refits are usable" in why_no_interval(np.r_[np.full(17, np.nan), 1.0, 2.0, 3.0])
    assert why_no_interval(np.linspace(2.5, 2.6, 20)) is None


def test_a_chosen_form_is_used_for_every_prediction_and_survives_laws_json(tmp_path):
    report = fit_report(prepare_table(isoflop_store()), bootstrap=12, holdout=1, form="kaplan")
    assert report.choice == LawChoice(
        form="kaplan", chosen_by="--form", noise_scale=report.choice.noise_scale, residual_dof=34 - 4, n_bootstrap=12
    )
    assert report.rollout is None and "rollout" not in report.skipped  # not asked for
    kaplan = report.joint["kaplan"].params
    (point,) = report.holdout
    assert point.predicted_loss == pytest.approx(kaplan_loss(point.params, point.tokens, kaplan))
    laws = load_laws(save_laws(report, tmp_path / "laws.json"))
    assert laws == report.laws and laws.form == "kaplan" and len(laws.noise) == len(laws.samples) == 12
    params_opt, tokens_opt = kaplan_allocate(1e21, kaplan)
    assert predict_compute_optimal(laws, 1e21).params.value == pytest.approx(params_opt)
    assert predict_loss_at(laws, 1e9, 2e10).loss.value == pytest.approx(kaplan_loss(1e9, 2e10, kaplan))
    assert set(report.to_json()["kaplan"]["ci"]) == {"N_c", "D_c", "alpha_N", "alpha_D", "a", "b", "G"}


def test_laws_json_format_1_still_predicts_with_the_parameter_interval(report, tmp_path):
    samples = report.chinchilla_samples
    old = {
        "format": "sweep-laws/1",
        "chinchilla": asdict(report.chinchilla.params),
        "conventions": {"params": "non_embedding", "flops": "flops"},
        "bootstrap_samples": {
            "chinchilla": {name: [getattr(s, name) for s in samples] for name in "E A B alpha beta".split()}
        },
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    laws = load_laws(tmp_path / "old.json")
    assert laws.form == "chinchilla" and laws.samples == samples and laws.noise == ()
    loss = predict_loss_at(laws, 1e9, 2e10).loss
    assert loss.ci is not None and loss.interval is None and "sweep-laws/1" in loss.why
