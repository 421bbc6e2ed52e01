"""Run many `RunSpec`s against a store: skip what is finished, train the rest, record every outcome.

Two engines: `run_local` trains one run after another in this process; `run_pool` keeps several
worker processes busy, each with its share of the CPU threads (small models leave cores idle, and two
1-thread processes out-train one 2-thread process: see README, Performance). Workers write their own
runs' files; the parent only displays. A run that raises is recorded as failed and the sweep goes
on; Ctrl-C puts the runs in flight back to pending and stops, leaving every finished run as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import os
import platform
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from collections.abc import Sized
from typing import Protocol

import torch

import sweep
from sweep.engine import checkpoint, distributed
from sweep.runner import trackers as tracking
from sweep.store.claims import CLAIM, Claim, ClaimLost, is_stale, try_claim
from sweep.config import DataConfig, RunSpec, spec_from_dict
from sweep.data import Corpus, bits_per_byte, load_corpus
from sweep.errors import StoreWriteError, SweepError
from sweep.model.flops import flops_per_token, training_flops
from sweep.store import FINISHED, Store, metrics_through, run_status, spec_columns
from sweep.engine import RunResult, train
from sweep.config.trunks import Trunk, spent_flops, trunks


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


@dataclass(frozen=True)
class Options:
    retry_failed: bool = False  # train failed runs again
    keep_weights: bool = False  # keep final weights as model.pt in the run's directory


@dataclass(frozen=True)
class Task:
    """What one worker trains at a time: a whole run, a wsd trunk, or a wsd branch (`wsd.py`)."""

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
        return flops_per_token(self.spec.shape, "6n") * self.spec.train.batch_tokens * (self.spec.steps - self.start_step)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "spec": self.spec.to_dict(), "snapshot_steps": list(self.snapshot_steps)}

    @staticmethod
    def from_dict(record: dict) -> Task:
        return Task(record["kind"], spec_from_dict(record["spec"]), tuple(record["snapshot_steps"]))


def _finished(status: str, options: Options) -> bool:
    return status in FINISHED and not (options.retry_failed and status == "failed")


def pending(specs: list[RunSpec], store: Store, options: Options = Options()) -> list[RunSpec]:
    return [spec for spec in specs if not _finished(store.status(spec)["status"], options)]


def packing(todo: Sized, device: torch.device, workers: int = 0) -> tuple[int, int]:
    """(worker processes, threads each) for the runs in `todo` (only their number matters; `sweep
    bench` passes its ladder). CPU: one single-thread worker per core while there are runs for all
    of them; fewer runs share the cores out. CUDA: one worker unless `workers` says more."""
    cores = os.cpu_count() or 1
    if not workers:
        workers = 1 if device.type == "cuda" else max(1, min(cores, len(todo)))
    return workers, max(1, cores // workers)


@dataclass(frozen=True)
class Workers:
    """How a sweep is trained on this machine: `processes` of `threads` threads, and on CUDA the GPU
    each process sees."""

    processes: int
    threads: int
    gpus: tuple[str, ...] | None = None


def plan_workers(todo: Sized, device: torch.device, workers: int = 0, workers_per_gpu: int = 1,
                 visible: list[str] | None = None) -> Workers:
    """CPU: `packing`. CUDA: one worker per visible GPU (`workers_per_gpu` each), or `workers`,
    spread round-robin over the GPUs (`launch.gpus`)."""
    if device.type != "cuda":
        return Workers(*packing(todo, device, workers))
    from sweep.launch.gpus import visible_gpus, worker_gpus

    visible = visible_gpus() if visible is None else visible
    processes = min(workers or len(visible) * workers_per_gpu, max(1, len(todo)))
    if processes <= 1 or not visible:
        return Workers(1, packing(todo, device, 1)[1])
    spread = worker_gpus(visible, -(-processes // len(visible)))[:processes]
    return Workers(processes, max(1, (os.cpu_count() or 1) // processes), tuple(spread))


def execute(specs: list[RunSpec], store: Store, corpus: Corpus, data: DataConfig, device: torch.device,
            workers: Workers, reporter: Reporter, options: Options = Options()) -> SweepOutcome:
    """Train `specs` here: in this process, or on a pool of worker processes."""
    if workers.processes == 1:
        return run_local(specs, store, corpus, device, reporter, options)
    return run_pool(specs, store, data, device, workers.processes, workers.threads, reporter, options,
                    gpus=list(workers.gpus) if workers.gpus else None)


# A trunk held by another runner is asked for again after this long (its branches wait for it).
TAKEN_TRUNK_RETRY_S = 15.0


class Plan:
    """What this invocation still has to train, and what of it can start now. Readiness is read from
    the store each time, so branch points saved by another runner's trunk count as well."""

    def __init__(self, todo: list[RunSpec], store: Store, options: Options):
        self.store, self.options = store, options
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
        status = run_status(self.store.trunk_dir(self.trunks[trunk_id].branches[0]))
        if trunk_id in self.closed or status["status"] == "diverged" or (
                status["status"] == "failed" and not self.options.retry_failed):
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
        now = time.monotonic()
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
            self.retry_at[task.name] = time.monotonic() + TAKEN_TRUNK_RETRY_S
        else:
            self.closed.add(task.name)

    def drop_branch_points(self, spec: RunSpec) -> None:
        """Delete a trunk's saved states once every branch of it in this sweep is done."""
        trunk = self.trunks.get(spec.trunk_id)
        if trunk and all(self.store.status(branch)["status"] == "done" for branch in trunk.branches):
            for saved in self.store.trunk_dir(spec).glob("*.pt"):
                saved.unlink(missing_ok=True)


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
        reason = (f"its trunk {branch.trunk_id} ended ({trunk_status['status']}: {trunk_status.get('reason')}) "
                  f"before the branch point at step {branch.branch_step}")
        record = {**spec_columns(branch), "status": status, "reason": reason}
        plan.store.finish(plan.store.run_dir(branch), record)
        _finish(outcome, plan, reporter, Task("branch", branch), record)


