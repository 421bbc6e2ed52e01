"""`sweep run --submit-only` registers a sweep; `sweep worker STORE` processes train it, any number at
once, and a worker killed mid-run is replaced by another that finishes its run; a GPU box gets one
worker per GPU (tested on CPU with a faked device list)."""

import io
import json
import os
import signal
import subprocess

import pytest
import torch
from conftest import HANG_S, SWEEP, claimed_mid_run, eight_runs, losses, read_claim, run_dirs, steps_of, wait_for
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.config import expand, parse_config
from sweep.data import load_corpus
from sweep.launch.lines import PlainReporter
from sweep.runner import plan_workers, run_pool
from sweep.store import Store

runner = CliRunner()


@pytest.mark.slow
def test_submit_only_registers_and_two_workers_train_everything_once(tmp_path, write_config, email_glob):
    config = write_config(eight_runs(email_glob))
    reference = tmp_path / "reference"
    assert runner.invoke(app, ["run", str(config), "--store", str(reference), "--workers", "1"]).exit_code == 0
    store = tmp_path / "store"
    submitted = runner.invoke(app, ["run", str(config), "--store", str(store), "--submit-only"])
    assert submitted.exit_code == 0, submitted.output
    assert "8 runs, 8 to train" in submitted.output
    assert set(load_runs(store)["status"]) == {"pending"}
    command = [*SWEEP, "worker", str(store), "--threads", "1", "--workers", "1"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert losses(store) == losses(reference), "same run ids, same losses as one sweep run"
    assert (load_runs(store)["attempts"] == 1).all(), "no run trained twice"


@pytest.mark.slow
def test_one_of_two_workers_killed_mid_run_is_replaced_and_nothing_is_lost(tmp_path, write_config, email_glob):
    config = write_config(eight_runs(email_glob))
    reference = tmp_path / "reference"
    assert runner.invoke(app, ["run", str(config), "--store", str(reference), "--workers", "1"]).exit_code == 0
    store = tmp_path / "store"
    assert runner.invoke(app, ["run", str(config), "--store", str(store), "--submit-only"]).exit_code == 0
    command = [*SWEEP, "worker", str(store), "--threads", "1", "--workers", "1"]
    victim, other = (subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2))
    wait_for(
        lambda: any(_held_by(checkpoint.parent, victim.pid) for checkpoint in store.rglob("checkpoint.pt")),
        HANG_S,
        "the victim to checkpoint a run",
    )
    victim.send_signal(signal.SIGKILL)  # mid-run: it has checkpointed the run it holds
    victim.wait()
    replacement = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert replacement.returncode == 0 and other.wait(timeout=600) == 0, replacement.stdout + replacement.stderr
    assert losses(store) == losses(reference)
    assert load_runs(store)["attempts"].max() <= 2, "only the killed worker's run started twice"
    for run_dir in run_dirs(store / "tiny"):
        steps = steps_of(run_dir)
        assert steps == sorted(set(steps))


def _held_by(directory, pid: int) -> bool:
    claim = read_claim(directory)
    return claim is not None and claim["pid"] == pid


def test_a_worker_on_a_store_with_no_runs_says_so(tmp_path):
    result = runner.invoke(app, ["worker", str(tmp_path)])
    assert result.exit_code == 2 and "no runs are registered" in result.output


def test_a_gpu_box_gets_one_worker_per_gpu_spread_round_robin():
    cuda = torch.device("cuda")  # only planned, never touched
    plan = plan_workers(range(10), cuda, visible=["0", "1", "2"])
    assert (plan.processes, plan.gpus) == (3, ("0", "1", "2"))
    plan = plan_workers(range(10), cuda, workers_per_gpu=2, visible=["4", "7"])
    assert (plan.processes, plan.gpus) == (4, ("4", "7", "4", "7"))
    assert plan_workers(range(1), cuda, visible=["0", "1"]).processes == 1, "one run needs one worker"
    assert plan_workers(range(10), cuda, visible=[]).processes == 1


@pytest.mark.slow
def test_each_pool_worker_sees_only_its_gpu_and_the_largest_runs_go_first(tmp_path, email_glob):
    """The GPU assignment through real worker processes, on CPU: each worker's CUDA_VISIBLE_DEVICES
    is recorded with the runs it trained."""
    raw = eight_runs(email_glob)
    raw["train"]["schedule"] = "cosine"
    config = parse_config(raw)
    corpus = load_corpus(config.data)
    specs = expand(config, corpus.sha256, corpus.vocab_size)
    store = Store(tmp_path / "store")

    class Starts(PlainReporter):
        def __init__(self):
            super().__init__(io.StringIO())
            self.order = []

        def run_started(self, task, index, count):
            self.order.append(task.spec)

    reporter = Starts()
    outcome = run_pool(specs, store, config.data, torch.device("cpu"), 2, 1, reporter, gpus=["3", "5"])
    assert outcome.ok and len(outcome.done) == 8
    seen = {json.loads((store.run_dir(spec) / "result.json").read_text())["cuda_visible_devices"] for spec in specs}
    assert seen == {"3", "5"}
    largest = sorted(specs, key=lambda spec: spec.flops, reverse=True)[:2]
    assert {spec.run_id for spec in reporter.order[:2]} == {spec.run_id for spec in largest}


@pytest.mark.slow
def test_a_pool_worker_killed_mid_run_fails_only_its_run_and_retry_finishes_it(tmp_path, write_config, email_glob):
    """The local pool: kill -9 of one worker records its run as failed (an OOM kill must not loop);
    the others finish, and --retry-failed trains the killed run again from its checkpoint."""
    raw = eight_runs(email_glob)
    raw["train"]["schedule"] = "cosine"
    config = write_config(raw)
    reference = tmp_path / "reference"
    assert runner.invoke(app, ["run", str(config), "--store", str(reference), "--workers", "1"]).exit_code == 0
    store = tmp_path / "store"
    pool = subprocess.Popen(
        [*SWEEP, "run", str(config), "--store", str(store), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _, victim = claimed_mid_run(store)
    os.kill(victim, signal.SIGKILL)
    output = pool.communicate(timeout=600)[0]
    assert pool.returncode == 1 and "worker process died" in json.dumps(load_runs(store)["reason"].tolist()), output
    assert (load_runs(store)["status"] == "failed").sum() == 1
    retry = subprocess.run(
        [*SWEEP, "run", str(config), "--store", str(store), "--workers", "2", "--retry-failed"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert losses(store) == losses(reference)
    assert sorted(load_runs(store)["attempts"].tolist()) == [1] * 7 + [2]
