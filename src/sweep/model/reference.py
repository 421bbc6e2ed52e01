"""The references `sweep bench --reference` compares against: a classic eager GPT training loop in
the style of nanoGPT (karpathy/nanoGPT model.py and train.py, 2023): LayerNorm with bias, learned
positions, GELU MLP, biases in every linear layer, tied embeddings, AdamW with torch's defaults, and
batches stacked row by row in Python. No compile, no process packing; in fp32, and with bf16
autocast, which is what a nanoGPT user gets by turning autocast on for the CPU.

It is deliberately plain: the point is to show what sweep's own path gains over the loop most
people start from, on the same shapes and the same data. Part of the package, so that an installed
`sweep bench --reference` finds it.

    python -m sweep.model.reference --layers 4 --d-model 128 --heads 4 --steps 10 [--bf16]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln_1 = nn.LayerNorm(d_model)
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.ln_2 = nn.LayerNorm(d_model)
        self.c_fc = nn.Linear(d_model, 4 * d_model)
        self.mlp_proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        batch, seq, channels = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(channels, dim=2)
        q, k, v = (t.view(batch, seq, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(batch, seq, channels))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class ReferenceGPT(nn.Module):
    def __init__(self, n_layers: int, d_model: int, n_heads: int, vocab_size: int = 256, seq_len: int = 256):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def get_batch(data: torch.Tensor, batch_size: int, seq_len: int):
    """nanoGPT's get_batch: random offsets, one Python-level slice per row."""
    ix = torch.randint(len(data) - seq_len - 1, (batch_size,))
    x = torch.stack([data[i : i + seq_len].long() for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + seq_len].long() for i in ix])
    return x, y


def step_seconds(
    n_layers: int,
    d_model: int,
    n_heads: int,
    data: torch.Tensor,
    batch_tokens: int = 8192,
    seq_len: int = 256,
    steps: int = 10,
    warmup: int = 2,
    lr: float = 3e-3,
    bf16: bool = False,
) -> float:
    """Median seconds per optimizer step of the classic loop, after `warmup` steps; `bf16`: the
    forward under CPU bf16 autocast, as nanoGPT's train.py does with dtype = 'bfloat16'."""
    torch.manual_seed(0)
    model = ReferenceGPT(n_layers, d_model, n_heads, seq_len=seq_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    times = []
    for step in range(warmup + steps):
        begin = time.perf_counter()
        x, y = get_batch(data, batch_tokens // seq_len, seq_len)
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step >= warmup:
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    args = parser.parse_args()
    data = torch.randint(0, 256, (1_000_000,), dtype=torch.uint8)
    seconds = step_seconds(args.layers, args.d_model, args.heads, data, steps=args.steps, bf16=args.bf16)
    print(
        f"{8192 / seconds:,.0f} tokens/s ({seconds * 1000:.1f} ms per 8192-token step, loss near {math.log(256):.2f} at start)"
    )