def _resume_state(task: Task, store: Store) -> tuple[dict | None, list[dict]]:
    """The state `task` starts from and the metrics rows that stay: its checkpoint; for a branch
    without one, its branch point and the trunk's rows up to it; for a trunk, the latest of its
    checkpoint and saved branch points before the first point it still has to save. Only the task's
    own states count (`checkpoint.load`): a run's or branch's checkpoint within its steps, a branch
    point of its trunk at the step it is named for. A trunk's checkpoint may lie past every point still
    needed (a budget added or dropped since), so any step of it is its own."""
    spec = task.spec
    directory = store.trunk_dir(spec) if task.kind == "trunk" else store.run_dir(spec)
    own_steps = None if task.kind == "trunk" else range(task.start_step, spec.steps + 1)
    state = checkpoint.load(directory / "checkpoint.pt", owner=task.name, shape=spec.shape, steps=own_steps)
    if task.kind == "branch" and state is None:
        state = checkpoint.load(store.branch_point(spec), owner=spec.trunk_id, shape=spec.shape,
                                steps=range(spec.branch_step, spec.branch_step + 1))  # None: trains from step 0
        return state, metrics_through(store.trunk_dir(spec), state["step"]) if state else []
    if task.kind == "trunk":
        first_needed = task.snapshot_steps[0]
        if state is not None and state["step"] > first_needed:
            state = None
        saved = [int(step) for path in directory.glob("branch-*.pt")
                 if (step := path.stem.removeprefix("branch-")).isdecimal()]  # other names are no branch points
        latest = max((step for step in saved if step <= first_needed), default=0)
        if latest > (state["step"] if state else 0):
            state = checkpoint.load(directory / f"branch-{latest}.pt", owner=task.name, shape=spec.shape,
                                    steps=range(latest, latest + 1)) or state
    return state, metrics_through(directory, state["step"] if state else 0)


def store_write_error(err: OSError) -> StoreWriteError:
    """What a failed write to the store (a full disk, a read-only mount) stops the sweep with."""
    return StoreWriteError(f"cannot write to the store ({type(err).__name__}: {err})")


def _fenced(claim: Claim, write):
    """`write`, made only while this runner still holds `claim` (else ClaimLost, nothing written). An
    OSError from it is the store's (a full disk, a read-only mount), not the run's."""
    def guarded(*args, **kwargs):
        claim.check()
        try:
            return write(*args, **kwargs)
        except OSError as err:
            raise store_write_error(err) from err
    return guarded


def _watched(claim: Claim, progress):
    """`progress`, which first stops the run (ClaimLost) if the heartbeat found the claim taken over."""
    def watched(row: dict) -> None:
        if claim.lost.is_set():
            claim.check()
        progress(row)
    return watched


