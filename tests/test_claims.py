"""Claims are fenced and always expire when their holder is gone: a runner that lost its run writes
nothing more to it, workers die with their parent, and `sweep run` exits 0 only when every run is
done."""

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import HANG_S, SWEEP, read_claim, run_dirs, steps_of, tiny_config, wait_for
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.store.claims import CLAIM, holder, machine, try_claim

runner = CliRunner()


def cosine_config(corpus: str, tokens: list[str], sizes: int = 1) -> dict:
    raw = tiny_config(corpus, tokens=tokens)
    raw["model"]["sizes"] = raw["model"]["sizes"][:sizes]
    raw["train"].update({"threads": 1, "schedule": "cosine", "checkpoint_every": 0.3})
    return raw


def _can_unshare() -> bool:
    return subprocess.run(["unshare", "-u", "-p", "-f", "--mount-proc", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_unshare(), reason="needs unshare of UTS, pid and mount namespaces (root)")
def test_a_runner_paused_past_the_stale_time_loses_its_run_and_writes_nothing_more(tmp_path, write_config, email_glob):
    """Runner A is stopped (SIGSTOP) past the stale time; runner B, on another simulated host (its own
    hostname and pid namespace), takes the run over; A is continued while B trains."""
    raw = cosine_config(email_glob, ["1.2e6"])
    raw["model"]["sizes"] = [{"n_layers": 2, "d_model": 32, "n_heads": 2}]  # about 20 s of training
    config = write_config(raw)
    store = tmp_path / "store"
    env = {**os.environ, "SWEEP_CLAIM_STALE_S": "2"}
    command = [*SWEEP, "run", str(config), "--store", str(store), "--workers", "1"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = wait_for(lambda: next(iter(run_dirs(store / "tiny")), None), HANG_S, "the run's directory")
    wait_for(lambda: (run_dir / "checkpoint.pt").exists() and len(steps_of(run_dir)) >= 5, HANG_S, "a checkpoint")
    claim_a = read_claim(run_dir)
    first.send_signal(signal.SIGSTOP)
    paused_at = max(steps_of(run_dir))
    time.sleep(3)  # past the 2 s stale time: A's heartbeat is old
    other_host = ["unshare", "-u", "-p", "-f", "--mount-proc", "sh", "-c", 'hostname other-host && exec "$@"', "sh"]
    second = subprocess.Popen(
        other_host + command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: (claim := read_claim(run_dir)) and claim != claim_a, HANG_S, "B to take the claim over")
        wait_for(lambda: max(steps_of(run_dir), default=0) > paused_at, HANG_S, "B to train past A's last step")
    finally:
        first.send_signal(signal.SIGCONT)
    out_first, out_second = first.communicate(timeout=300)[0], second.communicate(timeout=300)[0]
    assert second.returncode == 0 and " 1 trained" in out_second, out_second
    assert first.returncode in (0, 3) and " 0 trained" in out_first, out_first
    assert "Traceback" not in out_first + out_second
    steps = steps_of(run_dir)
    assert steps == sorted(set(steps)), "A wrote nothing after losing its claim: steps strictly increase"
    runs = load_runs(store)
    assert runs["status"].tolist() == ["done"] and runs["attempts"].tolist() == [2]
    assert not (run_dir / CLAIM).exists()


@pytest.mark.slow
def test_workers_stop_when_their_parent_is_killed(tmp_path, write_config, email_glob):
    """kill -9 of a pool's parent alone: its workers put their runs back and exit, training nothing
    more; the next sweep run finishes every run once."""
    config = write_config(cosine_config(email_glob, ["2e5", "3e5", "4e5"], sizes=2))
    store = tmp_path / "store"
    command = [*SWEEP, "run", str(config), "--store", str(store), "--workers", "2"]
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep_dir = store / "tiny"
    claims = wait_for(
        lambda: (found := [c for d in run_dirs(sweep_dir) if (c := read_claim(d))]) and len(found) == 2 and found,
        HANG_S,
        "both workers to train",
    )
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_for(lambda: all(gone(claim["pid"]) for claim in claims), HANG_S, "the orphaned workers to exit")
    statuses = load_runs(store)
    assert (statuses["attempts"] > 0).sum() == 2, "no queued run was started after the parent died"
    assert set(statuses["status"]) == {"pending"}, "the runs in flight went back to pending"
    assert not any((d / CLAIM).exists() for d in run_dirs(sweep_dir))
    finish = subprocess.run(command, capture_output=True, text=True)
    assert finish.returncode == 0, finish.stdout + finish.stderr
    runs = load_runs(store)
    assert (runs["status"] == "done").all() and runs["attempts"].sum() == len(runs) + 2
    for run_dir in run_dirs(sweep_dir):
        steps = steps_of(run_dir)
        assert steps == sorted(set(steps))


def gone(pid: int) -> bool:
    """The process has exited; a zombie nobody reaped counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_orphaned_workers_stop_within_the_step_they_are_in_not_at_their_next_logging_step(
    tmp_path, write_config, email_glob
):
    """Runs of a million steps log every 10,000 (for a large model on a GPU, minutes apart): kill -9 of
    the pool's parent stops its workers before they log again, and their runs go back to pending."""
    raw = cosine_config(email_glob, ["6.4e7"], sizes=2)
    raw["train"]["batch_tokens"] = 64  # 2 windows of 32: 1e6 steps, logged every 1e4
    store = tmp_path / "store"
    command = [*SWEEP, "run", str(write_config(raw)), "--store", str(store), "--workers", "2"]
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep_dir = store / "tiny"

    def running(run_dir: Path) -> dict | None:  # the claim on a run being trained
        claim = read_claim(run_dir)
        with contextlib.suppress(OSError, ValueError):
            return claim if claim and json.loads((run_dir / "status.json").read_text())["status"] == "running" else None

    claims = wait_for(
        lambda: len(found := [c for d in run_dirs(sweep_dir) if (c := running(d))]) == 2 and found,
        HANG_S,
        "both workers to start training",
    )
    logged = {d: steps_of(d) for d in run_dirs(sweep_dir)}
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_for(lambda: all(gone(claim["pid"]) for claim in claims), HANG_S, "the orphaned workers to exit")
    assert {d: steps_of(d) for d in run_dirs(sweep_dir)} == logged, "a worker trained on to its next logging step"
    assert set(load_runs(store)["status"]) == {"pending"}
    assert not any((d / CLAIM).exists() for d in run_dirs(sweep_dir))


def _claim_file(directory: Path, content, age_s: float = 0.0) -> None:
    path = directory / CLAIM
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


def _live_here() -> dict:
    return {**holder(), "token": "someone-else"}


@pytest.mark.parametrize(
    "content, age_s",
    [
        (
            {"machine": machine(), "pid": 1, "start": 999_999_999, "token": "t"},
            0,
        ),  # pid 1, but not the process that claimed
        ({"host": os.uname().nodename, "pid": 1}, 0),  # the old format: no start time, no token
        ({"machine": machine(), "start": 0, "token": "t"}, 0),  # no pid
        ({**_live_here(), "machine": "another-machine"}, -3600),  # a heartbeat an hour in the future
        ([1, 2], 0),
        ('{"machine": "m", "pid": "12", "start": 0, "token": "t"}', 0),  # a text pid
        ("not json", 0),
        ({**_live_here(), "machine": "another-machine"}, 121),  # another machine, silent past the stale time
    ],
    ids=["pid-reused", "old-format", "no-pid", "future-heartbeat", "a-list", "text-pid", "text", "silent-elsewhere"],
)
def test_claims_of_impossible_or_gone_holders_are_taken_over(tmp_path, content, age_s):
    _claim_file(tmp_path, content, age_s)
    claim = try_claim(tmp_path)
    assert claim is not None
    assert claim.holds()
    claim.release()
    assert not (tmp_path / CLAIM).exists()


@pytest.mark.parametrize(
    "content", [_live_here(), {**_live_here(), "machine": "another-machine"}], ids=["live-here", "fresh-elsewhere"]
)
def test_claims_of_live_holders_are_left_alone(tmp_path, content):
    _claim_file(tmp_path, content)
    assert try_claim(tmp_path) is None
    assert json.loads((tmp_path / CLAIM).read_text()) == content


def test_a_claim_taken_over_is_lost_and_fences_every_write(tmp_path):
    claim = try_claim(tmp_path)
    claim.check()
    _claim_file(tmp_path, {**_live_here(), "machine": "another-machine"})
    with pytest.raises(Exception, match="taken over by pid"):
        claim.check()
    assert claim.lost.is_set()
    claim.release()
    assert (tmp_path / CLAIM).exists(), "releasing a lost claim leaves the new holder's claim alone"


@pytest.mark.parametrize(
    "content",
    [{"host": os.uname().nodename, "pid": 1}, [1, 2], "12345"],
    ids=["pid-1-old-format", "a-list", "text-pid"],
)
def test_sweep_run_trains_a_run_whose_claim_is_stale(tmp_path, write_config, email_glob, content):
    config = write_config(cosine_config(email_glob, ["8192"]))
    store = tmp_path / "store"
    assert runner.invoke(app, ["run", str(config), "--store", str(store), "--dry-run"]).exit_code == 0
    first = runner.invoke(app, ["run", str(config), "--store", str(store)])
    assert first.exit_code == 0, first.output
    run_dir = run_dirs(store / "tiny")[0]
    (run_dir / "result.json").unlink()
    (run_dir / "status.json").write_text(json.dumps({"status": "running", "attempts": 1}))
    _claim_file(run_dir, content)
    result = runner.invoke(app, ["run", str(config), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "1 trained" in result.output
    assert load_runs(store)["status"].tolist() == ["done"]


def test_runs_held_by_a_live_runner_elsewhere_exit_3_with_their_count(tmp_path, write_config, email_glob):
    config = write_config(cosine_config(email_glob, ["8192", "16384"]))
    store = tmp_path / "store"
    assert runner.invoke(app, ["run", str(config), "--store", str(store), "--workers", "1"]).exit_code == 0
    held = run_dirs(store / "tiny")[0]
    (held / "result.json").unlink()
    (held / "status.json").write_text(json.dumps({"status": "running", "attempts": 1}))
    _claim_file(held, {**_live_here(), "machine": "another-machine"})
    result = runner.invoke(app, ["run", str(config), "--store", str(store), "--workers", "1"])
    assert result.exit_code == 3, result.output
    assert "1 runs held by other runners" in result.output
    assert load_runs(store)["status"].tolist().count("running") == 1
