"""Time the Chinchilla fit: the full 4500-start grid on 250 points (target < 5 s on 2 cores), 200
bootstrap refits (target < 60 s) and a whole `fit_report` as `sweep fit` runs it. Prints medians.

    python scripts/bench_fit.py [--points 250] [--bootstrap 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import pandas as pd

from sweep.laws import ChinchillaParams, fit_report, predict_loss, prepare_table
from sweep.laws.bootstrap import parametric_bootstrap
from sweep.laws.forms.chinchilla import fit_chinchilla
from sweep.laws.forms.joint import FORMS

TRUTH = ChinchillaParams(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)  # Besiroglu et al. 2024


def synthetic_runs(n_points: int, seed: int = 0) -> pd.DataFrame:
    """Log-uniform N in [1e6, 1e9] and D in [1e8, 1e11], 2% multiplicative loss noise."""
    rng = np.random.default_rng(seed)
    params = np.exp(rng.uniform(np.log(1e6), np.log(1e9), n_points))
    tokens = np.exp(rng.uniform(np.log(1e8), np.log(1e11), n_points))
    loss = predict_loss(params, tokens, TRUTH) * np.exp(0.02 * rng.standard_normal(n_points))
    return pd.DataFrame({"params": params, "tokens": tokens, "loss": loss})


def median_seconds(work, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=250)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    runs = synthetic_runs(args.points)
    params, tokens, loss = (runs[column].to_numpy() for column in ("params", "tokens", "loss"))
    print(f"{args.points} points, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")

    fit = fit_chinchilla(params, tokens, loss)  # also warms imports and caches
    median, times = median_seconds(lambda: fit_chinchilla(params, tokens, loss), args.repeats)
    runs_shown = ", ".join(f"{t:.3f}" for t in times)
    print(f"chinchilla fit, 4500 starts, 10 refined: median {median:.3f} s  (runs: {runs_shown})")
    print(f"  fitted alpha={fit.params.alpha:.4f} beta={fit.params.beta:.4f} (truth {TRUTH.alpha}, {TRUTH.beta})")

    median, times = median_seconds(
        lambda: parametric_bootstrap(FORMS["chinchilla"], params, tokens, loss, fit, args.bootstrap, seed=0),
        max(1, args.repeats // 2),
    )
    print(f"{args.bootstrap} bootstrap refits: median {median:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})")

    table = prepare_table(runs)
    median, times = median_seconds(lambda: fit_report(table, bootstrap=args.bootstrap), 1)
    print(
        f"fit_report (every law, rollout check of 3 forms, bootstrap {args.bootstrap} for the chosen law, Chinchilla "
        f"and the 3 power laws): {median:.2f} s"
    )
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
