"""`sweep fit` and `sweep predict`: laws fit to a store or a table, and budget questions answered from them.

A laws file fit to a store records the model settings its runs share (`sweep.laws.lawsfile`), so that
`predict` suggests a shape by the sweep's own params rule; what the file does not record, `predict`
takes from the defaults and names in the shape's description.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer

from sweep.cli.app import choice, console, guarded
from sweep.errors import SweepError
from sweep.laws import AGGREGATES, FORM_CHOICES, PARAMS_COLUMNS
from sweep.model.flops import FLOPS_CONVENTIONS

ParamsConvention = choice("ParamsConvention", PARAMS_COLUMNS)
FlopsConvention = choice("FlopsConvention", FLOPS_CONVENTIONS)
Aggregate = choice("Aggregate", AGGREGATES)
LawForm = choice("LawForm", FORM_CHOICES)


@guarded
def fit(
    source: Path = typer.Argument(Path("runs"), help="A run store (or one sweep's directory), or a CSV/Parquet table."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only this sweep of the store."),
    params_convention: ParamsConvention = typer.Option(
        ParamsConvention.non_embedding,
        "--params-convention",
        help="What N counts: non_embedding (Kaplan) or total (Hoffmann).",
    ),
    flops_convention: FlopsConvention = typer.Option(
        FlopsConvention["6n"], "--flops-convention", help="The FLOPs column C comes from (see the README)."
    ),
    aggregate: Aggregate = typer.Option(
        Aggregate.min_of_means,
        "--aggregate",
        help="Runs sharing (N, D): min over learning rates of the mean over seeds, or mean, or min.",
    ),
    bootstrap: int = typer.Option(200, "--bootstrap", min=0, help="Bootstrap refits for the 95% intervals (0 = none)."),
    holdout: int = typer.Option(
        0, "--holdout", min=0, help="Fit without the K highest-compute points and predict them."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    form: LawForm = typer.Option(
        LawForm.auto, "--form", help="The L(N, D) to predict with (auto: the lowest rollout error)."
    ),
    rollout: bool = typer.Option(
        False, "--rollout", help="Show every rollout prediction: each compute level from the levels below it."
    ),
    min_steps: int = typer.Option(
        0,
        "--min-steps",
        min=0,
        help="Leave out runs with fewer optimizer steps (0 = keep all, and warn below sweep.laws.table.MIN_STEPS).",
    ),
    model_bits: float = typer.Option(
        16.0,
        "--model-bits",
        min=0,
        help="Runs in epoch order: the bits per parameter a model costs in the two-part description length.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document to stdout instead of tables."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write laws.json and PNG plots into this directory."),
):
    """Fit scaling laws to a run store or a table: 95% intervals, a rollout check, the best-extrapolating L(N, D);
    laws of post-training degradation where runs have compressed variants; for runs in epoch order, their code
    length against gzip, xz and zstd and the N of the shortest description per D."""
    from sweep.cli.code_tables import compression_tables
    from sweep.cli.law_tables import fit_tables
    from sweep.codelength.section import compression_section, write_frontier_plot
    from sweep.errors import cut
    from sweep.laws import FLOPS_COLUMNS, fit_report, prepare_table, read_table, save_laws
    from sweep.store import load_runs

    if out is not None and out.exists() and not out.is_dir():
        raise SweepError(f"--out: {out} exists and is not a directory")
    runs = load_runs(source) if source.is_dir() else read_table(source)
    if runs.empty:
        raise SweepError(
            f"{cut(str(source), 200)}: the {'store' if source.is_dir() else 'table'} holds no runs; nothing to fit"
        )
    table = prepare_table(
        runs,
        sweep=sweep,
        params_convention=params_convention.value,
        flops_column=FLOPS_COLUMNS[flops_convention.value],
        aggregate=aggregate.value,
        min_steps=min_steps,
    )
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
        model = _shared_model_settings(source, sweep) if source.is_dir() else None
        written = [save_laws(report, out / "laws.json", model), *write_plots(report, out)]
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


def _shared_model_settings(source: Path, sweep: str | None) -> dict:
    """The model settings (`lawsfile.MODEL_SETTINGS`) every run of the store at `source` (of `sweep`,
    if given) shares, as their specs hold them; a setting the runs differ in is left out."""
    from sweep.laws.lawsfile import MODEL_SETTINGS
    from sweep.store import read_spec, walk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # load_runs has warned about each damaged file already
        specs = [
            spec
            for run in walk(source)
            if run.kind == "run" and (spec := read_spec(run)) is not None and (sweep is None or spec.sweep == sweep)
        ]
    # The rule's own dials are in the spec's model section (None in a spec.json from before it was kept);
    # the rest are in the shape the rule picked.
    found = {
        name: {getattr(spec.model, name, None) if name in RULE_DIALS else getattr(spec.shape, name) for spec in specs}
        for name in MODEL_SETTINGS
    }
    return {name: values.pop() for name, values in found.items() if len(values) == 1 and None not in values}


@guarded
def predict(
    laws_file: Path = typer.Argument(..., help="laws.json written by sweep fit --out."),
    flops: Optional[float] = typer.Option(None, "--flops", help="A compute budget C: the compute-optimal N and D."),
    params: Optional[float] = typer.Option(None, "--params", help="With --tokens: the loss of this model size."),
    tokens: Optional[float] = typer.Option(
        None, "--tokens", help="With --params: the loss at this many training tokens."
    ),
    seq_len: Optional[int] = typer.Option(
        None,
        "--seq-len",
        min=8,
        help="Context length for the suggested shape (default: the sweep's, as the laws file records it, else 256).",
    ),
    bits: Optional[int] = typer.Option(
        None,
        "--bits",
        min=1,
        help="With --params and --tokens: also δ, the loss rise after quantising the weights to this many bits.",
    ),
    prune: Optional[float] = typer.Option(
        None,
        "--prune",
        help="With --params and --tokens: also δ after magnitude pruning this share of the weights (0.5 = half).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Answer a budget question from fitted laws: the compute-optimal model for C, or the loss at (N, D),
    from the law `sweep fit` chose, with 95% intervals; with --bits or --prune, also the post-training
    degradation δ at (N, D)."""
    from sweep.cli.law_tables import prediction_table
    from sweep.columns import describe, variant_name
    from sweep.laws import load_degradation, load_laws, predict_compute_optimal, predict_degradation, predict_loss_at
    from sweep.laws.lawsfile import load_model_settings

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
        if laws.params_convention == "non_embedding" and n_opt:
            suggested = _suggested_shape(n_opt, load_model_settings(laws_file), seq_len, laws_file)
            if suggested is not None:
                answer["shape"], shape_name = suggested
    else:
        answer = predict_loss_at(laws, params=params, tokens=tokens).to_json()
    if bits is not None or prune is not None:
        variant = variant_name(bits=bits, prune=prune)
        delta = predict_degradation(load_degradation(laws_file).law_for(variant), params, tokens).to_json()
        loss = answer["loss"]["value"]
        answer["degradation"] = {
            "variant": variant,
            "what": describe(variant),
            "delta": delta,
            "loss_after": None if loss is None or delta["value"] is None else loss + delta["value"],
        }
    answer = {"form": laws.form, **answer}
    if as_json:
        sys.stdout.write(json.dumps(answer, indent=2) + "\n")
    else:
        console.print(prediction_table(answer, shape_name, laws.form))


