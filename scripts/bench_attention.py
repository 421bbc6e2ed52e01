"""Forward+backward time of one attention layer on CPU: SDPA's flash kernel against
`ops.causal_attention`'s matmul path, at 8,192 tokens per step in bf16, across context lengths.
The crossover it shows sets `ops.MATMUL_ATTENTION_MAX_SEQ`. Usage: python scripts/bench_attention.py
"""

import statistics
import time

import torch
import torch.nn.functional as F

from sweep.model import ops


def median_ms(step, repeats: int = 5) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        step()
        times.append(time.perf_counter() - begin)
    return 1000 * statistics.median(times)


def main() -> None:
    torch.set_flush_denormal(True)
    ops.MATMUL_ATTENTION_MAX_SEQ = 1 << 30  # time the matmul path at every length
    for seq in (128, 256, 512, 1024, 2048):
        for heads, head_dim in ((4, 76), (2, 112), (1, 64)):
            q, k, v = (torch.randn(8192 // seq, heads, seq, head_dim).bfloat16().requires_grad_() for _ in range(3))
            mask = torch.full((seq, seq), float("-inf")).triu(1)
            flash = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward())
            matmul = median_ms(lambda: ops.causal_attention(q, k, v, mask).sum().backward())
            print(
                f"T={seq:5d} heads={heads} head_dim={head_dim:3d}  flash {flash:7.1f} ms  matmul {matmul:7.1f} ms  "
                f"flash/matmul {flash / matmul:.2f}"
            )


if __name__ == "__main__":
    main()
