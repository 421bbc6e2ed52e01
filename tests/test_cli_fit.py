"""`sweep fit` and `sweep predict` through the CLI, on tables drawn from a known law."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sweep.cli import app

runner = CliRunner()
TRUTH = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.28}


def law_table(path, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    params, tokens = np.meshgrid(np.geomspace(1e6, 1e9, 7), np.geomspace(1e8, 1e11, 7))
    params, tokens = params.ravel(), tokens.ravel()
    loss = TRUTH["E"] + TRUTH["A"] / params ** TRUTH["alpha"] + TRUTH["B"] / tokens ** TRUTH["beta"]
    loss = loss * np.exp(noise * rng.standard_normal(loss.shape))
    pd.DataFrame({"params": params, "tokens": tokens, "loss": loss}).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_fit_json_recovers_the_law_and_predict_answers_a_budget(tmp_path):
    table = law_table(tmp_path / "runs.csv")
    out = tmp_path / "laws"
    result = runner.invoke(app, ["fit", str(table), "--json", "--bootstrap", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    laws = json.loads(result.output)
    assert laws["n_points"] == 49
    for name, value in TRUTH.items():
        assert laws["chinchilla"][name] == pytest.approx(value, rel=0.01)
    assert laws["chinchilla"]["a"] == pytest.approx(0.28 / (0.34 + 0.28), rel=0.01)
    assert (out / "laws.json").is_file() and any(out.glob("*.png"))

    answer = runner.invoke(app, ["predict", str(out / "laws.json"), "--flops", "1e21", "--json"])
    assert answer.exit_code == 0, answer.output
    optimum = json.loads(answer.output)
    n_opt, d_opt = optimum["params"]["value"], optimum["tokens"]["value"]
    assert 6 * n_opt * d_opt == pytest.approx(1e21, rel=1e-6)
    assert optimum["shape"]["n_layers"] >= 1
    at = json.loads(
        runner.invoke(app, ["predict", str(out / "laws.json"), "--params", "1e8", "--tokens", "1e10", "--json"]).output
    )
    expected = TRUTH["E"] + TRUTH["A"] / 1e8 ** TRUTH["alpha"] + TRUTH["B"] / 1e10 ** TRUTH["beta"]
    assert at["loss"]["value"] == pytest.approx(expected, rel=0.01)


@pytest.mark.slow
def test_fit_tables_and_holdout_on_the_terminal(tmp_path):
    table = law_table(tmp_path / "runs.csv", noise=0.01)
    result = runner.invoke(app, ["fit", str(table), "--bootstrap", "20", "--holdout", "3"])
    assert result.exit_code == 0, result.output
    assert "L(N, D) = E + A/N^alpha + B/D^beta" in result.output
    assert "held-out runs" in result.output and "95% interval" in result.output


@pytest.mark.parametrize(
    "content, message",
    [
        ("params,loss\n1,2\n", "tokens"),
        ("params,tokens,loss\n1e6,1e9,nan\n1e7,1e9,3\n", "NaN"),
        ("params,tokens,loss\n-1,1e9,2\n1e7,1e9,3\n", "non-positive"),
    ],
)
def test_bad_tables_exit_2_with_the_problem_named(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = runner.invoke(app, ["fit", str(path), "--bootstrap", "0"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_predict_needs_a_budget(tmp_path):
    table = law_table(tmp_path / "runs.csv")
    runner.invoke(app, ["fit", str(table), "--bootstrap", "0", "--out", str(tmp_path / "o")])
    result = runner.invoke(app, ["predict", str(tmp_path / "o" / "laws.json"), "--params", "1e8"])
    assert result.exit_code == 2 and "give either --flops C, or both --params N and --tokens D" in result.output
    result = runner.invoke(app, ["predict", str(tmp_path / "missing.json"), "--flops", "1e20"])
    assert result.exit_code == 2 and "no such laws file" in result.output
    result = runner.invoke(app, ["predict", str(tmp_path / "o" / "laws.json"), "--flops", "-5"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_form_flag_sets_the_law_that_predict_uses(tmp_path):
    table = law_table(tmp_path / "runs.csv", noise=0.005)
    out = tmp_path / "laws"
    result = runner.invoke(
        app, ["fit", str(table), "--json", "--bootstrap", "10", "--form", "chinchilla_e0", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    laws = json.loads(result.output)
    assert laws["law"]["form"] == "chinchilla_e0" and laws["law"]["chosen_by"] == "--form"
    assert laws["chinchilla_e0"]["E"] == 0.0 and laws["rollout"] is None
    answer = json.loads(
        runner.invoke(app, ["predict", str(out / "laws.json"), "--params", "1e8", "--tokens", "1e10", "--json"]).output
    )
    expected = laws["chinchilla_e0"]["A"] / 1e8 ** laws["chinchilla_e0"]["alpha"]
    expected += laws["chinchilla_e0"]["B"] / 1e10 ** laws["chinchilla_e0"]["beta"]
    assert answer["form"] == "chinchilla_e0" and answer["loss"]["value"] == pytest.approx(expected)
    low, high = answer["loss"]["interval"]
    assert low < answer["loss"]["value"] < high


@pytest.mark.slow
def test_rollout_table_and_a_missing_interval_shown_with_its_reason(tmp_path):
    table = law_table(tmp_path / "runs.csv", noise=0.01)
    result = runner.invoke(app, ["fit", str(table), "--bootstrap", "0", "--rollout"])
    assert result.exit_code == 0, result.output
    assert "rollout check: each compute level predicted" in result.output
    assert "predictions use chinchilla, chosen by the lowest rollout error" in result.output
    assert "no interval (-): the bootstrap is off (--bootstrap 0)" in result.output


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--form", "hoffmann"], "'hoffmann' is not one of"),
        (["--min-steps", "100"], "--min-steps 100 needs a 'steps' column"),
    ],
)
def test_bad_fit_options_exit_2(tmp_path, arguments, message):
    result = runner.invoke(app, ["fit", str(law_table(tmp_path / "runs.csv")), "--bootstrap", "0", *arguments])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def law_store(root, name: str, **model_settings):
    """A store of one params-rule sweep whose runs 'finished' with the loss TRUTH's law gives at their
    (N, D): 4 sizes × 4 budgets, nothing trained."""
    from sweep.config import expand, parse_config
    from sweep.model.flops import param_counts
    from sweep.store import Store

    config = parse_config(
        {
            "name": name,
            "data": {"seq_len": 64},
            "tokens": [1e6, 3e6, 1e7, 3e7],
            "model": {"params": [3e4, 1e5, 3e5, 1e6], **model_settings},
            "train": {"schedule": "cosine"},
        }
    )
    store = Store(root)
    for spec in expand(config, corpus_sha256="0" * 64, vocab_size=256):
        params = param_counts(spec.shape).non_embedding
        loss = TRUTH["E"] + TRUTH["A"] / params ** TRUTH["alpha"] + TRUTH["B"] / spec.tokens ** TRUTH["beta"]
        store.register(spec)
        store.finish(store.run_dir(spec), {"status": "done", "loss": loss})
    return root


@pytest.mark.slow
def test_predict_suggests_the_shape_of_the_sweeps_own_params_rule(tmp_path):
    from sweep.config import ModelConfig, shape_for_params

    store = law_store(tmp_path / "store", "swiglu", activation="swiglu", positions="learned", aspect_ratio=16)
    out = tmp_path / "laws"
    result = runner.invoke(app, ["fit", str(store), "--bootstrap", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    answer = runner.invoke(app, ["predict", str(out / "laws.json"), "--flops", "1e15", "--json"])
    assert answer.exit_code == 0, answer.output
    optimum = json.loads(answer.output)
    n_opt = int(optimum["params"]["value"])
    sweeps_rule = shape_for_params(
        n_opt, ModelConfig(activation="swiglu", positions="learned", aspect_ratio=16), seq_len=64, vocab_size=256
    )
    default_rule = shape_for_params(n_opt, ModelConfig(), seq_len=64, vocab_size=256)
    assert sweeps_rule.d_ff != default_rule.d_ff  # the two rules' shapes tell apart
    assert sweeps_rule.n_layers != default_rule.n_layers  # and so do their aspect ratios

    table = runner.invoke(app, ["predict", str(out / "laws.json"), "--flops", "1e15"]).output
    assert f"{sweeps_rule.name} (d_ff {sweeps_rule.d_ff}; " in table
    assert "activation swiglu" in table and "positions learned" in table and "seq_len 64" in table
    assert "aspect_ratio 16" in table and "defaults assumed" not in table
    shape = optimum["shape"]
    assert (shape["n_layers"], shape["d_model"], shape["n_heads"], shape["d_ff"]) == (
        sweeps_rule.n_layers,
        sweeps_rule.d_model,
        sweeps_rule.n_heads,
        sweeps_rule.d_ff,
    )


@pytest.mark.slow
def test_predict_names_the_defaults_it_assumes_where_the_laws_file_has_no_settings(tmp_path):
    store = law_store(tmp_path / "store", "swiglu", activation="swiglu")
    law_store(store, "gelu")  # a second sweep: its runs differ from the first in activation only
    result = runner.invoke(app, ["fit", str(store), "--bootstrap", "0", "--out", str(tmp_path / "mixed")])
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "mixed" / "laws.json").read_text())["model"]
    assert "activation" not in recorded and recorded["seq_len"] == 64
    answer = json.loads(
        runner.invoke(app, ["predict", str(tmp_path / "mixed" / "laws.json"), "--flops", "1e15", "--json"]).output
    )
    assert "activation" in answer["shape"]["assumed"] and answer["shape"]["model"]["activation"] == "gelu"

    table = law_table(tmp_path / "runs.csv")  # a table records no model settings at all
    runner.invoke(app, ["fit", str(table), "--bootstrap", "0", "--out", str(tmp_path / "table")])
    shown = runner.invoke(app, ["predict", str(tmp_path / "table" / "laws.json"), "--flops", "1e21"]).output
    assert "defaults assumed" in shown and "activation gelu" in shown and "seq_len 256" in shown


@pytest.mark.parametrize(
    "model, message",
    [
        ({"activation": "relu"}, "model setting activation is 'relu', not one of gelu, swiglu"),
        ({"seq_len": True}, "model setting seq_len is True, not a positive whole number"),
        ({"aspect": 64}, "'aspect' is not a model setting"),
        ([], "its model settings are [], not a mapping"),
    ],
)
@pytest.mark.slow
def test_damaged_model_settings_exit_2_with_the_problem_named(tmp_path, model, message):
    table = law_table(tmp_path / "runs.csv")
    runner.invoke(app, ["fit", str(table), "--bootstrap", "0", "--out", str(tmp_path / "o")])
    path = tmp_path / "o" / "laws.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "model": model}))
    result = runner.invoke(app, ["predict", str(path), "--flops", "1e21"])
    assert result.exit_code == 2 and "is damaged" in result.output and message in result.output
