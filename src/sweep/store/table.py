"""The run table: `load_runs` reads a store back as a DataFrame, one row per run, its columns the
contract in `sweep.columns`. A run whose files are missing or damaged still has its row, with what
could be read (`records.status_and_result`)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from sweep import columns as variants
from sweep.columns import COLUMNS
from sweep.config import RunSpec
from sweep.errors import SweepError, shown
from sweep.model.flops import param_counts, training_flops
from sweep.store.files import is_number
from sweep.store.records import status_and_result
from sweep.store.walk import RunDir, read_spec, walk

if TYPE_CHECKING:
    import pandas as pd

VARIANT_PREFIXES = (variants.LOSS_PREFIX, variants.DELTA_PREFIX)


def spec_columns(spec: RunSpec) -> dict:
    """What the spec alone says about a run: shape, sizes and FLOPs of its token budget."""
    counts = param_counts(spec.shape)
    return {
        "run_id": spec.run_id,
        "sweep": spec.sweep,
        "n_layers": spec.shape.n_layers,
        "d_model": spec.shape.d_model,
        "n_heads": spec.shape.n_heads,
        "d_ff": spec.shape.d_ff,
        "params": counts.non_embedding,
        "params_total": counts.total,
        "params_embedding": counts.embedding,
        "tokens": spec.tokens,
        "seed": spec.seed,
        "lr": spec.lr,
        "steps": spec.steps,
        "order": spec.data.order,
        **_branch_columns(spec),
        **training_flops(spec.shape, spec.tokens),
    }


def _branch_columns(spec: RunSpec) -> dict:
    """The schedule and, for a wsd branch, its parent trunk and the step it leaves it at."""
    wsd = spec.train.schedule == "wsd"
    return {
        "schedule": spec.train.schedule,
        "trunk_id": spec.trunk_id if wsd else None,
        "branch_step": spec.branch_step if wsd else None,
    }


def load_runs(path: str | Path, sweep: str | None = None) -> "pd.DataFrame":
    """One row per run in the store (or sweep directory) at `path`, columns `COLUMNS`.
    Runs whose files are missing or corrupt still appear, with what could be read."""
    import pandas as pd  # here, not at the top: worker processes write runs and never need pandas

    path = Path(path)
    if not path.is_dir():
        raise SweepError(f"run store not found: {path} is not a directory")
    rows = [row for run in walk(path) if run.kind == "run" and (row := _run_row(run)) is not None]
    measured = sorted({key for row in rows for key in row if key.startswith(VARIANT_PREFIXES)}, key=_variant_order)
    frame = pd.DataFrame(rows, columns=COLUMNS + measured)
    if sweep is not None:
        frame = frame[frame["sweep"] == sweep].reset_index(drop=True)
    return frame


def _variant_order(column: str) -> tuple:
    """loss_q8, delta_q8, loss_q4, …, then pruning by share (`columns.order`)."""
    name = column.split("_", 1)[1]
    return variants.order(name), not column.startswith(variants.LOSS_PREFIX)


def _variant_columns(compression, run_dir: Path) -> dict:
    """loss_<v> and delta_<v> of each compressed variant in result.json's `compression`; an entry
    that is not {variant: {'loss': number, 'delta': number}} is skipped with a warning."""
    if not compression:
        return {}
    if not isinstance(compression, dict):
        warnings.warn(f"{run_dir / 'result.json'}: compression is not a mapping; skipped")
        return {}
    columns = {}
    for name, measured in compression.items():
        if (
            variants.parse(name)
            and isinstance(measured, dict)
            and all(is_number(measured.get(key)) for key in ("loss", "delta"))
        ):
            columns[variants.LOSS_PREFIX + name], columns[variants.DELTA_PREFIX + name] = (
                measured["loss"],
                measured["delta"],
            )
        else:
            warnings.warn(
                f"{run_dir / 'result.json'}: compression entry {shown(name)} is not "
                "a variant with a number for 'loss' and 'delta'; skipped"
            )
    return columns


def _run_row(run: RunDir) -> dict | None:
    spec = read_spec(run)
    if spec is None:
        return None
    try:
        row = spec_columns(spec)
    except (KeyError, TypeError, ValueError) as err:  # a spec.json whose values have the wrong types
        warnings.warn(f"{run.spec_file}: not a run spec ({err}); skipped")
        return None
    status, result, _ = status_and_result(run.path)
    row["attempts"] = status["attempts"]
    row["reason"] = status.get("reason")
    if result is not None:
        row.update({key: result[key] for key in COLUMNS if key in result})
        row.update(_variant_columns(result.get("compression"), run.path))
    row["status"] = status["status"]
    if row.get("loss") is not None and "bpb" not in row:
        row["bpb"] = row["loss"] / math.log(2)
    return row
