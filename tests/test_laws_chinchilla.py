"""The Chinchilla fit (Besiroglu et al. 2024's replication of Hoffmann et al. 2022 App. D.2) recovers
known laws, with E or with E = 0, its gradients are right, and the bootstrap intervals cover the truth."""

import numpy as np
import pytest
from scipy.optimize import check_grad
from threadpoolctl import ThreadpoolController

from sweep.errors import InputError
from sweep.laws.bootstrap import interval, parametric_bootstrap
from sweep.laws.forms import ChinchillaParams, allocation_of, predict_loss
from sweep.laws.forms.chinchilla import chinchilla_objective, fit_chinchilla, hoffmann_grid
from sweep.laws.forms.huber import best_starts, huber, minimize_from_starts
from sweep.laws.forms.joint import FORMS

TRUTH = ChinchillaParams(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)  # Besiroglu et al.


def grid_points(n_sizes=6, n_token_counts=6):
    params, tokens = np.meshgrid(np.geomspace(1e6, 1e9, n_sizes), np.geomspace(1e8, 1e11, n_token_counts))
    return params.ravel(), tokens.ravel()


def test_grid_is_hoffmanns_4500_starts():
    grid = hoffmann_grid()
    assert grid.shape == (4500, 5)
    a, b, alpha, beta, e = grid.T
    assert sorted(set(a)) == sorted(set(b)) == [0, 5, 10, 15, 20, 25]
    assert sorted(set(alpha)) == sorted(set(beta)) == [0, 0.5, 1, 1.5, 2]
    assert sorted(set(e)) == [-1, -0.5, 0, 0.5, 1]


def test_objective_is_summed_huber_on_log_loss_with_exact_gradient():
    params, tokens = grid_points()
    loss = predict_loss(params, tokens, TRUTH) * np.exp(np.linspace(-0.01, 0.01, len(params)))
    objective = chinchilla_objective(params, tokens, loss)
    theta = np.array([6.0, 7.0, 0.3, 0.35, 0.5])  # (a, b, alpha, beta, e)
    guess = ChinchillaParams(E=np.exp(0.5), A=np.exp(6.0), B=np.exp(7.0), alpha=0.3, beta=0.35)
    residuals = np.log(predict_loss(params, tokens, guess)) - np.log(loss)
    value, _ = objective.value_and_grad(theta)
    assert value == pytest.approx(huber(residuals, 1e-3).sum())  # a sum, not a mean
    assert objective.values(theta[None])[0] == pytest.approx(value)
    error = check_grad(lambda t: objective.value_and_grad(t)[0], lambda t: objective.value_and_grad(t)[1], theta)
    assert error < 1e-6 * np.linalg.norm(objective.value_and_grad(theta)[1])


def test_the_minimiser_runs_on_one_blas_thread_and_gives_the_threads_back():
    """Tiny L-BFGS-B calls wait on OpenBLAS's worker threads when the cores are busy (`forms/huber.py`)."""
    pools = ThreadpoolController()

    def blas_threads():
        return tuple(info["num_threads"] for info in pools.info() if info["user_api"] == "blas")

    params, tokens = grid_points()
    objective = chinchilla_objective(params, tokens, predict_loss(params, tokens, TRUTH))
    seen = []

    class Watched:  # the objective, noting the BLAS thread counts it is evaluated under
        bounds = objective.bounds

        def values(self, thetas):
            seen.append(blas_threads())
            return objective.values(thetas)

        def value_and_grad(self, theta):
            seen.append(blas_threads())
            return objective.value_and_grad(theta)

    before = blas_threads()
    minimize_from_starts(Watched(), best_starts(Watched(), hoffmann_grid(), 2))
    assert set(seen) == {(1,) * len(before)}
    assert blas_threads() == before


def test_noiseless_grid_recovers_the_law_within_one_percent():
    params, tokens = grid_points()
    fit = fit_chinchilla(params, tokens, predict_loss(params, tokens, TRUTH))
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fit.params, name) == pytest.approx(getattr(TRUTH, name), rel=0.01), name
    assert fit.n_points == 36


def test_noiseless_grid_without_e_recovers_a_pure_sum_of_power_laws():
    params, tokens = grid_points()
    truth = ChinchillaParams(E=0.0, A=TRUTH.A, B=TRUTH.B, alpha=TRUTH.alpha, beta=TRUTH.beta)
    fit = fit_chinchilla(params, tokens, predict_loss(params, tokens, truth), irreducible=False)
    assert fit.params.E == 0.0
    for name in ("A", "B", "alpha", "beta"):
        assert getattr(fit.params, name) == pytest.approx(getattr(truth, name), rel=0.01), name


def test_noisy_fit_intervals_cover_the_truth():
    rng = np.random.default_rng(7)
    params, tokens = grid_points(7, 7)
    loss = predict_loss(params, tokens, TRUTH) * np.exp(0.01 * rng.standard_normal(len(params)))
    fit = fit_chinchilla(params, tokens, loss)
    samples = parametric_bootstrap(FORMS["chinchilla"], params, tokens, loss, fit, n_samples=40, seed=0)
    assert len(samples.laws) == 40 and samples.residual_dof == 49 - 5
    assert samples.noise_scale == pytest.approx(0.01, rel=0.3)  # the 1% scatter the data were drawn with
    for name in ("E", "A", "B", "alpha", "beta"):
        low, high = interval(np.array([getattr(law, name) for law in samples.laws]))
        assert low < getattr(TRUTH, name) < high, (name, low, high)
        assert low < getattr(fit.params, name) < high
    low, high = interval(np.array([allocation_of(law).a for law in samples.laws]))
    assert low < allocation_of(TRUTH).a < high
    assert high - low < 0.1  # 1% noise on 49 points pins a down


def test_bootstrap_is_repeatable_with_a_seed():
    params, tokens = grid_points(4, 4)
    loss = predict_loss(params, tokens, TRUTH) * np.exp(0.01 * np.sin(np.arange(16.0)))
    fit = fit_chinchilla(params, tokens, loss)
    first, second = (parametric_bootstrap(FORMS["chinchilla"], params, tokens, loss, fit, 3, seed=1) for _ in range(2))
    assert first == second


def test_too_few_points_names_how_many_are_needed():
    params, tokens = np.array([1e6, 1e7, 1e8, 1e9]), np.array([1e9, 1e9, 1e10, 1e10])
    with pytest.raises(InputError, match="needs at least 5 points, but only 4"):
        fit_chinchilla(params, tokens, predict_loss(params, tokens, TRUTH))
    with pytest.raises(InputError, match="distinct tokens values"):
        fit_chinchilla(np.geomspace(1e6, 1e9, 6), np.full(6, 1e10), np.linspace(3, 2, 6))
