"""Is the matmul peak `sweep bench` measures the real one? FLOP/s of matmuls of several shapes.

    python scripts/bench_peak.py [--seconds 1] [--threads 0]

Square matmuls from 256 to 4096 and the shapes a training step multiplies (8,192 tokens against a
d × 4d MLP weight, and its transposes in the backward), in bf16 and fp32, each timed for about
`--seconds`: the median and the best (10th-percentile) rate of its repeats. AMX and AVX512-BF16 reach
their peaks at different sizes; `sweep bench` keeps the fastest of the shapes it samples.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def rate(m: int, k: int, n: int, dtype: torch.dtype, seconds: float) -> tuple[float, float]:
    """(median, 10th-percentile-time) FLOP/s of an (m, k) @ (k, n) matmul."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    for _ in range(3):
        a @ b
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        begin = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - begin)
    flops = 2 * m * k * n
    return flops / statistics.median(times), flops / statistics.quantiles(times, n=10)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [(s, s, s) for s in (256, 512, 1024, 2048, 4096)]
    for d in (224, 304, 512, 1024):  # 8,192 tokens × an MLP weight, forward and the two backward products
        shapes += [(8192, d, 4 * d), (8192, 4 * d, d), (d, 8192, 4 * d)]
    print(f"threads {torch.get_num_threads()}")
    print("| m × k × n | bf16 median | bf16 best | fp32 median | fp32 best |")
    print("|---|---|---|---|---|")
    for m, k, n in shapes:
        bf16 = rate(m, k, n, torch.bfloat16, args.seconds)
        fp32 = rate(m, k, n, torch.float32, args.seconds)
        print(
            f"| {m} × {k} × {n} | {bf16[0] / 1e9:,.0f} | {bf16[1] / 1e9:,.0f} | {fp32[0] / 1e9:,.0f} | "
            f"{fp32[1] / 1e9:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
