"""Checkpoints of a run in training: model, optimizer, data-sampler and RNG state, step.

Written atomically (temporary file, fsync, rename), so a kill during a save leaves the previous
checkpoint whole. Read with `torch.load(weights_only=True)`: only tensors and plain containers,
never arbitrary pickled code.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from sweep.atomic import atomic_write


def save(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: _save_to(f, state), binary=True)


class _Writes:
    """A file that remembers the OSError its last write raised: torch.save's zip writer reports a
    failed write (a full disk) as a RuntimeError about file positions."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def _save_to(file, state: dict) -> None:
    writes = _Writes(file)
    try:
        torch.save(state, writes)
    except RuntimeError:
        if writes.error is not None:
            raise writes.error from None
        raise


def load(path: Path) -> dict | None:
    """The checkpoint at `path`, or None if there is none or it cannot be read (then the run starts over)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means starting over
        warnings.warn(f"{path}: unreadable checkpoint ({type(err).__name__}); the run starts from step 0", stacklevel=2)
        return None
