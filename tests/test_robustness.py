"""Sweeps never lose or duplicate work: checkpoints resume exactly, kills and concurrent runners
leave every run done once, corrupt files never crash a listing."""

import copy
import dataclasses
import json
import random
import signal
import subprocess
import time
import warnings

import pytest
import torch
from conftest import SWEEP, run_dirs, steps_of, tiny_config
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.config import expand, parse_config
from sweep.data import load_corpus
from sweep.engine import train
from sweep.store import read_metrics

runner = CliRunner()


def robust_config(corpus: str) -> dict:
    raw = tiny_config(corpus, tokens=["1e5", "2e5"])
    raw["train"].update({"threads": 1, "checkpoint_every": 0.2, "evals": 2})
    return raw


def test_resumed_training_draws_the_uninterrupted_curve(email_glob):
    config = parse_config(robust_config(email_glob))
    corpus = load_corpus(config.data)
    spec = expand(config, corpus.sha256)[1]
    torch.set_num_threads(1)
    rows, states = [], []
    whole = train(spec, corpus, torch.device("cpu"), log=rows.append)
    spec_saving = dataclasses.replace(spec, train=dataclasses.replace(spec.train, checkpoint_every=1e-9))
    # state dicts hold the live tensors; sweep writes them to disk at once, the test copies them
    train(spec_saving, corpus, torch.device("cpu"), save_checkpoint=lambda state: states.append(copy.deepcopy(state)))
    middle = states[len(states) // 2]
    resumed_rows = []
    resumed = train(spec_saving, corpus, torch.device("cpu"), log=resumed_rows.append, resume=middle)
    assert resumed.loss == whole.loss and resumed.steps == whole.steps
    after = [(r["step"], r["train_loss"], r.get("val_loss")) for r in rows if r["step"] > middle.step]
    assert [(r["step"], r["train_loss"], r.get("val_loss")) for r in resumed_rows] == after


def _results(store):
    runs = load_runs(store).set_index("run_id")
    return runs


@pytest.mark.slow
def test_killed_and_restarted_sweep_ends_with_every_run_done_once(tmp_path, write_config, email_glob):
    """SIGKILL a sweep at 10 seeded random moments, restarting it each time; then let it finish."""
    config = write_config(robust_config(email_glob))
    reference = tmp_path / "reference"
    assert runner.invoke(app, ["run", str(config), "--store", str(reference), "--workers", "1"]).exit_code == 0
    store = tmp_path / "store"
    rng = random.Random(1234)
    for _ in range(10):
        process = subprocess.Popen(
            [*SWEEP, "run", str(config), "--store", str(store), "--workers", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.5, 4.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
    finish = subprocess.run(
        [*SWEEP, "run", str(config), "--store", str(store), "--workers", "1"], capture_output=True, text=True
    )
    assert finish.returncode == 0, finish.stdout + finish.stderr
    expected, got = _results(reference), _results(store)
    assert (got["status"] == "done").all() and sorted(got.index) == sorted(expected.index)
    assert (got["loss"] == expected.loss[got.index]).all(), "resumed runs must end where uninterrupted ones do"
    for run_dir in run_dirs(store / "tiny"):
        steps = steps_of(run_dir)
        assert steps == sorted(set(steps)), "no step logged twice"
        assert not (run_dir / "checkpoint.pt").exists() and not (run_dir / "claim.json").exists()
    assert not list((store / "tiny" / "trunks").glob("*/*.pt")), "branch points live until every branch is done"
    assert not list((store / "tiny" / "trunks").glob("*/claim.json"))


@pytest.mark.slow
def test_two_runners_on_one_store_take_different_runs(tmp_path, write_config, email_glob):
    config = write_config(robust_config(email_glob))
    store = tmp_path / "store"
    command = [*SWEEP, "run", str(config), "--store", str(store), "--workers", "1"]
    first, second = (
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True),
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True),
    )
    outputs = [p.communicate()[0] for p in (first, second)]
    # The runner that ends last sees every run done (0); one that ends while the other still trains
    # exits 3, naming the runs held elsewhere.
    assert sorted([first.returncode, second.returncode]) in ([0, 0], [0, 3]), outputs
    assert all("held by other runners" in out for p, out in zip((first, second), outputs) if p.returncode == 3)
    runs = load_runs(store)
    assert (runs["status"] == "done").all() and (runs["attempts"] == 1).all(), "no run trained twice"
    trained = [int(out.split(" trained")[0].rsplit(" ", 1)[-1]) for out in outputs]
    assert sum(trained) == len(runs) == 4


@pytest.mark.slow
def test_editing_a_sweep_adds_runs_and_keeps_finished_ones(tmp_path, write_config, email_glob):
    store = tmp_path / "store"
    first = write_config(tiny_config(email_glob))
    assert runner.invoke(app, ["run", str(first), "--store", str(store)]).exit_code == 0
    before = load_runs(store).set_index("run_id")
    grown = write_config(tiny_config(email_glob, tokens=["8192", "16384", "32768"]), name="grown.yaml")
    result = runner.invoke(app, ["run", str(grown), "--store", str(store)])
    assert "2 trained, 4 already finished" in result.output
    after = load_runs(store).set_index("run_id")
    assert len(after) == 6 and (after.loc[before.index, "loss"] == before["loss"]).all()
    assert (after.loc[before.index, "attempts"] == 1).all()


@pytest.mark.slow
def test_retry_failed_trains_failed_runs_again(tmp_path, write_config, email_glob):
    config = write_config(tiny_config(email_glob))
    store = tmp_path / "store"
    assert runner.invoke(app, ["run", str(config), "--store", str(store)]).exit_code == 0
    run_dir = run_dirs(store / "tiny")[0]
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "status": "failed", "reason": "RuntimeError: boom"}))
    again = runner.invoke(app, ["run", str(config), "--store", str(store)])
    assert "0 trained, 4 already finished" in again.output
    retried = runner.invoke(app, ["run", str(config), "--store", str(store), "--retry-failed"])
    assert retried.exit_code == 0 and "1 trained, 3 already finished" in retried.output
    assert json.loads((run_dir / "status.json").read_text())["attempts"] == 2


