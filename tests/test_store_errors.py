"""A store that cannot be written: a clear message with exit 2 before anything trains, or exit 1 in
the middle of a sweep with the run in flight back to pending, no temporary file left and every
finished run intact. Real file systems: small and read-only tmpfs mounts (needs root)."""

import os
import subprocess
from pathlib import Path

import pytest
from conftest import SWEEP, run_dirs, steps_of, tiny_config
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app

runner = CliRunner()


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0
    )


@pytest.fixture
def mount_tmpfs(tmp_path):
    mounted = []

    def mount(name: str, options: str) -> Path:
        path = tmp_path / name
        if not _mount(path, options):
            pytest.skip("needs permission to mount a tmpfs (root)")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def sweep_config(corpus: str, sizes: int) -> dict:
    raw = tiny_config(corpus, tokens=["1e5", "2e5"])
    raw["model"]["sizes"] = raw["model"]["sizes"][:sizes]
    raw["train"].update({"threads": 1, "schedule": "cosine", "checkpoint_every": 0.01})
    return raw


@pytest.mark.slow
def test_a_full_disk_stops_the_sweep_and_loses_nothing(mount_tmpfs, write_config, email_glob):
    disk = mount_tmpfs("disk", "size=2m")
    store = disk / "store"
    small = write_config(sweep_config(email_glob, sizes=1), "small.yaml")
    assert runner.invoke(app, ["run", str(small), "--store", str(store)]).exit_code == 0
    finished = load_runs(store).set_index("run_id")["loss"]
    # Leave room for the new runs' small files, not for a checkpoint of the larger model (~0.4 MB).
    filler = disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=1000000"], capture_output=True)
    os.truncate(filler, filler.stat().st_size - 150_000)
    larger = write_config(sweep_config(email_glob, sizes=2), "larger.yaml")
    full = subprocess.run(
        [*SWEEP, "run", str(larger), "--store", str(store), "--workers", "1"], capture_output=True, text=True
    )
    assert full.returncode == 1, full.stdout + full.stderr
    assert "Traceback" not in full.stdout + full.stderr
    assert "cannot write to the store" in full.stderr and "No space left" in full.stderr
    assert not [path for path in store.rglob(".*") if path.name.endswith(".tmp")], "no temporary file holds space"
    runs = load_runs(store).set_index("run_id")
    assert (runs.loc[finished.index, "loss"] == finished).all(), "finished runs are intact"
    assert "running" not in set(runs["status"]) and "failed" not in set(runs["status"])
    assert not list(store.rglob("claim.json"))

    filler.unlink()
    again = subprocess.run(
        [*SWEEP, "run", str(larger), "--store", str(store), "--workers", "1"], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stdout + again.stderr
    runs = load_runs(store)
    assert (runs["status"] == "done").all() and len(runs) == 4
    for run_dir in run_dirs(store / "tiny"):
        steps = steps_of(run_dir)
        assert steps == sorted(set(steps))


def test_a_read_only_store_is_refused_before_anything_trains(mount_tmpfs, write_config, email_glob):
    read_only = mount_tmpfs("ro", "ro,size=1m")
    config = write_config(sweep_config(email_glob, sizes=1))
    result = runner.invoke(app, ["run", str(config), "--store", str(read_only / "store")])
    assert result.exit_code == 2, result.output
    assert "cannot write to" in result.output and "Read-only file system" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_store_under_a_file_is_refused(tmp_path, write_config, email_glob):
    config = write_config(sweep_config(email_glob, sizes=1))
    (tmp_path / "file").write_text("")
    result = runner.invoke(app, ["run", str(config), "--store", str(tmp_path / "file" / "store")])
    assert result.exit_code == 2, result.output
    assert "cannot write to" in result.output and "Not a directory" in result.output
