"""A small, deterministic run of scripts/calibration.py: on synthetic sweeps with a known truth, the
prediction interval `sweep fit --holdout` checks against covers a new run at a held-out point about
as often as it says, and the parameter-only interval (what sweep printed before) does not.

To keep this to well under a minute the run is small: 20 worlds and 40 refits per interval. With so
few refits a 2.5-97.5% percentile interval is itself narrower than 95% (~90% for an exact predictive
distribution), so the band is wide; `python scripts/calibration.py` measures it properly. Instead of
counting hits of the one noisy loss drawn per point (too few to tell methods apart), each point
scores the chance that a fresh run, the truth times exp(σ z), lands inside its interval."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "calibration.py"

WORLDS = 20
REFITS = 40


def calibration_script():
    spec = importlib.util.spec_from_file_location("calibration", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["calibration"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def chance_inside(bounds, true_loss: float, noise: float) -> float:
    """P(true_loss · exp(noise · z) in bounds), z ~ N(0, 1)."""
    low, high = np.log(bounds) - np.log(true_loss)
    return float(norm.cdf(high / noise) - norm.cdf(low / noise))


@pytest.mark.slow
def test_prediction_intervals_cover_new_runs_and_parameter_intervals_do_not():
    calibration = calibration_script()
    coverage = {"interval": [], "ci": []}
    for index in range(WORLDS):
        world = calibration.make_world(np.random.default_rng([0, index]))
        fitted = len(world.params) - world.holdout
        points = pd.DataFrame({column: getattr(world, column)[:fitted] for column in ("params", "tokens", "loss")})
        targets = list(zip(world.params[fitted:], world.tokens[fitted:], strict=True))
        intervals = calibration.new_intervals("chinchilla", points, targets, REFITS, index)
        for offset, (interval, ci) in enumerate(intervals):
            true_loss = world.true_loss[fitted + offset]
            coverage["interval"].append(chance_inside(interval, true_loss, world.noise))
            coverage["ci"].append(chance_inside(ci, true_loss, world.noise))
    interval, ci = np.mean(coverage["interval"]), np.mean(coverage["ci"])
    # Measured: interval 0.865, ci 0.794, and 0.795 for the old resampled-points interval (which this
    # band rejects; computing it here would double the test's time).
    assert 0.82 <= interval <= 0.99, interval
    assert interval - ci >= 0.05, (interval, ci)
    assert not 0.82 <= ci <= 0.99
