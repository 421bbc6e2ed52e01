"""Compiled against eager training steps on CPU, alternated in one process so that a noisy shared
machine slows both alike.

    python scripts/compile_ab.py [--params 3e6,1e7] [--pairs 8]

For each size: one model, its `torch.compile`d training module (`train.step_module`, compiled once
before timing), and `--pairs` pairs of steps, eager then compiled, each timed; prints the median
step of each and their ratio, with the range of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sweep.config import DataConfig, ModelConfig, RunSpec, TrainConfig, shape_for_params
from sweep.data import get_batch, load_corpus
from sweep.model import GPT
from sweep.train import configure_device, forward_backward, make_optimizer, optimizer_step, resolve_dtype, step_module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="3e6,1e7")
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    device = torch.device("cpu")
    configure_device(device)
    corpus, dtype = load_corpus(DataConfig()), resolve_dtype("auto", device)
    print(f"{torch.get_num_threads()} threads, {'bf16' if dtype == torch.bfloat16 else 'fp32'}")
    for target in (float(p) for p in args.params.split(",")):
        shape = shape_for_params(int(target), ModelConfig(params=(1,)), seq_len=256, vocab_size=256)
        spec = RunSpec("ab", shape, 8192, 0, 3e-3, TrainConfig(batch_tokens=8192), DataConfig())
        model = GPT(shape)
        compiled, _ = step_module(model, True, device)
        optimizer = make_optimizer(model, spec, device)
        generator = torch.Generator().manual_seed(0)

        def step(module) -> float:
            begin = time.perf_counter()
            x, y = get_batch(corpus.train, 32, 256, generator, device)
            forward_backward(module, x, y, device, dtype)
            optimizer_step(model, optimizer, 3e-3, 1.0)
            return time.perf_counter() - begin

        begin = time.perf_counter()
        step(compiled)
        compile_s = time.perf_counter() - begin
        step(model), step(compiled)
        pairs = [(step(model), step(compiled)) for _ in range(args.pairs)]
        eager, fast = (statistics.median(times) for times in zip(*pairs))
        ratios = [e / c for e, c in pairs]
        print(f"{shape.name}: eager {eager * 1000:.0f} ms, compiled {fast * 1000:.0f} ms a step: "
              f"{eager / fast:.2f}x (pairs {min(ratios):.2f}-{max(ratios):.2f}); first compiled step {compile_s:.1f} s")


if __name__ == "__main__":
    main()
