"""How many worker processes a sweep trains on, with how many threads each, and on CUDA which GPU
each sees: one worker per visible GPU (or several, `--workers-per-gpu`), each seeing only its own GPU
through CUDA_VISIBLE_DEVICES, so every run's `cuda` device is that GPU."""

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


def plan_workers(
    todo: Sized, device: torch.device, workers: int = 0, workers_per_gpu: int = 1, visible: list[str] | None = None
) -> Workers:
    """CPU: `packing`. CUDA: one worker per visible GPU (`workers_per_gpu` each), or `workers`,
    spread round-robin over the GPUs (`worker_gpus`)."""
    if device.type != "cuda":
        return Workers(*packing(todo, device, workers))
    visible = visible_gpus() if visible is None else visible
    processes = min(workers or len(visible) * workers_per_gpu, max(1, len(todo)))
    if processes <= 1 or not visible:
        return Workers(1, packing(todo, device, 1)[1])
    spread = worker_gpus(visible, -(-processes // len(visible)))[:processes]
    return Workers(processes, max(1, (os.cpu_count() or 1) // processes), tuple(spread))


def visible_gpus(environ: dict | None = None, count: int | None = None) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them: that variable's entries if
    it is set, else 0 .. count-1 (`count`: torch.cuda.device_count())."""
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [name.strip() for name in listed.split(",") if name.strip() and name.strip() != "-1"]
    if count is None:
        count = torch.cuda.device_count()
    return [str(index) for index in range(count)]


def worker_gpus(gpus: list[str], workers_per_gpu: int) -> list[str]:
    """The GPU of each worker, spread round-robin: the first workers, which take the largest runs,
    land on different GPUs."""
    return [gpu for _ in range(workers_per_gpu) for gpu in gpus]
