"""Memory and start-up time of a large token .bin: writes a nanoGPT-style uint16 file of random GPT-2
ids (2 GB by default) a block at a time, then in fresh processes loads it through `load_corpus` and
trains one step of a tiny model on it, reporting resident memory (VmRSS, and the peak VmHWM) after the
imports, once the corpus is open and after the first step, and the seconds from the process's start
to the first step. The goals: under 300 MB resident with the corpus open, under 5 s to the first step.
Three loads: with the file's pages dropped from the page cache first (cold), again (warm; both scan
the file for its largest id, as data.vocab_size 0 asks), and naming data.vocab_size (no scan). The
file is deleted at the end.
Usage: python scripts/bench_bin.py [--gb 2] [--dir /tmp]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GPT2_VOCAB = 50_257
BLOCK_TOKENS = 32 << 20  # 64 MiB of uint16 a write


def write_tokens(path: Path, tokens: int) -> None:
    """`tokens` random ids below GPT2_VOCAB, a block at a time, so the file is never in memory whole."""
    rng = np.random.default_rng(0)
    with open(path, "wb") as file:
        for start in range(0, tokens, BLOCK_TOKENS):
            rng.integers(0, GPT2_VOCAB, min(BLOCK_TOKENS, tokens - start), dtype=np.uint16).tofile(file)
        file.flush()
        os.fsync(file.fileno())


def drop_from_page_cache(path: Path) -> None:
    """Evict this file's (clean) pages, so that the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def memory_mb() -> dict:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    return fields


def child(path: str, spawned: float, vocab_size: int) -> None:
    """One fresh process: open the corpus, train one step, print the figures as one JSON line."""
    import torch

    from sweep.config import DataConfig
    from sweep.data import get_batch, load_corpus, validation_set
    from sweep.engine import forward_backward
    from sweep.model.gpt import GPT
    from sweep.model.shape import ModelShape

    imported, imported_memory = time.time(), memory_mb()
    corpus = load_corpus(DataConfig(corpus=path, bin_dtype="uint16", seq_len=256, vocab_size=vocab_size))
    opened, opened_memory = time.time(), memory_mb()
    validation_set(corpus.val, 256, 65_536)  # as `train` does before its first step
    torch.manual_seed(0)
    model = GPT(ModelShape(n_layers=2, d_model=64, n_heads=2, d_ff=256, vocab_size=corpus.vocab_size, seq_len=256))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = get_batch(corpus.train, 4, 256, torch.Generator().manual_seed(0), torch.device("cpu"))
    stepping = time.time()
    loss = forward_backward(model, x, y, torch.device("cpu"), torch.float32)
    optimizer.step()
    stepped, stepped_memory = time.time(), memory_mb()
    print(
        json.dumps(
            {
                "import_s": imported - spawned,
                "load_s": opened - imported,
                "step_starts_s": stepping - spawned,
                "step_done_s": stepped - spawned,
                "rss_imported_mb": imported_memory["VmRSS"],
                "rss_opened_mb": opened_memory["VmRSS"],
                "hwm_opened_mb": opened_memory["VmHWM"],
                "rss_step_mb": stepped_memory["VmRSS"],
                "hwm_step_mb": stepped_memory["VmHWM"],
                "loss": loss.item(),
                "train_tokens": len(corpus.train),
                "val_tokens": len(corpus.val),
                "vocab_size": corpus.vocab_size,
                "sha256": corpus.sha256[:12],
            }
        )
    )


def run_child(path: Path, vocab_size: int) -> dict:
    spawned = time.time()
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(spawned), str(vocab_size)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="size of the generated file (GB, 1e9 bytes)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write it")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]), int(args.child[2]))
        return
    tokens = int(args.gb * 1e9) // 2
    free = shutil.disk_usage(args.dir).free
    if free < 2 * tokens + (1 << 30):
        sys.exit(f"{args.dir}: {free / 1e9:.1f} GB free, not enough for a {args.gb} GB file and 1 GB to spare")
    workdir = Path(tempfile.mkdtemp(prefix="bench_bin-", dir=args.dir))
    path = workdir / "train.bin"
    try:
        begin = time.perf_counter()
        write_tokens(path, tokens)
        seconds = time.perf_counter() - begin
        print(f"wrote {path.stat().st_size / 1e9:.2f} GB ({tokens:,} uint16 tokens) in {seconds:.1f} s")
        drop_from_page_cache(path)
        for label, vocab_size in (
            ("cold, vocab_size 0 (scans)", 0),
            ("warm, vocab_size 0 (scans)", 0),
            (f"warm, vocab_size {GPT2_VOCAB}", GPT2_VOCAB),
        ):
            row = run_child(path, vocab_size)
            print(
                f"{label}: imports {row['import_s']:.2f} s, load_corpus {row['load_s']:.2f} s, first step starts "
                f"at {row['step_starts_s']:.2f} s, done at {row['step_done_s']:.2f} s; VmRSS after imports "
                f"{row['rss_imported_mb']:.0f} MB, corpus open {row['rss_opened_mb']:.0f} MB (peak "
                f"{row['hwm_opened_mb']:.0f}), after the step {row['rss_step_mb']:.0f} MB (peak "
                f"{row['hwm_step_mb']:.0f}); {row['train_tokens']:,} train / {row['val_tokens']:,} val tokens, "
                f"vocab {row['vocab_size']}, loss {row['loss']:.2f}, sha256 {row['sha256']}..."
            )
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
