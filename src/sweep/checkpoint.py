"""Checkpoints of a run in training: model, optimizer, data-sampler and RNG state, step.

Written atomically (temporary file, fsync, rename), so a kill during a save leaves the previous
checkpoint whole. Read with `torch.load(weights_only=True)`: only tensors and plain containers,
never arbitrary pickled code.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch


def save(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path) -> dict | None:
    """The checkpoint at `path`, or None if there is none or it cannot be read (then the run starts over)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means starting over
        warnings.warn(f"{path}: unreadable checkpoint ({type(err).__name__}); the run starts from step 0", stacklevel=2)
        return None
