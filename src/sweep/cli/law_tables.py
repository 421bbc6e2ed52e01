"""The tables of `sweep fit` and `sweep predict`, built from the laws' JSON (`FitReport.to_json()`,
a prediction's `to_json()`): returned to the CLI, never printed here."""

from __future__ import annotations

from rich.table import Table

from sweep.cli.tables import human


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
    table = Table(
        title=title, title_justify="left", caption=_why(laws["skipped"].get(f"{form}.ci")), caption_justify="left"
    )
    for name in ("parameter", "value", "95% interval"):
        table.add_column(name, justify="left" if name == "parameter" else "right")
    for name in (*FORM_PARAMETERS[form], "a", "b", "G"):
        table.add_row(name, _value(law.get(name)), _interval(law.get("ci"), name))
    return table


def fit_tables(laws: dict, rollout_details: bool = False) -> list[Table]:
    """`sweep fit`: the laws from `FitReport.to_json()`, one table per family, with 95% intervals;
    `rollout_details` adds every rollout prediction."""
    conventions = laws["conventions"]
    chinchilla, chosen = laws["chinchilla"], laws["law"]
    bootstrap = (
        f"{chinchilla['n_bootstrap']} parametric-bootstrap refits" if chinchilla["n_bootstrap"] else "no bootstrap"
    )
    tables = [
        _law_table(
            laws,
            "chinchilla",
            f"L(N, D) = E + A/N^alpha + B/D^beta  ({laws['n_points']} points from {laws['n_runs']} runs; "
            f"N = {conventions['params']} params, C from {conventions['flops']}; {bootstrap})",
        ),
        _forms_table(laws),
    ]
    if chosen["form"] != "chinchilla":
        tables.append(_law_table(laws, chosen["form"], f"the law predictions use: L(N, D) = {chosen['formula']}"))
    if rollout_details and laws.get("rollout"):
        tables.append(_rollout_table(laws["rollout"]))
    tables += [_power_law_table(laws), _allocation_table(laws)]
    if laws.get("predictions"):
        tables.append(_predictions_table(laws["predictions"], chosen["form"]))
    if laws.get("degradation"):
        tables.append(_degradation_table(laws["degradation"], conventions))
    if laws.get("cost"):
        tables.append(_cost_table(laws["cost"]))
    if laws.get("holdout"):
        tables.append(_holdout_table(laws["holdout"], chosen["form"]))
    return tables


def _power_law_table(laws: dict) -> Table:
    power_laws = laws["power_laws"]
    table = Table(
        title="power laws L(X) = E + A·X^-alpha",
        title_justify="left",
        caption_justify="left",
        caption=_why(*(laws["skipped"].get(f"power_laws.{variable}.ci") for variable in power_laws)),
    )
    for name in ("X", "E", "A", "alpha", "alpha 95%", "points"):
        table.add_column(name, justify="left" if name == "X" else "right")
    for variable, fit in power_laws.items():
        if fit is not None:
            table.add_row(
                variable,
                _value(fit["E"]),
                _value(fit["A"]),
                _value(fit["alpha"]),
                _interval(fit.get("ci"), "alpha"),
                str(fit["n_points"]),
            )
    return table


def _allocation_table(laws: dict) -> Table:
    chinchilla, chosen = laws["chinchilla"], laws["law"]
    table = Table(title="compute-optimal allocation N_opt ∝ C^a, D_opt ∝ C^b", title_justify="left")
    for name in ("method", "a", "b"):
        table.add_column(name, justify="left" if name == "method" else "right")
    table.add_row("parametric (from L(N, D))", _value(chinchilla.get("a")), _value(chinchilla.get("b")))
    if chosen["form"] != "chinchilla":
        law = laws[chosen["form"]]
        table.add_row(
            f"parametric ({chosen['form']}, used for predictions)", _value(law.get("a")), _value(law.get("b"))
        )
    for key, label in (("approach1", "approach 1 (lowest loss per C)"), ("isoflop", "approach 2 (IsoFLOP parabolas)")):
        fit = laws.get(key)
        table.add_row(label, _value(fit and fit["a"]), _value(fit and fit["b"]))
    return table


def _predictions_table(predictions: list[dict], form: str) -> Table:
    table = Table(
        title=f"compute-optimal models from the {form} law (95% intervals)",
        title_justify="left",
        caption=_why(*(p["loss"]["why"] for p in predictions)),
        caption_justify="left",
    )
    for name in ("C (FLOPs)", "N_opt", "D_opt", "D/N", "loss", "95% prediction", "law's own 95%"):
        table.add_column(name, justify="right")
    for p in predictions:
        table.add_row(
            human(p["flops"]),
            _estimate(p["params"], human),
            _estimate(p["tokens"], human),
            _estimate(p["tokens_per_param"], lambda v: f"{v:.3g}"),
            _value(p["loss"]["value"]),
            _pair(p["loss"]["interval"], _loss),
            _pair(p["loss"]["ci"], _loss),
        )
    return table


def _cost_table(cost: dict) -> Table:
    table = Table(title="cost laws resource = C0·S^n", title_justify="left")
    for name in ("resource", "S", "C0", "n", "points"):
        table.add_column(name, justify="left" if name in ("resource", "S") else "right")
    for resource, by_scale in cost.items():
        for scale, fit in (by_scale or {}).items():
            table.add_row(resource, scale, _value(fit.get("C0")), _value(fit.get("n")), str(fit.get("n_points")))
    return table


