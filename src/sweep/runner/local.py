"""The engine that trains in this process, one task after another, and `execute`, which picks it or
the pool (`runner.pool`) for a sweep."""

from __future__ import annotations

import time

import torch

from sweep.config import DataConfig, RunSpec
from sweep.data import Corpus
from sweep.errors import StoreWriteError
from sweep.runner.outcome import Reporter, SweepOutcome, _begin, _finish, _stopped, _strand
from sweep.runner.packing import Workers
from sweep.runner.plan import Options
from sweep.runner.pool import run_pool
from sweep.runner.task import _train_task
from sweep.store import Store


def execute(
    specs: list[RunSpec],
    store: Store,
    corpus: Corpus,
    data: DataConfig,
    device: torch.device,
    workers: Workers,
    reporter: Reporter,
    options: Options = Options(),
) -> SweepOutcome:
    """Train `specs` here: in this process, or on a pool of worker processes."""
    if workers.processes == 1:
        return run_local(specs, store, corpus, device, reporter, options)
    return run_pool(
        specs,
        store,
        data,
        device,
        workers.processes,
        workers.threads,
        reporter,
        options,
        gpus=list(workers.gpus) if workers.gpus else None,
    )


def run_local(
    specs: list[RunSpec],
    store: Store,
    corpus: Corpus,
    device: torch.device,
    reporter: Reporter,
    options: Options = Options(),
    announcer=None,
) -> SweepOutcome:
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
            record = _train_task(
                task,
                store,
                corpus,
                device,
                options,
                lambda t=task, i=index: reporter.run_started(t, i, i + len(plan.ready()) + 1),
                lambda row, t=task: reporter.run_progress(t, row),
                announcer.announce if announcer else None,
            )
            if announcer:
                announcer.ended(trained=record is not None)
            index += 1
            _finish(outcome, plan, reporter, task, record)
    except (KeyboardInterrupt, StoreWriteError, OSError) as stop:
        _stopped(outcome, stop)
    outcome.taken += plan.finished_elsewhere
    return outcome
