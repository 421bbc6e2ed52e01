"""bf16 autocast against fp32 training steps on CPU, alternated in one process, at small widths:
does `train.dtype: auto` (bf16 wherever the CPU has native bf16) hold on this CPU?

    python scripts/dtype_ab.py [--sizes 1x28,1x48,2x64,3x96] [--threads 1] [--pairs 8] [--batch-tokens 1024]

Each size is "LxD" (n_layers x d_model, the quickstart's by default). One model, `--pairs` pairs of
steps, fp32 then bf16, each timed; prints the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sweep.config import DataConfig, ModelConfig, RunSpec, TrainConfig, _shape
from sweep.data import get_batch, load_corpus
from sweep.model import GPT
from sweep.train import configure_device, forward_backward, make_optimizer, optimizer_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1x28,1x48,2x64,3x96")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--batch-tokens", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    configure_device(device)
    corpus = load_corpus(DataConfig())
    print(f"{torch.get_num_threads()} thread(s), {args.batch_tokens}-token steps")
    for size in args.sizes.split(","):
        layers, width = (int(v) for v in size.split("x"))
        shape = _shape(ModelConfig(), layers, width, 0, 0, seq_len=256, vocab_size=256)
        spec = RunSpec("ab", shape, args.batch_tokens, 0, 3e-3, TrainConfig(batch_tokens=args.batch_tokens), DataConfig())
        model = GPT(shape)
        optimizer = make_optimizer(model, spec, device)
        generator = torch.Generator().manual_seed(0)

        def step(dtype) -> float:
            begin = time.perf_counter()
            x, y = get_batch(corpus.train, args.batch_tokens // 256, 256, generator, device)
            forward_backward(model, x, y, device, dtype)
            optimizer_step(model, optimizer, 3e-3, 1.0)
            return time.perf_counter() - begin

        for _ in range(2):
            step(torch.float32), step(torch.bfloat16)
        pairs = [(step(torch.float32), step(torch.bfloat16)) for _ in range(args.pairs)]
        fp32, bf16 = (statistics.median(times) for times in zip(*pairs))
        ratios = [a / b for a, b in pairs]
        print(f"{shape.name}: fp32 {fp32 * 1000:.1f} ms, bf16 {bf16 * 1000:.1f} ms a step: bf16 {fp32 / bf16:.2f}x "
              f"(pairs {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
