"""Bits per byte of a BPE sweep against a byte-level sweep of the same sizes on the same text.

    python scripts/bpe_vs_bytes.py CORPUS STORE [--vocab 2048]

Trains one small ladder three times into STORE, the same shapes, seeds and `lr: auto`: byte-level
(sweep `bytes`), BPE at the same token budgets (`bpe<vocab>`: a BPE token covers several bytes, so
these read several times more text) and BPE at the same text (`bpe<vocab>-text`: budgets divided by
the training split's bytes per BPE token). bpb counts the same validation text under either
tokenizer (README, Tokenizers), so the columns are comparable.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

LADDER = {
    "data": {"seq_len": 256},
    "model": {
        "sizes": [{"n_layers": 1, "d_model": 48}, {"n_layers": 2, "d_model": 64}, {"n_layers": 3, "d_model": 96}]
    },
    "tokens": [5e5, 1e6, 2e6],
    "seeds": [0],
    "train": {"batch_tokens": 1024, "lr": "auto", "schedule": "wsd", "cooldown": 0.2, "evals": 2},
    "device": "cpu",
}


def run_sweep(name: str, corpus: str, store: Path, data: dict, tokens: list[float] = LADDER["tokens"]) -> float:
    """Train one sweep with `sweep run`; its wall time in seconds."""
    config = {**LADDER, "name": name, "tokens": tokens, "data": {**LADDER["data"], "corpus": corpus, **data}}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        yaml.safe_dump(config, file)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sweep", "run", file.name, "--store", str(store)], check=True)
    return time.perf_counter() - started


def results(store: Path, name: str) -> dict[tuple[str, int], dict]:
    records = [json.loads(p.read_text()) for p in (store / name).glob("*/result.json")]
    return {(f"L{r['n_layers']}-d{r['d_model']}", r["tokens_target"]): r for r in records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("store", type=Path)
    parser.add_argument("--vocab", type=int, default=2048)
    args = parser.parse_args()
    bpe, bpe_data = f"bpe{args.vocab}", {"tokenizer": "bpe", "vocab_size": args.vocab}
    seconds = {
        "bytes": run_sweep("bytes", args.corpus, args.store, {}),
        bpe: run_sweep(bpe, args.corpus, args.store, bpe_data),
    }
    byte_runs, bpe_runs = results(args.store, "bytes"), results(args.store, bpe)
    split = lambda runs: next(iter(runs.values()))["corpus"]["train_tokens"]  # noqa: E731
    bytes_per_token = split(byte_runs) / split(bpe_runs)
    text_budgets = [round(d / bytes_per_token / 1024) * 1024 for d in LADDER["tokens"]]
    seconds[f"{bpe}-text"] = run_sweep(f"{bpe}-text", args.corpus, args.store, bpe_data, text_budgets)
    text_runs = {
        (shape, LADDER["tokens"][text_budgets.index(tokens)]): run
        for (shape, tokens), run in results(args.store, f"{bpe}-text").items()
    }
    print(
        f"\n| shape | bytes D | bytes: bpb | {bpe}, D tokens: bpb | {bpe}, D bytes of text ({bytes_per_token:.2f} "
        f"bytes/token): tokens, bpb | {bpe}: params_total |"
    )
    print("|---|---|---|---|---|---|")
    for key in sorted(byte_runs, key=lambda k: (byte_runs[k]["params"], k[1])):
        b, p, t = byte_runs[key], bpe_runs.get(key), text_runs.get(key)
        print(
            f"| {key[0]} | {key[1] / 1e6:g}M | {b['bpb']:.4f} | {p['bpb']:.4f} | {t['tokens']:,}, {t['bpb']:.4f} | "
            f"{p['params_total']:,} |"
        )
    low, high = min(r["bpb"] for r in byte_runs.values()), max(r["bpb"] for r in byte_runs.values())
    for name, runs in ((bpe, bpe_runs), (f"{bpe}-text", text_runs)):
        inside = sum(low <= r["bpb"] <= high for r in runs.values())
        print(
            f"byte-level bpb range [{low:.4f}, {high:.4f}]; {inside} of {len(runs)} {name} runs inside it, "
            f"range [{min(r['bpb'] for r in runs.values()):.4f}, {max(r['bpb'] for r in runs.values()):.4f}]"
        )
    tokenizer = next(iter(bpe_runs.values()))["corpus"]["tokenizer"]
    print(f"tokenizer: {tokenizer['vocab_size']} ids, sha256 {tokenizer['sha256'][:12]}")
    print(
        "wall time: "
        + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
        + f" ({bpe}: tokenizer training and tokenisation included)"
    )


if __name__ == "__main__":
    main()
