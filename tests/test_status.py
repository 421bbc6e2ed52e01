"""`sweep status`: a real two-worker sweep watched from outside (counts, holders, steps, losses, FLOPs,
time left), a SIGKILLed runner's run shown stale and the store left untouched, wsd trunks counted as
the work they are, damaged files, --watch stopped by Ctrl-C, and bad paths."""

import json
import os
import signal
import socket
import subprocess
import warnings

import pytest
from conftest import HANG_S, SWEEP, parent_pid, run_dirs, tiny_config, wait_for
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.config import expand, parse_config
from sweep.config.trunks import spent_flops
from sweep.store import Store

runner = CliRunner()


def two_runs(corpus: str) -> dict:
    """One size, two seeds, cosine: two runs of equal length (~5 s each on one thread) that two
    workers train at once."""
    raw = tiny_config(corpus, tokens=["2e5"], seeds=[0, 1])
    raw["model"]["sizes"] = [{"n_layers": 2, "d_model": 32, "n_heads": 2}]
    raw["train"].update({"threads": 1, "schedule": "cosine", "evals": 2})
    return raw


def status(store, *args):
    return runner.invoke(app, ["status", str(store), *map(str, args)], catch_exceptions=False)


def status_json(store) -> dict:
    result = status(store, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def poll(store, until, process, timeout: float = HANG_S) -> dict:
    """The first `sweep status --json` of `store` (one sweep) for which `until(sweep)` holds."""

    def shown() -> dict | None:
        assert process.poll() is None, f"the sweep ended first: {process.communicate()[0]}"
        result = status(store, "--json")
        if result.exit_code == 0:  # 2 until the sweep has registered its runs
            sweep = json.loads(result.stdout)["sweeps"][0]
            if until(sweep):
                return sweep
        return None

    return wait_for(shown, timeout, "sweep status to show what was waited for")


def logging(sweep) -> list[dict]:
    """The runs in flight that have logged a step and a training loss."""
    return [task for task in sweep["in_flight"] if task["state"] == "running" and task["step"] and task["train_loss"]]


def start(command) -> subprocess.Popen:
    """A sweep in its own process group, so a test can kill it and its workers at once."""
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.slow
def test_a_two_worker_sweep_in_flight_and_finished(tmp_path, write_config, email_glob):
    store = tmp_path / "store"
    sweep_run = start([*SWEEP, "run", str(write_config(two_runs(email_glob))), "--store", str(store), "--workers", "2"])
    try:
        sweep = poll(store, lambda sweep: sweep["runs"]["running"] == 2 and len(logging(sweep)) == 2, sweep_run)
        workers = {parent_pid(task["pid"]) for task in sweep["in_flight"]}
        assert workers == {sweep_run.pid}, "each run is held by a pool worker of that sweep run"
        assert len({task["pid"] for task in sweep["in_flight"]}) == 2
        assert {task["host"] for task in sweep["in_flight"]} == {socket.gethostname()}
        for task in sweep["in_flight"]:
            assert 0 < task["step"] <= task["steps"] and task["tokens"] == task["step"] * 1024
            assert task["tokens_per_s"] > 0 and 0 <= task["heartbeat_age_s"] < 60
        assert sweep["flops"]["done"] > 0 and sweep["flops"]["left"] > 0
        eta = sweep["eta"]
        assert eta["workers"] == 2 and eta["measured_from"] == "runs in flight" and eta["seconds"] > 0
        output, _ = sweep_run.communicate(timeout=HANG_S)
        assert sweep_run.returncode == 0, output
    finally:
        stop(sweep_run)
    sweep = status_json(store)["sweeps"][0]
    assert sweep["runs"] == {"total": 2, "done": 2, "running": 0, "pending": 0, "failed": 0, "diverged": 0, "stale": 0}
    assert sweep["flops"]["left"] == 0 and sweep["flops"]["done"] == load_runs(store)["flops"].sum()
    assert sweep["eta"]["seconds"] == 0 and sweep["in_flight"] == []
    plain = status(store)
    assert plain.exit_code == 0
    assert "sweep tiny: runs 2: 2 done, 0 running, 0 pending, 0 failed, 0 diverged, 0 stale" in plain.stdout
    assert "0 left" in plain.stdout

    first, second = run_dirs(store / "tiny")
    with open(first / "metrics.jsonl", "a") as f:
        f.write('{"step": 9')  # a writer killed mid-line
    (second / "result.json").write_text("{not json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the store's readers warn about both files; status must not fail
        damaged = status_json(store)["sweeps"][0]
    assert damaged["runs"]["done"] == 1 and damaged["runs"]["pending"] == 1 and damaged["flops"]["left"] > 0


def files(store) -> dict:
    return {path: (path.stat().st_mtime_ns, path.stat().st_size) for path in store.rglob("*")}


@pytest.mark.slow
def test_a_sigkilled_runners_run_shows_stale_and_status_writes_nothing(tmp_path, write_config, email_glob):
    store = tmp_path / "store"
    sweep_run = start([*SWEEP, "run", str(write_config(two_runs(email_glob))), "--store", str(store), "--workers", "1"])
    try:
        sweep = poll(store, lambda sweep: len(logging(sweep)) == 1, sweep_run)
        assert sweep["in_flight"][0]["pid"] == sweep_run.pid  # one worker: the sweep run trains in its own process
        assert sweep["runs"]["running"] == 1 and sweep["runs"]["pending"] == 1
    finally:
        os.killpg(sweep_run.pid, signal.SIGKILL)
        sweep_run.wait()
    before = files(store)
    sweep = status_json(store)["sweeps"][0]
    assert sweep["runs"]["stale"] == 1 and sweep["runs"]["running"] == 0 and sweep["runs"]["pending"] == 1
    assert sweep["flops"]["done"] == 0, "a stale run's progress counts as left: it may be trained again"
    [task] = sweep["in_flight"]
    assert task["state"] == "stale" and task["pid"] == sweep_run.pid and task["step"] > 0
    assert sweep["eta"]["seconds"] is None and sweep["eta"]["why"] == "nothing is running"
    plain = status(store)
    assert plain.exit_code == 0 and "1 stale" in plain.stdout and "STALE" in plain.stdout
    assert files(store) == before, "status reads the store and writes nothing, the stale claim included"


@pytest.fixture
def registered_wsd(tmp_path, email_glob):
    """A wsd sweep registered and never trained: 2 sizes × 2 budgets, 4 branches of 2 trunks."""
    specs = expand(parse_config(tiny_config(email_glob, tokens=["4e4", "8e4"])))
    store = Store(tmp_path / "store")
    for spec in specs:
        store.register(spec)
    return store.root, specs


def test_wsd_trunks_are_their_own_line_and_counted_as_trained(registered_wsd):
    root, specs = registered_wsd
    sweep = status_json(root)["sweeps"][0]
    assert sweep["runs"]["pending"] == 4 and sweep["trunks"]["pending"] == sweep["trunks"]["total"] == 2
    assert sweep["flops"] == {
        "convention": "6n",
        "done": 0,
        "left": spent_flops(specs)[0],
        "total": spent_flops(specs)[0],
    }
    assert sweep["eta"] == {
        "seconds": None,
        "workers": 0,
        "flops_per_s_per_worker": None,
        "measured_from": None,
        "why": "nothing is running",
    }
    plain = status(root).stdout
    assert "wsd trunks 2: 0 done, 0 running, 2 pending" in plain and "time left: unknown (nothing is running)" in plain
    assert status_json(root / "tiny")["sweeps"] == [sweep], "one sweep's directory shows as that sweep"


def test_watch_prints_each_refresh_and_ctrl_c_exits_0(registered_wsd):
    root, _ = registered_wsd
    watch = subprocess.Popen(
        [*SWEEP, "status", str(root), "--watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        headers = 0
        while headers < 2:
            line = watch.stdout.readline()
            assert line, watch.stderr.read()
            headers += line.startswith("status of ")
        watch.send_signal(signal.SIGINT)
        _, stderr = watch.communicate(timeout=HANG_S)
    finally:
        stop(watch)
    assert watch.returncode == 0 and "Traceback" not in stderr


def test_a_path_that_is_no_store_exits_2(tmp_path, registered_wsd):
    root, _ = registered_wsd
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    for path, message in [
        (tmp_path / "missing", "run store not found"),
        (tmp_path / "file", "run store not found"),
        (tmp_path / "empty", "not a run store"),
    ]:
        result = status(path)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    unknown = status(root, "--sweep", "other")
    assert unknown.exit_code == 2 and "no sweep 'other'" in unknown.output
