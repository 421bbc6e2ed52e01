"""`torchrun --nproc_per_node G -m sweep run CONFIG`: each run of the sweep trained across all G
processes with DDP (`sweep.engine.distributed`), one run after another. Rank 0 is the runner: it claims,
resumes, records, and before each training announces to the other ranks what to train and from
which state; they train it with it (their callbacks are no-ops: `train` decides) and wait for the
next. Rank 0 announces None when the sweep is over.

A run that rank 0 leaves without the others (its claim was taken over, the store cannot be written)
would leave them blocked in a collective: rank 0 then exits with code 1, and torchrun stops the rest.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from sweep.config import RunSpec, spec_from_dict
from sweep.data import Corpus
from sweep.engine import train


def launched() -> bool:
    """Whether this process is one of several torchrun started."""
    return int(os.environ.get("WORLD_SIZE", 1)) > 1


def _broadcast(message) -> object:
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class Announcer:
    """Rank 0's side: `announce` before each training, `finish` at the end."""

    def __init__(self):
        self.announced: str | None = None  # the run announced and not yet ended

    def announce(self, spec: RunSpec, state: dict | None, snapshot_steps: tuple[int, ...]) -> None:
        _broadcast((spec.to_dict(), state, tuple(snapshot_steps)))
        self.announced = spec.run_id

    def ended(self, trained: bool) -> None:
        """The task announced last is over; `trained`: train() returned or raised on every rank alike."""
        if self.announced is not None and not trained:
            raise SystemExit(1)  # the other ranks are inside a training that rank 0 left: torchrun stops them
        self.announced = None

    def finish(self) -> None:
        _broadcast(None)


def follow(corpus: Corpus, device: torch.device) -> int:
    """Ranks above 0: train what rank 0 announces until it announces None. Returns how many runs."""
    count = 0
    while (message := _broadcast(None)) is not None:
        spec, state, snapshot_steps = message
        try:
            train(spec_from_dict(spec), corpus, device, resume=state, snapshot_steps=frozenset(snapshot_steps))
        except Exception:  # noqa: BLE001 - rank 0 hit the same error and records the run as failed
            pass
        count += 1
    return count
