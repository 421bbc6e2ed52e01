"""`torchrun -m sweep run`: every run trained across the processes with DDP (gloo on CPU), rank 0
alone writing the store, the losses those of one process with the same global batch."""

import json
import subprocess
import sys

import pytest
from conftest import run_dirs, steps_of, tiny_config
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app

runner = CliRunner()
# Measured for 2 gloo ranks against one process, fp32 (tests/test_ddp.py): rounding grows to ~3e-4
# over 40 steps, the same as 1 thread against 2.
TOLERANCE = 1e-3


@pytest.mark.slow
def test_a_sweep_under_torchrun_trains_each_run_across_ranks_and_writes_once(tmp_path, write_config, email_glob):
    raw = tiny_config(email_glob)
    raw["train"].update({"threads": 1, "dtype": "fp32", "ddp": True})
    config = write_config(raw)
    reference = tmp_path / "reference"
    refused = runner.invoke(app, ["run", str(config), "--store", str(reference)])
    assert refused.exit_code == 2 and "torchrun" in refused.output, "train.ddp outside torchrun says how to start it"
    raw["train"]["ddp"] = False
    assert (
        runner.invoke(
            app, ["run", str(write_config(raw, "one.yaml")), "--store", str(reference), "--workers", "1"]
        ).exit_code
        == 0
    )
    store = tmp_path / "store"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "sweep",
            "run",
            str(config),
            "--store",
            str(store),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = load_runs(reference).set_index("run_id")["loss"]
    runs = load_runs(store).set_index("run_id")
    assert sorted(runs.index) == sorted(expected.index), "train.ddp is not part of a run's identity"
    assert (runs["status"] == "done").all() and (runs["attempts"] == 1).all()
    relative = ((runs["loss"] - expected[runs.index]) / expected[runs.index]).abs()
    assert relative.max() < TOLERANCE, relative
    for run_dir in run_dirs(store / "tiny"):
        steps = steps_of(run_dir)
        assert steps == sorted(set(steps)), "only rank 0 wrote"
        assert json.loads((run_dir / "result.json").read_text())["processes"] == 2
