"""Tables built from run DataFrames: returned to the CLI, never printed here."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table


def human(value: float, digits: int = 3) -> str:
    """1234567 -> '1.23M'; NaN -> '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(f"{value:.{digits}g}")  # round first, so 999.9e9 shows as 1T, not 1e+03G
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


def plan_table(plan: pd.DataFrame, processes: int, trunk_s: float = 0.0) -> Table:
    """`sweep run --dry-run`: the expanded grid with its estimated cost, `processes` runs at a time.
    A wsd run's `est_s` is its cooldown; `trunk_s` is the trunks' time, shared by their branches."""
    todo = plan[plan["status"] != "done"]
    total_s = todo["est_s"].sum() + trunk_s
    trunks = f", trunks {trunk_s / 60:.1f} min of it" if trunk_s else ""
    table = Table(title=f"{len(plan)} runs, {len(todo)} to train, estimated {total_s / processes / 60:.1f} min "
                        f"({processes} at a time{trunks})", title_justify="left")
    for name in ("run_id", "shape", "params", "params_total", "tokens", "seed", "lr", "flops", "status", "est"):
        table.add_column(name, justify="left" if name in ("run_id", "shape", "status") else "right")
    for run in plan.itertuples():
        table.add_row(run.run_id, run.shape, human(run.params), human(run.params_total), human(run.tokens),
                      str(run.seed), f"{run.lr:.3g}", human(run.flops), run.status, f"{run.est_s:.0f} s")
    return table


def _interval(ci: dict | None, name: str) -> str:
    if not ci or ci.get(name) is None or None in ci[name]:
        return "-"
    low, high = ci[name]
    return f"[{low:.4g}, {high:.4g}]"


