"""`sweep worker STORE`: a pull-based worker. It reads the runs registered in the store (by `sweep
run --submit-only`, or by any `sweep run`), claims the unfinished ones it can and trains them until
none is left for it, then exits. Any number may run, on any hosts that share the store's filesystem;
one that is killed leaves its run to the next worker that finds the claim stale."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

from sweep.config import DataConfig, RunSpec
from sweep.errors import SweepError
from sweep.store import store_specs


def by_corpus(specs: list[RunSpec]) -> dict[DataConfig, list[RunSpec]]:
    """The specs grouped by the data they train on: a worker loads each corpus once."""
    groups: dict[DataConfig, list[RunSpec]] = defaultdict(list)
    for spec in specs:
        groups[spec.data].append(spec)
    return dict(groups)


def check_corpus(specs: list[RunSpec], sha256: str) -> None:
    """Refuse to train runs registered against other data than what their corpus path now holds."""
    registered = {spec.corpus_sha256 for spec in specs if spec.corpus_sha256}
    if registered and registered != {sha256}:
        raise SweepError(
            f"data.corpus: {specs[0].data.corpus} has changed since its runs were registered "
            f"(sha256 {sha256[:12]}..., registered {', '.join(s[:12] + '...' for s in sorted(registered))})"
        )


def work(
    store_root: Path,
    sweep: str | None,
    device_name: str,
    reporter,
    options=None,
    workers: int = 0,
    workers_per_gpu: int = 1,
    threads: int = 0,
):
    """Train what is left of the store's registered runs on this machine (`runner.execute`: one
    process, a CPU pool, or a worker per GPU), one corpus after another. The SweepOutcome of all."""
    import torch

    from sweep.data import load_corpus
    from sweep.engine import resolve_device, setup_process
    from sweep.runner import Options, SweepOutcome, execute, pending, plan_workers
    from sweep.store import Store

    options = options or Options()
    if device_name == "cuda" and not torch.cuda.is_available():
        raise SweepError("--device cuda: torch sees no CUDA device on this machine")
    specs = store_specs(store_root, sweep)
    if not specs:
        raise SweepError(
            f"{store_root}: no runs are registered there; register a sweep with "
            "sweep run CONFIG --store STORE --submit-only"
        )
    device, store = resolve_device(device_name), Store(store_root)
    total = SweepOutcome(total=len(specs))
    for data, group in by_corpus(specs).items():
        todo = pending(group, store, options)
        if not todo:
            total.skipped += len(group)
            continue
        corpus = load_corpus(data, store.root)
        check_corpus(group, corpus.sha256)
        plan = plan_workers(todo, device, workers, workers_per_gpu)
        # A registered run's train.threads holds in every process that trains it, as in `sweep run`.
        plan = dataclasses.replace(plan, threads=threads or group[0].train.threads or plan.threads)
        setup_process(device, plan.threads)
        outcome = execute(group, store, corpus, data, device, plan, reporter, options)
        total.skipped += outcome.skipped
        for name in ("done", "taken", "failed", "diverged"):
            getattr(total, name).extend(getattr(outcome, name))
        total.interrupted, total.store_error = outcome.interrupted, outcome.store_error
        if not outcome.ok and (outcome.interrupted or outcome.store_error):
            break
    return total
