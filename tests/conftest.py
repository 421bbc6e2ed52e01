"""Shared fixtures and helpers: tiny configs on small real corpora, so the suite runs in minutes on
2 cores; waiting for an event in a sweep that runs in other processes; and the eight-run sweep that
the worker and launcher tests train, interrupt and compare with an undisturbed run."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.data import stdlib_root
from sweep.store import read_json, read_metrics
from sweep.store.claims import CLAIM

REPO = Path(__file__).resolve().parents[1]
SWEEP = [sys.executable, "-m", "sweep"]
runner = CliRunner()


@pytest.fixture(scope="session")
def email_glob() -> str:
    """About 40 real Python files from the standard library's email package: a small real corpus."""
    return str(stdlib_root() / "email" / "**" / "*.py")


def tiny_config(corpus: str, **overrides) -> dict:
    """A raw config dict for a 2-size × 2-budget sweep of tiny models; `overrides` replace top-level keys."""
    raw = {
        "name": "tiny",
        "data": {"corpus": corpus, "seq_len": 32, "val_fraction": 0.2, "val_tokens": 2048, "chunk_tokens": 4096},
        "model": {
            "sizes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}, {"n_layers": 2, "d_model": 32, "n_heads": 2}]
        },
        "tokens": ["8192", "16384"],
        "seeds": [0],
        "train": {"batch_tokens": 1024, "lr": "1e-2", "evals": 1},
        "device": "cpu",
    }
    raw.update(overrides)
    return raw


def run_dirs(sweep_dir: Path) -> list[Path]:
    """The run directories of one sweep, sorted; wsd trunks (under trunks/) are not runs."""
    return sorted(path.parent for path in sweep_dir.glob("*/spec.json"))


@pytest.fixture
def write_config(tmp_path):
    def write(raw: dict, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return path

    return write


# How long a test waits for an event before it calls the event lost: a hang detector, never reached by
# a passing test, so far beyond what the event takes on a 2-core machine loaded by another job.
HANG_S = 600


def wait_for(condition, timeout: float, what: str):
    """The first truthy value of `condition()`, called every 0.05 s; an AssertionError naming `what`
    if none comes within `timeout` seconds. Tests wait for an event this way, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_claim(run_dir: Path) -> dict | None:
    """The claim on a run or trunk directory, or None while there is none (or it is being replaced)."""
    try:
        return json.loads((run_dir / CLAIM).read_text())
    except (OSError, ValueError):
        return None


def steps_of(run_dir: Path) -> list[int]:
    """The steps a run's metrics log holds, in the order they were written."""
    return [row["step"] for row in read_metrics(run_dir)]


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def eight_runs(corpus: str) -> dict:
    """2 sizes × 4 budgets, wsd: 8 runs from 2 trunks, each a few seconds on one thread, checkpoints
    every 0.2 s."""
    raw = tiny_config(corpus, tokens=["4e4", "8e4", "1.2e5", "1.6e5"])
    raw["train"].update({"threads": 1, "checkpoint_every": 0.2})
    return raw


@pytest.fixture(scope="module")
def sweep_config(tmp_path_factory, email_glob) -> Path:
    """`eight_runs` written to a file, once per test module."""
    path = tmp_path_factory.mktemp("config") / "sweep.yaml"
    path.write_text(yaml.safe_dump(eight_runs(email_glob)))
    return path


@pytest.fixture(scope="module")
def reference_losses(sweep_config, tmp_path_factory) -> dict:
    """The losses of an undisturbed `sweep run` of `sweep_config` on CPU."""
    store = tmp_path_factory.mktemp("reference")
    assert runner.invoke(app, ["run", str(sweep_config), "--store", str(store), "--workers", "1"]).exit_code == 0
    return losses(store)


def losses(store: Path) -> dict:
    """Each run's final loss by run id; every run must be done."""
    runs = load_runs(store)
    assert (runs["status"] == "done").all(), runs[["run_id", "status"]]
    return dict(zip(runs["run_id"], runs["loss"]))


def register(config: Path, store: Path) -> None:
    """`sweep run --submit-only`: the sweep's runs registered in `store`, none trained."""
    result = runner.invoke(app, ["run", str(config), "--store", str(store), "--submit-only"])
    assert result.exit_code == 0, result.output


def claimed_mid_run(store: Path, since: float = 0.0, timeout_s: float = HANG_S) -> tuple[Path, int]:
    """A run or trunk directory being trained now (checkpointed after `since`), and the pid that holds
    its claim."""

    def claimed() -> tuple[Path, int] | None:
        for saved in store.rglob("checkpoint.pt"):
            claim = read_claim(saved.parent)
            with contextlib.suppress(FileNotFoundError):  # the checkpoint is deleted when its run ends
                if claim and saved.stat().st_mtime > since:
                    return saved.parent, claim["pid"]
        return None

    return wait_for(claimed, timeout_s, "a run to be checkpointed by the worker that holds it")


def assert_trained_once(store: Path, *interrupted: Path) -> None:
    """Every run done, started once, and at most once more each time it was interrupted (unless it
    had just finished; a trunk interrupted is no run); its metrics log in step order."""
    for run_dir in run_dirs(store / "tiny"):
        attempts = read_json(run_dir / "status.json")["attempts"]
        assert 1 <= attempts <= 1 + interrupted.count(run_dir), (run_dir, attempts)
        steps = steps_of(run_dir)
        assert steps == sorted(set(steps)), run_dir
