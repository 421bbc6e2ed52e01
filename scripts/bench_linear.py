"""The three products of one Linear layer's training step, timed alone on CPU: where a step's matmul
rate goes. Defaults: the 3M model's MLP up-projection (8,192 tokens, 208 → 832), bf16, 2 threads.

    python scripts/bench_linear.py [--tokens 8192] [--d-in 208] [--d-out 832] [--threads 2]

Prints GFLOP/s (median of repeats) of the forward x·Wᵀ, the input gradient dy·W, the weight gradient
dyᵀ·x (a reduction over every token), the weight gradient in 1,024-token chunks (bmm, then a sum), and
one nn.functional.linear forward + backward under bf16 autocast from fp32 weights, as training runs it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def gflops(run, flops: float, repeats: int = 30) -> float:
    for _ in range(5):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--d-in", type=int, default=208)
    parser.add_argument("--d-out", type=int, default=832)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    m, k, n = args.tokens, args.d_in, args.d_out
    x32, w32, dy32 = torch.randn(m, k), torch.randn(n, k) * 0.02, torch.randn(m, n)
    x, w, dy = x32.bfloat16(), w32.bfloat16(), dy32.bfloat16()  # (M, K), (N, K), (M, N)
    product = 2 * m * k * n
    chunks = m // args.chunk

    def autocast_step():
        inputs, weight = x32.clone().requires_grad_(), w32.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = F.linear(inputs, weight)
        out.backward(dy)

    rows = [
        ("forward x·Wᵀ", lambda: x @ w.t(), product),
        ("input gradient dy·W", lambda: dy @ w, product),
        ("weight gradient dyᵀ·x", lambda: dy.t() @ x, product),
        (
            f"weight gradient in {args.chunk}-token chunks",
            lambda: torch.bmm(dy.view(chunks, args.chunk, n).transpose(1, 2), x.view(chunks, args.chunk, k)).sum(0),
            product,
        ),
        ("linear forward + backward, autocast", autocast_step, 3 * product),
    ]
    print(f"{m} tokens, {k} -> {n}, bf16, {args.threads} thread(s): GFLOP/s, median of 30")
    for name, run, flops in rows:
        print(f"  {name:<40} {gflops(run, flops):8.0f}")


if __name__ == "__main__":
    main()
