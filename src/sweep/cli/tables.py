"""The tables of `sweep ls`, `sweep run --dry-run` and `sweep bench`, and the number formats every table
uses (`human`, `fixed`): returned to the CLI, never printed here. `sweep fit`'s and `sweep predict`'s
tables are in `law_tables`."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from sweep.columns import DELTA_PREFIX


def human(value: float, digits: int = 3) -> str:
    """1234567 -> '1.23M'; NaN -> '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(f"{value:.{digits}g}")  # round first, so 999.9e9 shows as 1T, not 1e+03G
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{unit}"
    return f"{value:.{digits}g}"


def fixed(value, digits: int) -> str:
    """`value` with `digits` decimals; None or NaN -> '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


STATUS_STYLE = {"done": "green", "failed": "red", "diverged": "red", "running": "yellow", "pending": "dim"}


def _variants(runs: pd.DataFrame) -> list[str]:
    """The compression variants the frame has delta_<variant> columns for, in `variants_in` order.
    Importing sweep.laws loads scipy (about a second), so a frame without such columns does not."""
    if not any(str(column).startswith(DELTA_PREFIX) for column in runs.columns):
        return []
    from sweep.laws.degradation import variants_in

    return variants_in(runs)


def runs_table(runs: pd.DataFrame) -> Table:
    """`sweep ls`: one row per run, and δ (loss after compression − loss) per compression variant."""
    table = Table(title=f"{len(runs)} runs", title_justify="left")
    variants = _variants(runs)
    for name in (
        "run_id",
        "sweep",
        "status",
        "n_layers",
        "d_model",
        "params",
        "params_total",
        "tokens",
        "flops",
        "loss",
        "bpb",
        "wall_s",
        "tok/s",
        "attempts",
        *(f"δ {variant}" for variant in variants),
    ):
        table.add_column(name, justify="left" if name in ("run_id", "sweep", "status") else "right")
    deltas = [runs[DELTA_PREFIX + variant].to_numpy() for variant in variants]  # each (runs,)
    for run, *delta in zip(runs.itertuples(), *deltas):
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(
            run.run_id,
            run.sweep,
            f"[{style}]{run.status}[/]" if style else run.status,
            str(run.n_layers),
            str(run.d_model),
            human(run.params),
            human(run.params_total),
            human(run.tokens),
            human(run.flops),
            fixed(run.loss, 4),
            fixed(run.bpb, 3),
            fixed(run.wall_s, 1),
            human(run.tokens_per_s),
            str(run.attempts),
            *(fixed(value, 4) for value in delta),
        )
    return table


def plan_table(plan: pd.DataFrame, processes: int, trunk_s: float = 0.0) -> Table:
    """`sweep run --dry-run`: the expanded grid with its estimated cost, `processes` runs at a time.
    A wsd run's `est_s` is its cooldown; `trunk_s` is the trunks' time, shared by their branches."""
    todo = plan[plan["status"] != "done"]
    total_s = todo["est_s"].sum() + trunk_s
    trunks = f", trunks {trunk_s / processes / 60:.1f} min of it" if trunk_s else ""
    table = Table(
        title=f"{len(plan)} runs, {len(todo)} to train, estimated {total_s / processes / 60:.1f} min "
        f"({processes} at a time{trunks})",
        title_justify="left",
    )
    for name in ("run_id", "shape", "params", "params_total", "tokens", "seed", "lr", "flops", "status", "est"):
        table.add_column(name, justify="left" if name in ("run_id", "shape", "status") else "right")
    for run in plan.itertuples():
        table.add_row(
            run.run_id,
            run.shape,
            human(run.params),
            human(run.params_total),
            human(run.tokens),
            str(run.seed),
            f"{run.lr:.3g}",
            human(run.flops),
            run.status,
            f"{run.est_s:.0f} s",
        )
    return table


def bench_table(result: dict) -> Table:
    """`sweep bench`: one row per ladder size; the pool columns when several workers were measured."""
    peak = result["peak_flops"]
    peaks = ", ".join(f"{name} {human(value)}FLOP/s" for name, value in peak.items() if value)
    overhead = result["overhead_s"]
    workers = result.get("workers", 1)
    cpu = result.get("cpu") or {}
    machine = (
        f"cpu: {cpu.get('model', '?')} ({', '.join(cpu.get('isa', [])) or 'no wide ISA'})"
        if result["device"] == "cpu"
        else result["device"]
    )
    taken = "; ".join(f"{name}: {value}" for name, value in (result.get("choices") or {}).items())
    table = Table(
        title=f"{machine}; measured matmul peak: {peaks}\nchoices: {taken}\n"
        f"one process: {result['threads']} threads"
        + (f"; pool: {workers} single-thread workers at once, as sweep run trains a sweep" if workers > 1 else "")
        + "\n"
        f"a fresh worker's first run: {overhead['per_run_s']:.2f} s before training (process start "
        f"{overhead['process_start_s']:.2f} s, model build {overhead['model_build_s']:.3f} s), corpus load "
        f"{overhead['corpus_load_s']:.2f} s once per worker; each later run in the worker: "
        f"{overhead['in_worker_per_run_s']:.3f} s besides its steps",
        title_justify="left",
    )
    pooled = workers > 1
    compiled = any(row.get("compiled") for row in result["sizes"])
    columns = ["shape", "params", "dtype", "tokens/s", "FLOP/s", "MFU", "batch", "fwd+bwd", "optimizer"]
    columns += ["compile (s)"] if compiled else []
    columns += ["pool tokens/s", "pool MFU"] if pooled else []
    columns += ["reference tokens/s", "speed-up"] + (["pool speed-up"] if pooled else [])
    columns += ["bf16 reference tokens/s", "speed-up over it"] + (["pool, over it"] if pooled else [])
    for name in columns:
        table.add_column(name, justify="left" if name in ("shape", "dtype") else "right")
    for row in result["sizes"]:
        step = row["step_s"]
        total = sum(step.values())
        pool = row.get("pool")

        def speed_up(tokens_per_s: float, reference: float | None) -> str:
            return f"{tokens_per_s / reference:.2f}x" if reference else "-"

        cells = [
            row["shape"],
            human(row["params"]),
            row["dtype"],
            f"{row['tokens_per_s']:,.0f}",
            human(row["flops_per_s"]),
            f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "-",
            f"{100 * step['batch'] / total:.1f}%",
            f"{100 * step['forward_backward'] / total:.1f}%",
            f"{100 * step['optimizer'] / total:.1f}%",
        ]
        if compiled:
            cells.append(f"{row['compile_s']:.1f}" if row.get("compiled") else "-")
        if pooled:
            cells += [f"{pool['tokens_per_s']:,.0f}", f"{100 * pool['mfu']:.1f}%"]
        for reference in (row.get("reference_tokens_per_s"), row.get("reference_bf16_tokens_per_s")):
            cells += [f"{reference:,.0f}" if reference else "-", speed_up(row["tokens_per_s"], reference)]
            if pooled:
                cells.append(speed_up(pool["tokens_per_s"], reference))
        table.add_row(*cells)
    return table


def flops_summary(specs) -> str:
    """The sweep's FLOPs as trained (wsd branches share their trunk) and as separate runs."""
    from sweep.config.trunks import spent_flops

    spent, separate = spent_flops(specs)
    return (
        f"FLOPs (6ND): {human(spent)} as trained, {human(separate)} as separate runs of the same grid "
        f"({spent / separate:.2f}x)"
    )
