"""What a sweep still has to train and what of it can start now: the tasks (runs, wsd trunks and
branches), which of them are pending, and the `Plan` that hands out the most work first."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sweep.config import RunSpec, spec_from_dict
from sweep.config.trunks import Trunk, trunks
from sweep.store import FINISHED, Store


@dataclass(frozen=True)
class Options:
    retry_failed: bool = False  # train failed runs again
    keep_weights: bool = False  # keep final weights as model.pt in the run's directory


@dataclass(frozen=True)
class Task:
    """What one worker trains at a time: a whole run, a wsd trunk, or a wsd branch (`config.trunks`)."""

    kind: str  # "run", "trunk" or "branch"
    spec: RunSpec  # a trunk's is `Trunk.spec_to` its last branch point still needed
    snapshot_steps: tuple[int, ...] = ()  # a trunk's branch points still to save

    @property
    def name(self) -> str:
        return self.spec.trunk_id if self.kind == "trunk" else self.spec.run_id

    @property
    def start_step(self) -> int:
        """Where training begins, before any checkpoint: a branch at its branch point."""
        return self.spec.branch_step if self.kind == "branch" else 0

    @property
    def flops(self) -> int:
        """6·N·D of the steps this task trains."""
        return self.spec.flops_per_step * (self.spec.steps - self.start_step)

    def directory(self, store: Store) -> Path:
        """Where this task keeps its claim, status, metrics and checkpoint: a trunk's own directory,
        else its run's (a branch writes to its run's, reading only its branch point from the trunk's)."""
        return store.trunk_dir(self.spec) if self.kind == "trunk" else store.run_dir(self.spec)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "spec": self.spec.to_dict(), "snapshot_steps": list(self.snapshot_steps)}

    @staticmethod
    def from_dict(record: dict) -> Task:
        return Task(record["kind"], spec_from_dict(record["spec"]), tuple(record["snapshot_steps"]))


def _finished(status: str, options: Options) -> bool:
    return status in FINISHED and not (options.retry_failed and status == "failed")


def pending(specs: list[RunSpec], store: Store, options: Options = Options()) -> list[RunSpec]:
    return [spec for spec in specs if not _finished(store.status(spec)["status"], options)]


# A trunk held by another runner is asked for again after this long (its branches wait for it).
TAKEN_TRUNK_RETRY_S = 15.0


class Plan:
    """What this invocation still has to train, and what of it can start now. Readiness is read from
    the store each time, so branch points saved by another runner's trunk count as well. `clock`:
    seconds that only go forward, for when a taken trunk is asked for again (a test passes its own)."""

    def __init__(
        self, todo: list[RunSpec], store: Store, options: Options, clock: Callable[[], float] = time.monotonic
    ):
        self.store, self.options, self.clock = store, options, clock
        self.todo = todo  # runs and branches not finished when the sweep began
        self.trunks = {trunk.trunk_id: trunk for trunk in trunks(todo)}
        self.closed: set[str] = set()  # names finished here or found finished or held by another runner
        self.finished_elsewhere: list[str] = []  # runs another runner finished while this one waited
        self.in_flight: set[str] = set()
        self.retry_at: dict[str, float] = {}  # trunk id -> when to ask for it again

    def _has_start(self, spec: RunSpec) -> bool:
        """Whether a branch can train now: its branch point is saved, or it has a checkpoint of its own."""
        return self.store.branch_point(spec).exists() or (self.store.run_dir(spec) / "checkpoint.pt").exists()

    def _open(self, spec: RunSpec) -> bool:
        """Still to train here: not ended, not in flight, and not finished by another runner meanwhile
        (then it is closed and counted, and its trunk is not trained again for it)."""
        if spec.run_id in self.closed or spec.run_id in self.in_flight:
            return False
        if _finished(self.store.status(spec)["status"], self.options):
            self.closed.add(spec.run_id)
            self.finished_elsewhere.append(spec.run_id)
            return False
        return True

    def _trunk_failure(self, trunk_id: str) -> dict | None:
        """The trunk's status when it ended in a way that no retry in this invocation will change."""
        status = self.store.run_status(self.store.trunk_dir(self.trunks[trunk_id].branches[0]))
        if (
            trunk_id in self.closed
            or status["status"] == "diverged"
            or (status["status"] == "failed" and not self.options.retry_failed)
        ):
            return status
        return None

    def _waiting(self, trunk: Trunk) -> list[RunSpec]:
        """The trunk's branches that are still to train and have nothing to start from."""
        return [b for b in trunk.branches if self._open(b) and not self._has_start(b)]

    def ready(self) -> list[Task]:
        """Tasks that can start now, the most work first (longest-processing-time-first keeps the last
        tasks from leaving workers idle): runs, branches whose point is saved, and trunks whose
        branches wait for a point."""
        tasks = []
        for spec in self.todo:
            if self._open(spec) and (spec.train.schedule != "wsd" or self._has_start(spec)):
                tasks.append(Task("run" if spec.train.schedule != "wsd" else "branch", spec))
        now = self.clock()
        for trunk_id, trunk in self.trunks.items():
            if trunk_id in self.in_flight or self.retry_at.get(trunk_id, 0) > now or self._trunk_failure(trunk_id):
                continue
            needed = sorted({branch.branch_step for branch in self._waiting(trunk)})
            if needed:
                tasks.append(Task("trunk", trunk.spec_to(needed[-1]), tuple(needed)))
        return sorted(tasks, key=lambda task: task.flops + self._chain(task), reverse=True)

    def _chain(self, task: Task) -> int:
        """Work that can only start after `task`: a trunk's longest cooldown."""
        if task.kind != "trunk":
            return 0
        return max(Task("branch", branch).flops for branch in self.trunks[task.spec.trunk_id].branches)

    def stranded(self) -> list[tuple[RunSpec, dict]]:
        """Branches that can never start here: their trunk ended (diverged, failed, or trained here)
        without their branch point. Each with the trunk's status."""
        found = []
        for trunk_id, trunk in self.trunks.items():
            if trunk_id in self.in_flight:
                continue
            failure = self._trunk_failure(trunk_id)
            if failure:
                found += [(branch, failure) for branch in self._waiting(trunk)]
        return found

    def remaining(self) -> bool:
        """Whether anything is left to train or in flight, as far as this runner knows: what another
        runner finished is found (and closed) by `ready`."""
        return bool(self.in_flight) or any(spec.run_id not in self.closed for spec in self.todo)

    def start(self, task: Task) -> None:
        self.in_flight.add(task.name)

    def end(self, task: Task, taken: bool) -> None:
        """`task` ended; a trunk found held by another runner is asked for again later."""
        self.in_flight.discard(task.name)
        if task.kind == "trunk" and taken:
            self.retry_at[task.name] = self.clock() + TAKEN_TRUNK_RETRY_S
        else:
            self.closed.add(task.name)

    def drop_branch_points(self, spec: RunSpec) -> None:
        """Delete a trunk's saved states once every branch of it in this sweep is done."""
        trunk = self.trunks.get(spec.trunk_id)
        if trunk and all(self.store.status(branch)["status"] == "done" for branch in trunk.branches):
            for saved in self.store.trunk_dir(spec).glob("*.pt"):
                saved.unlink(missing_ok=True)
