"""From a run store's DataFrame or a user's CSV/Parquet table to the points the laws are fit on.

A point is one (N, D) pair with one loss. Runs that are not done are left out and listed. Runs that
share (N, D) (seeds, learning rates) become one point: by default the minimum over learning rates of
the mean over seeds, since a scaling law describes the best loss a size can reach, and averaging
seeds first keeps one lucky seed from setting it. Every problem a user can fix raises InputError
naming it.

Columns delta_<variant> (a run's loss rise after post-training compression, see `degradation.py`) are
carried through: a point's δ is the mean over the runs its loss comes from, so that δ and loss describe
the same models: the runs at the best lr (all their seeds) for min_of_means, every run for mean, the
lowest-loss run for min. NaN (a variant not measured) is skipped in the mean; δ may be <= 0.

Two design rules are checked and warned about, since a point that breaks one sits above the law:
- the best learning rate of a point should lie inside the lr grid tried for it; at the grid's edge
  the optimum may lie beyond it, and the point's loss is only an upper bound on the best loss;
- a run should train at least `design.MIN_STEPS` optimizer steps (column `steps`, when the table
  has it); `min_steps` leaves shorter runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.columns import (  # noqa: F401  (FLOPS_COLUMNS re-exported)
    COST_COLUMNS,
    DELTA_PREFIX,  # delta_q4, delta_p50: δ per compression variant (`degradation.py`)
    FLOPS_COLUMNS,
    PARAMS_COLUMNS,
)
from sweep.errors import InputError, cut, shown
from sweep.laws import AGGREGATES

# Fewest optimizer steps for a run's final loss to count as a point of the law. A run with fewer is
# still limited by optimisation rather than by its size N and tokens D: its loss sits above the law
# and bends the fit (Choshen et al. 2024, "A Hitchhiker's Guide to Scaling Law Estimation",
# arXiv 2410.11840, leave the early part of training out of their fits for the same reason).
# Measured on the quickstart grid (docs/design-rules.md, Steps): with half the steps for the same
# tokens, runs of 244-732 steps ended 2.5-5.4% higher, runs of 1,270 steps 0.2-2.5%, of 2,246 or
# more within 2%. `sweep fit` warns about points below this and `--min-steps K` leaves them out;
# leaving the quickstart's shortest runs out did not make its held-out predictions better.
MIN_STEPS = 1000

# What a training run can have, loss in nats per token (at initialisation ln V, under 17 for any
# vocabulary). Beyond these a table holds no runs (a unit mix-up, a corrupt export), and the fits'
# powers and the plots' axes run out of float range: a loss of 1e270 crashed the plots.
PLAUSIBLE = {"params": (1.0, 1e30), "tokens": (1.0, 1e30), "flops": (1.0, 1e62), "loss": (1e-6, 1e6)}


@dataclass(frozen=True)
class Excluded:
    run_id: str
    reason: str


@dataclass(frozen=True)
class FitTable:
    """`points` has one row per (N, D), sorted by flops, with columns params, tokens, flops, loss,
    n_runs, whichever of wall_s, peak_mem_bytes the input had (means over the runs), steps (the
    fewest of the runs) when the input had it, with an lr column: lr (the best lr, lowest mean
    loss over seeds), lr_low, lr_high (the smallest and largest lr tried) and n_lrs, and each
    delta_<variant> column the input had (see the module docstring)."""

    points: pd.DataFrame
    excluded: tuple[Excluded, ...]
    params_convention: str
    flops_source: str  # the column C came from, or "6ND" when computed
    aggregate: str
    warnings: tuple[str, ...] = ()  # design rules the points break (see the module docstring)


def read_table(path: str | Path) -> pd.DataFrame:
    """A user's table of runs: .csv, or .parquet (which needs pyarrow or fastparquet installed)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such table file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read {path} as CSV: {error}") from error
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as error:
            raise InputError(
                f"cannot read {path}: reading Parquet needs pyarrow (pip install pyarrow); or save the table as CSV"
            ) from error
    raise InputError(f"cannot read {path}: the table must be a .csv or .parquet file")


