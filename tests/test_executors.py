"""The worker-pool engine: same runs, same records as one at a time; packing from the grid."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import run_dirs, tiny_config
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.config import expand, parse_config
from sweep.data import load_corpus
from sweep.runner import packing, run_pool
from sweep.store import Store
from sweep.store.claims import CLAIM

runner = CliRunner()


def test_packing_splits_cores_between_runs(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    specs = expand(parse_config(tiny_config("stdlib", seeds=[0, 1, 2])))  # 12 runs
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert packing(specs, cpu) == (8, 1)
    assert packing(specs[:3], cpu) == (3, 2)
    assert packing(specs[:1], cpu) == (1, 8)
    assert packing(specs, cpu, workers=2) == (2, 4)
    assert packing(specs, cuda) == (1, 8)


@pytest.mark.slow
def test_pool_trains_every_run_once_and_records_it(tmp_path, write_config, email_glob):
    path = write_config(tiny_config(email_glob))
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", str(path), "--store", str(store), "--workers", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "training 2 runs at a time, 1 thread(s) each" in result.output
    assert "4 trained, 0 already finished, 0 failed" in result.output
    runs = load_runs(store)
    assert (runs["status"] == "done").all() and (runs["attempts"] == 1).all()
    for run_dir in run_dirs(store / "tiny"):
        record = json.loads((run_dir / "result.json").read_text())
        assert record["threads"] == 1 and record["loss"] == runs.set_index("run_id").loc[run_dir.name, "loss"]
    again = runner.invoke(app, ["run", str(path), "--store", str(store), "--workers", "2"], catch_exceptions=False)
    assert "0 trained, 4 already finished" in again.output
    pd.testing.assert_frame_equal(runs, load_runs(store))


class FailsWhileAnotherTrains:
    """A reporter with a bug: it raises on a run's end while another run is in flight (claimed)."""

    def __init__(self, store: Path):
        self.store, self.raised = store, False

    def sweep_started(self, specs, todo, work_flops): ...
    def run_started(self, task, index, count): ...
    def run_progress(self, task, row): ...

    def run_finished(self, task, record):
        if any(self.store.rglob(CLAIM)):
            self.raised = True
            raise RuntimeError("a bug in the display")


@pytest.mark.slow
def test_a_display_bug_in_the_pool_leaves_no_run_claimed_and_the_rerun_finishes_each_once(tmp_path, email_glob):
    """Issue 23, case 1: the progress line's crash left the run in flight `running` with its claim held.
    The error still propagates, but only after the workers put their runs back to pending."""
    raw = tiny_config(email_glob, tokens=["4e4", "8e4"])
    raw["train"].update({"threads": 1, "schedule": "cosine"})
    config = parse_config(raw)
    corpus = load_corpus(config.data)
    specs, store = expand(config, corpus.sha256, corpus.vocab_size), Store(tmp_path / "store")
    reporter = FailsWhileAnotherTrains(store.root)
    with pytest.raises(RuntimeError, match="a bug in the display"):
        run_pool(specs, store, config.data, torch.device("cpu"), 2, 1, reporter)
    assert reporter.raised
    runs = load_runs(store.root)
    assert "running" not in set(runs["status"]) and not list(store.root.rglob(CLAIM))
    finished = run_pool(specs, store, config.data, torch.device("cpu"), 2, 1, Quiet())
    runs = load_runs(store.root)
    assert finished.ok and (runs["status"] == "done").all()
    assert runs["attempts"].sum() <= len(runs) + 1, "only the run in flight was trained again"


class Quiet:
    def sweep_started(self, specs, todo, work_flops): ...
    def run_started(self, task, index, count): ...
    def run_progress(self, task, row): ...
    def run_finished(self, task, record): ...
