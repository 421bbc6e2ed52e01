"""The `sweep` command line: parse, call the library, map errors to exit codes.

Exit codes: 0 success; 1 some runs failed or diverged; 2 bad input (message, no traceback);
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from sweep.errors import SweepError

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
):
    """Train every run of a sweep that is not finished yet, recording each in the store."""
    from sweep.config import load_config

    sweep_config = load_config(config, overrides)
    if device is not None:
        sweep_config = dataclasses.replace(sweep_config, device=device.value)
    _run(sweep_config, store, dry_run)


def _run(sweep_config, store_path: Path, dry_run: bool) -> None:
    import pandas as pd

    from sweep.config import expand
    from sweep.data import load_corpus
    from sweep.executors import run_local
    from sweep.progress import PlainReporter, RichReporter
    from sweep.report import plan_table
    from sweep.store import Store, spec_columns
    from sweep.train import measure_step_seconds, resolve_device

    import torch

    if sweep_config.device == "cuda" and not torch.cuda.is_available():
        raise SweepError("device: cuda was asked for, but torch sees no CUDA device on this machine")
    if store_path.exists() and not store_path.is_dir():
        raise SweepError(f"--store: {store_path} exists and is not a directory")
    device = resolve_device(sweep_config.device)
    corpus = load_corpus(sweep_config.data)
    specs = expand(sweep_config, corpus.sha256, corpus.vocab_size)
    store = Store(store_path)

    if dry_run:
        step_seconds = {}
        rows = []
        for spec in specs:
            if spec.shape not in step_seconds:
                step_seconds[spec.shape] = measure_step_seconds(spec, corpus, device)
            steps = max(1, round(spec.tokens / spec.train.batch_tokens))
            # Each evaluation reads val_tokens forward only: about a third of a training step's work per token.
            eval_steps = (spec.train.evals + 1) * spec.data.val_tokens / spec.train.batch_tokens / 3
            status = store.status(spec)["status"] if store_path.is_dir() else "pending"
            rows.append({**spec_columns(spec), "shape": spec.shape.name, "status": status,
                         "est_s": (steps + eval_steps) * step_seconds[spec.shape]})
        console.print(plan_table(pd.DataFrame(rows)))
        console.print(f"estimates time 2 training steps of each shape on {device.type}; nothing was written")
        return

    # Batch schedulers stop a job with SIGTERM: treat it as Ctrl-C, so the current run is put back cleanly.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    reporter_class = RichReporter if console.is_terminal else PlainReporter
    reporter = reporter_class(console)
    if isinstance(reporter, RichReporter):
        with reporter:
            outcome = run_local(specs, store, corpus, device, reporter)
    else:
        outcome = run_local(specs, store, corpus, device, reporter)

    console.print(f"sweep {sweep_config.name}: {len(outcome.done)} trained, {outcome.skipped} already finished, "
                  f"{len(outcome.failed)} failed, {len(outcome.diverged)} diverged; store {store_path / sweep_config.name}",
                  highlight=False)
    for run_id in outcome.failed + outcome.diverged:
        console.print(f"  not done: {run_id} (see sweep ls)", highlight=False)
    if outcome.interrupted:
        console.print("interrupted: finished runs are kept; run the same command again to continue")
        raise typer.Exit(130)
    if not outcome.ok:
        raise typer.Exit(1)


@app.command("ls")
@_guarded
def ls(
    store: Path = typer.Argument(Path("runs"), help="Run store (or one sweep's directory)."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only this sweep."),
    format: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
):
    """List the runs in a store, one row each."""
    from sweep.report import runs_table
    from sweep.store import load_runs

    runs = load_runs(store, sweep=sweep)
    if format is Format.csv:
        sys.stdout.write(runs.to_csv(index=False))
    elif format is Format.json:
        sys.stdout.write(json.dumps(json.loads(runs.to_json(orient="records")), indent=2) + "\n")
    else:
        console.print(runs_table(runs))
