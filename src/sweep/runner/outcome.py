"""What a sweep reports and what comes of it: the `Reporter` that hears each task start, progress
and end; the steps both engines share to begin a sweep, count each ended task and record why it
stopped; and where every run stands in the store afterwards (`sweep_state`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sweep.config import RunSpec
from sweep.config.trunks import spent_flops
from sweep.errors import StoreWriteError, SweepError
from sweep.runner import trackers as tracking
from sweep.runner.plan import Options, Plan, Task, pending
from sweep.runner.task import store_write_error
from sweep.store import FINISHED, Store, spec_columns
from sweep.store.claims import CLAIM, is_stale


class Reporter(Protocol):
    def sweep_started(self, specs: list[RunSpec], todo: list[RunSpec], work_flops: float) -> None: ...
    def run_started(self, task: Task, index: int, count: int) -> None: ...
    def run_progress(self, task: Task, row: dict) -> None: ...
    def run_finished(self, task: Task, record: dict) -> None: ...


@dataclass
class SweepOutcome:
    total: int
    skipped: int = 0  # finished before this invocation
    done: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)  # claimed or finished by another runner meanwhile
    failed: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    interrupted: bool = False
    store_error: str | None = None  # the store could not be written: the sweep stopped

    @property
    def ok(self) -> bool:
        return not (self.failed or self.diverged or self.interrupted or self.store_error)


@dataclass
class SweepState:
    """Where every run of a sweep stands in the store once a runner is through with it."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # failed or diverged
    held: list[str] = field(default_factory=list)  # claimed by a live runner elsewhere
    left: list[str] = field(default_factory=list)  # neither: pending, or running with a stale claim


def sweep_state(specs: list[RunSpec], store: Store) -> SweepState:
    state = SweepState()
    for spec in specs:
        status = store.status(spec)["status"]
        claim = store.run_dir(spec) / CLAIM
        if status in FINISHED:
            (state.done if status == "done" else state.failed).append(spec.run_id)
        elif claim.exists() and not is_stale(claim):
            state.held.append(spec.run_id)
        else:
            state.left.append(spec.run_id)
    return state


def register(specs: list[RunSpec], store: Store) -> None:
    """Every spec's directory in the store, pending unless it exists (`Store.register`)."""
    try:
        for spec in specs:
            store.register(spec)
    except OSError as err:  # nothing has trained yet: the store itself is the problem
        raise SweepError(f"--store: cannot write to {store.root} ({type(err).__name__}: {err})") from err


def _begin(specs: list[RunSpec], store: Store, options: Options, reporter: Reporter) -> tuple[Plan, SweepOutcome]:
    """Register every spec in the store, list the unfinished ones and announce the sweep."""
    tracking.require(tuple(dict.fromkeys(name for spec in specs for name in spec.train.log)))  # before any write
    register(specs, store)
    todo = pending(specs, store, options)
    reporter.sweep_started(specs, todo, spent_flops(todo)[0])
    return Plan(todo, store, options), SweepOutcome(total=len(specs), skipped=len(specs) - len(todo))


def _finish(outcome: SweepOutcome, plan: Plan, reporter: Reporter, task: Task, record: dict | None) -> None:
    """Count a task that ended (a run or branch done, failed or diverged; a trunk) and show it."""
    plan.end(task, taken=record is None)
    if record is None:
        if task.kind != "trunk":
            outcome.taken.append(task.name)
        return
    reporter.run_finished(task, record)
    if task.kind == "trunk":
        return
    {"done": outcome.done, "failed": outcome.failed, "diverged": outcome.diverged}[record["status"]].append(task.name)
    if record["status"] == "done" and task.kind == "branch":
        plan.drop_branch_points(task.spec)


def _strand(outcome: SweepOutcome, plan: Plan, reporter: Reporter) -> None:
    """Record every branch whose trunk ended without its branch point, with the trunk's reason."""
    for branch, trunk_status in plan.stranded():
        status = "diverged" if trunk_status["status"] == "diverged" else "failed"
        reason = (
            f"its trunk {branch.trunk_id} ended ({trunk_status['status']}: {trunk_status.get('reason')}) "
            f"before the branch point at step {branch.branch_step}"
        )
        record = {**spec_columns(branch), "status": status, "reason": reason}
        task = Task("branch", branch)
        plan.store.finish(task.directory(plan.store), record)
        _finish(outcome, plan, reporter, task, record)


def _stopped(outcome: SweepOutcome, stop: BaseException) -> None:
    """Record why a sweep stopped early: Ctrl-C, or a store that cannot be written."""
    if isinstance(stop, KeyboardInterrupt):
        outcome.interrupted = True
    elif isinstance(stop, StoreWriteError):
        outcome.store_error = str(stop)
    else:
        outcome.store_error = str(store_write_error(stop))
