"""The CLI through typer's CliRunner: a sweep end to end in a temporary store, reruns, listings, errors."""

import json

import pandas as pd
import pytest
from conftest import REPO, run_dirs, tiny_config
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.store import COLUMNS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    """The shipped smoke sweep, trained once for the module."""
    store = tmp_path_factory.mktemp("store")
    result = invoke("run", REPO / "configs" / "smoke.yaml", "--store", store)
    assert result.exit_code == 0, result.output
    return store, result.output


@pytest.mark.slow
def test_smoke_sweep_end_to_end(smoke_store):
    store, output = smoke_store
    assert "sweep smoke: 4 trained, 0 already finished, 0 failed, 0 diverged" in output
    runs = load_runs(store)
    assert list(runs.columns) == COLUMNS
    assert len(runs) == 4 and (runs["status"] == "done").all() and (runs["attempts"] == 1).all()
    assert (runs["loss"] < 5.0).all() and (runs["bpb"] == runs["loss"] / pd.Series([0.6931471805599453] * 4)).all()
    assert (runs["flops"] == 6 * runs["params"] * runs["tokens"]).all()
    for run_dir in run_dirs(store / "smoke"):
        assert {"spec.json", "status.json", "metrics.jsonl", "result.json"} <= {p.name for p in run_dir.iterdir()}
        record = json.loads((run_dir / "result.json").read_text())
        assert record["status"] == "done" and record["device"] == "cpu"
        assert record["versions"]["torch"] and len(record["corpus"]["sha256"]) == 64
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert {"step", "tokens", "flops", "train_loss", "lr", "elapsed_s"} <= set(metrics[0])
        assert metrics[-1]["val_loss"] == record["loss"]


def test_rerun_skips_finished_runs(smoke_store):
    store, _ = smoke_store
    before = load_runs(store)
    result = invoke("run", REPO / "configs" / "smoke.yaml", "--store", store)
    assert result.exit_code == 0
    assert "0 trained, 4 already finished" in result.output
    after = load_runs(store)
    pd.testing.assert_frame_equal(before, after)


def test_ls_formats(smoke_store):
    store, _ = smoke_store
    table = invoke("ls", store)
    assert table.exit_code == 0 and "4 runs" in table.output and "L2-d48-h2" in table.output
    as_csv = invoke("ls", store, "--format", "csv")
    from io import StringIO

    frame = pd.read_csv(StringIO(as_csv.output))
    assert list(frame.columns) == COLUMNS and len(frame) == 4
    as_json = json.loads(invoke("ls", store, "--format", "json").output)
    assert len(as_json) == 4 and as_json[0]["status"] == "done"
    assert invoke("ls", store, "--sweep", "other", "--format", "json").output.strip() == "[]"


def test_dry_run_prints_the_grid_and_writes_nothing(tmp_path, write_config, email_glob):
    path = write_config(tiny_config(email_glob))
    store = tmp_path / "store"
    result = invoke("run", path, "--store", store, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "4 runs, 4 to train, estimated" in result.output and "L2-d32-h2" in result.output
    assert not store.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "{cfg}", "--set", "train.lr=fast"], "error: train.lr: expected a positive number"),
        (
            ["run", "{cfg}", "--set", "model.sizes.0.n_heads=3"],
            "error: model.sizes[0]: d_model 16 is not divisible by n_heads 3",
        ),
        (["run", "{cfg}", "--set", "data.corpus=/no/such/dir"], "error: data.corpus: '/no/such/dir' is not 'stdlib'"),
        (["run", "{dir}/missing.yaml"], "error: config file not found"),
        (["ls", "{dir}/missing"], "error: run store not found"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, write_config, email_glob, args, message):
    cfg = write_config(tiny_config(email_glob))
    store = tmp_path / "store"
    filled = [a.format(cfg=cfg, dir=tmp_path) for a in args] + (["--store", str(store)] if args[0] == "run" else [])
    result = runner.invoke(app, filled)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not store.exists()


def test_bad_option_value_is_a_usage_error(tmp_path, write_config, email_glob):
    result = runner.invoke(app, ["run", str(write_config(tiny_config(email_glob))), "--device", "tpu"])
    assert result.exit_code == 2 and "tpu" in result.output
