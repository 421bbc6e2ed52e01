"""One-variable power laws and Kaplan's joint form recover known parameters; each law is fit on the
right subset of points."""

import numpy as np
import pandas as pd
import pytest

from sweep.errors import InputError
from sweep.laws.bootstrap import bootstrap, interval, power_law_refit
from sweep.laws.forms import KaplanParams, PowerLaw, kaplan_loss, power_law
from sweep.laws.forms.kaplan import fit_kaplan
from sweep.laws.forms.powerlaw import fit_power_law, fit_power_law_on, points_for

KAPLAN = KaplanParams(N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095)  # Kaplan et al. 2020 eqs. 1.1-1.2


@pytest.mark.parametrize(
    "variable, x, law",
    [
        ("params", np.geomspace(1e6, 1e9, 8), PowerLaw(E=1.69, A=406.4, alpha=0.34)),
        ("tokens", np.geomspace(1e8, 1e11, 8), PowerLaw(E=1.69, A=410.7, alpha=0.28)),
        ("flops", np.geomspace(1e15, 1e21, 10), PowerLaw(E=1.5, A=30.0, alpha=0.1)),
    ],
)
def test_saturating_power_law_is_recovered(variable, x, law):
    fit = fit_power_law(variable, x, power_law(x, law))
    assert fit.saturating.E == pytest.approx(law.E, rel=1e-4)
    assert fit.saturating.A == pytest.approx(law.A, rel=1e-4)
    assert fit.saturating.alpha == pytest.approx(law.alpha, rel=1e-4)


def test_pure_power_law_is_recovered():
    # Kaplan et al. eq. 1.3: L(C) = (C_c / C)^alpha_C, i.e. A = C_c^alpha_C.
    law = PowerLaw(E=0.0, A=(3.1e8 * 8.64e19) ** 0.050, alpha=0.050)
    x = np.geomspace(1e15, 1e21, 8)
    fit = fit_power_law("flops", x, power_law(x, law))
    assert fit.pure.E == 0.0
    assert fit.pure.A == pytest.approx(law.A, rel=1e-6)
    assert fit.pure.alpha == pytest.approx(law.alpha, rel=1e-6)


def test_noisy_power_law_interval_covers_the_truth():
    law = PowerLaw(E=1.7, A=406.0, alpha=0.34)
    x = np.geomspace(1e6, 1e9, 10)
    loss = power_law(x, law) * np.exp(0.005 * np.random.default_rng(3).standard_normal(10))
    fit = fit_power_law("params", x, loss)
    samples = bootstrap(power_law_refit(x, loss, fit), len(x), n_samples=40, seed=0)
    low, high = interval(samples["alpha"])
    assert low < law.alpha < high
    assert set(samples) == {"E", "A", "alpha", "pure_A", "pure_alpha"}


def test_points_for_each_variable():
    points = pd.DataFrame(
        {
            "params": [1e6, 1e6, 1e7, 1e7, 1e8],
            "tokens": [1e8, 1e9, 1e8, 1e9, 1e8],
            "loss": [4.0, 3.5, 3.6, 3.0, 3.4],
        }
    )
    points["flops"] = 6 * points.params * points.tokens
    # L(N): the largest-D run of each N.
    assert points_for(points, "params")[["params", "tokens"]].values.tolist() == [[1e6, 1e9], [1e7, 1e9], [1e8, 1e8]]
    # L(D): the largest-N run of each D.
    assert points_for(points, "tokens")[["params", "tokens"]].values.tolist() == [[1e8, 1e8], [1e7, 1e9]]
    # L(C): runs no cheaper run beats. C: 6e14 (4.0), 6e15 (3.5, 3.6), 6e16 (3.0, 3.4).
    assert points_for(points, "flops")["loss"].tolist() == [4.0, 3.5, 3.0]


def test_too_few_points_for_a_power_law():
    points = pd.DataFrame({"params": [1e6, 1e7], "tokens": [1e9, 1e9], "loss": [3.0, 2.5], "flops": [6e15, 6e16]})
    with pytest.raises(InputError, match=r"L\(params\).*needs at least 3 points, but only 2"):
        fit_power_law_on(points, "params")


def test_kaplan_joint_form_is_recovered():
    params, tokens = np.meshgrid(np.geomspace(1e6, 1e9, 6), np.geomspace(1e8, 1e11, 6))
    params, tokens = params.ravel(), tokens.ravel()
    fit = fit_kaplan(params, tokens, kaplan_loss(params, tokens, KAPLAN))
    for name in ("N_c", "D_c", "alpha_N", "alpha_D"):
        assert getattr(fit.params, name) == pytest.approx(getattr(KAPLAN, name), rel=1e-3), name
