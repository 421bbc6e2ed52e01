"""How many worker processes a sweep trains on, with how many threads each, and on CUDA which GPU
each sees."""

from __future__ import annotations

import os
from collections.abc import Sized
from dataclasses import dataclass

import torch


def packing(todo: Sized, device: torch.device, workers: int = 0) -> tuple[int, int]:
    """(worker processes, threads each) for the runs in `todo` (only their number matters; `sweep
    bench` passes its ladder). CPU: one single-thread worker per core while there are runs for all
    of them; fewer runs share the cores out. CUDA: one worker unless `workers` says more."""
    cores = os.cpu_count() or 1
    if not workers:
        workers = 1 if device.type == "cuda" else max(1, min(cores, len(todo)))
    return workers, max(1, cores // workers)


@dataclass(frozen=True)
class Workers:
    """How a sweep is trained on this machine: `processes` of `threads` threads, and on CUDA the GPU
    each process sees."""

    processes: int
    threads: int
    gpus: tuple[str, ...] | None = None


def plan_workers(todo: Sized, device: torch.device, workers: int = 0, workers_per_gpu: int = 1,
                 visible: list[str] | None = None) -> Workers:
    """CPU: `packing`. CUDA: one worker per visible GPU (`workers_per_gpu` each), or `workers`,
    spread round-robin over the GPUs (`launch.gpus`)."""
    if device.type != "cuda":
        return Workers(*packing(todo, device, workers))
    from sweep.launch.gpus import visible_gpus, worker_gpus

    visible = visible_gpus() if visible is None else visible
    processes = min(workers or len(visible) * workers_per_gpu, max(1, len(todo)))
    if processes <= 1 or not visible:
        return Workers(1, packing(todo, device, 1)[1])
    spread = worker_gpus(visible, -(-processes // len(visible)))[:processes]
    return Workers(processes, max(1, (os.cpu_count() or 1) // processes), tuple(spread))
