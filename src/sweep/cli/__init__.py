"""The `sweep` command line: parse, call the library, map errors to exit codes.

Exit codes: 0 success (for `sweep run`: every run of the sweep is done); 1 some runs failed or
diverged, or the store could not be written mid-sweep; 2 bad input (message, no traceback); 3 (`sweep
run`) no run failed, but some are held by other runners still training them, or were left unfinished
by one; 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from sweep.errors import SweepError
from sweep.model.flops import FLOPS_CONVENTIONS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure scaling laws: train a ladder of Transformers, record every run, fit laws.")
# Not on a terminal (batch jobs, pipes, CI) rich would wrap tables at 80 columns: give them room.
console = Console() if sys.stdout.isatty() else Console(width=250)
errors = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=250)


def _guarded(command):
    """Turn a SweepError into its message and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SweepError as err:
            for line in str(err).splitlines():
                errors.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Executor(str, Enum):
    local = "local"
    slurm = "slurm"
    ray = "ray"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
@_guarded
def run(
    config: Path = typer.Argument(..., help="Sweep YAML file."),
    store: Path = typer.Option(Path("runs"), "--store", help="Run store directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the grid with estimated times; train nothing."),
    device: Optional[Device] = typer.Option(None, "--device", help="Override the config's device."),
    overrides: List[str] = typer.Option([], "--set", help="Override a config key: --set train.lr=1e-3 (repeatable)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Runs trained at once (0 = picked from the grid and device)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Train runs that failed before again."),
    keep_weights: bool = typer.Option(False, "--keep-weights", help="Keep each run's final weights as model.pt."),
    workers_per_gpu: int = typer.Option(1, "--workers-per-gpu", min=1, help="CUDA: runs trained at once on each GPU."),
    submit_only: bool = typer.Option(False, "--submit-only",
                                     help="Register the sweep's runs in the store and train nothing: sweep worker STORE trains them."),
    executor: Executor = typer.Option(Executor.local, "--executor",
                                      help="local (this machine), slurm (a job array through submitit) or ray (tasks on a "
                                           "Ray cluster): each starts the config's executor.workers sweep workers."),
    wait: bool = typer.Option(False, "--wait", help="With --executor slurm: wait for the jobs, then exit as sweep run does."),
    log: List[str] = typer.Option([], "--log", help="Trackers every run also logs to, overriding train.log: wandb, "
                                                    "tensorboard (comma-separated or repeated; '' for none)."),
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

    _run(sweep_config, store, dry_run, workers, Options(retry_failed=retry_failed, keep_weights=keep_weights),
         workers_per_gpu, submit_only, executor.value, wait)


def _run(sweep_config, store_path: Path, dry_run: bool, workers: int, options, workers_per_gpu: int = 1,
         submit_only: bool = False, executor: str = "local", wait: bool = False) -> None:
    import pandas as pd

    from sweep.config import expand
    from sweep.data import load_corpus
    from sweep.laws.table import MIN_STEPS
    from sweep.runner import execute, pending, plan_workers, sweep_state
    from sweep.cli.tables import plan_table
    from sweep.store import Store, spec_columns
    from sweep.engine import compiles, resolve_device
    from sweep.config.trunks import trunks

    import torch

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
    if corpus.malformed:
        console.print(f"note: {corpus.malformed} malformed record(s) of the corpus left out (data.malformed: skip); "
                      "each run records the count", highlight=False)
    short = sorted({spec.steps for spec in specs if spec.steps < MIN_STEPS})
    if short:
        console.print(f"note: {sum(spec.steps < MIN_STEPS for spec in specs)} runs train fewer than {MIN_STEPS} "
                      f"optimizer steps ({', '.join(map(str, short))}); their loss may still be limited by "
                      "optimisation, and sweep fit flags them (README, Designing a sweep)", highlight=False)
    uncompressed = _uncompressed(specs, store) if store_path.is_dir() else []
    if uncompressed:
        console.print(f"note: {len(uncompressed)} finished run(s) have no result for eval variant(s) "
                      f"{', '.join(sorted({v for _, missing in uncompressed for v in missing}))}: variants are measured "
                      "when a run ends, from its final weights, and these ended before eval asked for them",
                      highlight=False)
    if submit_only or executor != "local":
        _register(specs, store)
        if executor != "local":
            _launch(executor, store, specs, sweep_config, wait)
        return
    plan = plan_workers(todo, device, 1 if announcer else workers, workers_per_gpu)
    processes, threads = plan.processes, sweep_config.train.threads or plan.threads
    torch.set_num_threads(threads)

    if dry_run:
        from sweep.runner.bench import bench_shape

        step_seconds = {}
        rows = []
        for spec in specs:
            if spec.shape not in step_seconds:  # the step `train` runs, at the threads a run will get
                timing = bench_shape(spec.shape, corpus, device, spec.train.dtype, spec.train.batch_tokens, seconds=0,
                                     compiling=False)  # compiling a shape can take minutes
                step_seconds[spec.shape] = sum(timing["step_s"].values())
            # Each evaluation reads val_tokens forward only: about a third of a training step's work per token.
            # Every compressed variant is one more evaluation, at the end.
            evaluations = spec.train.evals + 1 + len(spec.eval.quantize) + len(spec.eval.prune)
            eval_steps = evaluations * spec.data.val_tokens / spec.train.batch_tokens / 3
            status = store.status(spec)["status"] if store_path.is_dir() else "pending"
            rows.append({**spec_columns(spec), "shape": spec.shape.name, "status": status,
                         "est_s": (spec.steps - spec.branch_step + eval_steps) * step_seconds[spec.shape]})
        trunk_s = sum(max(trunk.branch_steps) * step_seconds[trunk.branches[0].shape] for trunk in trunks(todo))
        console.print(plan_table(pd.DataFrame(rows), processes, trunk_s))
        console.print(_flops_summary(specs), highlight=False)
        eager = "eager " if compiles(sweep_config.train.compile, device) else ""
        console.print(f"estimates time 3 {eager}training steps of each shape on {device.type} with {threads} thread(s); "
                      "nothing was written", highlight=False)
        return

    # Batch schedulers stop a job with SIGTERM: treat it as Ctrl-C, so the current run is put back cleanly.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if processes > 1:
        on = f" on GPUs {','.join(plan.gpus)}" if plan.gpus else ""
        console.print(f"training {processes} runs at a time{on}, {threads} thread(s) each", highlight=False)
    plan = dataclasses.replace(plan, threads=threads)
    if announcer:
        from sweep.runner import run_local

        outcome = _reported(lambda reporter: run_local(specs, store, corpus, device, reporter, options, announcer))
        if outcome.ok:
            announcer.finish()
    else:
        outcome = _reported(lambda reporter: execute(specs, store, corpus, sweep_config.data, device, plan, reporter,
                                                     options))

    taken = f", {len(outcome.taken)} taken by another runner" if outcome.taken else ""
    console.print(f"sweep {sweep_config.name}: {len(outcome.done)} trained, {outcome.skipped} already finished{taken}, "
                  f"{len(outcome.failed)} failed, {len(outcome.diverged)} diverged; store {store_path / sweep_config.name}",
                  highlight=False)
    console.print(_flops_summary(specs), highlight=False)
    raise typer.Exit(_exit_code(outcome, sweep_state(specs, store)))


def _uncompressed(specs, store) -> list[tuple[str, list[str]]]:
    """(run id, variants) of the finished runs whose result.json lacks variants their `eval` asks for."""
    from sweep.store import read_json
    from sweep.columns import requested

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


def _distributed(sweep_config, device, corpus):
    """Under torchrun: (this rank's device, the Announcer) on rank 0; the other ranks train what it
    announces and exit here. Elsewhere: (device, None)."""
    from sweep.engine import distributed
    from sweep.launch import torchrun

    if not torchrun.launched():
        if sweep_config.train.ddp:
            raise SweepError("train.ddp: true trains each run across the processes torchrun starts: "
                             "torchrun --nproc_per_node N -m sweep run CONFIG")
        return device, None
    rank, _, _ = distributed.init_from_env()
    device = distributed.device_for_rank(device)
    if rank != 0:
        torchrun.follow(corpus, device)
        raise typer.Exit(0)
    return device, torchrun.Announcer()


def _reported(execute):
    """Run `execute(reporter)` with rich progress on a terminal, plain lines elsewhere."""
    from sweep.cli.progress import PlainReporter, RichReporter

    if console.is_terminal:
        with RichReporter(console) as reporter:
            return execute(reporter)
    return execute(PlainReporter(console))


def _launch(executor: str, store, specs, sweep_config, wait: bool) -> None:
    """Start the config's `executor.workers` sweep workers on SLURM or Ray; the results are read from
    the store afterwards, as every runner's are."""
    from sweep.runner import SweepOutcome, sweep_state

    if executor == "slurm":
        from sweep.launch.slurm import submit_slurm

        jobs = submit_slurm(store.root, sweep_config.name, sweep_config.executor)
        console.print(f"submitted {len(jobs)} sweep workers: job {jobs[0].job_id.split('_')[0]}; watch with "
                      f"sweep ls {store.root}", highlight=False)
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
    console.print(f"registered sweep {specs[0].sweep}: {len(specs)} runs, {len(todo)} to train, in {store.root}; "
                  f"train them with: sweep worker {store.root}", highlight=False)


@app.command()
@_guarded
def worker(
    store: Path = typer.Argument(..., help="Run store whose registered runs to train."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only this sweep of the store."),
    device: Device = typer.Option(Device.auto, "--device", help="cpu or cuda (auto: cuda if present)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Runs trained at once (0 = one per core on CPU, per GPU on CUDA)."),
    workers_per_gpu: int = typer.Option(1, "--workers-per-gpu", min=1, help="CUDA: runs trained at once on each GPU."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads per run (0 = the cores shared out)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Train runs that failed before again."),
):
    """Claim the unfinished runs registered in a store and train them until none is left for this
    worker. Any number of workers may share a store, on any hosts that share its filesystem."""
    from sweep.runner import Options
    from sweep.launch.worker import work

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # batch schedulers stop jobs with SIGTERM
    outcome = _reported(lambda reporter: work(store, sweep, device.value, reporter, Options(retry_failed=retry_failed),
                                              workers, workers_per_gpu, threads))
    console.print(f"worker: {len(outcome.done)} trained, {outcome.skipped} already finished, {len(outcome.taken)} "
                  f"held or finished by other workers, {len(outcome.failed)} failed, {len(outcome.diverged)} diverged; "
                  f"store {store}", highlight=False)
    if outcome.store_error:
        errors.print(f"error: {outcome.store_error}; make room and start the worker again", markup=False, highlight=False)
        raise typer.Exit(1)
    if outcome.interrupted:
        raise typer.Exit(130)


def _exit_code(outcome, state) -> int:
    """What `sweep run` exits with, from the store's state of every run of the sweep (module docstring)."""
    if outcome.store_error:
        errors.print(f"error: {outcome.store_error}; the run in flight goes back to pending and finished runs are "
                     "kept: make room and run the same command again", markup=False, highlight=False)
        return 1
    if outcome.interrupted:
        console.print("interrupted: finished runs are kept; run the same command again to continue")
        return 130
    for run_id in state.failed:
        console.print(f"  not done: {run_id} (failed or diverged; see sweep ls)", highlight=False)
    if state.failed:
        return 1
    if state.held or state.left:
        console.print(f"not done here: {len(state.held)} runs held by other runners still training them, "
                      f"{len(state.left)} left unfinished by one that stopped; run the same command again to "
                      "wait for or take over what is left (exit code 3)", highlight=False)
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


def _flops_summary(specs) -> str:
    from sweep.cli.tables import human
    from sweep.config.trunks import spent_flops

    spent, separate = spent_flops(specs)
    return (f"FLOPs (6ND): {human(spent)} as trained, {human(separate)} as separate runs of the same grid "
            f"({spent / separate:.2f}x)")


@app.command("ls")
@_guarded
def ls(
    store: Path = typer.Argument(Path("runs"), help="Run store (or one sweep's directory)."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only this sweep."),
    format: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
):
    """List the runs in a store, one row each."""
    from sweep.cli.tables import runs_table
    from sweep.store import load_runs

    runs = load_runs(store, sweep=sweep)
    if format is Format.csv:
        sys.stdout.write(runs.to_csv(index=False))
    elif format is Format.json:
        sys.stdout.write(json.dumps(json.loads(runs.to_json(orient="records")), indent=2) + "\n")
    else:
        console.print(runs_table(runs))


@app.command("status")
@_guarded
def status(
    store: Path = typer.Argument(..., help="Run store (or one sweep's directory)."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only this sweep."),
    watch: bool = typer.Option(False, "--watch", help="Refresh every --interval seconds until Ctrl-C: in place on a "
                                                      "terminal, the whole text again each time elsewhere."),
    interval: float = typer.Option(2.0, "--interval", min=0.1, help="Seconds between refreshes with --watch."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (with --watch: one per line, each refresh)."),
):
    """Where each sweep of a store stands, read-only: runs done, running, pending, failed, diverged and
    stale (claimed by a runner that died or stopped heartbeating), wsd trunks, FLOPs (6N·D as trained)
    done and left, the time left, and every run in flight with its host, pid, step, losses and
    heartbeat. Time left = FLOPs left / (FLOP/s per worker × runs in flight), the FLOP/s measured from
    the runs in flight (tokens / training seconds of their latest metrics row), else from finished
    runs' tokens/s; unknown when nothing is measured or nothing runs."""
    from sweep.store.status import read_status

    _show_status(lambda: read_status(store, sweep), watch, interval, as_json)


def _show_status(read, watch: bool, interval: float, as_json: bool) -> None:
    """Show `read()` once, or every `interval` seconds until Ctrl-C (which exits 0): rich on a
    terminal (rich.live in place), plain lines or JSON elsewhere. A bad store fails the first read.
    Ctrl-C only sets a flag that the loop checks between refreshes, so it never lands inside a read
    or a write half done."""
    import signal
    import threading

    from rich.live import Live

    from sweep.cli.status_view import status_lines, status_view

    def show(snapshot) -> None:
        if as_json:
            sys.stdout.write(json.dumps(snapshot, indent=None if watch else 2) + "\n")
            sys.stdout.flush()
        elif console.is_terminal:
            console.print(status_view(snapshot))
        else:
            console.print("\n".join(status_lines(snapshot)), markup=False, highlight=False, soft_wrap=True)

    snapshot = read()
    if not watch:
        show(snapshot)
        return
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    if console.is_terminal and not as_json:
        with Live(status_view(snapshot), console=console, auto_refresh=False) as live:
            while not stop.wait(interval):
                live.update(status_view(read()), refresh=True)
        return
    show(snapshot)
    while not stop.wait(interval):
        show(read())


@app.command()
@_guarded
def bench(
    device: Device = typer.Option(Device.auto, "--device", help="cpu or cuda (auto: cuda if present)."),
    reference: bool = typer.Option(False, "--reference", help="Also time the classic eager fp32 loop (CPU)."),
    seconds: float = typer.Option(3.0, "--seconds", min=0.1, help="Timed seconds per ladder size."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads of the one-process rows (0 = all cores)."),
    workers: int = typer.Option(0, "--workers", min=0,
                                help="CPU: single-thread workers measured at once (0 = one per core, as sweep run packs; "
                                     "1 = none)."),
    compiling: Optional[bool] = typer.Option(None, "--compile/--no-compile",
                                           help="torch.compile the models (default: on CUDA only, as train.compile: auto)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of a table."),
):
    """Measure training speed against this machine's own matmul peak, through the path sweep run uses."""
    import torch

    from sweep.runner.bench import run_bench
    from sweep.cli.tables import bench_table
    from sweep.engine import resolve_device

    if device is Device.cuda and not torch.cuda.is_available():
        raise SweepError("--device cuda: torch sees no CUDA device on this machine")
    if workers > 1 and device is Device.cuda:
        raise SweepError("--workers: the pooled measurement is for CPUs; on CUDA one process is measured")
    result = run_bench(resolve_device(device.value), reference, seconds, threads, workers,
                       "auto" if compiling is None else compiling)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        console.print(bench_table(result))


class ParamsConvention(str, Enum):
    non_embedding = "non_embedding"
    total = "total"


FlopsConvention = Enum("FlopsConvention", {name: name for name in FLOPS_CONVENTIONS}, type=str)


class Aggregate(str, Enum):
    min_of_means = "min_of_means"
    mean = "mean"
    min = "min"


class LawForm(str, Enum):
    auto = "auto"
    chinchilla = "chinchilla"
    chinchilla_e0 = "chinchilla_e0"
    kaplan = "kaplan"


@app.command()
@_guarded
def fit(
    source: Path = typer.Argument(Path("runs"), help="A run store (or one sweep's directory), or a CSV/Parquet table."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only this sweep of the store."),
    params_convention: ParamsConvention = typer.Option(ParamsConvention.non_embedding, "--params-convention",
                                                       help="What N counts: non_embedding (Kaplan) or total (Hoffmann)."),
    flops_convention: FlopsConvention = typer.Option(FlopsConvention["6n"], "--flops-convention",
                                                     help="The FLOPs column C comes from (see the README)."),
    aggregate: Aggregate = typer.Option(Aggregate.min_of_means, "--aggregate",
                                        help="Runs sharing (N, D): min over learning rates of the mean over seeds, or mean, or min."),
    bootstrap: int = typer.Option(200, "--bootstrap", min=0, help="Bootstrap refits for the 95% intervals (0 = none)."),
    holdout: int = typer.Option(0, "--holdout", min=0, help="Fit without the K highest-compute points and predict them."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    form: LawForm = typer.Option(LawForm.auto, "--form",
                                 help="The L(N, D) to predict with (auto: the lowest rollout error)."),
    rollout: bool = typer.Option(False, "--rollout",
                                 help="Show every rollout prediction: each compute level from the levels below it."),
    min_steps: int = typer.Option(0, "--min-steps", min=0,
                                  help="Leave out runs with fewer optimizer steps (0 = keep all, and warn below "
                                       "sweep.laws.table.MIN_STEPS)."),
    model_bits: float = typer.Option(16.0, "--model-bits", min=0,
                                     help="Runs in epoch order: the bits per parameter a model costs in the "
                                          "two-part description length."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document to stdout instead of tables."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write laws.json and PNG plots into this directory."),
):
    """Fit scaling laws to a run store or a table: 95% intervals, a rollout check, the best-extrapolating L(N, D);
    laws of post-training degradation where runs have compressed variants; for runs in epoch order, their code
    length against gzip, xz and zstd and the N of the shortest description per D."""
    from sweep.codelength.section import compression_section, write_frontier_plot
    from sweep.laws import FLOPS_COLUMNS, fit_report, prepare_table, read_table, save_laws
    from sweep.errors import cut
    from sweep.cli.tables import compression_tables, fit_tables
    from sweep.store import load_runs

    if out is not None and out.exists() and not out.is_dir():
        raise SweepError(f"--out: {out} exists and is not a directory")
    runs = load_runs(source) if source.is_dir() else read_table(source)
    if runs.empty:
        raise SweepError(f"{cut(str(source), 200)}: the {'store' if source.is_dir() else 'table'} holds no runs; "
                         "nothing to fit")
    table = prepare_table(runs, sweep=sweep, params_convention=params_convention.value,
                          flops_column=FLOPS_COLUMNS[flops_convention.value], aggregate=aggregate.value,
                          min_steps=min_steps)
    report = fit_report(table, bootstrap=bootstrap, seed=seed, holdout=holdout, form=form.value, with_rollout=rollout)
    laws = report.to_json()
    in_sweep = runs if sweep is None or "sweep" not in runs.columns else runs[runs["sweep"] == sweep]
    compression = compression_section(source, in_sweep, model_bits)
    if compression is not None:
        laws["compression"] = compression
    written = []
    if out is not None:
        from sweep.laws.plots import write_plots

        out.mkdir(parents=True, exist_ok=True)
        written = [save_laws(report, out / "laws.json"), *write_plots(report, out)]
        if compression is not None:
            written.append(write_frontier_plot(in_sweep, out / "description_length.png", model_bits))
    if as_json:
        sys.stdout.write(json.dumps(laws, indent=2) + "\n")
        return
    for excluded in laws["excluded"]:
        console.print(f"left out: {excluded['run_id']}: {excluded['reason']}", highlight=False)
    for table_ in fit_tables(laws, rollout_details=rollout) + (compression_tables(compression) if compression else []):
        console.print(table_)
    for warning in laws["warnings"]:
        console.print(f"warning: {warning}", highlight=False)
    for path in written:
        console.print(f"wrote {path}", highlight=False)


@app.command()
@_guarded
def predict(
    laws_file: Path = typer.Argument(..., help="laws.json written by sweep fit --out."),
    flops: Optional[float] = typer.Option(None, "--flops", help="A compute budget C: the compute-optimal N and D."),
    params: Optional[float] = typer.Option(None, "--params", help="With --tokens: the loss of this model size."),
    tokens: Optional[float] = typer.Option(None, "--tokens", help="With --params: the loss at this many training tokens."),
    seq_len: int = typer.Option(256, "--seq-len", min=8, help="Context length for the suggested shape."),
    bits: Optional[int] = typer.Option(None, "--bits", min=1, help="With --params and --tokens: also δ, the loss "
                                                                     "rise after quantising the weights to this many bits."),
    prune: Optional[float] = typer.Option(None, "--prune", help="With --params and --tokens: also δ after magnitude "
                                                                "pruning this share of the weights (0.5 = half)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Answer a budget question from fitted laws: the compute-optimal model for C, or the loss at (N, D),
    from the law `sweep fit` chose, with 95% intervals; with --bits or --prune, also the post-training
    degradation δ at (N, D)."""
    from sweep.config import ModelConfig, params_rule_limit, shape_for_params
    from sweep.laws import load_degradation, load_laws, predict_compute_optimal, predict_degradation, predict_loss_at
    from sweep.columns import describe, variant_name
    from sweep.cli.tables import prediction_table

    if (flops is None) == (params is None and tokens is None) or (flops is None and (params is None or tokens is None)):
        raise SweepError("give either --flops C, or both --params N and --tokens D")
    if bits is not None and prune is not None:
        raise SweepError("give --bits or --prune, not both: each δ law is for one variant")
    if (bits is not None or prune is not None) and flops is not None:
        raise SweepError("--bits and --prune predict δ at one model: give them with --params N and --tokens D")
    if prune is not None and not 0 < prune < 1:
        raise SweepError(f"--prune is the share of weights pruned, between 0 and 1 (0.5 = half), got {prune}")
    laws = load_laws(laws_file)
    shape_name = None
    if flops is not None:
        answer = predict_compute_optimal(laws, flops=flops).to_json()
        n_opt = answer["params"]["value"]
        # The params rule's shape, where it reaches N_opt (beyond its widest shape it would name that one).
        if laws.params_convention == "non_embedding" and n_opt and 1000 <= n_opt <= params_rule_limit(ModelConfig()):
            shape = shape_for_params(int(n_opt), ModelConfig(params=(int(n_opt),)), seq_len=seq_len, vocab_size=256)
            shape_name = f"{shape.name} (d_ff {shape.d_ff}; the config's params rule, byte vocabulary, T={seq_len})"
            answer["shape"] = {"n_layers": shape.n_layers, "d_model": shape.d_model, "n_heads": shape.n_heads}
    else:
        answer = predict_loss_at(laws, params=params, tokens=tokens).to_json()
    if bits is not None or prune is not None:
        variant = variant_name(bits=bits, prune=prune)
        delta = predict_degradation(load_degradation(laws_file).law_for(variant), params, tokens).to_json()
        loss = answer["loss"]["value"]
        answer["degradation"] = {"variant": variant, "what": describe(variant), "delta": delta,
                                 "loss_after": None if loss is None or delta["value"] is None else loss + delta["value"]}
    answer = {"form": laws.form, **answer}
    if as_json:
        sys.stdout.write(json.dumps(answer, indent=2) + "\n")
    else:
        console.print(prediction_table(answer, shape_name, laws.form))


class ExportFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"
    tensorboard = "tensorboard"
    wandb = "wandb"


@app.command()
@_guarded
def export(
    store: Path = typer.Argument(..., help="Run store (or one sweep's directory) to export."),
    to: ExportFormat = typer.Option(..., "--to", help="csv or parquet (the sweep ls table), tensorboard or wandb "
                                                      "(one tracker run per run and wsd trunk)."),
    out: Optional[Path] = typer.Option(None, "--out", help="csv/parquet: the file (default STORE/runs.csv or "
                                                           "runs.parquet). tensorboard/wandb: a directory that "
                                                           "mirrors the store's run paths (default: each run's own "
                                                           "directory, STORE/<sweep>/<run>/tensorboard or /wandb)."),
):
    """Replay a store's recorded runs (metrics.jsonl, result.json) into a table or a tracker, for runs
    trained without one. Exporting again replaces the earlier export, never duplicates it; runs still
    training are skipped. W&B runs are offline unless WANDB_MODE says otherwise."""
    from sweep.runner.export import export_store

    exported = export_store(store, to.value, out)
    for path in exported.written:
        console.print(f"wrote {path}", highlight=False)
    if exported.running:
        console.print(f"skipped {len(exported.running)} runs still in training: export again when they end",
                      highlight=False)
    for failure in exported.failed:
        errors.print(f"error: not exported, the tracker failed: {failure}", highlight=False, markup=False)
    if exported.failed:
        raise typer.Exit(1)
