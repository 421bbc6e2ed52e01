"""Every file a run owns is checked when it is read, by type as well as by syntax. A damaged file is
warned about, its run is trained again or started over, and `sweep run`, `ls` and `fit` never crash."""

import copy
import dataclasses
import json
import math
import random
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
import yaml
from conftest import tiny_config
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.config import expand, parse_config
from sweep.config.trunks import trunks
from sweep.data import load_corpus, stdlib_root
from sweep.engine import TrainState, checkpoint, train
from sweep.laws import prepare_table
from sweep.runner import Task, run_local
from sweep.runner.task import _resume_state
from sweep.store import Store, metrics_through, read_metrics

runner = CliRunner()
EMAIL = str(stdlib_root() / "email" / "**" / "*.py")


def invoke(*args):
    """The CLI in this process; an exception escaping a command fails the test with its traceback."""
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def recorded(function, *args):
    """What `function(*args)` returns, and the messages of the warnings it gave, joined."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = function(*args)
    return value, " ".join(str(warning.message) for warning in caught)


def run_sweep(config, store) -> tuple:
    """`sweep run` in this process on one worker, and the warnings it gave."""
    return recorded(invoke, "run", config, "--store", store, "--workers", "1")


def ladder_config() -> dict:
    """3 sizes x 3 budgets of wsd runs: enough points for `sweep fit`, trained in seconds."""
    raw = tiny_config(EMAIL, tokens=["8192", "16384", "32768"])
    raw["model"]["sizes"].insert(1, {"n_layers": 1, "d_model": 24, "n_heads": 2})
    raw["train"]["threads"] = 1
    return raw


def cosine_config() -> dict:
    """2 sizes x 2 budgets of cosine runs, checkpointed at every logging interval."""
    raw = tiny_config(EMAIL, tokens=["8192", "32768"])
    raw["train"].update({"schedule": "cosine", "threads": 1, "checkpoint_every": 1e-9})
    return raw


class StopAt:
    """A reporter that presses Ctrl-C once a task of `kind` logs step `step`: the task is put back to
    pending with the checkpoint it had, as after a real interrupt."""

    def __init__(self, kind: str, step: int):
        self.kind, self.step = kind, step
        self.stopped = None  # the name of the task interrupted

    def sweep_started(self, specs, todo, work_flops): ...
    def run_started(self, task, index, count): ...
    def run_finished(self, task, record): ...

    def run_progress(self, task, row):
        if task.kind == self.kind and row["step"] >= self.step:
            self.stopped = task.name
            raise KeyboardInterrupt


def specs_of(raw: dict):
    config = parse_config(raw)
    corpus = load_corpus(config.data)
    return expand(config, corpus.sha256, corpus.vocab_size), corpus


def interrupted_store(raw: dict, root, kind: str, step: int):
    """A store of `raw`'s sweep interrupted at `step` of its first task of `kind`: its specs by (d_model,
    steps), and the name of the task interrupted."""
    specs, corpus = specs_of(raw)
    reporter = StopAt(kind, step)
    assert run_local(specs, Store(root), corpus, torch.device("cpu"), reporter).interrupted
    return {(spec.shape.d_model, spec.steps): spec for spec in specs}, reporter.stopped


def trained_store(raw: dict, root):
    config = root / "sweep.yaml"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(raw))
    result = invoke("run", config, "--store", root / "store", "--workers", "1")
    assert result.exit_code == 0, result.output
    return config, root / "store"


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    """The ladder sweep trained once: (config path, store); tests damage copies of the store."""
    return trained_store(ladder_config(), tmp_path_factory.mktemp("ladder"))


@pytest.fixture(scope="module")
def cosine(tmp_path_factory):
    """The cosine sweep trained whole (the reference), and interrupted at step 20 of its first run, the
    32-step one of d_model 32, whose checkpoint is then at step 19: (config, reference, store, specs)."""
    root = tmp_path_factory.mktemp("cosine")
    config, reference = trained_store(cosine_config(), root / "reference")
    specs, stopped = interrupted_store(cosine_config(), root / "interrupted", "run", 20)
    assert stopped == specs[32, 32].run_id
    assert torch.load(root / "interrupted" / "tiny" / stopped / "checkpoint.pt", weights_only=True)["step"] == 19
    return config, reference, root / "interrupted", specs


def copied(store, tmp_path):
    return shutil.copytree(store, tmp_path / "store")


def assert_done_once(store, reference, retrained: dict[str, int]):
    """Every run done with the reference's loss, metrics steps strictly increasing; `retrained` maps
    the runs trained again to their attempts (every other run trained once)."""
    runs = load_runs(store).set_index("run_id")
    assert (runs["status"] == "done").all()
    assert (runs["loss"] == load_runs(reference).set_index("run_id")["loss"][runs.index]).all()
    assert runs["attempts"].to_dict() == {run_id: retrained.get(run_id, 1) for run_id in runs.index}
    for run_id in runs.index:
        steps = [row["step"] for row in read_metrics(store / "tiny" / run_id)]
        assert steps == sorted(set(steps)) and steps[-1] == runs.loc[run_id, "steps"]


def curve(run_dir) -> list[tuple]:
    return [(row["step"], row["train_loss"], row.get("val_loss")) for row in read_metrics(run_dir)]


# metrics.jsonl

BAD_LINES = [
    b"5",
    b'{"step": "x", "train_loss": 3.0}',
    b'{"step": true}',
    b'{"step": 4, "train_loss": "low"}',
    b"[1, 2]",
    b"\xff\xfe" + random.Random(0).randbytes(48).replace(b"\n", b"").replace(b"\r", b""),
]


def test_metrics_rows_of_the_wrong_type_or_bytes_are_skipped_with_one_warning(tmp_path):
    good = [{"step": step, "train_loss": 3.0 / step, "val_loss": float("nan")} for step in (1, 2, 3)]
    lines = [json.dumps(row).encode() for row in good]
    (tmp_path / "metrics.jsonl").write_bytes(b"\n".join(lines[:2] + BAD_LINES + lines[2:]) + b"\n" + BAD_LINES[-1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = read_metrics(tmp_path)
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert len(caught) == 1 and "skipped 7 truncated or corrupt line(s)" in str(caught[0].message)
    assert str(tmp_path / "metrics.jsonl") in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [row["step"] for row in metrics_through(tmp_path, 2)] == [1, 2]


@pytest.mark.slow
def test_a_run_resumes_past_damaged_metrics_lines(cosine, tmp_path):
    """Through the worker pool, as `sweep run` trains by default on several cores."""
    config, reference, interrupted, specs = cosine
    store = copied(interrupted, tmp_path)
    run = store / "tiny" / specs[32, 32].run_id
    lines = (run / "metrics.jsonl").read_bytes().splitlines()
    (run / "metrics.jsonl").write_bytes(b"\n".join(lines[:5] + BAD_LINES + lines[5:]) + b"\n" + BAD_LINES[-1])
    rerun = subprocess.run(
        [sys.executable, "-m", "sweep", "run", str(config), "--store", str(store), "--workers", "2"],
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stdout + rerun.stderr
    assert rerun.stderr.count(f"{run / 'metrics.jsonl'}: skipped 7 truncated or corrupt line(s)") == 1, rerun.stderr
    assert_done_once(store, reference, {specs[32, 32].run_id: 2})
    assert curve(run) == curve(reference / "tiny" / run.name)


# checkpoints


def saved_state(spec, corpus, step: int) -> TrainState:
    """The state `train` checkpoints for `spec` at `step`."""
    states = {}
    train(
        spec,
        corpus,
        torch.device("cpu"),
        snapshot_steps=frozenset({step}),
        save_snapshot=lambda state: states.setdefault(state.step, copy.deepcopy(state)),
    )
    return states[step]


def test_checkpoint_load_accepts_only_a_state_of_its_run_at_a_step_it_can_resume_from(tmp_path):
    specs, corpus = specs_of(cosine_config())
    small, large = (spec for spec in specs if spec.steps == 32)
    state = saved_state(small, corpus, 10)
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, state, owner=small.run_id)
    assert checkpoint.load(path, owner=small.run_id, shape=small.shape, steps=range(33)).step == 10
    # saved before code lengths were counted: no prequential_nats, and still a state the run resumes from
    torch.save(
        {key: value for key, value in state.to_dict().items() if key != "prequential_nats"} | {"owner": small.run_id},
        path,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert checkpoint.load(path, owner=small.run_id, shape=small.shape).prequential_nats is None
    damaged = {
        "not a dict": (lambda: torch.save(torch.zeros(3), path), {}),
        "missing keys": (lambda: torch.save({"step": 10, "model": state.model, "owner": small.run_id}, path), {}),
        "a step that is text": (
            lambda: checkpoint.save(path, dataclasses.replace(state, step="10"), owner=small.run_id),
            {},
        ),
        "another owner": (lambda: checkpoint.save(path, state, owner=large.run_id), {}),
        "no owner (an old checkpoint)": (lambda: torch.save(state.to_dict(), path), {}),
        "a step past the run's end": (lambda: checkpoint.save(path, state, owner=small.run_id), {"steps": range(9)}),
        "another shape": (lambda: checkpoint.save(path, saved_state(large, corpus, 10), owner=small.run_id), {}),
    }
    for what, (write, limits) in damaged.items():
        write()
        with pytest.warns(UserWarning, match=f"{path}: damaged: ") as caught:
            assert checkpoint.load(path, owner=small.run_id, shape=small.shape, **limits) is None, what
        assert len(caught) == 1, what


@pytest.mark.parametrize("content", [torch.zeros(3), {"step": 3}, [1, 2]], ids=["tensor", "dict", "list"])
def test_a_checkpoint_that_is_no_training_state_starts_the_run_over(cosine, tmp_path, content):
    config, reference, interrupted, specs = cosine
    store = copied(interrupted, tmp_path)
    torch.save(content, store / "tiny" / specs[16, 8].run_id / "checkpoint.pt")
    rerun, warned = run_sweep(config, store)
    assert rerun.exit_code == 0, rerun.output
    assert_done_once(store, reference, {specs[32, 32].run_id: 2})
    assert "damaged: " in warned


@pytest.mark.parametrize("target", [(32, 8), (16, 32)], ids=["same-shape-past-its-end", "another-shape"])
def test_a_checkpoint_of_another_run_is_not_resumed(cosine, tmp_path, target):
    """The interrupted run's checkpoint (step 19) copied to another run: to the 8-step run of the same
    shape, resuming it would record the other run's model as this run's result; to a run of another
    shape, it would fail the run. Either starts over."""
    config, reference, interrupted, specs = cosine
    store = copied(interrupted, tmp_path)
    shutil.copy(store / "tiny" / specs[32, 32].run_id / "checkpoint.pt", store / "tiny" / specs[target].run_id)
    rerun, warned = run_sweep(config, store)
    assert rerun.exit_code == 0, rerun.output
    assert_done_once(store, reference, {specs[32, 32].run_id: 2})
    assert "damaged: " in warned


def test_a_branch_point_saved_at_another_step_is_not_resumed(ladder, tmp_path):
    """branch-6.pt replaced by the trunk's state at step 13: the 8-step branch would resume past its end."""
    config, reference = ladder
    store = tmp_path / "store"
    specs, stopped = interrupted_store(ladder_config(), store, "branch", 1)
    branch = specs[32, 8]
    points = store / "tiny" / "trunks" / branch.trunk_id
    shutil.copy(points / "branch-13.pt", points / "branch-6.pt")
    resumed, warned = recorded(_resume_state, Task("branch", branch), Store(store))
    assert resumed == (None, []) and f"{points / 'branch-6.pt'}: damaged: " in warned
    rerun = invoke("run", config, "--store", store, "--workers", "1")
    assert rerun.exit_code == 0, rerun.output
    assert_done_once(store, reference, {stopped: 2})