@pytest.mark.slow
def test_corrupt_and_truncated_files_never_crash_ls_or_fit(tmp_path, write_config, email_glob):
    config = write_config(tiny_config(email_glob))
    store = tmp_path / "store"
    assert runner.invoke(app, ["run", str(config), "--store", str(store)]).exit_code == 0
    dirs = run_dirs(store / "tiny")
    with open(dirs[0] / "metrics.jsonl", "a") as f:
        f.write('{"step": 99, "trai')  # a writer killed mid-line
    (dirs[1] / "result.json").write_text("{not json")
    (dirs[2] / "result.json").unlink()
    (dirs[3] / "spec.json").write_text("[]")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = load_runs(store).set_index("run_id")
        rows = read_metrics(dirs[0])
    assert len(rows) > 0 and all(row["step"] != 99 for row in rows)
    messages = " ".join(str(w.message) for w in caught)
    assert "truncated or corrupt line" in messages and "unreadable" in messages and "not a JSON object" in messages
    assert runs.loc[dirs[0].name, "status"] == "done"
    assert runs.loc[dirs[1].name, "status"] == "pending" and runs.loc[dirs[2].name, "status"] == "pending"
    assert dirs[3].name not in runs.index
    listing = runner.invoke(app, ["ls", str(store)])
    assert listing.exit_code == 0 and "Traceback" not in listing.output
    fitted = runner.invoke(app, ["fit", str(store), "--bootstrap", "0"])
    assert fitted.exit_code == 2 and "Traceback" not in fitted.output  # too few done runs, said plainly
    rerun = runner.invoke(app, ["run", str(config), "--store", str(store)])
    assert rerun.exit_code == 0 and "2 trained" in rerun.output  # the incomplete runs are trained again


