"""`sweep.launch.slurm`: workers as submitit jobs. Real jobs through submitit's own local executor
(a job killed -9 is replaced by one more job; SIGTERM stops a job cleanly; SIGUSR2 makes submitit
requeue it and the run resumes), and the sbatch script that SLURM would get, checked against a faked
sbatch and then run as SLURM would run it. The executor section of a config, and that it stays out
of run ids."""

import importlib.util
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import (
    HANG_S,
    assert_trained_once,
    claimed_mid_run,
    eight_runs,
    losses,
    parent_pid,
    register,
    tiny_config,
    wait_for,
)
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.config import ExecutorConfig, expand, parse_config
from sweep.errors import ConfigError, SweepError
from sweep.launch.slurm import SweepJob, submit_slurm
from sweep.store import read_json

needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("submitit") is None, reason="needs submitit: pip install -e '.[test]'"
)
runner = CliRunner()
LOCAL = ExecutorConfig(workers=2, cluster="local", threads=1)


def wait_ended(jobs, timeout_s: float = HANG_S) -> None:
    wait_for(lambda: all(job.done() for job in jobs), timeout_s, "every job to end")


@pytest.mark.slow
@needs_submitit
def test_a_job_killed_mid_run_is_replaced_by_one_more_and_nothing_is_lost(tmp_path, sweep_config, reference_losses):
    store = tmp_path / "store"
    register(sweep_config, store)
    jobs = submit_slurm(store, "tiny", LOCAL)
    assert len(jobs) == 2 and (store / ".submitit" / "tiny").is_dir()
    victim_dir, pid = claimed_mid_run(store)
    # submitit's local job id is its controller's pid: the worker training the run is a job's own process.
    victim = next(job for job in jobs if job.job_id == str(parent_pid(pid)))
    os.kill(pid, signal.SIGKILL)
    restart = submit_slurm(store, "tiny", ExecutorConfig(workers=1, cluster="local", threads=1))
    wait_ended(jobs + restart)
    assert not victim.paths.result_pickle.exists(), "the killed job ended without a result"
    for job in jobs + restart:
        if job is not victim:
            assert set(job.result()) == {"done", "skipped", "taken", "failed", "diverged"}
            assert job.result()["failed"] == 0
    assert losses(store) == reference_losses
    assert_trained_once(store, victim_dir)


@pytest.mark.slow
@needs_submitit
def test_sigterm_stops_a_job_cleanly_and_sigusr2_requeues_it_to_resume(tmp_path, sweep_config, reference_losses):
    store = tmp_path / "store"
    register(sweep_config, store)
    one = ExecutorConfig(workers=1, cluster="local", threads=1)
    [job] = submit_slurm(store, "tiny", one)
    stopped_dir, pid = claimed_mid_run(store)
    os.kill(pid, signal.SIGTERM)  # a cancelled or preempted job
    wait_ended([job])
    assert not job.paths.result_pickle.exists()
    status = read_json(stopped_dir / "status.json")
    assert (status["status"], status["reason"]) == ("pending", "interrupted"), "put back, not left running"
    assert (stopped_dir / "checkpoint.pt").exists() and not (stopped_dir / "claim.json").exists()
    assert "worker stopped by SIGTERM" in job.stdout()

    resubmitted = time.time()
    [job] = submit_slurm(store, "tiny", one)
    requeued_dir, pid = claimed_mid_run(store, since=resubmitted)
    os.kill(pid, signal.SIGUSR2)  # submitit's signal before the time limit: checkpoint() and requeue
    wait_ended([job])
    assert job.result()["failed"] == 0, "the requeued attempt of the same job finished the sweep"
    assert "stopped by SIGUSR2" in job.stdout() and "Requeued job" in job.stdout()
    assert losses(store) == reference_losses
    assert_trained_once(store, stopped_dir, requeued_dir)


FAKE_SBATCH = """#!/bin/sh
# Keeps what it was asked to submit, as submitit's tests fake sbatch.
echo "$@" > "{record}/args"
cp "$1" "{record}/script.sh"
echo "Submitted batch job 4242"
"""

# srun as sbatch's script calls it: drop srun's own options and run the command as one task.
FAKE_SRUN = """#!/bin/sh
while [ "${1#-}" != "$1" ]; do
  case "$1" in --output|--error) shift 2 ;; *) shift ;; esac
done
exec "$@"
"""


def fake_slurm(directory: Path) -> None:
    directory.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH.format(record=directory)), ("srun", FAKE_SRUN)):
        path = directory / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.slow
