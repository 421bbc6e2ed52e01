"""Two ways of taking the same CPU training step, alternated in one process, so that a noisy shared
machine slows both alike. On the 2-core development machine two `sweep bench` processes gave 1.44x
and 1.01x for the same pair; alternated steps are what separates a 15% effect from that noise.

    python scripts/step_ab.py compile [--params 1e6,3e6,1e7] [--pairs 8]
    python scripts/step_ab.py dtype [--sizes 1x28,1x48,2x64,3x96] [--threads 1] [--batch-tokens 1024] [--pairs 8]

compile: eager against the `torch.compile`d training module (`train.step_module`, compiled before
timing), 8,192-token steps of the params rule's shapes. dtype: fp32 against bf16 autocast at explicit
"LxD" shapes (the quickstart's by default): does `train.dtype: auto` (bf16 wherever the CPU has
native bf16) hold at small widths? For each shape: the median step of each way, their ratio and the
range of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sweep.config import DataConfig, ModelConfig, RunSpec, TrainConfig, build_shape, shape_for_params
from sweep.data import get_batch, load_corpus
from sweep.engine import configure_device, forward_backward, make_optimizer, optimizer_step, resolve_dtype, step_module
from sweep.model.gpt import GPT
from sweep.model.shape import ModelShape

CPU = torch.device("cpu")


def stepper(shape: ModelShape, corpus, batch_tokens: int):
    """A model of `shape`, and a function that trains it one step through `module` in `dtype` and
    returns the step's seconds."""
    spec = RunSpec("ab", shape, batch_tokens, 0, TrainConfig(batch_tokens=batch_tokens, lr=3e-3), DataConfig())
    model = GPT(shape)
    optimizer = make_optimizer(model, spec, CPU)
    generator = torch.Generator().manual_seed(0)

    def step(module, dtype) -> float:
        begin = time.perf_counter()
        x, y = get_batch(corpus.train, batch_tokens // shape.seq_len, shape.seq_len, generator, CPU)
        forward_backward(module, x, y, CPU, dtype)
        optimizer_step(model, optimizer, 3e-3, 1.0)
        return time.perf_counter() - begin

    return model, step


def alternate(first, second, pairs: int) -> str:
    """`pairs` pairs of (first(), second()) after two warm-up pairs: the medians and their ratio."""
    for _ in range(2):
        first(), second()
    timed = [(first(), second()) for _ in range(pairs)]
    a, b = (statistics.median(times) for times in zip(*timed))
    ratios = [x / y for x, y in timed]
    return (
        f"{a * 1000:.1f} ms against {b * 1000:.1f} ms a step: {a / b:.2f}x (pairs {min(ratios):.2f}-{max(ratios):.2f})"
    )


def compare_compile(args, corpus) -> None:
    dtype = resolve_dtype("auto", CPU)
    for target in (float(p) for p in args.params.split(",")):
        shape = shape_for_params(int(target), ModelConfig(params=(1,)), seq_len=256, vocab_size=256)
        model, step = stepper(shape, corpus, 8192)
        compiled, _ = step_module(model, True, CPU)
        compile_s = step(compiled, dtype)
        result = alternate(lambda: step(model, dtype), lambda: step(compiled, dtype), args.pairs)
        print(f"{shape.name}: eager against compiled {result}; first compiled step {compile_s:.1f} s")


def compare_dtype(args, corpus) -> None:
    for size in args.sizes.split(","):
        layers, width = (int(v) for v in size.split("x"))
        shape = build_shape(ModelConfig(), layers, width, 0, 0, seq_len=256, vocab_size=256)
        model, step = stepper(shape, corpus, args.batch_tokens)
        result = alternate(lambda: step(model, torch.float32), lambda: step(model, torch.bfloat16), args.pairs)
        print(f"{shape.name}: fp32 against bf16 {result}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("compare", choices=("compile", "dtype"))
    parser.add_argument("--params", default="1e6,3e6,1e7", help="compile: the params rule's targets")
    parser.add_argument("--sizes", default="1x28,1x48,2x64,3x96", help="dtype: LxD shapes")
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default (dtype: give 1 for a pool worker's)")
    parser.add_argument("--batch-tokens", type=int, default=1024, help="dtype: tokens a step")
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configure_device(CPU)
    corpus = load_corpus(DataConfig())
    print(f"{torch.get_num_threads()} thread(s)")
    (compare_compile if args.compare == "compile" else compare_dtype)(args, corpus)


if __name__ == "__main__":
    main()
