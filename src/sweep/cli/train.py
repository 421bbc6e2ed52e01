"""`sweep run` and `sweep worker`: the commands that train.

`run` reads the config and its overrides, then `_run` takes it step by step: check what can be
checked before anything is written, print the notes about the grid, then either register the runs
for workers (--submit-only, --executor), print the plan with estimated times (--dry-run), or train.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path
from typing import List, Optional

import typer

from sweep.cli.app import Device, choice, console, errors, guarded
from sweep.errors import SweepError

# Where `sweep run` trains: a CLI-only choice, the launchers in `sweep.launch` are one per value.
Executor = choice("Executor", ("local", "slurm", "ray"))


@guarded
def run(
    config: Path = typer.Argument(..., help="Sweep YAML file."),
    store: Path = typer.Option(Path("runs"), "--store", help="Run store directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the grid with estimated times; train nothing."),
    device: Optional[Device] = typer.Option(None, "--device", help="Override the config's device."),
    overrides: List[str] = typer.Option([], "--set", help="Override a config key: --set train.lr=1e-3 (repeatable)."),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Runs trained at once (0 = picked from the grid and device)."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Train runs that failed before again."),
    keep_weights: bool = typer.Option(False, "--keep-weights", help="Keep each run's final weights as model.pt."),
    workers_per_gpu: int = typer.Option(1, "--workers-per-gpu", min=1, help="CUDA: runs trained at once on each GPU."),
    submit_only: bool = typer.Option(
        False,
        "--submit-only",
        help="Register the sweep's runs in the store and train nothing: sweep worker STORE trains them.",
    ),
    executor: Executor = typer.Option(
        Executor.local,
        "--executor",
        help="local (this machine), slurm (a job array through submitit) or ray (tasks on a "
        "Ray cluster): each starts the config's executor.workers sweep workers.",
    ),
    wait: bool = typer.Option(
        False, "--wait", help="With --executor slurm: wait for the jobs, then exit as sweep run does."
    ),
    log: List[str] = typer.Option(
        [],
        "--log",
        help="Trackers every run also logs to, overriding train.log: wandb, "
        "tensorboard (comma-separated or repeated; '' for none).",
    ),
):
    """Train every run of a sweep that is not finished yet, recording each in the store."""
    from sweep.config import load_config
    from sweep.runner.trackers import parse_trackers, require

    sweep_config = load_config(config, overrides)
    if device is not None:
        sweep_config = dataclasses.replace(sweep_config, device=device.value)
    if log:  # --log overrides train.log
        train = dataclasses.replace(sweep_config.train, log=parse_trackers(log))
        sweep_config = dataclasses.replace(sweep_config, train=train)
    require(sweep_config.train.log, "--log" if log else "train.log")  # a missing package, before anything is written
    from sweep.runner import Options

    _run(
        sweep_config,
        store,
        dry_run,
        workers,
        Options(retry_failed=retry_failed, keep_weights=keep_weights),
        workers_per_gpu,
        submit_only,
        executor.value,
        wait,
    )


def _run(
    sweep_config,
    store_path: Path,
    dry_run: bool,
    workers: int,
    options,
    workers_per_gpu: int = 1,
    submit_only: bool = False,
    executor: str = "local",
    wait: bool = False,
) -> None:
    import torch

    from sweep.config import expand
    from sweep.data import load_corpus
    from sweep.engine import resolve_device, setup_process
    from sweep.runner import pending, plan_workers
    from sweep.store import Store

    if sweep_config.device == "cuda" and not torch.cuda.is_available():
        raise SweepError("device: cuda was asked for, but torch sees no CUDA device on this machine")
    if store_path.exists() and not store_path.is_dir():
        raise SweepError(f"--store: {store_path} exists and is not a directory")
    device = resolve_device(sweep_config.device)
    corpus = load_corpus(sweep_config.data, None if dry_run else store_path)  # a dry run leaves the store alone
    specs = expand(sweep_config, corpus.sha256, corpus.vocab_size)
    announcer = None
    if not dry_run and not submit_only and executor == "local":
        device, announcer = _distributed(sweep_config, device, corpus)
    if not dry_run:
        _check_writable(store_path)  # after every check of the config, so bad input writes nothing
    store = Store(store_path)

    todo = pending(specs, store, options) if store_path.is_dir() else specs
    _print_notes(specs, corpus, store)
    if submit_only or executor != "local":
        _register(specs, store)
        if executor != "local":
            _launch(executor, store, specs, sweep_config, wait)
        return
    plan = plan_workers(todo, device, 1 if announcer else workers, workers_per_gpu)
    plan = dataclasses.replace(plan, threads=sweep_config.train.threads or plan.threads)
    setup_process(device, plan.threads)
    if dry_run:
        from sweep.cli.bench import print_plan

        print_plan(specs, todo, store, corpus, device, plan, sweep_config.train.compile)
        return
    _train(sweep_config, specs, store, corpus, device, plan, options, announcer)


def _print_notes(specs, corpus, store) -> None:
    """What the user should know about the grid before it trains: records of the corpus left out, runs
    too short to trust, finished runs missing variants their eval asks for."""
    from sweep.laws.table import MIN_STEPS

    if corpus.malformed:
        console.print(
            f"note: {corpus.malformed} malformed record(s) of the corpus left out (data.malformed: skip); "
            "each run records the count",
            highlight=False,
        )
    short = sorted({spec.steps for spec in specs if spec.steps < MIN_STEPS})
    if short:
        console.print(
            f"note: {sum(spec.steps < MIN_STEPS for spec in specs)} runs train fewer than {MIN_STEPS} "
            f"optimizer steps ({', '.join(map(str, short))}); their loss may still be limited by "
            "optimisation, and sweep fit flags them (docs/design-rules.md)",
            highlight=False,
        )
    uncompressed = _uncompressed(specs, store) if store.root.is_dir() else []
    if uncompressed:
        console.print(
            f"note: {len(uncompressed)} finished run(s) have no result for eval variant(s) "
            f"{', '.join(sorted({v for _, missing in uncompressed for v in missing}))}: variants are measured "
            "when a run ends, from its final weights, and these ended before eval asked for them",
            highlight=False,
        )


def _uncompressed(specs, store) -> list[tuple[str, list[str]]]:
    """(run id, variants) of the finished runs whose result.json lacks variants their `eval` asks for."""
    from sweep.columns import requested
    from sweep.store import read_json

    found = []
    for spec in specs:
        wanted = requested(spec.eval.quantize, spec.eval.prune)
        if not wanted or store.status(spec)["status"] != "done":
            continue
        result = read_json(store.run_dir(spec) / "result.json") or {}
        have = result.get("compression") if isinstance(result.get("compression"), dict) else {}
        missing = [name for name in wanted if name not in have]
        if missing:
            found.append((spec.run_id, missing))
    return found


def _train(sweep_config, specs, store, corpus, device, plan, options, announcer) -> None:
    """Train what is left here, with progress, then exit as the store's state of the sweep says."""
    from sweep.cli.tables import flops_summary
    from sweep.runner import execute, sweep_state

    # Batch schedulers stop a job with SIGTERM: treat it as Ctrl-C, so the current run is put back cleanly.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if plan.processes > 1:
        on = f" on GPUs {','.join(plan.gpus)}" if plan.gpus else ""
        console.print(f"training {plan.processes} runs at a time{on}, {plan.threads} thread(s) each", highlight=False)
    if announcer:
        from sweep.runner import run_local

        outcome = _reported(lambda reporter: run_local(specs, store, corpus, device, reporter, options, announcer))
        if outcome.ok:
            announcer.finish()
    else:
        outcome = _reported(
            lambda reporter: execute(specs, store, corpus, sweep_config.data, device, plan, reporter, options)
        )

    taken = f", {len(outcome.taken)} taken by another runner" if outcome.taken else ""
    console.print(
        f"sweep {sweep_config.name}: {len(outcome.done)} trained, {outcome.skipped} already finished{taken}, "
        f"{len(outcome.failed)} failed, {len(outcome.diverged)} diverged; store {store.root / sweep_config.name}",
        highlight=False,
    )
    console.print(flops_summary(specs), highlight=False)
    raise typer.Exit(_exit_code(outcome, sweep_state(specs, store)))


