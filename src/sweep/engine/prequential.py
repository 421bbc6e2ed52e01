"""The prequential code length a run counts of the tokens it trains on (Blier & Ollivier 2018): each
batch is coded by the model before it trains on it, at the cost of its loss, so Σ over steps of the
batch's loss before its update × its tokens is the online code length of the training tokens."""

from __future__ import annotations

import math

from sweep.config import RunSpec
from sweep.data import epoch_windows
from sweep.engine.state import TrainState


def prequential_reason(spec: RunSpec, train_tokens: int) -> str | None:
    """Why `spec` can have no prequential code length on a training split of `train_tokens` tokens, or
    None. The code counts each token once, coded before the model trains on it: random windows overlap
    and repeat, and a second epoch codes tokens the model has seen."""
    if spec.data.order != "epoch":
        return "random windows overlap and repeat; data.order: epoch reads each once"
    windows = epoch_windows(train_tokens, spec.shape.seq_len)
    epochs = spec.steps * spec.train.batch_tokens / (windows * spec.shape.seq_len)
    if epochs > 1:
        return f"reads {epochs:.2f} epochs of the training split; the tokens of a second epoch were seen before"
    return None


class CodeLength:
    """The code length one run counts, in nats, as its logging intervals end. It is counted whether or
    not it can be reported (a checkpoint holds it either way); `bits` is None where there is a `reason`."""

    def __init__(self, spec: RunSpec, train_tokens: int, resume: TrainState | None):
        self.reason = prequential_reason(spec, train_tokens)
        self.nats = 0.0 if resume is None else resume.prequential_nats
        if self.nats is None:
            self.reason = self.reason or "resumed from a checkpoint that did not count the code length"

    def add(self, nats: float) -> None:
        """Count an interval's Σ of each step's mean loss × batch_tokens."""
        if self.nats is not None:
            self.nats += nats

    @property
    def bits(self) -> float | None:
        return None if self.reason else self.nats / math.log(2)