MALFORMED = [
    ("name: [a\n", "not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping of keys at the top level"),
    ("tokens: [1e6]\nmodel: {params: [1e5]}\n", "name: required key is missing"),
    (
        "name: x\nmodel: {params: [1e5]}\n",
        "tokens: give exactly one of 'tokens' (training-token budgets), 'flops' (compute budgets) or 'tokens_per_param'",
    ),
    ("name: x\nflops: [1e9]\nmodel: {params: [1e5]}\n", "gets 0 tokens from its smallest budget, less than one batch"),
    ("name: x\ntokens: [1e6]\n", "model: give exactly one of 'sizes'"),
    (
        "name: x\ntokens: [1e6]\nmodel: {params: [1e5], sizes: [{n_layers: 1, d_model: 64}]}\n",
        "model: give exactly one",
    ),
    ("name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\ntokenz: 1\n", "tokenz: unknown key; did you mean 'tokens'?"),
    (
        "name: x\ntokens: [1e6]\nmodel: {params: [1e5], norm: batch}\n",
        "model.norm: 'batch' is not one of layernorm, rmsnorm",
    ),
    (
        "name: x\ntokens: [1e6]\nmodel: {params: [1e5], activation: relu}\n",
        "model.activation: 'relu' is not one of gelu, swiglu",
    ),
    ("name: x\ntokens: [1e6]\nmodel: {params: [1e5], positions: alibi}\n", "model.positions: 'alibi' is not one of"),
    (
        "name: x\ntokens: [1e6]\nmodel: {sizes: [{n_layers: 0, d_model: 64}]}\n",
        "model.sizes[0].n_layers: 0 must be at least 1",
    ),
    (
        "name: x\ntokens: [1e6]\nmodel: {sizes: [{n_layers: 2, d_model: 100, n_heads: 3}]}\n",
        "d_model 100 is not divisible by n_heads 3",
    ),
    ("name: x\ntokens: [1e6]\nmodel: {sizes: [{n_layers: 2, d_modle: 64}]}\n", "did you mean 'd_model'?"),
    ("name: x\ntokens: [1e6]\nmodel: {sizes: {n_layers: 2}}\n", "model.sizes[0].d_model: required key is missing"),
    ("name: x\ntokens: [1e6]\nmodel: {params: [10]}\n", "model.params[0]: 10 is too small"),
    ("name: x\ntokens: [lots]\nmodel: {params: [1e5]}\n", "tokens[0]: expected an integer, got str 'lots'"),
    ("name: x\ntokens: [100]\nmodel: {params: [1e5]}\n", "tokens[0]: 100 is less than one batch"),
    ("name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\nseeds: [1, 1]\n", "seeds: repeated seed"),
    ("name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\ndevice: tpu\n", "device: 'tpu' is not one of auto, cpu, cuda"),
    ("name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\ntrain: {lr: -3}\n", "train.lr: expected a positive number"),
    ("name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\ntrain: {warmup: 2}\n", "train.warmup: 2.0 must be a share"),
    (
        "name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\ntrain: {batch_tokens: 1000}\n",
        "must be a multiple of data.seq_len",
    ),
    ("name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\ndata: {seq_len: 2}\n", "data.seq_len: 2 is too short"),
    (
        "name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\ndata: {corpus: /no/where}\n",
        "data.corpus: '/no/where' is not 'stdlib'",
    ),
    ("name: 'a/b'\ntokens: [1e6]\nmodel: {params: [1e5]}\n", "name: 'a/b' must be letters"),
    (
        "name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\ntrain: {checkpoint_every: -1}\n",
        "train.checkpoint_every: -1.0 must be non-negative",
    ),
    (
        "name: x\ntokens: [1e6]\nmodel: {params: [1e5]}\ntrain: {compile: sometimes}\n",
        "train.compile: expected true, false or 'auto', got str 'sometimes'",
    ),
]


@pytest.mark.parametrize("text, message", MALFORMED, ids=[m[:40] for _, m in MALFORMED])
def test_each_malformed_config_gets_its_own_clear_message(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", str(path), "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and not store.exists()
