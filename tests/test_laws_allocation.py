"""Approaches 1 and 2 of Hoffmann et al. 2022 recover the allocation of the law that made the data."""

import numpy as np
import pandas as pd
import pytest

from sweep.errors import InputError
from sweep.laws.allocation import compute_levels, fit_approach1, fit_isoflop
from sweep.laws.forms import ChinchillaParams, allocate, allocation_of, predict_loss

TRUTH = ChinchillaParams(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)  # Besiroglu et al.
TRUE_A = allocation_of(TRUTH).a  # beta / (alpha + beta) = 0.5126


def isoflop_points(budgets, sizes_per_budget=9, spread=6.0, noise=0.005, seed=0):
    """An IsoFLOP sweep: at each budget, sizes spread around (and off-centre from) the optimum,
    D rounded to whole batches of 8192 tokens as a real sweep would, 0.5% loss noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for flops in budgets:
        params_opt, _ = allocate(flops, TRUTH)
        centre = params_opt * np.exp(rng.uniform(-0.5, 0.5))
        for params in centre * np.geomspace(1 / spread, spread, sizes_per_budget):
            tokens = round(flops / (6 * params) / 8192) * 8192
            loss = predict_loss(params, tokens, TRUTH) * np.exp(noise * rng.standard_normal())
            rows.append({"params": params, "tokens": tokens, "flops": 6 * params * tokens, "loss": loss})
    return pd.DataFrame(rows)


def test_compute_levels_group_runs_within_the_tolerance():
    flops = np.array([1.0e18, 1.05e18, 3e18, 0.98e18 * 3, 1e19, 1.2e19])
    assert compute_levels(flops, tolerance=0.1).tolist() == [0, 0, 1, 1, 2, 3]


def test_isoflop_recovers_the_allocation_exponent():
    fit = fit_isoflop(isoflop_points(np.geomspace(1e16, 1e20, 5)))
    assert fit.a == pytest.approx(TRUE_A, abs=0.01)
    assert fit.a + fit.b == pytest.approx(1.0)  # D_opt = C / (6 N_opt)
    assert len(fit.optima) == 5
    assert all(optimum.n_points == 9 and optimum.parabola[0] > 0 for optimum in fit.optima)
    for optimum in fit.optima:
        assert optimum.params == pytest.approx(allocate(optimum.flops, TRUTH)[0], rel=0.1)
    assert fit.warnings == ()


def test_approach1_takes_the_best_run_of_each_level():
    points = isoflop_points(np.geomspace(1e16, 1e20, 5), sizes_per_budget=15, noise=0.0)
    fit = fit_approach1(points)
    assert fit.a == pytest.approx(TRUE_A, abs=0.05)  # sizes are 1.3x apart: coarse, but unbiased
    for optimum in fit.optima:
        level = points[np.isclose(points.flops, optimum.flops, rtol=0.1)]
        assert optimum.loss == level.loss.min()


def test_minimum_beyond_the_sampled_sizes_warns():
    points = isoflop_points([1e17, 1e18, 1e19])
    params_opt, _ = allocate(1e19, TRUTH)
    points = points[~((points.flops > 5e18) & (points.params > params_opt / 2))]  # only small models at 1e19
    fit = fit_isoflop(points)
    assert len(fit.warnings) == 1
    assert "C = 1e+19" in fit.warnings[0] and "outside" in fit.warnings[0]


def test_too_few_compute_levels_raise_naming_the_need():
    with pytest.raises(InputError, match=r"IsoFLOP.*at least 2 compute levels with 3\+ distinct N.*only 1"):
        fit_isoflop(isoflop_points([1e18]))
    grid = pd.DataFrame({"params": [1e6, 1e7, 1e8], "tokens": [1e9, 2e9, 4e9], "loss": [3.0, 2.8, 2.7]})
    grid["flops"] = 6 * grid.params * grid.tokens  # three different budgets, one size each
    with pytest.raises(InputError, match=r"Approach 1.*only 0"):
        fit_approach1(grid)
