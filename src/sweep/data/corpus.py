"""What a loaded corpus is, and the rules every way of loading one keeps.

The split is by document: each document's name is hashed and the hash alone decides its side, so
the split never overlaps, does not depend on the order files are listed, and a document never moves
when others are added. Every corpus, text or token file, is checked here for its document count,
its sides' sizes, its largest id and the validation set asked of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from sweep.config import DEFAULT_VAL_TOKENS, DataConfig
from sweep.data.token_ranges import Tokens
from sweep.errors import SweepError, shown


@dataclass(frozen=True)
class Corpus:
    source: str  # 'stdlib' or the resolved path
    sha256: str  # of the documents' names and contents, in order; a large .bin's: `token_files._fingerprint`
    train: Tokens  # (N_train,) token ids: uint8 tensor for bytes, a token file's TokenRanges
    val: Tokens  # (N_val,)
    vocab_size: int
    train_documents: int
    val_documents: int
    # (N_val,) the bytes of text each validation token ends (`sweep.data.tokenizer`); None: one each (bytes)
    val_bytes: torch.Tensor | None = None
    tokenizer: dict = field(default_factory=lambda: {"kind": "bytes", "vocab_size": 256})
    malformed: int = 0  # records left out under data.malformed: skip


def check_documents(data: DataConfig, documents: int) -> None:
    if documents < 2:
        raise SweepError(
            f"data.corpus: {shown(data.corpus)} holds {documents} document(s); at least 2 are needed "
            "to hold one out for validation (a single file is cut into data.chunk_tokens pieces)"
        )


def check_sizes(data: DataConfig, train_tokens: int, val_tokens: int) -> None:
    if train_tokens <= data.seq_len or val_tokens <= data.seq_len:
        raise SweepError(
            f"data.corpus: {shown(data.corpus)} is too small for seq_len {data.seq_len} "
            f"({train_tokens} training and {val_tokens} validation tokens)"
        )


def check_vocab(largest_id: int, vocab_size: int) -> None:
    if largest_id >= vocab_size:
        raise SweepError(f"data.vocab_size: {vocab_size} is too small for token id {largest_id}")


def check_val_tokens(data: DataConfig, split_tokens: int) -> None:
    """A validation set asked for must fit in the split, which `batches.validation_set` would silently
    cut it to; the default is a cap, so a small corpus evaluates on all of its split."""
    windows = (split_tokens - 1) // data.seq_len  # whole windows of targets the split holds
    if data.val_tokens != DEFAULT_VAL_TOKENS and data.val_tokens // data.seq_len > windows:
        raise SweepError(
            f"data.val_tokens: {data.val_tokens} asked for, but the validation split holds "
            f"{windows * data.seq_len} ({windows} windows of seq_len {data.seq_len}); lower "
            "data.val_tokens or raise data.val_fraction"
        )


def is_validation(name: str, val_fraction: float) -> bool:
    """The document's side of the split, from a hash of its name alone."""
    bucket = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64
    return bucket < val_fraction