@needs_submitit
def test_the_sbatch_script_asks_for_the_configured_job_array_and_starts_a_worker(
    tmp_path, write_config, email_glob, monkeypatch
):
    store = tmp_path / "store"
    register(write_config(tiny_config(email_glob)), store)
    fake = tmp_path / "bin"
    fake_slurm(fake)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    config = ExecutorConfig(
        workers=3,
        cluster="auto",
        partition="gpu",
        gpus_per_node=2,
        cpus_per_task=4,
        mem_gb=16,
        timeout_min=90,
        array_parallelism=2,
        sbatch=("qos=high", "account=lab"),
        threads=1,
    )
    jobs = submit_slurm(store, "tiny", config)
    assert [job.job_id for job in jobs] == ["4242_0", "4242_1", "4242_2"]
    script = (fake / "script.sh").read_text()
    for line in (
        "--partition=gpu",
        "--gpus-per-node=2",
        "--cpus-per-task=4",
        "--mem=16GB",
        "--time=90",
        "--array=0-2%2",
        "--qos=high",
        "--account=lab",
        "--job-name=sweep-tiny",
        "--signal=USR2@90",
    ):
        assert f"#SBATCH {line}\n" in script, line
    command = script.strip().splitlines()[-1]
    folder = store.resolve() / ".submitit" / "tiny"
    assert command.startswith("srun ") and command.endswith(f"-m submitit.core._submit {folder}")
    with jobs[0].paths.submitted_pickle.open("rb") as f:
        assert pickle.load(f).function == SweepJob(store.resolve(), "tiny", config)

    # Run array task 0 as SLURM would: the script's command loads the job and its worker trains the sweep.
    env = {
        **os.environ,
        "SLURM_JOB_ID": "4243",
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_ARRAY_TASK_ID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NUM_NODES": "1",
    }
    ran = subprocess.run(["bash", str(fake / "script.sh")], env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert jobs[0].result() == {"done": 4, "skipped": 0, "taken": 0, "failed": 0, "diverged": 0}
    assert set(load_runs(store)["status"]) == {"done"}


@needs_submitit
def test_slurm_is_refused_without_sbatch_and_a_sweep_without_runs_submits_nothing(
    tmp_path, write_config, email_glob, monkeypatch
):
    store = tmp_path / "store"
    register(write_config(tiny_config(email_glob)), store)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(SweepError, match="sbatch and srun are not on PATH"):
        submit_slurm(store, "tiny", ExecutorConfig(cluster="slurm"))
    with pytest.raises(SweepError, match="no sweep 'other'"):
        submit_slurm(store, "other", LOCAL)
    assert not (store / ".submitit").exists()


def test_without_submitit_the_launcher_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(SweepError, match=r"--executor slurm needs submitit: pip install 'sweep\[slurm\]'"):
        submit_slurm(tmp_path, "tiny", LOCAL)


def test_the_executor_section_is_validated_and_enters_no_run_id(email_glob):
    raw = tiny_config(email_glob)
    plain = parse_config(raw)
    assert plain.executor == ExecutorConfig()
    raw["executor"] = {
        "workers": 8,
        "cluster": "slurm",
        "partition": "gpu",
        "gpus_per_node": 1,
        "cpus_per_task": 4,
        "mem_gb": "1.5",
        "timeout_min": 240,
        "array_parallelism": 4,
        "sbatch": ["qos=high"],
        "address": "ray://head:10001",
        "device": "cuda",
        "threads": 2,
    }
    configured = parse_config(raw)
    assert configured.executor.sbatch == ("qos=high",) and configured.executor.mem_gb == 1.5
    assert [spec.run_id for spec in expand(configured)] == [spec.run_id for spec in expand(plain)]
    raw["executor"] = {
        "workers": 0,
        "partition": "a b",
        "gpus_per_node": -1,
        "cpus_per_task": 0,
        "mem_gb": -1,
        "timeout_min": 0,
        "array_parallelism": -1,
        "sbatch": ["qos high", "x=1\ny"],
        "threads": -1,
    }
    assert problems(raw) == [
        f"executor.{key}"
        for key in (
            "workers",
            "partition",
            "gpus_per_node",
            "cpus_per_task",
            "mem_gb",
            "timeout_min",
            "array_parallelism",
            "threads",
            "sbatch[0]",
            "sbatch[1]",
        )
    ]
    raw["executor"] = {"cluster": "pbs", "device": "tpu", "nodes": 2}
    assert problems(raw) == ["executor.cluster", "executor.device", "executor.nodes"]


def problems(raw: dict) -> list[str]:
    """The key path of each problem `parse_config` finds in `raw`."""
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    return [problem.split(":")[0] for problem in err.value.problems]


@pytest.mark.slow
@needs_submitit
def test_sweep_run_executor_slurm_wait_trains_the_sweep_through_local_jobs(tmp_path, email_glob, reference_losses):
    """The command a user types, end to end: register, submit 2 local jobs, wait, exit as sweep run."""
    raw = eight_runs(email_glob)
    raw["executor"] = {"workers": 2, "cluster": "local", "threads": 1}
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(raw))
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", str(config), "--store", str(store), "--executor", "slurm", "--wait"])
    assert result.exit_code == 0, result.output
    assert "submitted 2 sweep workers" in result.output
    assert losses(store) == reference_losses
