"""One worker per visible GPU (or several, `--workers-per-gpu`), each seeing only its own GPU through
CUDA_VISIBLE_DEVICES, so every run's `cuda` device is that GPU."""

from __future__ import annotations

import os


def visible_gpus(environ: dict | None = None, count: int | None = None) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them: that variable's entries if
    it is set, else 0 .. count-1 (`count`: torch.cuda.device_count())."""
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [name.strip() for name in listed.split(",") if name.strip() and name.strip() != "-1"]
    if count is None:
        import torch

        count = torch.cuda.device_count()
    return [str(index) for index in range(count)]


def worker_gpus(gpus: list[str], workers_per_gpu: int) -> list[str]:
    """The GPU of each worker, spread round-robin: the first workers, which take the largest runs,
    land on different GPUs."""
    return [gpu for _ in range(workers_per_gpu) for gpu in gpus]
