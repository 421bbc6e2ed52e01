"""The engine that keeps several worker processes busy, each with its share of the CPU threads (small
models leave cores idle, and two 1-thread processes out-train one 2-thread process: see README,
Performance). Workers write their own tasks' files; the parent only schedules and displays."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import signal
import threading
import time

import torch

from sweep.config import DataConfig, RunSpec
from sweep.data import load_corpus
from sweep.engine import setup_process
from sweep.errors import StoreWriteError
from sweep.runner.outcome import Reporter, SweepOutcome, _begin, _finish, _stopped, _strand
from sweep.runner.plan import Options, Task
from sweep.runner.task import _train_task
from sweep.store import Store, spec_columns


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
    """Once the process that started this one has exited (this one is then re-parented), set `gone`
    and interrupt the main thread as Ctrl-C would: a run in flight stops within the step it is in,
    however far its next logging step is (for a large model on a GPU, minutes), and goes back to
    pending with its last checkpoint."""
    while os.getppid() == parent:
        time.sleep(0.5)
    gone.set()
    os.kill(os.getpid(), signal.SIGINT)


def _worker(
    store_root: str, data: dict, device_name: str, threads: int, options: Options, tasks, events, gpu: str | None = None
) -> None:
    """A worker process: load the corpus once, then train tasks from `tasks` until a None, or until
    its parent is gone (`_watch_parent`): then the run in flight goes back to pending at once.
    `gpu`: the one GPU it sees (CUDA_VISIBLE_DEVICES, read by CUDA when torch first touches it)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    parent_gone = threading.Event()
    try:  # from here on, the watcher's interrupt lands in the handler below
        threading.Thread(target=_watch_parent, args=(os.getppid(), parent_gone), daemon=True).start()
        setup_process(torch.device(device_name), threads)
        corpus = load_corpus(DataConfig(**data), store_root)
        device, store = torch.device(device_name), Store(store_root)
        while (payload := _next_task(tasks, parent_gone)) is not None:
            task = Task.from_dict(payload)
            record = _train_task(
                task,
                store,
                corpus,
                device,
                options,
                lambda name=task.name: events.put(("started", name, os.getpid())),
                lambda row, name=task.name: events.put(("progress", name, row)),
            )
            events.put(("ended", task.name, record))
    except KeyboardInterrupt:
        pass  # the task in flight was put back to pending by _train_task
    except StoreWriteError as err:
        events.put(("store_error", "", str(err)))
    finally:
        if parent_gone.is_set():
            events.cancel_join_thread()  # nobody reads the pipe any more: exit without flushing it


def run_pool(
    specs: list[RunSpec],
    store: Store,
    data: DataConfig,
    device: torch.device,
    workers: int,
    threads: int,
    reporter: Reporter,
    options: Options = Options(),
    gpus: list[str] | None = None,
) -> SweepOutcome:
    """Train every unfinished spec on `workers` processes of `threads` threads (`gpus`: the GPU each
    worker sees, `packing.worker_gpus`). The parent hands a task to a worker only when one is idle,
    so what starts next is always the most work that can start: the largest runs first, and a branch
    as soon as its trunk has saved its branch point."""
    plan, outcome = _begin(specs, store, options, reporter)
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch's thread pools exist
    tasks, events = context.Queue(), context.Queue()
    count = min(workers, max(1, len(plan.todo)))
    gpus = gpus or [None] * count
    processes = [
        context.Process(
            target=_worker,
            args=(str(store.root), dataclasses.asdict(data), device.type, threads, options, tasks, events, gpus[index]),
            daemon=True,
        )
        for index in range(count)
    ]
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
        # Interrupted, or the store cannot be written, which the other workers would find too.
        _stopped(outcome, stop)
        _stop_workers(processes)
    except BaseException:
        _stop_workers(processes)  # a bug here (the display, say) must not leave the runs in flight claimed
        raise
    outcome.taken += plan.finished_elsewhere
    return outcome


def _stop_workers(processes) -> None:
    """Stop every worker as Ctrl-C does, their runs in flight back to pending, and wait for them (a
    terminal's Ctrl-C reached them too; SIGTERM to us, or an exception here, did not)."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    for process in processes:
        process.join(timeout=30)


def _reap_dead_workers(processes, in_flight, by_name, plan, store, outcome, reporter) -> int:
    """A worker that died (killed, out of memory) fails the task it was training; the sweep goes on
    with the others. Returns how many workers were freed that way."""
    freed = 0
    for process in processes:
        name = in_flight.get(process.pid)
        if name is not None and not process.is_alive() and process.exitcode not in (0, None):
            task = by_name[name]
            record = {
                **spec_columns(task.spec),
                "status": "failed",
                "reason": f"worker process died with exit code {process.exitcode}",
            }
            store.finish(task.directory(store), record)
            del in_flight[process.pid]
            _finish(outcome, plan, reporter, task, record)
            freed += 1
    return freed
