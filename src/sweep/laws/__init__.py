"""Scaling laws: fit them to runs, with uncertainty, and predict from them.

    runs = read_table("runs.csv")                       # or sweep.load_runs(...)
    table = prepare_table(runs, params_convention="non_embedding")
    report = fit_report(table, bootstrap=200, holdout=2, form="auto")  # or "chinchilla", "chinchilla_e0", "kaplan"
    report.to_json(); save_laws(report, "laws.json")
    laws = load_laws("laws.json")
    predict_compute_optimal(laws, flops=1e21); predict_loss_at(laws, params=1e9, tokens=2e10)

Post-training degradation, when the runs carry delta_<variant> columns (`degradation.py`):

    fit = fit_degradation(table.points, "q4")           # δ = C·D^γ_D/N^γ_N, Kumar et al. 2024 eq. 2
    fit.trend(); predict_degradation(fit, params=1e9, tokens=2e10)
    load_degradation("laws.json").law_for("q4")

Figures: `sweep.laws.plots.write_plots(report, out_dir)` (kept out of this import: matplotlib is slow
to load and only `sweep fit --out` needs it).

Where things are, from the bottom up: `forms/` the law forms as pure functions and how each is fit;
`table.py` the points, from a table of runs; `allocation.py` compute-optimal allocation read off the
runs; `bootstrap.py` the intervals; `rollout.py` which form extrapolates; `predict.py` predictions
from a fitted law; `degradation.py` laws of post-training compression; `fitting.py` all of them on
one table (`fit_report`), into a `FitReport` (`fitreport.py`); `lawsfile.py` laws.json. Of the rest
of sweep the laws import only `sweep.errors` and `sweep.columns`: never torch, the config, the data
or the store.
"""

from sweep.laws.degradation import DegradationFit, fit_degradation, predict_degradation, variants_in
from sweep.laws.fitreport import FitReport
from sweep.laws.fitting import fit_report
from sweep.laws.forms.equations import ChinchillaParams, allocate, predict_loss
from sweep.laws.lawsfile import load_degradation, load_laws, save_laws
from sweep.laws.predict import Laws, predict_compute_optimal, predict_loss_at
from sweep.laws.table import FLOPS_COLUMNS, PARAMS_COLUMNS, FitTable, prepare_table, read_table

__all__ = [
    "FLOPS_COLUMNS",
    "PARAMS_COLUMNS",
    "ChinchillaParams",
    "DegradationFit",
    "FitReport",
    "FitTable",
    "Laws",
    "allocate",
    "fit_degradation",
    "fit_report",
    "load_degradation",
    "load_laws",
    "predict_compute_optimal",
    "predict_degradation",
    "predict_loss",
    "predict_loss_at",
    "prepare_table",
    "read_table",
    "save_laws",
    "variants_in",
]
