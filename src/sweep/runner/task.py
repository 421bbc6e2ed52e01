"""One task trained under a fenced claim: claim it, resume from what it saved, train, record the
outcome. Every write to the store is made only while the claim is still held, so a runner that lost
its claim to another writes nothing more to that task."""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import torch

from sweep.data import Corpus
from sweep.engine import TrainState, checkpoint, train
from sweep.errors import StoreWriteError
from sweep.runner import trackers as tracking
from sweep.runner.plan import Options, Task, _finished
from sweep.runner.records import failure_record, result_record
from sweep.store import Store, metrics_through
from sweep.store.claims import Claim, ClaimLost, try_claim


def _resume_state(task: Task, store: Store) -> tuple[TrainState | None, list[dict]]:
    """The state `task` starts from and the metrics rows that stay: its checkpoint; for a branch
    without one, its branch point and the trunk's rows up to it; for a trunk, the latest of its
    checkpoint and saved branch points before the first point it still has to save. Only the task's
    own states count (`checkpoint.load`): a run's or branch's checkpoint within its steps, a branch
    point of its trunk at the step it is named for. A trunk's checkpoint may lie past every point still
    needed (a budget added or dropped since), so any step of it is its own."""
    spec = task.spec
    directory = task.directory(store)
    own_steps = None if task.kind == "trunk" else range(task.start_step, spec.steps + 1)
    state = checkpoint.load(directory / "checkpoint.pt", owner=task.name, shape=spec.shape, steps=own_steps)
    if task.kind == "branch" and state is None:
        state = checkpoint.load(
            store.branch_point(spec),
            owner=spec.trunk_id,
            shape=spec.shape,
            steps=range(spec.branch_step, spec.branch_step + 1),
        )  # None: trains from step 0
        return state, metrics_through(store.trunk_dir(spec), state.step) if state else []
    if task.kind == "trunk":
        first_needed = task.snapshot_steps[0]
        if state is not None and state.step > first_needed:
            state = None
        saved = [
            int(step)
            for path in directory.glob("branch-*.pt")
            if (step := path.stem.removeprefix("branch-")).isdecimal()
        ]  # other names are no branch points
        latest = max((step for step in saved if step <= first_needed), default=0)
        if latest > (state.step if state else 0):
            state = (
                checkpoint.load(
                    directory / f"branch-{latest}.pt",
                    owner=task.name,
                    shape=spec.shape,
                    steps=range(latest, latest + 1),
                )
                or state
            )
    return state, metrics_through(directory, state.step if state else 0)


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


def _train_task(
    task: Task, store: Store, corpus: Corpus, device: torch.device, options: Options, started, progress, announce=None
) -> dict | None:
    """Claim, train (resuming where it can) and record one task. None if another runner holds it,
    finished it meanwhile, or took it over while it trained (then nothing more is written to it).
    KeyboardInterrupt puts it back to pending and propagates, as StoreWriteError does; its checkpoint
    stays for the next attempt."""
    directory = task.directory(store)
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


def _train_claimed(
    task: Task,
    store: Store,
    directory,
    claim: Claim,
    corpus: Corpus,
    device: torch.device,
    options: Options,
    started,
    progress,
    announce=None,
) -> dict | None:
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
    # Each task is its own tracker run (a trunk too), starting from the rows it keeps (`runner.trackers`).
    trackers = tracking.Trackers(
        spec.train.log, tracking.TrackedRun(task.name, spec.sweep, task.kind, spec.to_dict(), directory), kept
    )
    checkpoint_path = directory / "checkpoint.pt"
    weights = None
    if options.keep_weights and task.kind != "trunk":
        weights = guard(lambda weights: checkpoint.save_weights(directory / "model.pt", weights, owner=task.name))
    if announce:
        announce(spec, state, task.snapshot_steps)
    try:
        log = trackers.after(guard(lambda row: store.append_metrics(directory, row)))
        result = train(
            spec,
            corpus,
            device,
            log=log,
            progress=_watched(claim, progress),
            resume=state,
            save_checkpoint=guard(lambda s: checkpoint.save(checkpoint_path, s, owner=task.name)),
            final_weights=weights,
            snapshot_steps=frozenset(task.snapshot_steps),
            save_snapshot=guard(lambda s: checkpoint.save(directory / f"branch-{s.step}.pt", s, owner=task.name)),
        )
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
