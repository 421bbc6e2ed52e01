"""Tables built from run DataFrames: returned to the CLI, never printed here."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table


def human(value: float, digits: int = 3) -> str:
    """1234567 -> '1.23M'; NaN -> '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{unit}"
    return f"{value:.{digits}g}"


def _fixed(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


STATUS_STYLE = {"done": "green", "failed": "red", "diverged": "red", "running": "yellow", "pending": "dim"}


def runs_table(runs: pd.DataFrame) -> Table:
    """`sweep ls`: one row per run."""
    table = Table(title=f"{len(runs)} runs", title_justify="left")
    for name in ("run_id", "sweep", "status", "n_layers", "d_model", "params", "params_total", "tokens",
                 "flops", "loss", "bpb", "wall_s", "tok/s", "attempts"):
        table.add_column(name, justify="left" if name in ("run_id", "sweep", "status") else "right")
    for run in runs.itertuples():
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(
            run.run_id, run.sweep, f"[{style}]{run.status}[/]" if style else run.status,
            str(run.n_layers), str(run.d_model), human(run.params), human(run.params_total), human(run.tokens),
            human(run.flops), _fixed(run.loss, 4), _fixed(run.bpb, 3), _fixed(run.wall_s, 1),
            human(run.tokens_per_s), str(run.attempts),
        )
    return table


def plan_table(plan: pd.DataFrame) -> Table:
    """`sweep run --dry-run`: the expanded grid with its estimated cost."""
    table = Table(title=f"{len(plan)} runs, estimated {plan['est_s'].sum() / 60:.1f} min in total "
                        f"({(plan['status'] != 'done').sum()} to train)", title_justify="left")
    for name in ("run_id", "shape", "params", "params_total", "tokens", "seed", "lr", "flops", "status", "est"):
        table.add_column(name, justify="left" if name in ("run_id", "shape", "status") else "right")
    for run in plan.itertuples():
        table.add_row(run.run_id, run.shape, human(run.params), human(run.params_total), human(run.tokens),
                      str(run.seed), f"{run.lr:.3g}", human(run.flops), run.status, f"{run.est_s:.0f} s")
    return table