def _holdout_table(holdout: list[dict], form: str) -> Table:
    table = Table(
        title=f"held-out runs: predicted by the {form} law fit without them",
        title_justify="left",
        caption=_why(*(point["why"] for point in holdout)),
        caption_justify="left",
    )
    for name in (
        "params",
        "tokens",
        "flops",
        "loss",
        "predicted",
        "error",
        "95% prediction",
        "inside",
        "law's own 95%",
    ):
        table.add_column(name, justify="right")
    for point in holdout:
        interval = point["interval"]
        inside = "-" if interval is None else ("yes" if interval[0] <= point["loss"] <= interval[1] else "NO")
        table.add_row(
            human(point["params"]),
            human(point["tokens"]),
            human(point["flops"]),
            _loss(point["loss"]),
            _loss(point["predicted_loss"]),
            _percent(point["relative_error"]),
            _pair(interval, _loss),
            inside,
            _pair(point["ci"], _loss),
        )
    return table


def _degradation_table(entries: dict, conventions: dict) -> Table:
    """One row per compression variant: its law δ = C·D^γ_D/N^γ_N with 95% intervals, or why it has none."""
    notes = [
        "δ <= 0 (the compression cost less than the evaluation's noise) has no log: left out of the fit, and counted"
    ]
    notes += [f"no law for {variant}: {entry['why']}" for variant, entry in entries.items() if "C" not in entry]
    notes += [
        f"no interval (-) for {variant}: {entry['why']}"
        for variant, entry in entries.items()
        if "C" in entry and entry["why"]
    ]
    table = Table(
        title=f"post-training degradation δ = C·D^γ_D/N^γ_N, one law per variant "
        f"(N = {conventions['params']} params; 95% intervals)",
        title_justify="left",
        caption="\n".join(notes),
        caption_justify="left",
    )
    for name in (
        "variant",
        "C",
        "C 95%",
        "γ_D",
        "γ_D 95%",
        "γ_N",
        "γ_N 95%",
        "log rms",
        "points",
        "δ <= 0",
        "unmeasured",
        "trend",
    ):
        table.add_column(name, justify="left" if name in ("variant", "trend") else "right")
    for variant, entry in entries.items():
        if "C" not in entry:
            table.add_row(f"{variant} ({entry['what']})", *["-"] * 10, "no law (see below)")
            continue
        ci = entry["ci"]
        table.add_row(
            f"{variant} ({entry['what']})",
            _value(entry["C"]),
            _interval(ci, "C"),
            _value(entry["gamma_D"]),
            _interval(ci, "gamma_D"),
            _value(entry["gamma_N"]),
            _interval(ci, "gamma_N"),
            f"{entry['residual_rms']:.3g}",
            str(entry["n_points"]),
            str(entry["n_left_out"]),
            str(entry["n_unmeasured"]),
            entry["trend"],
        )
    return table


def _forms_table(laws: dict) -> Table:
    """Every joint form with its rollout error: how well, fit on cheaper runs, it predicted the next."""
    chosen, rollout = laws["law"], laws.get("rollout")
    how = {"rollout": "the lowest rollout error", "--form": "--form", "default": "the default (no rollout check)"}
    if rollout:
        caption = (
            f"rollout: {rollout['n_folds']} folds, each fit on all points below a compute level (at least "
            f"{rollout['min_fitted']}) and predicting that level; |error| by extrapolation factor C / largest C "
            f"fit; the last fold reaches {rollout['last_fold_extrapolation']:.2g}x"
        )
    else:
        caption = f"no rollout check: {laws['skipped'].get('rollout', 'not asked for (sweep fit --rollout)')}"
    table = Table(
        title=f"joint laws L(N, D); predictions use {chosen['form']}, chosen by {how[chosen['chosen_by']]}",
        title_justify="left",
        caption=caption,
        caption_justify="left",
    )
    columns = (
        "form",
        "L(N, D)",
        "parameters",
        "Huber objective",
        "rollout mean |error|",
        "<=2x",
        "2-4x",
        ">4x",
        "last fold",
    )
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
            errors = [
                _unsigned_percent(scores["mean_abs_error"]),
                *(_unsigned_percent(by_factor[label]) for label in ("<=2", "2-4", ">4")),
                _percent(scores["last_fold_error"]),
            ]
        name = f"{form} (used)" if form == chosen["form"] else form
        table.add_row(name, law["formula"], str(law["n_parameters"]), f"{law['huber_objective']:.3g}", *errors)
    return table


def _unsigned_percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _rollout_table(rollout: dict) -> Table:
    """`sweep fit --rollout`: each prediction of the rollout check, with every form's error."""
    forms = list(rollout["forms"])
    table = Table(
        title="rollout check: each compute level predicted by the laws fit on the levels below it", title_justify="left"
    )
    for name in ("fold", "params", "tokens", "flops", "fit on", "factor", "loss", *(f"{form} error" for form in forms)):
        table.add_column(name, justify="right")
    for p in rollout["predictions"]:
        table.add_row(
            str(p["fold"]),
            human(p["params"]),
            human(p["tokens"]),
            human(p["flops"]),
            str(p["n_fitted"]),
            f"{p['extrapolation']:.2f}x",
            _loss(p["loss"]),
            *(_percent(p["relative_error"][form]) for form in forms),
        )
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
    table = Table(
        show_header=False,
        caption=_why(loss["why"]),
        caption_justify="left",
        title=f"from the {form} law",
        title_justify="left",
    )
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