def test_files_in_a_trunk_directory_not_named_for_a_step_are_no_branch_points(ladder, tmp_path):
    config, reference = ladder
    store = copied(reference, tmp_path)
    specs, _ = specs_of(ladder_config())
    trunk = trunks(specs)[0]
    for name in ("branch-x.pt", "branch-.pt", "branch-6-old.pt"):
        (store / "tiny" / "trunks" / trunk.trunk_id / name).write_bytes(b"junk")
    assert _resume_state(Task("trunk", trunk.spec_to(26), trunk.branch_steps), Store(store)) == (None, [])


# status.json


@pytest.mark.parametrize(
    "damage",
    [{"attempts": "x"}, {"attempts": -1}, {"attempts": True}, {"status": 5}, {"status": "finished"}, {"reason": ["x"]}],
    ids=str,
)
def test_a_damaged_status_json_reads_as_pending_and_the_run_is_trained_again(ladder, tmp_path, damage):
    config, reference = ladder
    store = copied(reference, tmp_path)
    run = sorted((store / "tiny").glob("L1-d16-*"))[0]
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, **damage}))
    assert recorded(invoke, "ls", store)[0].exit_code == 0
    runs, warned = recorded(load_runs, store)
    runs = runs.set_index("run_id")
    assert runs.loc[run.name, "status"] == "pending" and runs.loc[run.name, "attempts"] == 0
    assert f"{run / 'status.json'}: damaged: " in warned
    rerun = invoke("run", config, "--store", store, "--workers", "1")
    assert rerun.exit_code == 0 and "1 trained, 8 already finished" in rerun.output, rerun.output
    assert_done_once(store, reference, {run.name: 1})
    assert "0 trained, 9 already finished" in invoke("run", config, "--store", store, "--workers", "1").output