def _train_task(task: Task, store: Store, corpus: Corpus, device: torch.device, options: Options,
                started, progress, announce=None) -> dict | None:
    """Claim, train (resuming where it can) and record one task. None if another runner holds it,
    finished it meanwhile, or took it over while it trained (then nothing more is written to it).
    KeyboardInterrupt puts it back to pending and propagates, as StoreWriteError does; its checkpoint
    stays for the next attempt."""
    spec = task.spec
    directory = store.trunk_dir(spec) if task.kind == "trunk" else store.run_dir(spec)
    try:
        claim = try_claim(directory)
    except OSError as err:
        raise store_write_error(err) from err
    if claim is None:
        return None
    try:
        with claim:
            return _train_claimed(task, store, directory, claim, corpus, device, options, started, progress, announce)
    except ClaimLost:
        return None


def _train_claimed(task: Task, store: Store, directory, claim: Claim, corpus: Corpus, device: torch.device,
                   options: Options, started, progress, announce=None) -> dict | None:
    """`announce(spec, state, snapshot_steps)`, if given, hears what is about to train, just before it
    does (`launch.torchrun`: the other ranks train it too)."""
    spec = task.spec
    guard = functools.partial(_fenced, claim)
    if task.kind != "trunk" and _finished(store.status(spec)["status"], options):
        return None  # finished by another runner after this one listed it
    if task.kind == "trunk":
        needed = tuple(step for step in task.snapshot_steps if not (directory / f"branch-{step}.pt").exists())
        if not needed:
            return None  # another runner saved them after this one listed them
        task = Task("trunk", dataclasses.replace(spec, tokens=needed[-1] * spec.train.batch_tokens), needed)
        spec = task.spec
    started()
    state, kept = _resume_state(task, store)
    guard(store.set_status)(directory, "running", attempt=True)
    guard(store.start_metrics)(directory, kept)
    # Each task is its own tracker run (a trunk too), starting from the rows it keeps (`tracking`).
    trackers = tracking.Trackers(spec.train.log, tracking.TrackedRun(task.name, spec.sweep, task.kind, spec.to_dict(),
                                                                     directory), kept)
    checkpoint_path = directory / "checkpoint.pt"
    weights = None
    if options.keep_weights and task.kind != "trunk":
        weights = guard(lambda weights: checkpoint.save(directory / "model.pt", {"model": weights}, owner=task.name))
    if announce:
        announce(spec, state, task.snapshot_steps)
    try:
        log = trackers.after(guard(lambda row: store.append_metrics(directory, row)))
        result = train(spec, corpus, device, log=log,
                       progress=_watched(claim, progress), resume=state,
                       save_checkpoint=guard(lambda s: checkpoint.save(checkpoint_path, s, owner=task.name)),
                       final_weights=weights,
                       snapshot_steps=frozenset(task.snapshot_steps),
                       save_snapshot=guard(lambda s: checkpoint.save(directory / f"branch-{s['step']}.pt", s,
                                                                     owner=task.name)))
        record = result_record(spec, result, corpus, device)
        if task.kind == "trunk":
            record["trunk_id"] = spec.trunk_id
    except (KeyboardInterrupt, SystemExit, StoreWriteError) as stop:
        # Ctrl-C, SIGTERM, a batch job's time limit (submitit exits the job), a store that cannot be written.
        with contextlib.suppress(ClaimLost, StoreWriteError):  # on a full disk even this may not be written
            reason = str(stop) if isinstance(stop, StoreWriteError) else "interrupted"
            guard(store.set_status)(directory, "pending", reason=reason)
        trackers.close()
        raise
    except ClaimLost:
        trackers.close()
        raise
    except Exception as err:  # noqa: BLE001 - any other error in one run is that run's failure
        record = failure_record(spec, err, corpus, device)
    trackers.finish(record)
    guard(store.finish)(directory, record)
    guard(checkpoint_path.unlink)(missing_ok=True)
    return record


