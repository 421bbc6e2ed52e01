"""One run trained across the processes torchrun started: the process group, each rank's device, and
the few collectives `loop.train` needs (after nanoGPT's train.py DDP path).

Every rank draws the same global batch and trains on its rows of it, DistributedDataParallel averages
the gradients, so each update, and the sampler state a checkpoint holds, are one process's with the
same batch. Rank 0 is the writer: it alone logs and saves. Outside torchrun (or with one process)
every function here is a no-op and `train` runs as it always has.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def init_from_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the variables torchrun sets, initialising the process group
    when WORLD_SIZE > 1; (0, 1, 0) outside torchrun. NCCL carries CUDA tensors and gloo CPU ones
    (both where CUDA is present, so a run on either device finds its backend). The env:// rendezvous
    reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE itself. Call `device_for_rank` before the
    first collective, so NCCL binds each rank to its own GPU."""
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return rank, world_size, local_rank


def device_for_rank(device: torch.device) -> torch.device:
    """This rank's device: cuda:LOCAL_RANK on CUDA (made the current device), so each process on a
    host has a GPU of its own; CPU unchanged."""
    if device.type != "cuda":
        return device
    local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(local)
    return local


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_writer() -> bool:
    """Whether this process writes the run's records: when not distributed, or as rank 0."""
    return rank() == 0


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel when distributed, else itself. Construction broadcasts
    rank 0's parameters; every rank seeded alike already holds the same ones."""
    if not is_distributed():
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def gradient_sync(module: torch.nn.Module, sync: bool):
    """The context a backward runs in: DDP's `no_sync()` unless `sync`, so gradients of all but a
    step's last micro-batch accumulate locally and are all-reduced once."""
    if sync or not isinstance(module, DistributedDataParallel):
        return nullcontext()
    return module.no_sync()


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over ranks, the same on each (all-reduce leaves every rank the same bytes)."""
    if not is_distributed():
        return value
    total = value.clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def from_writer(compute: Callable[[], float], device: torch.device) -> float:
    """`compute()` run by the writer alone and its value broadcast, so every rank gets the same number
    (the other ranks wait at the broadcast)."""
    if not is_distributed():
        return compute()
    value = torch.tensor(compute() if is_writer() else 0.0, dtype=torch.float64, device=device)
    dist.broadcast(value, src=0)
    return value.item()
