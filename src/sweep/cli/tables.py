"""Tables built from run DataFrames: returned to the CLI, never printed here."""

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


def _fixed(value, digits: int) -> str:
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
    for name in ("run_id", "sweep", "status", "n_layers", "d_model", "params", "params_total", "tokens",
                 "flops", "loss", "bpb", "wall_s", "tok/s", "attempts", *(f"δ {variant}" for variant in variants)):
        table.add_column(name, justify="left" if name in ("run_id", "sweep", "status") else "right")
    deltas = [runs[DELTA_PREFIX + variant].to_numpy() for variant in variants]  # each (runs,)
    for run, *delta in zip(runs.itertuples(), *deltas):
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(
            run.run_id, run.sweep, f"[{style}]{run.status}[/]" if style else run.status,
            str(run.n_layers), str(run.d_model), human(run.params), human(run.params_total), human(run.tokens),
            human(run.flops), _fixed(run.loss, 4), _fixed(run.bpb, 3), _fixed(run.wall_s, 1),
            human(run.tokens_per_s), str(run.attempts), *(_fixed(value, 4) for value in delta),
        )
    return table


def plan_table(plan: pd.DataFrame, processes: int, trunk_s: float = 0.0) -> Table:
    """`sweep run --dry-run`: the expanded grid with its estimated cost, `processes` runs at a time.
    A wsd run's `est_s` is its cooldown; `trunk_s` is the trunks' time, shared by their branches."""
    todo = plan[plan["status"] != "done"]
    total_s = todo["est_s"].sum() + trunk_s
    trunks = f", trunks {trunk_s / processes / 60:.1f} min of it" if trunk_s else ""
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


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:+.2f}%"


def _pair(pair, fmt) -> str:
    return "-" if pair is None or None in pair else f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def _loss(value) -> str:
    return f"{value:.4f}"


def _why(*reasons) -> str | None:
    """A table caption naming why intervals are missing ("-"), or None when none are."""
    shown = list(dict.fromkeys(reason for reason in reasons if reason))
    return "\n".join(f"no interval (-): {reason}" for reason in shown) or None


# Parameters of each joint form in the order its table shows them; a, b, G: the allocation it implies.
FORM_PARAMETERS = {
    "chinchilla": ("E", "A", "alpha", "B", "beta"),
    "chinchilla_e0": ("A", "alpha", "B", "beta"),
    "kaplan": ("N_c", "alpha_N", "D_c", "alpha_D"),
}


def _law_table(laws: dict, form: str, title: str) -> Table:
    law = laws[form]
    table = Table(title=title, title_justify="left", caption=_why(laws["skipped"].get(f"{form}.ci")),
                  caption_justify="left")
    for name in ("parameter", "value", "95% interval"):
        table.add_column(name, justify="left" if name == "parameter" else "right")
    for name in (*FORM_PARAMETERS[form], "a", "b", "G"):
        table.add_row(name, _value(law.get(name)), _interval(law.get("ci"), name))
    return table


