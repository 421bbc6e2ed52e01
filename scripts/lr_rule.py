"""The learning-rate rule behind `lr: auto`, measured on sweep's own engine: an lr grid at several
sizes, each size's best lr from a parabola in log lr through its three best points, then
lr*(N) = c·N^-k fit by least squares in log-log (N non-embedding).

    python scripts/lr_rule.py [--store runs-lr] [--corpus stdlib] [--set key=value ...]

Trains (or resumes) the sweep with `sweep run`, prints the loss of every (N, lr), each size's lr*
and the fitted rule. Rerunning skips finished runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from sweep import load_runs

GRID = {
    "name": "lr-grid",
    "data": {"corpus": "stdlib", "seq_len": 256},
    "model": {
        "sizes": [
            {"n_layers": 1, "d_model": 32},  # 12k non-embedding parameters
            {"n_layers": 2, "d_model": 64},  # 99k
            {"n_layers": 3, "d_model": 96},  # 332k
        ]
    },
    "tokens": ["2e6"],
    "seeds": [0],
    "train": {"batch_tokens": 1024, "lr": [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2], "schedule": "wsd"},
}


def best_lr(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, bool]:
    """The vertex of a parabola in log lr through the best point and its neighbours, and whether the
    best point sat at the edge of the grid (then the vertex is an extrapolation)."""
    order = np.argsort(lrs)
    lrs, losses = lrs[order], losses[order]
    best = int(np.argmin(losses))
    at_edge = best in (0, len(lrs) - 1)
    window = slice(max(0, min(best - 1, len(lrs) - 3)), max(3, min(best + 2, len(lrs))))
    curvature, slope, _ = np.polyfit(np.log(lrs[window]), losses[window], 2)
    if curvature <= 0:
        return float(lrs[best]), True
    vertex = -slope / (2 * curvature)
    return float(np.exp(np.clip(vertex, np.log(lrs[0]), np.log(lrs[-1])))), at_edge


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="runs-lr")
    parser.add_argument("--corpus", default="stdlib")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lr.yaml"
        path.write_text(yaml.safe_dump({**GRID, "data": {**GRID["data"], "corpus": args.corpus}}))
        command = [sys.executable, "-m", "sweep", "run", str(path), "--store", args.store]
        command += [item for override in args.overrides for item in ("--set", override)]
        done = subprocess.run(command, capture_output=True, text=True)
        print("\n".join(done.stdout.strip().splitlines()[-2:]))
        if done.returncode:
            print(done.stdout, done.stderr, file=sys.stderr)
            return done.returncode
    runs = load_runs(args.store, sweep=GRID["name"])
    runs = runs[runs["status"] == "done"]
    print(runs.pivot_table(index="lr", columns="params", values="loss").to_string(float_format=lambda v: f"{v:.4f}"))
    sizes, optima = [], []
    for params, group in runs.groupby("params"):
        lr, at_edge = best_lr(group["lr"].to_numpy(), group["loss"].to_numpy())
        print(f"N = {params:>8,}: lr* = {lr:.4g}" + ("  (best at the grid's edge)" if at_edge else ""))
        sizes.append(params)
        optima.append(lr)
    slope, intercept = np.polyfit(np.log(sizes), np.log(optima), 1)
    print(f"lr*(N) = {np.exp(intercept):.4g} * N^{slope:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
