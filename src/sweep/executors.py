"""Run many `RunSpec`s against a store: skip what is finished, train the rest, record every outcome.

Two engines: `run_local` trains one run after another in this process; `run_pool` keeps several
worker processes busy, each with its share of the CPU threads (small models leave cores idle, and two
1-thread processes out-train one 2-thread process: see README, Performance). Workers write their own
runs' files; the parent only displays. A run that raises is recorded as failed and the sweep goes
on; Ctrl-C puts the runs in flight back to pending and stops, leaving every finished run as it was.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import platform
import queue
import signal
import time
import traceback
from dataclasses import dataclass, field
from collections.abc import Sized
from typing import Protocol

import torch

import sweep
from sweep import checkpoint
from sweep.claims import try_claim
from sweep.config import DataConfig, RunSpec, spec_from_dict
from sweep.data import Corpus, load_corpus
from sweep.flops import training_flops
from sweep.store import FINISHED, Store, spec_columns
from sweep.train import RunResult, train


class Reporter(Protocol):
    def sweep_started(self, specs: list[RunSpec], todo: list[RunSpec]) -> None: ...
    def run_started(self, spec: RunSpec, index: int, count: int) -> None: ...
    def run_progress(self, spec: RunSpec, row: dict) -> None: ...
    def run_finished(self, spec: RunSpec, record: dict) -> None: ...


@dataclass
class SweepOutcome:
    total: int
    skipped: int = 0  # finished before this invocation
    done: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)  # claimed or finished by another runner meanwhile
    failed: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not (self.failed or self.diverged or self.interrupted)


@dataclass(frozen=True)
class Options:
    retry_failed: bool = False  # train failed runs again
    keep_weights: bool = False  # keep final weights as model.pt in the run's directory


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


def _begin(specs: list[RunSpec], store: Store, options: Options, reporter: Reporter) -> tuple[list[RunSpec], SweepOutcome]:
    """Register every spec in the store, list the unfinished ones and announce the sweep."""
    for spec in specs:
        store.register(spec)
    todo = pending(specs, store, options)
    reporter.sweep_started(specs, todo)
    return todo, SweepOutcome(total=len(specs), skipped=len(specs) - len(todo))


def _finish(outcome: SweepOutcome, reporter: Reporter, spec: RunSpec, record: dict) -> None:
    """Count a run that ended (done, failed or diverged) and show it."""
    {"done": outcome.done, "failed": outcome.failed, "diverged": outcome.diverged}[record["status"]].append(spec.run_id)
    reporter.run_finished(spec, record)


def _train_one(spec: RunSpec, store: Store, corpus: Corpus, device: torch.device, options: Options,
               started, progress) -> dict | None:
    """Claim, train (resuming from a checkpoint if there is one) and record one run. None if another
    runner holds it or finished it meanwhile. KeyboardInterrupt puts it back to pending and propagates;
    its checkpoint stays for the next attempt."""
    run_dir = store.run_dir(spec)
    claim = try_claim(run_dir)
    if claim is None:
        return None
    with claim:
        if _finished(store.status(spec)["status"], options):
            return None  # finished by another runner after this one listed it
        started()
        checkpoint_path = run_dir / "checkpoint.pt"
        state = checkpoint.load(checkpoint_path)
        store.set_status(spec, "running", attempt=True)
        store.start_metrics(spec, keep_through_step=state["step"] if state else 0)
        weights = (lambda weights: checkpoint.save(run_dir / "model.pt", {"model": weights})) if options.keep_weights else None
        try:
            result = train(spec, corpus, device, log=lambda row: store.append_metrics(spec, row), progress=progress,
                           resume=state, save_checkpoint=lambda s: checkpoint.save(checkpoint_path, s),
                           final_weights=weights)
            record = result_record(spec, result, corpus, device)
        except KeyboardInterrupt:
            store.set_status(spec, "pending", reason="interrupted")
            raise
        except Exception as err:  # noqa: BLE001 - any error in one run is that run's failure
            record = failure_record(spec, err, corpus, device)
        store.finish(spec, record)
        checkpoint_path.unlink(missing_ok=True)
        return record


def run_local(specs: list[RunSpec], store: Store, corpus: Corpus, device: torch.device,
              reporter: Reporter, options: Options = Options()) -> SweepOutcome:
    """Train every unfinished spec in this process, one after another."""
    todo, outcome = _begin(specs, store, options, reporter)
    for index, spec in enumerate(todo):
        try:
            record = _train_one(spec, store, corpus, device, options,
                                lambda s=spec, i=index: reporter.run_started(s, i, len(todo)),
                                lambda row, s=spec: reporter.run_progress(s, row))
        except KeyboardInterrupt:
            outcome.interrupted = True
            break
        if record is None:
            outcome.taken.append(spec.run_id)
            continue
        _finish(outcome, reporter, spec, record)
    return outcome


def _next_task(tasks, parent: int):
    """The next spec dict, or None when the queue says stop or the parent process is gone (killed
    runners must not leave workers waiting forever; the run in flight was finished and recorded)."""
    while True:
        try:
            return tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return None


def _worker(store_root: str, data: dict, device_name: str, threads: int, options: Options, tasks, events) -> None:
    """A worker process: load the corpus once, then train specs from `tasks` until a None."""
    parent = os.getppid()
    try:
        torch.set_num_threads(threads)
        corpus = load_corpus(DataConfig(**data))
        device, store = torch.device(device_name), Store(store_root)
        while (task := _next_task(tasks, parent)) is not None:
            spec = spec_from_dict(task)
            record = _train_one(spec, store, corpus, device, options,
                                lambda run_id=spec.run_id: events.put(("started", run_id, os.getpid())),
                                lambda row, run_id=spec.run_id: events.put(("progress", run_id, row)))
            events.put(("taken" if record is None else "finished", spec.run_id, record))
    except KeyboardInterrupt:
        pass  # the run in flight was put back to pending by _train_one


def run_pool(specs: list[RunSpec], store: Store, data: DataConfig, device: torch.device, workers: int,
             threads: int, reporter: Reporter, options: Options = Options()) -> SweepOutcome:
    """Train every unfinished spec on `workers` processes of `threads` threads, largest first
    (longest-processing-time-first keeps the last runs from leaving workers idle)."""
    todo, outcome = _begin(specs, store, options, reporter)
    todo = sorted(todo, key=lambda spec: spec.flops, reverse=True)
    by_id = {spec.run_id: spec for spec in todo}
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch's thread pools exist
    tasks, events = context.Queue(), context.Queue()
    for spec in todo:
        tasks.put(spec.to_dict())
    processes = [context.Process(target=_worker, args=(str(store.root), dataclasses.asdict(data), device.type,
                                                       threads, options, tasks, events), daemon=True)
                 for _ in range(min(workers, len(todo)))]
    for _ in processes:
        tasks.put(None)
    for process in processes:
        process.start()
    in_flight: dict[int, str] = {}  # worker pid -> run id
    started = 0
    try:
        while any(p.is_alive() for p in processes) or not events.empty():
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                _reap_dead_workers(processes, in_flight, by_id, store, outcome, reporter)
                continue
            kind, run_id, payload = event
            if kind == "started":
                in_flight[payload] = run_id
                reporter.run_started(by_id[run_id], started, len(todo))
                started += 1
            elif kind == "progress":
                reporter.run_progress(by_id[run_id], payload)
            elif kind == "taken":
                outcome.taken.append(run_id)
            else:
                in_flight = {pid: rid for pid, rid in in_flight.items() if rid != run_id}
                _finish(outcome, reporter, by_id[run_id], payload)
        _reap_dead_workers(processes, in_flight, by_id, store, outcome, reporter)
    except KeyboardInterrupt:
        outcome.interrupted = True
        for process in processes:  # a terminal's Ctrl-C reached them too; SIGTERM to us did not
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join(timeout=30)
    return outcome


def _reap_dead_workers(processes, in_flight, by_id, store, outcome, reporter) -> None:
    """A worker that died (killed, out of memory) fails the run it was training; the sweep goes on."""
    for process in processes:
        run_id = in_flight.get(process.pid)
        if run_id is not None and not process.is_alive() and process.exitcode not in (0, None):
            spec = by_id[run_id]
            record = {**spec_columns(spec), "status": "failed",
                      "reason": f"worker process died with exit code {process.exitcode}"}
            store.finish(spec, record)
            del in_flight[process.pid]
            _finish(outcome, reporter, spec, record)


def environment(corpus: Corpus, device: torch.device) -> dict:
    """Where and with what a run was trained."""
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "device": device.type,
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "sweep": sweep.__version__},
        "corpus": {"source": corpus.source, "sha256": corpus.sha256, "train_tokens": len(corpus.train),
                   "val_tokens": len(corpus.val), "train_documents": corpus.train_documents,
                   "val_documents": corpus.val_documents},
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
        "bpb": loss / math.log(2) if loss is not None else None,
        "epochs": result.tokens / len(corpus.train),
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

