"""Which points of a sweep bend its law: refit the Chinchilla form without the runs under a step
count and see how well it predicts the highest-compute runs it did not see.

    python scripts/design_rules.py STORE [--sweep NAME] [--holdout 2] [--cutoffs 0,500,1000,2000]

For each cutoff K: the law is fit on the runs with at least K optimizer steps, less the `holdout`
highest-compute points, and predicts those. A cutoff that lowers the held-out error means the short
runs were not in the law's regime (still limited by optimisation rather than by N or D; Choshen et
al. 2024, arXiv 2410.11840, drop early-training points for the same reason). Run it on two sweeps
that differ only in batch size to tell steps from tokens.
"""

from __future__ import annotations

import argparse
import sys

from sweep import load_runs
from sweep.laws import predict_loss, prepare_table
from sweep.laws.forms.chinchilla import fit_chinchilla


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--sweep")
    parser.add_argument("--holdout", type=int, default=2)
    parser.add_argument("--cutoffs", default="0,500,1000,2000")
    args = parser.parse_args()
    runs = load_runs(args.store, sweep=args.sweep)
    points = prepare_table(runs).points
    steps = runs[runs["status"] == "done"].groupby(["params", "tokens"])["steps"].min()
    points = points.drop(columns="steps", errors="ignore").join(steps, on=["params", "tokens"])
    held_out = points.iloc[len(points) - args.holdout :]
    print(
        "held out: "
        + ", ".join(f"N={row.params:,} D={row.tokens:,} loss {row.loss:.4f}" for row in held_out.itertuples())
    )
    print(f"{'min steps':>9} {'points':>6} {'E':>6} {'alpha':>6} {'beta':>6}  held-out errors")
    for cutoff in (int(value) for value in args.cutoffs.split(",")):
        fitted = points.iloc[: len(points) - args.holdout]
        fitted = fitted[fitted["steps"] >= cutoff]
        if len(fitted) < 6:
            print(f"{cutoff:>9} {len(fitted):>6}  too few points")
            continue
        law = fit_chinchilla(fitted["params"].to_numpy(), fitted["tokens"].to_numpy(), fitted["loss"].to_numpy()).params
        errors = predict_loss(held_out["params"].to_numpy(), held_out["tokens"].to_numpy(), law) / held_out["loss"] - 1
        print(
            f"{cutoff:>9} {len(fitted):>6} {law.E:>6.3f} {law.alpha:>6.3f} {law.beta:>6.3f}  "
            + "  ".join(f"{error:+.2%}" for error in errors)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