def fit_tables(laws: dict, rollout_details: bool = False) -> list[Table]:
    """`sweep fit`: the laws from `FitReport.to_json()`, one table per family, with 95% intervals;
    `rollout_details` adds every rollout prediction."""
    tables = []
    conventions = laws["conventions"]
    chinchilla, chosen = laws["chinchilla"], laws["law"]
    bootstrap = f"{chinchilla['n_bootstrap']} parametric-bootstrap refits" if chinchilla["n_bootstrap"] else "no bootstrap"
    tables.append(_law_table(laws, "chinchilla",
                             f"L(N, D) = E + A/N^alpha + B/D^beta  ({laws['n_points']} points from {laws['n_runs']} runs; "
                             f"N = {conventions['params']} params, C from {conventions['flops']}; {bootstrap})"))
    tables.append(_forms_table(laws))
    if chosen["form"] != "chinchilla":
        tables.append(_law_table(laws, chosen["form"], f"the law predictions use: L(N, D) = {chosen['formula']}"))
    if rollout_details and laws.get("rollout"):
        tables.append(_rollout_table(laws["rollout"]))

    power_laws = laws["power_laws"]
    table = Table(title="power laws L(X) = E + A·X^-alpha", title_justify="left", caption_justify="left",
                  caption=_why(*(laws["skipped"].get(f"power_laws.{variable}.ci") for variable in power_laws)))
    for name in ("X", "E", "A", "alpha", "alpha 95%", "points"):
        table.add_column(name, justify="left" if name == "X" else "right")
    for variable, fit in power_laws.items():
        if fit is not None:
            table.add_row(variable, _value(fit["E"]), _value(fit["A"]), _value(fit["alpha"]),
                          _interval(fit.get("ci"), "alpha"), str(fit["n_points"]))
    tables.append(table)

    table = Table(title="compute-optimal allocation N_opt ∝ C^a, D_opt ∝ C^b", title_justify="left")
    for name in ("method", "a", "b"):
        table.add_column(name, justify="left" if name == "method" else "right")
    table.add_row("parametric (from L(N, D))", _value(chinchilla.get("a")), _value(chinchilla.get("b")))
    if chosen["form"] != "chinchilla":
        law = laws[chosen["form"]]
        table.add_row(f"parametric ({chosen['form']}, used for predictions)", _value(law.get("a")), _value(law.get("b")))
    for key, label in (("approach1", "approach 1 (lowest loss per C)"), ("isoflop", "approach 2 (IsoFLOP parabolas)")):
        fit = laws.get(key)
        table.add_row(label, _value(fit and fit["a"]), _value(fit and fit["b"]))
    tables.append(table)

    if laws.get("predictions"):
        predictions = laws["predictions"]
        table = Table(title=f"compute-optimal models from the {chosen['form']} law (95% intervals)", title_justify="left",
                      caption=_why(*(p["loss"]["why"] for p in predictions)), caption_justify="left")
        for name in ("C (FLOPs)", "N_opt", "D_opt", "D/N", "loss", "95% prediction", "law's own 95%"):
            table.add_column(name, justify="right")
        for p in predictions:
            table.add_row(human(p["flops"]), _estimate(p["params"], human), _estimate(p["tokens"], human),
                          _estimate(p["tokens_per_param"], lambda v: f"{v:.3g}"), _value(p["loss"]["value"]),
                          _pair(p["loss"]["interval"], _loss), _pair(p["loss"]["ci"], _loss))
        tables.append(table)

    if laws.get("degradation"):
        tables.append(_degradation_table(laws["degradation"], conventions))

    if laws.get("cost"):
        table = Table(title="cost laws resource = C0·S^n", title_justify="left")
        for name in ("resource", "S", "C0", "n", "points"):
            table.add_column(name, justify="left" if name in ("resource", "S") else "right")
        for resource, by_scale in laws["cost"].items():
            for scale, fit in (by_scale or {}).items():
                table.add_row(resource, scale, _value(fit.get("C0")), _value(fit.get("n")), str(fit.get("n_points")))
        tables.append(table)

    if laws.get("holdout"):
        holdout = laws["holdout"]
        table = Table(title=f"held-out runs: predicted by the {chosen['form']} law fit without them", title_justify="left",
                      caption=_why(*(point["why"] for point in holdout)), caption_justify="left")
        for name in ("params", "tokens", "flops", "loss", "predicted", "error", "95% prediction", "inside",
                     "law's own 95%"):
            table.add_column(name, justify="right")
        for point in holdout:
            interval = point["interval"]
            inside = "-" if interval is None else ("yes" if interval[0] <= point["loss"] <= interval[1] else "NO")
            table.add_row(human(point["params"]), human(point["tokens"]), human(point["flops"]), _loss(point["loss"]),
                          _loss(point["predicted_loss"]), _percent(point["relative_error"]), _pair(interval, _loss),
                          inside, _pair(point["ci"], _loss))
        tables.append(table)
    return tables


def _degradation_table(entries: dict, conventions: dict) -> Table:
    """One row per compression variant: its law δ = C·D^γ_D/N^γ_N with 95% intervals, or why it has none."""
    notes = ["δ <= 0 (the compression cost less than the evaluation's noise) has no log: left out of the fit, "
             "and counted"]
    notes += [f"no law for {variant}: {entry['why']}" for variant, entry in entries.items() if "C" not in entry]
    notes += [f"no interval (-) for {variant}: {entry['why']}" for variant, entry in entries.items()
              if "C" in entry and entry["why"]]
    table = Table(title=f"post-training degradation δ = C·D^γ_D/N^γ_N, one law per variant "
                        f"(N = {conventions['params']} params; 95% intervals)",
                  title_justify="left", caption="\n".join(notes), caption_justify="left")
    for name in ("variant", "C", "C 95%", "γ_D", "γ_D 95%", "γ_N", "γ_N 95%", "log rms", "points", "δ <= 0",
                 "unmeasured", "trend"):
        table.add_column(name, justify="left" if name in ("variant", "trend") else "right")
    for variant, entry in entries.items():
        if "C" not in entry:
            table.add_row(f"{variant} ({entry['what']})", *["-"] * 10, "no law (see below)")
            continue
        ci = entry["ci"]
        table.add_row(f"{variant} ({entry['what']})", _value(entry["C"]), _interval(ci, "C"),
                      _value(entry["gamma_D"]), _interval(ci, "gamma_D"), _value(entry["gamma_N"]),
                      _interval(ci, "gamma_N"), f"{entry['residual_rms']:.3g}", str(entry["n_points"]),
                      str(entry["n_left_out"]), str(entry["n_unmeasured"]), entry["trend"])
    return table


