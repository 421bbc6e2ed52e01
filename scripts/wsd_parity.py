"""WSD branches against separate cosine runs: the same (N, D) grid trained both ways, final losses side
by side. Hägele et al. 2024 (arXiv 2405.18392) find a 20% cooldown matches cosine; this checks it on
sweep's engine and data before `train.schedule: wsd` is trusted as the default.

    python scripts/wsd_parity.py [--store runs-parity] [--corpus stdlib] [--set key=value ...]

Trains (or resumes) two sweeps into the store with `sweep run`, then prints one row per (N, D): the
cosine loss, the wsd loss and their difference, plus the FLOPs each way. Rerunning skips finished runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from sweep import load_runs

GRID = {
    "data": {"corpus": "stdlib", "seq_len": 256},
    "model": {
        "sizes": [
            {"n_layers": 1, "d_model": 32},  # 12k non-embedding parameters
            {"n_layers": 1, "d_model": 48},  # 28k
            {"n_layers": 2, "d_model": 64},  # 99k
        ]
    },
    "tokens": ["1e6", "2e6", "4e6"],
    "seeds": [0],
    "train": {"batch_tokens": 1024, "lr": 3e-3},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="runs-parity")
    parser.add_argument("--corpus", default="stdlib")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for schedule in ("cosine", "wsd"):
            config = {
                **GRID,
                "name": f"parity-{schedule}",
                "data": {**GRID["data"], "corpus": args.corpus},
                "train": {**GRID["train"], "schedule": schedule},
            }
            path = Path(tmp) / f"{schedule}.yaml"
            path.write_text(yaml.safe_dump(config))
            command = [sys.executable, "-m", "sweep", "run", str(path), "--store", args.store]
            command += [item for override in args.overrides for item in ("--set", override)]
            done = subprocess.run(command, capture_output=True, text=True)
            print(
                done.stdout.strip().splitlines()[-2] if done.stdout.strip() else "",
                done.stdout.strip().splitlines()[-1],
            )
            if done.returncode:
                print(done.stdout, done.stderr, file=sys.stderr)
                return done.returncode
    runs = load_runs(args.store)
    runs = runs[runs["sweep"].str.startswith("parity-") & (runs["status"] == "done")]
    table = runs.pivot_table(index=["n_layers", "d_model", "params", "tokens"], columns="schedule", values="loss")
    table["wsd - cosine"] = table["wsd"] - table["cosine"]
    table["relative"] = table["wsd"] / table["cosine"] - 1
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(
        f"mean relative difference {table['relative'].mean():+.2%}, largest |difference| "
        f"{table['relative'].abs().max():.2%}, wsd lower in {(table['relative'] < 0).sum()} of {len(table)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
