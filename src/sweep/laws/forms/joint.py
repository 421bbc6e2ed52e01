"""The joint laws L(N, D) that `sweep fit` can predict with, side by side, so that one is chosen by
how well it extrapolates (`rollout.py`) rather than fixed in advance:

- chinchilla     E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2), 5 parameters;
- chinchilla_e0  A/N^α + B/D^β, the same with E = 0, 4 parameters;
- kaplan         [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (Kaplan et al. 2020, eq. 1.5), 4 parameters.

A `JointForm` bundles what every consumer needs: the fit (from Hoffmann's grid, or from given starts
for bootstrap refits), the loss it predicts, and the compute-optimal allocation for C = 6·N·D.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Protocol

from sweep.laws.forms import chinchilla, kaplan
from sweep.laws.forms.equations import (
    Allocation,
    ChinchillaParams,
    KaplanParams,
    allocate,
    allocation_of,
    kaplan_allocate,
    kaplan_allocation_of,
    kaplan_loss,
    predict_loss,
)

LawParams = ChinchillaParams | KaplanParams


class JointFit(Protocol):
    """What `chinchilla.ChinchillaFit` and `kaplan.KaplanFit` both hold."""

    params: LawParams
    objective: float  # summed Huber loss on log loss: comparable across forms fit to the same points
    converged: bool
    n_points: int


@dataclass(frozen=True)
class JointForm:
    name: str  # as `sweep fit --form` spells it
    formula: str
    law_type: type  # ChinchillaParams or KaplanParams: laws.json stores a law by its fields
    held: tuple[str, ...]  # fields of law_type held at 0 rather than fit (chinchilla_e0's E)
    exponents: tuple[str, str]  # the parameters that must be > 0 for loss to fall with N and with D
    # (params, tokens, loss, *, starts=None, n_refined=...) -> JointFit; starts=None: the form's grid
    fit: Callable[..., JointFit]
    # (params, tokens, loss, fit) -> (S, P) starts for refits on data near these points
    refit_starts: Callable[..., object]
    loss: Callable  # (params, tokens, law) -> predicted loss, broadcasting
    allocation: Callable[[LawParams], Allocation]  # a, b, G; NaN without an optimum
    allocate: Callable  # (flops, law) -> (N_opt, D_opt) for C = 6·N·D; NaN without an optimum

    @property
    def names(self) -> tuple[str, ...]:
        """The fitted parameters."""
        return tuple(field.name for field in fields(self.law_type) if field.name not in self.held)

    @property
    def n_parameters(self) -> int:
        return len(self.names)

    def values(self, law: LawParams) -> dict[str, float]:
        """The law's parameters and the allocation a, b, G it implies."""
        return {**asdict(law), **asdict(self.allocation(law))}


def _fit_without_e(params, tokens, loss, **options):
    return chinchilla.fit_chinchilla(params, tokens, loss, irreducible=False, **options)


def _refit_starts_without_e(params, tokens, loss, fit):
    return chinchilla.refit_starts(params, tokens, loss, fit, irreducible=False)


FORMS = {
    form.name: form
    for form in (
        JointForm(
            name="chinchilla",
            formula="E + A/N^alpha + B/D^beta",
            law_type=ChinchillaParams,
            held=(),
            exponents=("alpha", "beta"),
            fit=chinchilla.fit_chinchilla,
            refit_starts=chinchilla.refit_starts,
            loss=predict_loss,
            allocation=allocation_of,
            allocate=allocate,
        ),
        JointForm(
            name="chinchilla_e0",
            formula="A/N^alpha + B/D^beta",
            law_type=ChinchillaParams,
            held=("E",),
            exponents=("alpha", "beta"),
            fit=_fit_without_e,
            refit_starts=_refit_starts_without_e,
            loss=predict_loss,
            allocation=allocation_of,
            allocate=allocate,
        ),
        JointForm(
            name="kaplan",
            formula="[(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
            law_type=KaplanParams,
            held=(),
            exponents=("alpha_N", "alpha_D"),
            fit=kaplan.fit_kaplan,
            refit_starts=kaplan.refit_starts,
            loss=kaplan_loss,
            allocation=kaplan_allocation_of,
            allocate=kaplan_allocate,
        ),
    )
}
MOST_PARAMETERS = max(form.n_parameters for form in FORMS.values())