def compression_tables(section: dict) -> list[Table]:
    """`sweep fit`'s compression section (`coding.compression_section`): per sweep, the best
    prequential code against classical compressors on the same bytes; then the description-length
    frontier, for each D the N whose two-part code is shortest."""
    tables = []
    for coded in section["tables"]:
        if coded.get("rows") is None:
            tables.append(Table(title=f"bits per byte: no compressor table ({coded['why']})", title_justify="left"))
            continue
        table = Table(title=f"sweep {coded['sweep']}: bits per byte on the {human(coded['tokens'])} training bytes "
                            f"{coded['run_id']} coded (its prequential code, the lowest bpb)", title_justify="left")
        for name in ("code", "bits/byte", "note"):
            table.add_column(name, justify="right" if name == "bits/byte" else "left")
        for row in coded["rows"]:
            table.add_row(row["code"], _fixed(row["bpb"], 3), row["note"] or "")
        tables.append(table)
    bits = section["bits_per_param"]
    table = Table(title=f"description length per D: data coded by the final model (loss × D) + the model at {bits:g} "
                        "bits per parameter (all of them); the N with the shortest total", title_justify="left",
                  caption="prequential: each batch coded before training on it, no model sent (runs in epoch "
                          "order); runner-up: the next shortest N at that D", caption_justify="left")
    for name in ("D", "N", "N total", "data bits", "model bits", "total bits/byte", "prequential bits/byte",
                 "runner-up N", "margin bits"):
        table.add_column(name, justify="right")
    for row in section["frontier"]:
        table.add_row(human(row["tokens"]), human(row["params"]), human(row["params_total"]), human(row["data_bits"]),
                      human(row["model_bits"]), _fixed(row["total_bpb"], 3), _fixed(row["prequential_bpb"], 3),
                      human(row["runner_up_params"]), human(row["margin_bits"]))
    tables.append(table)
    return tables


def _forms_table(laws: dict) -> Table:
    """Every joint form with its rollout error: how well, fit on cheaper runs, it predicted the next."""
    chosen, rollout = laws["law"], laws.get("rollout")
    how = {"rollout": "the lowest rollout error", "--form": "--form", "default": "the default (no rollout check)"}
    if rollout:
        caption = (f"rollout: {rollout['n_folds']} folds, each fit on all points below a compute level (at least "
                   f"{rollout['min_fitted']}) and predicting that level; |error| by extrapolation factor C / largest C "
                   f"fit; the last fold reaches {rollout['last_fold_extrapolation']:.2g}x")
    else:
        caption = f"no rollout check: {laws['skipped'].get('rollout', 'not asked for (sweep fit --rollout)')}"
    table = Table(title=f"joint laws L(N, D); predictions use {chosen['form']}, chosen by {how[chosen['chosen_by']]}",
                  title_justify="left", caption=caption, caption_justify="left")
    columns = ("form", "L(N, D)", "parameters", "Huber objective", "rollout mean |error|", "<=2x", "2-4x", ">4x",
               "last fold")
    for name in columns:
        table.add_column(name, justify="left" if name in ("form", "L(N, D)") else "right")
    for form in FORM_PARAMETERS:
        law = laws.get(form)
        if law is None:
            continue
        scores = (rollout or {}).get("forms", {}).get(form)
        errors = ["-"] * 5
        if scores:
            by_factor = scores["median_abs_error_by_factor"]
            errors = [_unsigned_percent(scores["mean_abs_error"]),
                      *(_unsigned_percent(by_factor[label]) for label in ("<=2", "2-4", ">4")),
                      _percent(scores["last_fold_error"])]
        name = f"{form} (used)" if form == chosen["form"] else form
        table.add_row(name, law["formula"], str(law["n_parameters"]), f"{law['huber_objective']:.3g}", *errors)
    return table