@pytest.mark.slow
def test_a_pooled_sweep_warns_once_about_each_damaged_file(ladder, tmp_path):
    config, reference = ladder
    store = copied(reference, tmp_path)
    first, second = sorted((store / "tiny").glob("L1-d16-*"))[:2]
    status = json.loads((first / "status.json").read_text())
    (first / "status.json").write_text(json.dumps({**status, "attempts": "x"}))
    result = json.loads((second / "result.json").read_text())
    (second / "result.json").write_text(json.dumps({**result, "loss": "abc"}))
    rerun = subprocess.run(
        [sys.executable, "-m", "sweep", "run", str(config), "--store", str(store), "--workers", "2"],
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0 and "2 trained, 7 already finished" in rerun.stdout, rerun.stdout + rerun.stderr
    assert rerun.stderr.count(f"{first / 'status.json'}: damaged: attempts 'x'") == 1, rerun.stderr
    assert rerun.stderr.count(f"{second / 'result.json'}: damaged: loss 'abc'") == 1, rerun.stderr
    assert_done_once(store, reference, {first.name: 1, second.name: 2})


# result.json


@pytest.mark.parametrize(
    "damage",
    [
        {"loss": "abc"},
        {"loss": None},
        {"loss": math.nan},
        {"loss": -1.0},
        {"params": "abc"},
        {"compiled": "no"},
        "empty",
    ],
    ids=str,
)
@pytest.mark.slow
def test_a_damaged_result_json_is_left_out_of_fit_and_trained_again(ladder, tmp_path, damage):
    config, reference = ladder
    store = copied(reference, tmp_path)
    run = sorted((store / "tiny").glob("L1-d16-*"))[0]
    result = json.loads((run / "result.json").read_text())
    (run / "result.json").write_text(json.dumps({} if damage == "empty" else {**result, **damage}))
    listing = recorded(invoke, "ls", store)[0]
    assert listing.exit_code == 0 and "pending" in listing.output
    fitted = recorded(invoke, "fit", store, "--bootstrap", "0")[0]
    assert fitted.exit_code == 0, fitted.output
    assert f"left out: {run.name}: status 'pending': damaged result.json" in " ".join(fitted.output.split())
    runs, warned = recorded(load_runs, store)
    table = recorded(prepare_table, runs)[0]
    assert [excluded.run_id for excluded in table.excluded] == [run.name] and len(table.points) == 8
    runs = runs.set_index("run_id")
    assert runs.loc[run.name, "status"] == "pending" and "damaged result.json" in runs.loc[run.name, "reason"]
    assert f"{run / 'result.json'}: damaged: " in warned
    rerun = invoke("run", config, "--store", store, "--workers", "1")
    assert rerun.exit_code == 0 and "1 trained, 8 already finished" in rerun.output, rerun.output
    assert_done_once(store, reference, {run.name: 2})
    assert "0 trained, 9 already finished" in invoke("run", config, "--store", store, "--workers", "1").output