def run_local(specs: list[RunSpec], store: Store, corpus: Corpus, device: torch.device,
              reporter: Reporter, options: Options = Options(), announcer=None) -> SweepOutcome:
    """Train every unfinished spec in this process, one task after another (`announcer`: the other
    ranks of a torchrun job train each with it, `launch.torchrun`)."""
    plan, outcome = _begin(specs, store, options, reporter)
    index = 0
    try:
        while plan.remaining():
            _strand(outcome, plan, reporter)
            ready = plan.ready()
            if not ready:
                if plan.remaining():
                    time.sleep(1.0)  # branches wait for a trunk that another runner holds
                continue
            task = ready[0]
            plan.start(task)
            record = _train_task(task, store, corpus, device, options,
                                 lambda t=task, i=index: reporter.run_started(t, i, i + len(plan.ready()) + 1),
                                 lambda row, t=task: reporter.run_progress(t, row),
                                 announcer.announce if announcer else None)
            if announcer:
                announcer.ended(trained=record is not None)
            index += 1
            _finish(outcome, plan, reporter, task, record)
    except (KeyboardInterrupt, StoreWriteError, OSError) as stop:
        _stopped(outcome, stop)
    outcome.taken += plan.finished_elsewhere
    return outcome


def _stopped(outcome: SweepOutcome, stop: BaseException) -> None:
    """Record why a sweep stopped early: Ctrl-C, or a store that cannot be written."""
    if isinstance(stop, KeyboardInterrupt):
        outcome.interrupted = True
    elif isinstance(stop, StoreWriteError):
        outcome.store_error = str(stop)
    else:
        outcome.store_error = str(store_write_error(stop))


def _next_task(tasks, parent_gone):
    """The next task dict, or None when the queue says stop or the parent process is gone (a killed
    runner must not leave workers training: the next runner takes their runs over)."""
    while not parent_gone.is_set():
        try:
            return tasks.get(timeout=0.5)
        except queue.Empty:
            pass
    return None


def _watch_parent(parent: int, gone: threading.Event) -> None:
    """Set `gone` once the process that started this one has exited (this one is then re-parented)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    gone.set()


def _worker(store_root: str, data: dict, device_name: str, threads: int, options: Options, tasks, events,
            gpu: str | None = None) -> None:
    """A worker process: load the corpus once, then train tasks from `tasks` until a None, or until
    its parent is gone: then the run in flight stops at its next logging step and goes back to pending.
    `gpu`: the one GPU it sees (CUDA_VISIBLE_DEVICES, read by CUDA when torch first touches it)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    parent_gone = threading.Event()
    threading.Thread(target=_watch_parent, args=(os.getppid(), parent_gone), daemon=True).start()

    def progress(name: str, row: dict) -> None:
        if parent_gone.is_set():
            raise KeyboardInterrupt  # as Ctrl-C would: _train_task puts the run back to pending
        events.put(("progress", name, row))

    try:
        torch.set_num_threads(threads)
        corpus = load_corpus(DataConfig(**data), store_root)
        device, store = torch.device(device_name), Store(store_root)
        while (payload := _next_task(tasks, parent_gone)) is not None:
            task = Task.from_dict(payload)
            record = _train_task(task, store, corpus, device, options,
                                 lambda name=task.name: events.put(("started", name, os.getpid())),
                                 functools.partial(progress, task.name))
            events.put(("ended", task.name, record))
    except KeyboardInterrupt:
        pass  # the task in flight was put back to pending by _train_task
    except StoreWriteError as err:
        events.put(("store_error", "", str(err)))
    finally:
        if parent_gone.is_set():
            events.cancel_join_thread()  # nobody reads the pipe any more: exit without flushing it


