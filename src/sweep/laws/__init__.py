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

The names below load on first use, so `from sweep.laws import AGGREGATES` (the CLI's choices) costs
nothing while a fit loads numpy, pandas and scipy.
"""

import importlib

from sweep.columns import FLOPS_COLUMNS, PARAMS_COLUMNS

# The choices of `sweep fit`, stated here so that the CLI reads them without loading a fit.
AGGREGATES = ("min_of_means", "mean", "min")  # how one point's seeds combine (`table.prepare_table`)
FORM_NAMES = ("chinchilla", "chinchilla_e0", "kaplan")  # the joint forms, `forms.joint.FORMS`
FORM_CHOICES = ("auto", *FORM_NAMES)  # auto: the form with the lowest rollout error

# name -> the module of this package that defines it
_LAZY = {
    "DegradationFit": "degradation",
    "fit_degradation": "degradation",
    "predict_degradation": "degradation",
    "variants_in": "degradation",
    "FitReport": "fitreport",
    "fit_report": "fitting",
    "ChinchillaParams": "forms.equations",
    "allocate": "forms.equations",
    "predict_loss": "forms.equations",
    "load_degradation": "lawsfile",
    "load_laws": "lawsfile",
    "save_laws": "lawsfile",
    "Laws": "predict",
    "predict_compute_optimal": "predict",
    "predict_loss_at": "predict",
    "FitTable": "table",
    "prepare_table": "table",
    "read_table": "table",
}

__all__ = ["AGGREGATES", "FLOPS_COLUMNS", "FORM_CHOICES", "FORM_NAMES", "PARAMS_COLUMNS", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sweep.laws' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sweep.laws.{_LAZY[name]}"), name)