def require_points(count: int, needed: int, what: str, unit: str = "points") -> None:
    """A law with k free parameters needs at least k points; say how many when there are fewer."""
    if count < needed:
        raise InputError(f"{what} needs at least {needed} {unit}, but only {count} are available")


def prepare_table(
    runs: pd.DataFrame,
    *,
    sweep: str | None = None,
    params_convention: str = "non_embedding",
    flops_column: str = "flops",
    aggregate: str = "min_of_means",
    min_steps: int = 0,
) -> FitTable:
    """Check and aggregate `runs` into fit points.

    params_convention: "non_embedding" uses column params (Kaplan et al. 2020), "total" params_total
        (Hoffmann et al. 2022).
    flops_column: the column holding C; when the default "flops" is absent, C = 6·N·D.
    aggregate: "min_of_means" (min over lr of the mean over seeds), "mean" or "min" over all runs
        sharing (N, D).
    min_steps: leave out runs with fewer optimizer steps (column steps); 0 keeps every run.
    """
    if params_convention not in PARAMS_COLUMNS:
        raise InputError(f"params convention must be one of {sorted(PARAMS_COLUMNS)}, got {params_convention!r}")
    if aggregate not in AGGREGATES:
        raise InputError(f"aggregate must be one of {list(AGGREGATES)}, got {aggregate!r}")
    params_column = PARAMS_COLUMNS[params_convention]
    flops_computed = flops_column == "flops" and "flops" not in runs.columns
    needed = [params_column, "tokens", "loss"] + ([] if flops_computed else [flops_column])
    missing = [column for column in needed if column not in runs.columns]
    if missing:
        raise InputError(f"the table is missing column(s): {', '.join(missing)}")
    if min_steps < 0:
        raise InputError(f"--min-steps must be 0 or more, got {min_steps}")
    if min_steps and "steps" not in runs.columns:
        raise InputError(
            f"--min-steps {min_steps} needs a 'steps' column (optimizer steps per run); the table has none"
        )

    runs = _select_sweep(runs, sweep)
    runs, excluded = _drop_unfinished(runs)
    if runs.empty:
        raise InputError(f"no finished runs to fit: all {len(excluded)} runs are excluded (status not 'done')")
    runs, too_short = _drop_short(runs, min_steps)
    excluded += too_short
    if runs.empty:
        raise InputError(f"no runs to fit: every finished run trained fewer than --min-steps {min_steps} steps")

    table = pd.DataFrame(
        {
            "params": _checked_column(runs, params_column, "params"),
            "tokens": _checked_column(runs, "tokens", "tokens"),
            "loss": _checked_column(runs, "loss", "loss"),
        }
    )
    table["flops"] = (
        6.0 * table.params * table.tokens if flops_computed else _checked_column(runs, flops_column, "flops")
    )
    for column in ("lr", "steps", *COST_COLUMNS):
        if column in runs.columns:
            table[column] = pd.to_numeric(runs[column], errors="coerce").to_numpy()
    for column in runs.columns:
        if str(column).startswith(DELTA_PREFIX):
            table[column] = _delta_column(runs, column)
    points = _aggregate(table, aggregate)
    return FitTable(
        points=points,
        excluded=tuple(excluded),
        params_convention=params_convention,
        flops_source="6ND" if flops_computed else flops_column,
        aggregate=aggregate,
        warnings=tuple(_lr_edge_warnings(points) + _short_run_warnings(points)),
    )


def _select_sweep(runs: pd.DataFrame, sweep: str | None) -> pd.DataFrame:
    if sweep is None:
        return runs
    if "sweep" not in runs.columns:
        raise InputError(f"cannot select sweep {shown(sweep)}: the table has no 'sweep' column")
    selected = runs[runs["sweep"] == sweep]
    if selected.empty:
        known = ", ".join(sorted(map(str, runs["sweep"].dropna().unique()))) or "none"
        raise InputError(f"no runs in sweep {shown(sweep)}; sweeps in the table: {cut(known, 200)}")
    return selected


