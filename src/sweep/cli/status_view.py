"""`sweep status` on screen: the read model of `sweep.store.status` as plain lines (pipes, logs, CI) or a
rich view for a terminal."""

from __future__ import annotations

import time

from rich.console import Group
from rich.table import Table
from rich.text import Text

from sweep.cli.tables import STATUS_STYLE, human
from sweep.store.status import STALE_NOTE, STATES


def _counts_text(counts: dict) -> str:
    return f"{counts['total']}: " + ", ".join(f"{counts[state]} {state}" for state in STATES)


def _flops_text(flops: dict) -> str:
    share = f" ({flops['done'] / flops['total']:.0%} done)" if flops["total"] else ""
    return f"FLOPs (6N·D as trained): {human(flops['done'])} done, {human(flops['left'])} left{share}"


def _duration(seconds: float) -> str:
    """3725 -> '1 h 02 min'; 200 -> '3 min 20 s'; 12.3 -> '12 s'."""
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def _eta_text(eta: dict) -> str:
    if eta["seconds"] is None:
        return f"time left: unknown ({eta['why']})"
    if not eta["seconds"]:
        return "time left: none, nothing left to train"
    workers = f"{eta['workers']} worker{'s' if eta['workers'] != 1 else ''}"
    return (
        f"time left: {_duration(eta['seconds'])} ({human(eta['flops_per_s_per_worker'])}FLOP/s per worker, "
        f"measured on the {eta['measured_from']}, × {workers})"
    )


def _loss(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _progress_text(task: dict) -> str:
    step = "-" if task["step"] is None else task["step"]
    tokens = "-" if task["tokens"] is None else f"{task['tokens']:,}"
    return f"step {step}/{task['steps']}  tokens {tokens}  train {_loss(task['train_loss'])}  val {_loss(task['val_loss'])}"


def _age_text(task: dict) -> str:
    age = task["heartbeat_age_s"]
    return "no claim" if age is None else f"{_duration(age)} ago"


def _holder_text(task: dict) -> str:
    return f"pid {task['pid'] if task['pid'] is not None else '?'} on {task['host'] or '?'}"


def status_lines(snapshot: dict) -> list[str]:
    """`read_status` as plain lines, for pipes, logs and CI."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot["time"]))
    lines = [f"status of {snapshot['store']} at {when}"]
    for sweep in snapshot["sweeps"]:
        lines.append(f"sweep {sweep['name']}: runs {_counts_text(sweep['runs'])}")
        if sweep["trunks"]["total"]:
            lines.append(f"  wsd trunks {_counts_text(sweep['trunks'])}")
        lines += [f"  {_flops_text(sweep['flops'])}", f"  {_eta_text(sweep['eta'])}"]
        for task in sweep["in_flight"]:
            stale = task["state"] == "stale"
            lines.append(
                f"  {task['kind']} {task['id']}  {'STALE' if stale else 'running'}  {_holder_text(task)}  "
                f"{_progress_text(task)}  heartbeat {_age_text(task)}" + (f"  ({STALE_NOTE})" if stale else "")
            )
    return lines


def status_view(snapshot: dict) -> Group:
    """`read_status` for a terminal: per sweep, its counts, FLOPs and time left, and a table of the
    tasks in flight with stale claims in red."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot["time"]))
    parts = [Text(f"status of {snapshot['store']} at {when}", style="bold")]
    for sweep in snapshot["sweeps"]:
        parts.append(_counts_view(f"sweep {sweep['name']}: runs", sweep["runs"]))
        if sweep["trunks"]["total"]:
            parts.append(_counts_view("  wsd trunks", sweep["trunks"]))
        parts += [Text(f"  {_flops_text(sweep['flops'])}"), Text(f"  {_eta_text(sweep['eta'])}")]
        if sweep["in_flight"]:
            parts.append(_in_flight_table(sweep["in_flight"]))
    return Group(*parts)


def _counts_view(label: str, counts: dict) -> Text:
    text = Text(f"{label} {counts['total']}: ")
    for index, state in enumerate(STATES):
        style = "bold red" if state == "stale" and counts[state] else STATUS_STYLE.get(state, "")
        text.append(f"{counts[state]} {state}", style=style)
        text.append(", " if index < len(STATES) - 1 else "")
    return text


def _in_flight_table(tasks: list[dict]) -> Table:
    table = Table(title="in flight", title_justify="left")
    for name in ("task", "state", "host", "pid", "step", "tokens", "train", "val", "tok/s", "heartbeat"):
        table.add_column(name, justify="left" if name in ("task", "state", "host") else "right")
    for task in tasks:
        stale = task["state"] == "stale"
        table.add_row(
            f"{task['kind']} {task['id']}",
            "[bold red]STALE[/]" if stale else "[yellow]running[/]",
            task["host"] or "?",
            str(task["pid"] or "?"),
            f"{'-' if task['step'] is None else task['step']}/{task['steps']}",
            "-" if task["tokens"] is None else f"{task['tokens']:,}",
            _loss(task["train_loss"]),
            _loss(task["val_loss"]),
            human(task["tokens_per_s"]),
            Text(_age_text(task), style="bold red" if stale else ""),
        )
    if any(task["state"] == "stale" for task in tasks):
        table.caption = f"STALE: {STALE_NOTE}"
    return table
