"""The pieces of a training step and of an evaluation: AdamW with weight decay on matrices only,
gradient clipping, bf16 autocast where chosen, and a batch run as micro-batches whose gradients
accumulate, also across the processes torchrun started (`sweep.engine.distributed`); either way the
update is the unsplit batch's."""

from __future__ import annotations

import torch

from sweep.config import RunSpec
from sweep.engine import distributed
from sweep.engine.device import autocast
from sweep.errors import SweepError
from sweep.model.gpt import GPT


def micro_batch_rows(spec: RunSpec, world_size: int) -> int:
    """Windows one process runs through forward and backward at a time: its share of each batch
    (batch_tokens / world_size), or `train.micro_batch_tokens` of it. The config cannot check these
    against seq_len and the number of processes, so they are checked here; SweepError if a share or a
    micro-batch is not whole windows."""
    train, seq_len = spec.train, spec.shape.seq_len
    if train.batch_tokens % (world_size * seq_len):
        raise SweepError(
            f"train.batch_tokens: {train.batch_tokens} is not divisible by {world_size} processes × "
            f"data.seq_len ({seq_len}); each process trains on whole windows of every batch"
        )
    share = train.batch_tokens // world_size
    micro = train.micro_batch_tokens or share
    if micro % seq_len or share % micro:
        raise SweepError(
            f"train.micro_batch_tokens: {micro} must be a multiple of data.seq_len ({seq_len}) that "
            f"divides the {share} tokens of each batch one of {world_size} process(es) trains on"
        )
    return micro // seq_len


def accumulate_gradients(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, micro_rows: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Forward and backward of this process's share x, y (B_share, T) of a batch, `micro_rows` windows
    at a time. Each micro-batch's loss is a mean over its tokens and all k have the same size, so
    scaling each by 1/k accumulates the gradient of the share's mean loss; under DDP the last backward
    averages that over ranks (the others skip the all-reduce), which is the whole batch's mean.
    Returns the share's mean loss, not synced."""
    micro_xs, micro_ys = x.split(micro_rows), y.split(micro_rows)  # k × (micro_rows, T)
    count = len(micro_xs)
    loss_sum = torch.zeros((), device=device)
    for i, (micro_x, micro_y) in enumerate(zip(micro_xs, micro_ys)):
        with distributed.gradient_sync(model, sync=i == count - 1):
            loss_sum += forward_backward(model, micro_x, micro_y, device, dtype, scale=1 / count)
    return loss_sum / count


def forward_backward(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    dtype: torch.dtype,
    scale: float = 1.0,
) -> torch.Tensor:
    """Loss of one batch, gradients of `scale` × loss accumulated into the parameters. Returns the
    unscaled loss, not synced."""
    with autocast(device, dtype):
        loss = model(x, y)
    (loss * scale).backward()
    return loss.detach()


def optimizer_step(model: GPT, optimizer: torch.optim.Optimizer, lr: float, grad_clip: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def make_optimizer(model: GPT, spec: RunSpec, device: torch.device) -> torch.optim.AdamW:
    """Weight decay on matrices (and embeddings) only, not on norm weights (nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": spec.train.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(spec.train.beta1, spec.train.beta2), fused=fused)


@torch.no_grad()
def evaluate(
    model: GPT, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device, dtype: torch.dtype
) -> float:
    """Mean loss per token over the fixed validation windows x, y (n, T)."""
    model.eval()
    total = torch.zeros((), device=device)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        with autocast(device, dtype):
            total += model(xb, yb).float() * len(xb)
    model.train()
    return total.item() / len(x)
