"""Where each run and each wsd trunk keeps its files, and how they are written.

One directory per run:

    <store>/<sweep>/<run_id>/spec.json      the resolved RunSpec (written before training starts)
                             status.json    {"status", "attempts", "updated_at", "host", "pid", "reason"}
                             metrics.jsonl  one row per logging interval / evaluation
                             result.json    the final record (written once, when the run ends)
    <store>/<sweep>/trunks/<trunk_id>/      a wsd trunk: trunk.json, status, metrics, branch points
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path

from sweep.columns import STATUSES
from sweep.config import RunSpec
from sweep.store.atomic import atomic_write
from sweep.store.files import read_json, write_json
from sweep.store.records import run_status, status_and_result


class Store:
    """Where each run and each wsd trunk keeps its files. Methods that write take the directory, so
    runs and trunks share them."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._warned: set[str] = set()

    def warn(self, message: str) -> None:
        """Warn about a damaged run file once for this store, however often a sweep reads it: Python's own
        once-per-place memory is lost whenever a module changes the warning filters (importing pandas
        does), and then a pooled sweep warned twice about one file."""
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, stacklevel=2)

    def run_status(self, directory: Path) -> dict:
        """The status of the run or trunk in `directory` (`records.run_status`), damage warned once."""
        return run_status(directory, self.warn)

    def run_dir(self, spec: RunSpec) -> Path:
        return self.root / spec.sweep / spec.run_id

    def trunk_dir(self, spec: RunSpec) -> Path:
        """<store>/<sweep>/trunks/<trunk id>/: trunk.json (not spec.json, so listings skip it), status,
        metrics, claim, checkpoint.pt while it trains and branch-<step>.pt, each branch point's state,
        until every branch of the trunk is done."""
        return self.root / spec.sweep / "trunks" / spec.trunk_id

    def branch_point(self, spec: RunSpec) -> Path:
        """The saved trunk state a wsd branch starts from."""
        return self.trunk_dir(spec) / f"branch-{spec.branch_step}.pt"

    def status(self, spec: RunSpec) -> dict:
        return self.run_status(self.run_dir(spec))

    def register(self, spec: RunSpec) -> None:
        """Create the run's directory with its spec, unless it exists; never touches a run's results.
        A wsd run registers its trunk too."""
        self._register(self.run_dir(spec), "spec.json", spec)
        if spec.train.schedule == "wsd":
            self._register(self.trunk_dir(spec), "trunk.json", spec)

    def _register(self, directory: Path, name: str, spec: RunSpec) -> None:
        """A status.json that is missing, damaged, or finished with its result lost is rewritten as the
        pending status it reads as: the damage is warned about here, once, not again by every worker
        that reads the run's status."""
        directory.mkdir(parents=True, exist_ok=True)
        if read_json(directory / name) is None:
            write_json(directory / name, spec.to_dict())
        status, _, as_stored = status_and_result(directory, self.warn)
        if not as_stored:
            self.set_status(directory, status["status"], reason=status.get("reason"))

    def set_status(self, directory: Path, status: str, *, attempt: bool = False, reason: str | None = None) -> None:
        assert status in STATUSES, status
        previous = self.run_status(directory)
        write_json(
            directory / "status.json",
            {
                "status": status,
                "attempts": previous["attempts"] + (1 if attempt else 0),
                "updated_at": time.time(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "reason": reason,
            },
        )

    def start_metrics(self, directory: Path, kept: list[dict]) -> None:
        """The metrics log of a new attempt, holding `kept`: the rows up to the state it resumes from
        (a checkpoint's, or for a branch its trunk's up to the branch point). Later rows belong to
        training that is about to be redone, and go."""
        path = directory / "metrics.jsonl"
        if not kept:
            path.unlink(missing_ok=True)
            return
        atomic_write(path, lambda f: f.write("".join(json.dumps(row, sort_keys=True) + "\n" for row in kept)))

    def append_metrics(self, directory: Path, row: dict) -> None:
        line = json.dumps(row, sort_keys=True) + "\n"
        with open(directory / "metrics.jsonl", "a") as f:
            f.write(line)
            f.flush()

    def finish(self, directory: Path, record: dict) -> None:
        """Write the final record, then the status that points readers at it."""
        write_json(directory / "result.json", record)
        self.set_status(directory, record["status"], reason=record.get("reason"))