def _value(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def fit_tables(laws: dict) -> list[Table]:
    """`sweep fit`: the laws from `FitReport.to_json()`, one table per family, with 95% intervals."""
    tables = []
    conventions = laws["conventions"]
    chinchilla = laws["chinchilla"]
    table = Table(title=f"L(N, D) = E + A/N^alpha + B/D^beta  ({laws['n_points']} points from {laws['n_runs']} runs; "
                        f"N = {conventions['params']} params, C from {conventions['flops']}; "
                        f"{chinchilla['n_bootstrap']} bootstrap refits)", title_justify="left")
    for name in ("parameter", "value", "95% interval"):
        table.add_column(name, justify="left" if name == "parameter" else "right")
    for name in ("E", "A", "alpha", "B", "beta", "a", "b", "G"):
        table.add_row(name, _value(chinchilla.get(name)), _interval(chinchilla.get("ci"), name))
    tables.append(table)

    table = Table(title="power laws L(X) = E + A·X^-alpha", title_justify="left")
    for name in ("X", "E", "A", "alpha", "alpha 95%", "points"):
        table.add_column(name, justify="left" if name == "X" else "right")
    for variable, fit in laws["power_laws"].items():
        if fit is not None:
            table.add_row(variable, _value(fit["E"]), _value(fit["A"]), _value(fit["alpha"]),
                          _interval(fit.get("ci"), "alpha"), str(fit["n_points"]))
    tables.append(table)

    table = Table(title="compute-optimal allocation N_opt ∝ C^a, D_opt ∝ C^b", title_justify="left")
    for name in ("method", "a", "b"):
        table.add_column(name, justify="left" if name == "method" else "right")
    table.add_row("parametric (from L(N, D))", _value(chinchilla.get("a")), _value(chinchilla.get("b")))
    for key, label in (("approach1", "approach 1 (lowest loss per C)"), ("isoflop", "approach 2 (IsoFLOP parabolas)")):
        fit = laws.get(key)
        table.add_row(label, _value(fit and fit["a"]), _value(fit and fit["b"]))
    tables.append(table)

    if laws.get("predictions"):
        table = Table(title="compute-optimal models (95% intervals)", title_justify="left")
        for name in ("C (FLOPs)", "N_opt", "D_opt", "D/N", "loss"):
            table.add_column(name, justify="right")
        for p in laws["predictions"]:
            table.add_row(human(p["flops"]), _estimate(p["params"], human), _estimate(p["tokens"], human),
                          _estimate(p["tokens_per_param"], lambda v: f"{v:.3g}"), _estimate(p["loss"], lambda v: f"{v:.4f}"))
        tables.append(table)

    if laws.get("cost"):
        table = Table(title="cost laws resource = C0·S^n", title_justify="left")
        for name in ("resource", "S", "C0", "n", "points"):
            table.add_column(name, justify="left" if name in ("resource", "S") else "right")
        for resource, by_scale in laws["cost"].items():
            for scale, fit in (by_scale or {}).items():
                table.add_row(resource, scale, _value(fit.get("C0")), _value(fit.get("n")), str(fit.get("n_points")))
        tables.append(table)

    if laws.get("holdout"):
        table = Table(title="held-out runs: predicted by laws fit without them", title_justify="left")
        for name in ("params", "tokens", "flops", "loss", "predicted", "error", "95% interval"):
            table.add_column(name, justify="right")
        for point in laws["holdout"]:
            interval = point.get("interval")
            table.add_row(human(point["params"]), human(point["tokens"]), human(point["flops"]), f"{point['loss']:.4f}",
                          f"{point['predicted_loss']:.4f}", f"{100 * point['relative_error']:+.2f}%",
                          f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "-")
        tables.append(table)
    return tables


def _estimate(estimate: dict, fmt) -> str:
    if estimate.get("value") is None:
        return "-"
    if estimate.get("low") is None or estimate.get("high") is None:
        return fmt(estimate["value"])
    return f"{fmt(estimate['value'])} [{fmt(estimate['low'])}, {fmt(estimate['high'])}]"


def prediction_table(prediction: dict, shape_name: str | None) -> Table:
    """`sweep predict`: one budget's answer."""
    table = Table(show_header=False)
    table.add_column("what")
    table.add_column("value (95% interval)", justify="right")
    if "flops" in prediction:
        table.add_row("compute C (FLOPs)", human(prediction["flops"]))
        table.add_row("N_opt (params)", _estimate(prediction["params"], human))
        table.add_row("D_opt (tokens)", _estimate(prediction["tokens"], human))
        table.add_row("tokens per parameter", _estimate(prediction["tokens_per_param"], lambda v: f"{v:.3g}"))
    else:
        table.add_row("params N", human(prediction["params"]))
        table.add_row("tokens D", human(prediction["tokens"]))
    table.add_row("predicted loss", _estimate(prediction["loss"], lambda v: f"{v:.4f}"))
    if shape_name:
        table.add_row("a shape with N_opt", shape_name)
    return table


def bench_table(result: dict) -> Table:
    """`sweep bench`: one row per ladder size; the pool columns when several workers were measured."""
    peak = result["peak_flops"]
    peaks = ", ".join(f"{name} {human(value)}FLOP/s" for name, value in peak.items() if value)
    overhead = result["overhead_s"]
    workers = result.get("workers", 1)
    table = Table(title=f"{result['device']}; measured matmul peak: {peaks}\n"
                        f"one process: {result['threads']} threads"
                        + (f"; pool: {workers} single-thread workers at once, as sweep run trains a sweep"
                           if workers > 1 else "") + "\n"
                        f"per-run overhead {overhead['per_run_s']:.2f} s (process start {overhead['process_start_s']:.2f} s, "
                        f"model build {overhead['model_build_s']:.3f} s); corpus load {overhead['corpus_load_s']:.2f} s "
                        "once per worker", title_justify="left")
    pooled = workers > 1
    compiled = any(row.get("compiled") for row in result["sizes"])
    columns = ["shape", "params", "dtype", "tokens/s", "FLOP/s", "MFU", "batch", "fwd+bwd", "optimizer"]
    columns += ["compile (s)"] if compiled else []
    columns += ["pool tokens/s", "pool MFU"] if pooled else []
    columns += ["reference tokens/s", "speed-up"] + (["pool speed-up"] if pooled else [])
    for name in columns:
        table.add_column(name, justify="left" if name in ("shape", "dtype") else "right")
    for row in result["sizes"]:
        step = row["step_s"]
        total = sum(step.values())
        reference = row.get("reference_tokens_per_s")
        pool = row.get("pool")

        def speed_up(tokens_per_s: float) -> str:
            return f"{tokens_per_s / reference:.2f}x" if reference else "-"

        cells = [row["shape"], human(row["params"]), row["dtype"], f"{row['tokens_per_s']:,.0f}",
                 human(row["flops_per_s"]), f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "-",
                 f"{100 * step['batch'] / total:.1f}%", f"{100 * step['forward_backward'] / total:.1f}%",
                 f"{100 * step['optimizer'] / total:.1f}%"]
        if compiled:
            cells.append(f"{row['compile_s']:.1f}" if row.get("compiled") else "-")
        if pooled:
            cells += [f"{pool['tokens_per_s']:,.0f}", f"{100 * pool['mfu']:.1f}%"]
        cells += [f"{reference:,.0f}" if reference else "-", speed_up(row["tokens_per_s"])]
        if pooled:
            cells.append(speed_up(pool["tokens_per_s"]))
        table.add_row(*cells)
    return table