def _unsigned_percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _rollout_table(rollout: dict) -> Table:
    """`sweep fit --rollout`: each prediction of the rollout check, with every form's error."""
    forms = list(rollout["forms"])
    table = Table(title="rollout check: each compute level predicted by the laws fit on the levels below it",
                  title_justify="left")
    for name in ("fold", "params", "tokens", "flops", "fit on", "factor", "loss", *(f"{form} error" for form in forms)):
        table.add_column(name, justify="right")
    for p in rollout["predictions"]:
        table.add_row(str(p["fold"]), human(p["params"]), human(p["tokens"]), human(p["flops"]), str(p["n_fitted"]),
                      f"{p['extrapolation']:.2f}x", _loss(p["loss"]), *(_percent(p["relative_error"][form]) for form in forms))
    return table


def _estimate(estimate: dict, fmt) -> str:
    """value [95% ci], the value alone without an interval."""
    if estimate.get("value") is None:
        return "-"
    if estimate.get("ci") is None or None in estimate["ci"]:
        return fmt(estimate["value"])
    return f"{fmt(estimate['value'])} [{fmt(estimate['ci'][0])}, {fmt(estimate['ci'][1])}]"


def prediction_table(prediction: dict, shape_name: str | None, form: str) -> Table:
    """`sweep predict`: one budget's answer from the `form` law."""
    loss = prediction["loss"]
    table = Table(show_header=False, caption=_why(loss["why"]), caption_justify="left",
                  title=f"from the {form} law", title_justify="left")
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
    table.add_row("predicted loss", _value(loss["value"]))
    table.add_row("  95% prediction interval (a run's loss)", _pair(loss["interval"], _loss))
    table.add_row("  95% interval of the law alone", _pair(loss["ci"], _loss))
    if "degradation" in prediction:
        compressed = prediction["degradation"]
        delta, variant = compressed["delta"], compressed["variant"]
        table.add_row(f"δ after {compressed['what']} ({variant})", _value(delta["value"]))
        table.add_row("  95% prediction interval (a run's δ)", _pair(delta["interval"], _loss))
        table.add_row("  95% interval of the law alone", _pair(delta["ci"], _loss))
        table.add_row(f"predicted loss after {variant} (loss + δ)", _value(compressed["loss_after"]))
        if delta["why"]:
            table.caption = "\n".join(filter(None, [table.caption, f"no interval (-) for δ: {delta['why']}"]))
    if shape_name:
        table.add_row("a shape with N_opt", shape_name)
    return table


def bench_table(result: dict) -> Table:
    """`sweep bench`: one row per ladder size; the pool columns when several workers were measured."""
    peak = result["peak_flops"]
    peaks = ", ".join(f"{name} {human(value)}FLOP/s" for name, value in peak.items() if value)
    overhead = result["overhead_s"]
    workers = result.get("workers", 1)
    cpu = result.get("cpu") or {}
    machine = (f"cpu: {cpu.get('model', '?')} ({', '.join(cpu.get('isa', [])) or 'no wide ISA'})"
               if result["device"] == "cpu" else result["device"])
    taken = "; ".join(f"{name}: {value}" for name, value in (result.get("choices") or {}).items())
    table = Table(title=f"{machine}; measured matmul peak: {peaks}\nchoices: {taken}\n"
                        f"one process: {result['threads']} threads"
                        + (f"; pool: {workers} single-thread workers at once, as sweep run trains a sweep"
                           if workers > 1 else "") + "\n"
                        f"a fresh worker's first run: {overhead['per_run_s']:.2f} s before training (process start "
                        f"{overhead['process_start_s']:.2f} s, model build {overhead['model_build_s']:.3f} s), corpus load "
                        f"{overhead['corpus_load_s']:.2f} s once per worker; each later run in the worker: "
                        f"{overhead['in_worker_per_run_s']:.3f} s besides its steps", title_justify="left")
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

        cells = [row["shape"], human(row["params"]), row["dtype"], f"{row['tokens_per_s']:,.0f}",
                 human(row["flops_per_s"]), f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "-",
                 f"{100 * step['batch'] / total:.1f}%", f"{100 * step['forward_backward'] / total:.1f}%",
                 f"{100 * step['optimizer'] / total:.1f}%"]
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