def run_pool(specs: list[RunSpec], store: Store, data: DataConfig, device: torch.device, workers: int,
             threads: int, reporter: Reporter, options: Options = Options(),
             gpus: list[str] | None = None) -> SweepOutcome:
    """Train every unfinished spec on `workers` processes of `threads` threads (`gpus`: the GPU each
    worker sees, `launch.gpus.worker_gpus`). The parent hands a task to a worker only when one is idle,
    so what starts next is always the most work that can start: the largest runs first, and a branch
    as soon as its trunk has saved its branch point."""
    plan, outcome = _begin(specs, store, options, reporter)
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch's thread pools exist
    tasks, events = context.Queue(), context.Queue()
    count = min(workers, max(1, len(plan.todo)))
    gpus = gpus or [None] * count
    processes = [context.Process(target=_worker, args=(str(store.root), dataclasses.asdict(data), device.type,
                                                       threads, options, tasks, events, gpus[index]), daemon=True)
                 for index in range(count)]
    for process in processes:
        process.start()
    by_name: dict[str, Task] = {}
    in_flight: dict[int, str] = {}  # worker pid -> task name
    idle, started = len(processes), 0

    def dispatch() -> None:
        nonlocal idle
        _strand(outcome, plan, reporter)
        while idle:
            ready = plan.ready()
            if not ready:
                return
            plan.start(ready[0])
            by_name[ready[0].name] = ready[0]
            tasks.put(ready[0].to_dict())
            idle -= 1

    try:
        dispatch()
        while plan.remaining() and any(p.is_alive() for p in processes):
            try:
                kind, name, payload = events.get(timeout=0.5)
            except queue.Empty:
                idle += _reap_dead_workers(processes, in_flight, by_name, plan, store, outcome, reporter)
                dispatch()
                continue
            if kind == "started":
                in_flight[payload] = name
                reporter.run_started(by_name[name], started, started + idle + len(plan.ready()) + 1)
                started += 1
            elif kind == "progress":
                reporter.run_progress(by_name[name], payload)
            elif kind == "store_error":
                raise StoreWriteError(payload)
            else:
                in_flight = {pid: task for pid, task in in_flight.items() if task != name}
                _finish(outcome, plan, reporter, by_name[name], payload)
                idle += 1
                dispatch()
        _reap_dead_workers(processes, in_flight, by_name, plan, store, outcome, reporter)
        for _ in processes:
            tasks.put(None)
        for process in processes:
            process.join(timeout=30)
    except (KeyboardInterrupt, StoreWriteError, OSError) as stop:
        # Stop every worker as Ctrl-C does (their runs go back to pending): interrupted, or the store
        # cannot be written, which the other workers would find too.
        _stopped(outcome, stop)
        for process in processes:  # a terminal's Ctrl-C reached them too; SIGTERM to us did not
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join(timeout=30)
    outcome.taken += plan.finished_elsewhere
    return outcome


def _reap_dead_workers(processes, in_flight, by_name, plan, store, outcome, reporter) -> int:
    """A worker that died (killed, out of memory) fails the task it was training; the sweep goes on
    with the others. Returns how many workers were freed that way."""
    freed = 0
    for process in processes:
        name = in_flight.get(process.pid)
        if name is not None and not process.is_alive() and process.exitcode not in (0, None):
            task = by_name[name]
            directory = store.trunk_dir(task.spec) if task.kind == "trunk" else store.run_dir(task.spec)
            record = {**spec_columns(task.spec), "status": "failed",
                      "reason": f"worker process died with exit code {process.exitcode}"}
            store.finish(directory, record)
            del in_flight[process.pid]
            _finish(outcome, plan, reporter, task, record)
            freed += 1
    return freed


def environment(corpus: Corpus, device: torch.device) -> dict:
    """Where and with what a run was trained."""
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "device": device.type,
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "processes": distributed.world_size(),  # the DDP processes that trained it (torchrun)
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "sweep": sweep.__version__},
        "corpus": {"source": corpus.source, "sha256": corpus.sha256, "train_tokens": len(corpus.train),
                   "val_tokens": len(corpus.val), "train_documents": corpus.train_documents,
                   "val_documents": corpus.val_documents, "malformed_records": corpus.malformed,
                   "tokenizer": corpus.tokenizer},
        "finished_at": time.time(),
    }


def result_record(spec: RunSpec, result: RunResult, corpus: Corpus, device: torch.device) -> dict:
    """The result.json of a run that ended by itself (done or diverged)."""
    fields = dataclasses.asdict(result)
    loss = fields.pop("loss")
    return {
        **spec_columns(spec),
        **fields,
        "tokens_target": spec.tokens,
        "tokens": result.tokens,
        **training_flops(spec.shape, result.tokens),
        "loss": loss,
        "bpb": bits_per_byte(loss, corpus, spec.shape.seq_len, spec.data.val_tokens) if loss is not None else None,
        "epochs": result.tokens / len(corpus.train),
        # Byte tokens: a token is a byte. Other tokenizers' training bytes per token are not tracked.
        "prequential_bpb": (result.prequential_bits / result.tokens
                            if result.prequential_bits is not None and corpus.tokenizer["kind"] == "bytes" else None),
        **environment(corpus, device),
    }


def failure_record(spec: RunSpec, err: BaseException, corpus: Corpus, device: torch.device) -> dict:
    return {
        **spec_columns(spec),
        "status": "failed",
        "reason": f"{type(err).__name__}: {err}",
        "traceback": "".join(traceback.format_exception(err)),
        **environment(corpus, device),
    }

