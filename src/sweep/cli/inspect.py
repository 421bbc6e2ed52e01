"""`sweep ls`, `sweep status` and `sweep export`: the commands that read a store and write nothing
to it (export writes elsewhere, or beside each run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from sweep.cli.app import choice, console, errors, guarded
from sweep.config import TRACKERS

# How `sweep ls` prints the table: a CLI-only choice.
Format = choice("Format", ("table", "csv", "json"))
# `sweep.runner.export.FORMATS` (a module that imports torch): the tables it writes and the trackers,
# listed alphabetically as --help always has.
ExportFormat = choice("ExportFormat", sorted(("csv", "parquet", *TRACKERS)))


@guarded
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


@guarded
def status(
    store: Path = typer.Argument(..., help="Run store (or one sweep's directory)."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only this sweep."),
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Refresh every --interval seconds until Ctrl-C: in place on a "
        "terminal, the whole text again each time elsewhere.",
    ),
    interval: float = typer.Option(2.0, "--interval", min=0.1, help="Seconds between refreshes with --watch."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object (with --watch: one per line, each refresh)."
    ),
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


@guarded
def export(
    store: Path = typer.Argument(..., help="Run store (or one sweep's directory) to export."),
    to: ExportFormat = typer.Option(
        ...,
        "--to",
        help="csv or parquet (the sweep ls table), tensorboard or wandb (one tracker run per run and wsd trunk).",
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        help="csv/parquet: the file (default STORE/runs.csv or "
        "runs.parquet). tensorboard/wandb: a directory that "
        "mirrors the store's run paths (default: each run's own "
        "directory, STORE/<sweep>/<run>/tensorboard or /wandb).",
    ),
):
    """Replay a store's recorded runs (metrics.jsonl, result.json) into a table or a tracker, for runs
    trained without one. Exporting again replaces the earlier export, never duplicates it; runs still
    training are skipped. W&B runs are offline unless WANDB_MODE says otherwise."""
    from sweep.runner.export import export_store

    exported = export_store(store, to.value, out)
    for path in exported.written:
        console.print(f"wrote {path}", highlight=False)
    if exported.running:
        console.print(
            f"skipped {len(exported.running)} runs still in training: export again when they end", highlight=False
        )
    for failure in exported.failed:
        errors.print(f"error: not exported, the tracker failed: {failure}", highlight=False, markup=False)
    if exported.failed:
        raise typer.Exit(1)
