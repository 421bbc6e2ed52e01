"""Where a CPU training step's time goes: torch.profiler over a few steps of one ladder size.

    python scripts/profile_step.py [--params 3e6] [--threads 0] [--steps 5] [--top 25]

Trains the params rule's shape for `--params` through the functions `sweep run` uses (bf16 autocast
where the CPU has native bf16), profiles `--steps` steps after two warm-up steps, and prints the ops
by self CPU time, then the split between matrix products (mm, bmm, addmm and their backward kernels
as oneDNN runs them) and everything else (norms, activations, softmax, copies, the optimizer), and
the minor page faults and system time per step.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from sweep.config import DataConfig, ModelConfig, RunSpec, TrainConfig, shape_for_params
from sweep.data import get_batch, load_corpus
from sweep.engine import configure_device, forward_backward, make_optimizer, optimizer_step, resolve_dtype
from sweep.model.gpt import GPT

MATMUL_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::matmul", "aten::linear", "mkldnn", "onednn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=3e6)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    configure_device(device)
    shape = shape_for_params(int(args.params), ModelConfig(params=(1,)), seq_len=256, vocab_size=256)
    spec = RunSpec(
        "profile", shape, args.batch_tokens, 0, TrainConfig(batch_tokens=args.batch_tokens, lr=3e-3), DataConfig()
    )
    corpus = load_corpus(DataConfig())
    dtype = resolve_dtype("auto", device)
    model = GPT(shape)
    optimizer = make_optimizer(model, spec, device)
    generator = torch.Generator().manual_seed(0)
    rows = args.batch_tokens // shape.seq_len

    def step() -> None:
        x, y = get_batch(corpus.train, rows, shape.seq_len, generator, device)
        forward_backward(model, x, y, device, dtype)
        optimizer_step(model, optimizer, 3e-3, 1.0)

    for _ in range(2):
        step()
    usage, begin = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    seconds = (time.perf_counter() - begin) / args.steps
    after = resource.getrusage(resource.RUSAGE_SELF)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(
        f"{shape.name}, {torch.get_num_threads()} threads, {'bf16' if dtype == torch.bfloat16 else 'fp32'}: "
        f"{seconds * 1000:.1f} ms per {args.batch_tokens}-token step (profiled), "
        f"{(after.ru_minflt - usage.ru_minflt) / args.steps:,.0f} minor faults and "
        f"{(after.ru_stime - usage.ru_stime) / args.steps * 1000:.1f} ms system time per step"
    )
    print("| op | self CPU ms per step | share | calls per step |\n|---|---|---|---|")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        print(
            f"| {event.key} | {event.self_cpu_time_total / 1000 / args.steps:.2f} | "
            f"{event.self_cpu_time_total / total:.1%} | {event.count / args.steps:g} |"
        )
    groups = defaultdict(float)
    for event in events:
        matmul = any(event.key.startswith(name) or name in event.key for name in MATMUL_OPS)
        groups["matrix products" if matmul else "everything else"] += event.self_cpu_time_total
    print("\n" + ", ".join(f"{name}: {value / total:.1%}" for name, value in groups.items()))


if __name__ == "__main__":
    main()
