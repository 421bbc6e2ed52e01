"""The law forms and the Chinchilla allocation (Hoffmann et al. 2022, eq. 4) against direct arithmetic."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from sweep.laws.forms import (
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
)

# Hoffmann et al. 2022's fitted law (§3.3) and Besiroglu et al. 2024's refit of it.
HOFFMANN = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
BESIROGLU = ChinchillaParams(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)


def test_predict_loss_is_the_sum_of_its_terms():
    assert predict_loss(1e9, 2e10, HOFFMANN) == pytest.approx(1.69 + 406.4 / 1e9**0.34 + 410.7 / 2e10**0.28)
    assert predict_loss(np.array([1e6, 1e9]), 1e10, HOFFMANN).shape == (2,)


@pytest.mark.parametrize("law", [HOFFMANN, BESIROGLU])
def test_allocation_exponents_sum_to_one_and_match_the_formula(law):
    allocation = allocation_of(law)
    assert allocation.a + allocation.b == pytest.approx(1.0)
    assert allocation.a == pytest.approx(law.beta / (law.alpha + law.beta))
    assert allocation.G == pytest.approx((law.alpha * law.A / (law.beta * law.B)) ** (1 / (law.alpha + law.beta)))


@pytest.mark.parametrize("flops", [1e18, 5.76e23, 1e26])
@pytest.mark.parametrize("law", [HOFFMANN, BESIROGLU])
def test_allocate_spends_the_budget_and_minimises_loss_on_the_isoflop_line(law, flops):
    params_opt, tokens_opt = allocate(flops, law)
    assert 6 * params_opt * tokens_opt == pytest.approx(flops, rel=1e-10)

    # Minimise L(N, C / 6N) over ln N numerically: the same N_opt.
    def loss_on_isoflop(log_params):
        return predict_loss(np.exp(log_params), flops / (6 * np.exp(log_params)), law)

    numeric = minimize_scalar(
        loss_on_isoflop, bounds=(np.log(1e3), np.log(1e15)), method="bounded", options={"xatol": 1e-10}
    )
    assert np.exp(numeric.x) == pytest.approx(params_opt, rel=1e-4)


KAPLAN = KaplanParams(N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095)  # Kaplan et al. 2020, eq. 1.5


@pytest.mark.parametrize("flops", [1e15, 1e20, 1e25])
def test_kaplan_allocation_in_closed_form_minimises_loss_on_the_isoflop_line(flops):
    params_opt, tokens_opt = kaplan_allocate(flops, KAPLAN)
    assert 6 * params_opt * tokens_opt == pytest.approx(flops, rel=1e-10)
    numeric = minimize_scalar(
        lambda log_params: np.log(kaplan_loss(np.exp(log_params), flops / (6 * np.exp(log_params)), KAPLAN)),
        bounds=(np.log(1e0), np.log(1e18)),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert np.exp(numeric.x) == pytest.approx(params_opt, rel=1e-4)
    allocation = kaplan_allocation_of(KAPLAN)
    assert allocation.a == pytest.approx(0.095 / (0.076 + 0.095))  # N_opt ∝ C^(α_D / (α_N + α_D))
    assert allocation.a + allocation.b == pytest.approx(1.0)
    no_optimum = kaplan_allocate(flops, KaplanParams(N_c=8.8e13, D_c=5.4e13, alpha_N=0.0, alpha_D=0.095))
    assert np.isnan(no_optimum).all()


def test_besiroglu_refit_allocates_chinchilla_sizes():
    # Chinchilla itself: 70B parameters, 1.4T tokens, ~5.76e23 FLOPs, ~20 tokens per parameter.
    # Besiroglu et al.'s refit reproduces that; Hoffmann's printed parameters give ~90 tokens per
    # parameter, one of the inconsistencies their replication points out.
    params_opt, tokens_opt = allocate(5.76e23, BESIROGLU)
    assert params_opt == pytest.approx(7.2e10, rel=0.05)
    assert tokens_opt / params_opt == pytest.approx(18.4, rel=0.05)
    hoffmann_params, hoffmann_tokens = allocate(5.76e23, HOFFMANN)
    assert hoffmann_tokens / hoffmann_params > 80


def test_power_law_kaplan_and_cost_forms():
    assert power_law(1e6, PowerLaw(E=1.5, A=100.0, alpha=0.5)) == pytest.approx(1.5 + 100.0 / 1e3)
    assert power_law(1e6, PowerLaw(E=0.0, A=100.0, alpha=0.5)) == pytest.approx(0.1)
    kaplan = KaplanParams(N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095)
    expected = ((8.8e13 / 1e9) ** (0.076 / 0.095) + 5.4e13 / 1e10) ** 0.095
    assert kaplan_loss(1e9, 1e10, kaplan) == pytest.approx(expected)
    # With D -> infinity eq. 1.5 reduces to L(N) = (N_c / N)^alpha_N (Kaplan eq. 1.1).
    assert kaplan_loss(1e9, 1e40, kaplan) == pytest.approx((8.8e13 / 1e9) ** 0.076, rel=1e-6)
    # A fit stopped at the bound alpha_D = 0 is the constant law L = 1, not a ZeroDivisionError.
    assert kaplan_loss(1e9, 1e10, KaplanParams(N_c=8.8e13, D_c=5.4e13, alpha_N=0.0, alpha_D=0.0)) == 1.0
    assert predict_cost(1e12, CostLaw(C0=6.0, n=1.0)) == pytest.approx(6e12)