def _drop_unfinished(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[Excluded]]:
    if "status" not in runs.columns:
        return runs, []
    done = runs["status"] == "done"
    unfinished = runs[~done]
    run_ids = unfinished["run_id"] if "run_id" in runs.columns else unfinished.index.map("row {}".format)
    # The run store's "reason" column says why a run failed or diverged; keep it with the status.
    details = unfinished["reason"] if "reason" in runs.columns else [None] * len(unfinished)
    excluded = [
        Excluded(run_id=str(run_id), reason=f"status {status!r}" + (f": {detail}" if isinstance(detail, str) else ""))
        for run_id, status, detail in zip(run_ids, unfinished["status"], details, strict=True)
    ]
    return runs[done], excluded


def _drop_short(runs: pd.DataFrame, min_steps: int) -> tuple[pd.DataFrame, list[Excluded]]:
    """Runs with fewer than `min_steps` optimizer steps; a run whose steps are unknown is kept."""
    if not min_steps:
        return runs, []
    steps = pd.to_numeric(runs["steps"], errors="coerce")
    short = steps < min_steps
    run_ids = runs["run_id"] if "run_id" in runs.columns else runs.index.map("row {}".format)
    excluded = [
        Excluded(run_id=str(run_id), reason=f"{count:.0f} optimizer steps, fewer than --min-steps {min_steps}")
        for run_id, count in zip(run_ids[short], steps[short], strict=True)
    ]
    return runs[~short], excluded


def _checked_column(runs: pd.DataFrame, column: str, quantity: str) -> np.ndarray:
    """The column as floats, or InputError if it holds text, NaN/inf, values <= 0 (logs need > 0) or
    values outside the PLAUSIBLE range of its `quantity`."""
    values = runs[column]
    if not pd.api.types.is_numeric_dtype(values):
        numeric = pd.to_numeric(values, errors="coerce")
        bad = values[numeric.isna() & values.notna()]
        if not bad.empty:
            raise InputError(f"column '{cut(str(column))}' holds non-numeric values, e.g. {shown(bad.iloc[0])}")
        values = numeric
    values = values.to_numpy(dtype=float)
    not_finite = ~np.isfinite(values)
    if not_finite.any():
        raise InputError(
            f"column '{column}' has NaN or inf in {not_finite.sum()} of {len(values)} rows{_examples(runs, not_finite)}"
        )
    not_positive = values <= 0
    if not_positive.any():
        raise InputError(
            f"column '{column}' has {not_positive.sum()} non-positive values{_examples(runs, not_positive)}; "
            "scaling laws take logs, so it must be > 0"
        )
    low, high = PLAUSIBLE[quantity]
    outside = (values < low) | (values > high)
    if outside.any():
        raise InputError(
            f"column '{column}' has {outside.sum()} values outside [{low:g}, {high:g}], e.g. "
            f"{values[outside][0]:.3g}{_examples(runs, outside)}: not a {quantity} a training run can have"
        )
    return values


def _delta_column(runs: pd.DataFrame, column: str) -> np.ndarray:
    """A delta_<variant> column as floats: NaN (not measured), zero and negative values are data; text
    and inf are InputError (no loss difference of two finite losses is infinite)."""
    values = runs[column]
    numeric = pd.to_numeric(values, errors="coerce")
    bad = values[numeric.isna() & values.notna()]
    if not bad.empty:
        raise InputError(f"column '{cut(str(column))}' holds non-numeric values, e.g. {shown(bad.iloc[0])}")
    numeric = numeric.to_numpy(dtype=float)
    infinite = np.isinf(numeric)
    if infinite.any():
        raise InputError(
            f"column '{cut(str(column))}' has inf in {infinite.sum()} of {len(numeric)} rows"
            f"{_examples(runs, infinite)}; leave a variant that was not measured empty (NaN)"
        )
    return numeric


def _examples(runs: pd.DataFrame, rows: np.ndarray, count: int = 3) -> str:
    """' (e.g. run a, b)' naming the first offending runs, when the table has run ids."""
    if "run_id" not in runs.columns:
        return ""
    return f" (e.g. run {', '.join(map(str, runs['run_id'].to_numpy()[rows][:count]))})"