# The fields of the model section the params rule (`shape_for_params`) reads.
RULE_FIELDS = ("norm", "activation", "positions", "tie_embeddings", "aspect_ratio", "head_dim")
RULE_DIALS = ("aspect_ratio", "head_dim")  # what the rule reads that no shape holds


def _suggested_shape(n_opt: float, recorded: dict, seq_len: int | None, laws_file: Path) -> tuple[dict, str] | None:
    """The params rule's shape for N_opt under the sweep's model settings, as (its JSON, its description);
    a setting the laws file does not record (nor --seq-len gives) is the default, and the description
    names it. None where the rule does not reach N_opt (beyond its widest shape it would name that one)."""
    from sweep.config import DataConfig, ModelConfig, params_rule_limit, shape_for_params
    from sweep.errors import shown
    from sweep.model.shape import ACTIVATIONS, NORMS, POSITIONS

    # What a sweep of the default config trains: its model section, DataConfig's context, the byte
    # vocabulary.
    defaults = {name: getattr(ModelConfig(), name) for name in RULE_FIELDS}
    defaults.update(seq_len=DataConfig().seq_len, vocab_size=256)
    given = {**recorded, **({} if seq_len is None else {"seq_len": seq_len})}
    settings = {**defaults, **given}
    for name, allowed in (("norm", NORMS), ("activation", ACTIVATIONS), ("positions", POSITIONS)):
        if settings[name] not in allowed:
            raise SweepError(
                f"{laws_file} is damaged: model setting {name} is {shown(settings[name])}, not one of "
                f"{', '.join(allowed)}"
            )
    model = ModelConfig(**{name: settings[name] for name in RULE_FIELDS})
    if not 1000 <= n_opt <= params_rule_limit(model):
        return None
    shape = shape_for_params(int(n_opt), model, seq_len=settings["seq_len"], vocab_size=settings["vocab_size"])
    assumed = [name for name in defaults if name not in given]
    parts = [f"the sweep's {_listed(recorded)}"] if recorded else []
    parts += [f"seq_len {seq_len} (--seq-len)"] if seq_len is not None else []
    if assumed:
        parts += [f"defaults assumed, not in the laws file: {_listed({name: defaults[name] for name in assumed})}"]
    description = f"{shape.name} (d_ff {shape.d_ff}; the params rule with {'; '.join(parts)})"
    return {
        "n_layers": shape.n_layers,
        "d_model": shape.d_model,
        "n_heads": shape.n_heads,
        "d_ff": shape.d_ff,
        "model": settings,
        "assumed": assumed,
    }, description


def _listed(settings: dict) -> str:
    """'activation swiglu, tie_embeddings true': as a config's YAML spells them."""
    return ", ".join(
        f"{name} {str(value).lower() if isinstance(value, bool) else value}" for name, value in settings.items()
    )