def _distributed(sweep_config, device, corpus):
    """Under torchrun: (this rank's device, the Announcer) on rank 0; the other ranks train what it
    announces and exit here. Elsewhere: (device, None)."""
    from sweep.engine import distributed, setup_process
    from sweep.launch import torchrun

    if not torchrun.launched():
        if sweep_config.train.ddp:
            raise SweepError(
                "train.ddp: true trains each run across the processes torchrun starts: "
                "torchrun --nproc_per_node N -m sweep run CONFIG"
            )
        return device, None
    rank, _, _ = distributed.init_from_env()
    device = distributed.device_for_rank(device)
    if rank != 0:
        setup_process(device, sweep_config.train.threads)
        torchrun.follow(corpus, device)
        raise typer.Exit(0)
    return device, torchrun.Announcer()


def _reported(execute):
    """Run `execute(reporter)` with rich progress on a terminal, plain lines elsewhere."""
    from sweep.cli.progress import RichReporter
    from sweep.launch.lines import PlainReporter

    if console.is_terminal:
        with RichReporter(console) as reporter:
            return execute(reporter)
    return execute(PlainReporter())


def _launch(executor: str, store, specs, sweep_config, wait: bool) -> None:
    """Start the config's `executor.workers` sweep workers on SLURM or Ray; the results are read from
    the store afterwards, as every runner's are."""
    from sweep.runner import SweepOutcome, sweep_state

    if executor == "slurm":
        from sweep.launch.slurm import submit_slurm

        jobs = submit_slurm(store.root, sweep_config.name, sweep_config.executor)
        console.print(
            f"submitted {len(jobs)} sweep workers: job {jobs[0].job_id.split('_')[0]}; watch with "
            f"sweep ls {store.root}",
            highlight=False,
        )
        if not wait:
            return
        for job in jobs:
            job.wait()
    else:
        from sweep.launch.ray_cluster import run_on_ray

        run_on_ray(store.root, sweep_config.name, sweep_config.executor)
    raise typer.Exit(_exit_code(SweepOutcome(total=len(specs)), sweep_state(specs, store)))