def _aggregate(table: pd.DataFrame, aggregate: str) -> pd.DataFrame:
    """One row per (N, D). Costs and C are means over every run at that (N, D), steps the fewest."""
    keys = ["params", "tokens"]
    grouped = table.groupby(keys)
    if "lr" in table.columns:
        per_lr = table.groupby(keys + ["lr"], dropna=False)["loss"].mean()  # mean over seeds
    if aggregate == "min_of_means" and "lr" in table.columns:
        loss = per_lr.groupby(level=keys).min()
    else:
        loss = grouped["loss"].agg("min" if aggregate == "min" else "mean")
    points = pd.DataFrame({"loss": loss, "flops": grouped["flops"].mean(), "n_runs": grouped.size()})
    for column in COST_COLUMNS:
        if column in table.columns:
            points[column] = grouped[column].mean()
    if "steps" in table.columns:
        points["steps"] = grouped["steps"].min()
    if "lr" in table.columns:
        per_lr = per_lr.reset_index()
        by_point = per_lr.groupby(keys)
        points["lr"] = per_lr.loc[by_point["loss"].idxmin()].set_index(keys)["lr"]
        points["lr_low"], points["lr_high"] = by_point["lr"].min(), by_point["lr"].max()
        points["n_lrs"] = by_point["lr"].nunique()
    deltas = _deltas(table, aggregate)
    for column in deltas.columns:
        points[column] = deltas[column]
    points = points.reset_index()
    return points.sort_values(["flops", "params"], kind="stable").reset_index(drop=True)


def _deltas(table: pd.DataFrame, aggregate: str) -> pd.DataFrame:
    """The delta_<variant> columns per (N, D), from the runs the point's loss comes from (see the
    module docstring); means skip NaN."""
    keys = ["params", "tokens"]
    columns = [column for column in table.columns if str(column).startswith(DELTA_PREFIX)]
    if aggregate == "min":
        return table.loc[table.groupby(keys)["loss"].idxmin()].set_index(keys)[columns]
    if aggregate == "min_of_means" and "lr" in table.columns:
        per_lr = table.groupby(keys + ["lr"], dropna=False)[["loss", *columns]].mean().reset_index()  # over seeds
        return per_lr.loc[per_lr.groupby(keys)["loss"].idxmin()].set_index(keys)[columns]
    return table.groupby(keys)[columns].mean()


def _lr_edge_warnings(points: pd.DataFrame) -> list[str]:
    """Per size N, the D at which the best lr is the smallest or largest of the several tried there."""
    if "lr" not in points.columns:
        return []
    warnings = []
    tried_several = points[points["n_lrs"] > 1]
    for edge, side, beyond in (("lr_low", "smallest", "below"), ("lr_high", "largest", "above")):
        at_edge = tried_several[tried_several["lr"] == tried_several[edge]]
        for (params, lr, low, high, count), rows in at_edge.groupby(["params", "lr", "lr_low", "lr_high", "n_lrs"]):
            tokens = ", ".join(f"{value:.3g}" for value in rows["tokens"])
            warnings.append(
                f"learning rate: at N = {params:.3g}, D = {tokens} the best lr is the {side} of the {count} tried "
                f"({lr:.3g}, grid [{low:.3g}, {high:.3g}]): the best lr may lie {beyond} the grid, and then these "
                f"losses are too high; extend the lr grid {beyond} {lr:.3g}"
            )
    return warnings


def _short_run_warnings(points: pd.DataFrame) -> list[str]:
    """Points that trained fewer than `design.MIN_STEPS` optimizer steps, named by D and N."""
    if "steps" not in points.columns:
        return []
    short = points[points["steps"] < MIN_STEPS]
    if short.empty:
        return []
    named = "; ".join(
        f"D = {tokens:.3g} ({steps:.0f} steps) at N = {', '.join(f'{value:.3g}' for value in rows['params'])}"
        for (tokens, steps), rows in short.groupby(["tokens", "steps"])
    )
    return [
        f"{len(short)} of {len(points)} points trained fewer than {MIN_STEPS} optimizer steps (sweep.laws.table.MIN_STEPS), "
        f"so their loss may still be limited by optimisation and sit above the law: {named}; give them more steps "
        f"(smaller batches or more tokens), or leave them out with --min-steps {MIN_STEPS}"
    ]
