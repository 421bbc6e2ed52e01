"""The prequential code length a run counts of the tokens it trains on (Blier & Ollivier 2018): each
batch is coded by the model before it trains on it, at the cost of its loss, so Σ over steps of the
batch's loss before its update × its tokens is the online code length of the training tokens."""

from __future__ import annotations

from sweep.config import RunSpec
from sweep.data import epoch_windows


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
