"""The law forms and how each is fit.

- `equations.py`: every form as a small frozen parameter dataclass and pure functions that evaluate
  it (Chinchilla's and Kaplan's L(N, D), the one-variable power law, the cost law), with the
  compute-optimal allocation each implies. Nothing there fits anything.
- `huber.py`: the fitting objective (Hoffmann et al.'s summed Huber loss on log loss) and the
  multi-start L-BFGS-B minimiser; `chinchilla.py`, `kaplan.py`, `powerlaw.py` fit their forms with it,
  `cost.py` fits the cost law by least squares in log-log.
- `joint.py`: the joint laws L(N, D) side by side (`FORMS`), for `sweep fit --form`.

The pure functions are re-exported here, so `from sweep.laws.forms import predict_loss` reads as
what it is; the fits are imported from their modules.
"""

from sweep.laws.forms.equations import (
    Allocation,
    ChinchillaParams,
    CostLaw,
    KaplanParams,
    PowerLaw,
    allocate,
    allocation_of,
    kaplan_allocate,
    kaplan_allocation_of,
    kaplan_loss,
    power_law,
    predict_cost,
    predict_loss,
    quiet_floats,
)

__all__ = [
    "Allocation",
    "ChinchillaParams",
    "CostLaw",
    "KaplanParams",
    "PowerLaw",
    "allocate",
    "allocation_of",
    "kaplan_allocate",
    "kaplan_allocation_of",
    "kaplan_loss",
    "power_law",
    "predict_cost",
    "predict_loss",
    "quiet_floats",
]
