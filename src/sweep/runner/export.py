"""`sweep export STORE --to csv|parquet|tensorboard|wandb`: a store in another tool's format, replayed from
what the store recorded (metrics.jsonl, result.json), for runs trained without a tracker.

csv and parquet write the `load_runs` table as one file, by default <STORE>/runs.csv or runs.parquet.
tensorboard and wandb write one tracker run per run and per wsd trunk, as a live tracker would
(`runner.trackers`): into each run's own directory, or with --out into <out>/<the run's path under STORE>.
Exporting again replaces what an earlier export or a live tracker wrote there, so nothing is duplicated.
Runs in training (status running) are skipped and counted: they are still being written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sweep.config import TRACKERS, RunSpec
from sweep.errors import SweepError, cut, require_package
from sweep.runner import trackers as tracking
from sweep.store import FINISHED, load_runs, read_json, read_metrics, read_spec, run_status, walk
from sweep.store.atomic import atomic_write

TABLES = ("csv", "parquet")
FORMATS = TABLES + TRACKERS


@dataclass
class Exported:
    written: list[Path] = field(default_factory=list)  # the table, or each tracker run's directory
    running: list[str] = field(default_factory=list)  # runs skipped because they are in training
    failed: list[str] = field(default_factory=list)  # "run: error" for each run the tracker failed on


def export_store(store: Path, to: str, out: Path | None = None) -> Exported:
    """Write the store at `store` (a store, one sweep's directory or one run's) as `to` (one of FORMATS)."""
    if not store.is_dir():
        raise SweepError(f"{cut(str(store), 200)}: no run store there (not a directory); nothing written")
    if to in TABLES:
        return _export_table(store, to, out or store / f"runs.{to}")
    if out is not None and out.exists() and not out.is_dir():
        raise SweepError(f"--out: {cut(str(out), 200)} exists and is not a directory")
    tracking.require((to,), where="--to")
    return _export_tracker_runs(store, to, out)


def _export_table(store: Path, to: str, path: Path) -> Exported:
    """The `load_runs` table as CSV or Parquet (pyarrow, imported by pandas), written atomically."""
    if to == "parquet":
        require_package("pyarrow", "parquet", "--to parquet")
    if path.is_dir():
        raise SweepError(f"--out: {cut(str(path), 200)} is a directory; give the {to} file to write")
    runs = load_runs(store)
    if runs.empty:
        raise SweepError(f"{cut(str(store), 200)}: the store holds no runs; nothing to export")
    path.parent.mkdir(parents=True, exist_ok=True)
    if to == "csv":
        atomic_write(path, lambda f: runs.to_csv(f, index=False))
    else:
        atomic_write(path, lambda f: runs.to_parquet(f, index=False), binary=True)
    return Exported(written=[path])


def _export_tracker_runs(store: Path, to: str, out: Path | None) -> Exported:
    """One tracker run per run and trunk that recorded anything: its metrics rows, then its result."""
    found = tracked_runs(store)
    if not found:
        raise SweepError(f"{cut(str(store), 200)}: the store holds no runs; nothing to export")
    exported = Exported()
    for directory, kind, spec in found:
        status = run_status(directory)["status"]
        rows = read_metrics(directory)
        if status == "running":
            exported.running.append(directory.name)
            continue
        if not rows and status not in FINISHED:
            continue  # never trained: nothing to show
        target = directory if out is None else out / directory.relative_to(store)
        result = read_json(directory / "result.json") if status in FINISHED else None
        try:
            _replay(to, tracking.TrackedRun(directory.name, spec.sweep, kind, spec.to_dict(), target), rows, result)
        except Exception as err:  # noqa: BLE001 - the tracker's own failure: this run is not exported, the rest are
            exported.failed.append(f"{directory.name}: {type(err).__name__}: {cut(str(err), 200)}")
            continue
        exported.written.append(target / to)  # each tracker's directory is named after it
    return exported


def _replay(to: str, run: tracking.TrackedRun, rows: list[dict], result: dict | None) -> None:
    tracker = tracking.OPENERS[to](run)
    for row in rows:
        tracker.log(row)
    if result is not None:
        tracker.finish(result)
    else:
        tracker.close()


def tracked_runs(root: Path) -> list[tuple[Path, str, RunSpec]]:
    """(directory, kind, RunSpec) of every run and wsd trunk under `root`: a store (<sweep>/<run>,
    <sweep>/trunks/<trunk>), one sweep's directory or one run's (`store.walk`). A spec file that is
    no spec is warned about and skipped, as `load_runs` does."""
    found = []
    for run in walk(root):
        spec = read_spec(run)
        if spec is None:
            continue
        if run.kind == "trunk":
            kind = "trunk"
        else:
            kind = "branch" if spec.train.schedule == "wsd" else "run"
        found.append((run.path, kind, spec))
    return found