def _register(specs, store) -> None:
    """`--submit-only`: the sweep's runs in the store, pending, for `sweep worker` to train."""
    from sweep.runner import pending, register

    register(specs, store)
    todo = pending(specs, store)
    console.print(
        f"registered sweep {specs[0].sweep}: {len(specs)} runs, {len(todo)} to train, in {store.root}; "
        f"train them with: sweep worker {store.root}",
        highlight=False,
    )


@guarded
def worker(
    store: Path = typer.Argument(..., help="Run store whose registered runs to train."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only this sweep of the store."),
    device: Device = typer.Option(Device.auto, "--device", help="cpu or cuda (auto: cuda if present)."),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Runs trained at once (0 = one per core on CPU, per GPU on CUDA)."
    ),
    workers_per_gpu: int = typer.Option(1, "--workers-per-gpu", min=1, help="CUDA: runs trained at once on each GPU."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads per run (0 = the cores shared out)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Train runs that failed before again."),
):
    """Claim the unfinished runs registered in a store and train them until none is left for this
    worker. Any number of workers may share a store, on any hosts that share its filesystem."""
    from sweep.launch.worker import work
    from sweep.runner import Options

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # batch schedulers stop jobs with SIGTERM
    outcome = _reported(
        lambda reporter: work(
            store, sweep, device.value, reporter, Options(retry_failed=retry_failed), workers, workers_per_gpu, threads
        )
    )
    console.print(
        f"worker: {len(outcome.done)} trained, {outcome.skipped} already finished, {len(outcome.taken)} "
        f"held or finished by other workers, {len(outcome.failed)} failed, {len(outcome.diverged)} diverged; "
        f"store {store}",
        highlight=False,
    )
    if outcome.store_error:
        errors.print(
            f"error: {outcome.store_error}; make room and start the worker again", markup=False, highlight=False
        )
        raise typer.Exit(1)
    if outcome.interrupted:
        raise typer.Exit(130)


def _exit_code(outcome, state) -> int:
    """What `sweep run` exits with, from the store's state of every run of the sweep (`sweep.cli`'s docstring)."""
    if outcome.store_error:
        errors.print(
            f"error: {outcome.store_error}; the run in flight goes back to pending and finished runs are "
            "kept: make room and run the same command again",
            markup=False,
            highlight=False,
        )
        return 1
    if outcome.interrupted:
        console.print("interrupted: finished runs are kept; run the same command again to continue")
        return 130
    for run_id in state.failed:
        console.print(f"  not done: {run_id} (failed or diverged; see sweep ls)", highlight=False)
    if state.failed:
        return 1
    if state.held or state.left:
        console.print(
            f"not done here: {len(state.held)} runs held by other runners still training them, "
            f"{len(state.left)} left unfinished by one that stopped; run the same command again to "
            "wait for or take over what is left (exit code 3)",
            highlight=False,
        )
        return 3
    return 0


def _check_writable(store_path: Path) -> None:
    """Refuse a store that cannot be written, before anything trains: under a file, on a read-only
    mount, without permission."""
    probe = store_path / f".sweep-write-test.{os.getpid()}"
    try:
        store_path.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise SweepError(f"--store: cannot write to {store_path} ({err.strerror or type(err).__name__})") from None
