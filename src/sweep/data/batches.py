"""Batches of a split: random windows, the epoch order's windows, the fixed validation set, and
bits per byte over it (exact whatever the tokenizer, `sweep.data.tokenizer`)."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from sweep.data.corpus import Corpus
from sweep.data.token_ranges import TokenRanges, Tokens


def get_batch(
    tokens: Tokens,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of `tokens`: inputs x and next-token targets y, each (B / world_size, T) int64,
    rank `rank`'s contiguous share of a batch of B windows. Every rank draws all B starts, so the
    generator advances as one process's does and the shares tile the one-process batch.
    One fancy-indexing gather, no Python loop over rows."""
    starts = torch.randint(len(tokens) - seq_len - 1, (batch_size,), generator=generator)
    starts = starts.view(world_size, -1)[rank]  # (B / world_size,)
    return _inputs_and_targets(_windows(tokens, starts, seq_len + 1), device)


def epoch_windows(length: int, seq_len: int) -> int:
    """The non-overlapping windows of a split of `length` tokens in `data.order: epoch`: window k reads
    tokens kT…kT+T and predicts kT+1…kT+T, so no target is in two windows."""
    return (length - 1) // seq_len


@functools.lru_cache(maxsize=2)
def epoch_order(windows: int, seed: int, epoch: int) -> torch.Tensor:
    """(windows,) the shuffle of epoch `epoch`: every window once, seeded by (seed, epoch) alone."""
    return torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(windows))


def epoch_starts(length: int, seq_len: int, seed: int, first: int, count: int) -> torch.Tensor:
    """(count,) where windows `first`…`first + count − 1` of the epoch order start: epoch after epoch,
    each a fresh shuffle. A function of its arguments alone, so a resumed run and a wsd branch go on
    with the order where their trunk left it."""
    windows = epoch_windows(length, seq_len)
    index = torch.arange(first, first + count)
    epochs, positions = index // windows, index % windows
    starts = torch.empty(count, dtype=torch.long)
    for epoch in epochs.unique().tolist():
        chosen = epochs == epoch
        starts[chosen] = epoch_order(windows, seed, epoch)[positions[chosen]] * seq_len
    return starts


def get_epoch_batch(
    tokens: Tokens,
    step: int,
    batch_size: int,
    seq_len: int,
    seed: int,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch `step` of the epoch order (windows step·B … step·B + B − 1), as `get_batch` returns one:
    rank `rank`'s contiguous share of its B windows."""
    starts = epoch_starts(len(tokens), seq_len, seed, step * batch_size, batch_size)
    starts = starts.view(world_size, -1)[rank]  # (B / world_size,)
    return _inputs_and_targets(_windows(tokens, starts, seq_len + 1), device)


def epoch_targets(tokens: Tokens, seq_len: int, seed: int, count: int) -> np.ndarray:
    """The first `count` tokens the epoch order predicts, in the order a run codes them: the bytes a
    prequential code length is measured on (count a multiple of seq_len, within one epoch)."""
    starts = epoch_starts(len(tokens), seq_len, seed, 0, count // seq_len)
    return _windows(tokens, starts, seq_len + 1)[:, 1:].reshape(-1).numpy()


def _inputs_and_targets(windows: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """windows (B, T+1) → inputs x and targets y (B, T), on `device`."""
    x, y = windows[:, :-1], windows[:, 1:]
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x, y


def validation_set(val: Tokens, seq_len: int, max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed held-out set every evaluation reads: up to `max_tokens` targets in non-overlapping
    windows spread evenly over the whole validation split, so that every kind of document in it is
    measured, not only the first few (in path order, those can all be of one kind). x and y are
    (n_windows, T)."""
    spans = _windows(val, _validation_starts(len(val), seq_len, max_tokens), seq_len + 1)  # (n_windows, T+1)
    return spans[:, :-1].contiguous(), spans[:, 1:].contiguous()


def _validation_starts(length: int, seq_len: int, max_tokens: int) -> torch.Tensor:
    """(n_windows,) where the validation set's windows start in a split of `length` tokens."""
    windows = max(1, min(max_tokens // seq_len, (length - 1) // seq_len))
    stride = (length - 1 - seq_len) // max(1, windows - 1) if windows > 1 else 0  # >= seq_len
    return torch.arange(windows) * stride


def bits_per_byte(loss: float, corpus: Corpus, seq_len: int, max_tokens: int) -> float | None:
    """Bits per byte of text from the validation set's mean loss in nats per token: Σ nats over its
    targets / (ln 2 × the bytes those targets end), comparable across tokenizers."""
    if corpus.tokenizer["kind"] == "token file" and corpus.vocab_size > 256:
        return None  # ids of an unknown tokenizer: the bytes they stand for are not known
    if corpus.val_bytes is None:  # bytes: one byte per token
        return loss / math.log(2)
    starts = _validation_starts(len(corpus.val), seq_len, max_tokens)
    credits = _windows(corpus.val_bytes, starts, seq_len + 1)[:, 1:]  # (n_windows, T) bytes per target
    return loss * credits.numel() / (math.log(2) * int(credits.sum()))


def _windows(tokens: Tokens, starts: torch.Tensor, length: int) -> torch.Tensor:
    """The `length` tokens from each of `starts` (n,): (n, length) int64."""
    if isinstance(tokens, TokenRanges):
        return tokens.windows(starts, length)
    return tokens[starts[:, None] + torch.arange(length)].long()
