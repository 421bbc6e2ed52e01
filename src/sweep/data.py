"""Corpora → token arrays, a train/validation split by document, and batches.

Text is tokenised as bytes (vocabulary 256), so loss per token is loss per byte and bits per byte is
exact: bpb = loss / ln 2. The split is by document: each document's name is hashed and the hash alone
decides its side, so the split never overlaps, does not depend on the order files are listed, and a
document never moves when others are added.
"""

from __future__ import annotations

import glob
import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sweep.config import DEFAULT_VAL_TOKENS, DataConfig
from sweep.errors import SweepError
from sweep.limits import cut, shown

DOCUMENT_SEPARATOR = b"\x00"  # a byte that text files do not contain


@dataclass(frozen=True)
class Corpus:
    source: str  # 'stdlib' or the resolved path
    sha256: str  # of the documents' names and contents, in order
    train: torch.Tensor  # (N_train,) token ids, uint8 for bytes, int32 otherwise
    val: torch.Tensor  # (N_val,)
    vocab_size: int
    train_documents: int
    val_documents: int


@dataclass(frozen=True)
class Document:
    name: str
    tokens: np.ndarray


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def load_corpus(data: DataConfig) -> Corpus:
    """Read the corpus that `data.corpus` names and split it. Raises SweepError on a bad path."""
    documents, source, vocab_size = _documents(data)
    if len(documents) < 2:
        raise SweepError(f"data.corpus: {shown(data.corpus)} holds {len(documents)} document(s); at least 2 are needed "
                         "to hold one out for validation (a single file is cut into data.chunk_tokens pieces)")
    digest = hashlib.sha256()
    train_parts, val_parts = [], []
    for doc in documents:
        digest.update(doc.name.encode() + b"\x00" + doc.tokens.tobytes())
        (val_parts if is_validation(doc.name, data.val_fraction) else train_parts).append(doc.tokens)
    if not val_parts or not train_parts:  # a tiny corpus: at least one document on each side
        train_parts, val_parts = [d.tokens for d in documents[:-1]], [documents[-1].tokens]
    train, val = _join(train_parts), _join(val_parts)
    if len(train) <= data.seq_len or len(val) <= data.seq_len:
        raise SweepError(f"data.corpus: {shown(data.corpus)} is too small for seq_len {data.seq_len} "
                         f"({len(train)} training and {len(val)} validation tokens)")
    if int(max(train.max(), val.max())) >= vocab_size:
        raise SweepError(f"data.vocab_size: {vocab_size} is too small for token id {int(max(train.max(), val.max()))}")
    _check_val_tokens(data, len(val))
    return Corpus(source, digest.hexdigest(), torch.from_numpy(train), torch.from_numpy(val),
                  vocab_size, len(train_parts), len(val_parts))


def _check_val_tokens(data: DataConfig, split_tokens: int) -> None:
    """A validation set asked for must fit in the split, which `validation_set` would silently cut it
    to; the default is a cap, so a small corpus evaluates on all of its split."""
    windows = (split_tokens - 1) // data.seq_len  # whole windows of targets the split holds
    if data.val_tokens != DEFAULT_VAL_TOKENS and data.val_tokens // data.seq_len > windows:
        raise SweepError(f"data.val_tokens: {data.val_tokens} asked for, but the validation split holds "
                         f"{windows * data.seq_len} ({windows} windows of seq_len {data.seq_len}); lower "
                         "data.val_tokens or raise data.val_fraction")


def is_validation(name: str, val_fraction: float) -> bool:
    """The document's side of the split, from a hash of its name alone."""
    bucket = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64
    return bucket < val_fraction


def _join(parts: list[np.ndarray]) -> np.ndarray:
    if parts and parts[0].dtype == np.uint8:
        separator = np.frombuffer(DOCUMENT_SEPARATOR, dtype=np.uint8)
        parts = [piece for part in parts for piece in (part, separator)]
    return np.concatenate(parts)


def _documents(data: DataConfig) -> tuple[list[Document], str, int]:
    """(documents, source, vocabulary size) for any corpus kind the config may name."""
    if data.corpus == "stdlib":
        root = stdlib_root()
        files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
        return [_text_document(p, str(p.relative_to(root))) for p in files], "stdlib", 256
    path = Path(data.corpus).expanduser()
    if path.suffix == ".bin" and path.is_file():
        return _bin_documents(path, data)
    if path.is_dir() and (path / "train.bin").is_file():
        raise SweepError(f"data.corpus: {cut(str(path), 200)} holds nanoGPT's train.bin; name the .bin file itself")
    if path.is_file():
        return _chunks(path.name, _read(path), data.chunk_tokens), str(path.resolve()), 256
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        return [_text_document(p, str(p.relative_to(path))) for p in files], str(path.resolve()), 256
    matches = sorted(glob.glob(str(path), recursive=True))
    files = [Path(m) for m in matches if Path(m).is_file()]
    if files:
        return [_text_document(p, str(p)) for p in files], data.corpus, 256
    raise SweepError(f"data.corpus: {shown(data.corpus)} is not 'stdlib', an existing file or directory, or a glob that matches files")


def _read(path: Path) -> np.ndarray:
    try:
        return np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as err:
        raise SweepError(f"data.corpus: cannot read {cut(str(path), 200)}: {err.strerror}") from None


def _text_document(path: Path, name: str) -> Document:
    return Document(name, _read(path))


def _chunks(name: str, tokens: np.ndarray, chunk_tokens: int) -> list[Document]:
    """One long file cut into documents of `chunk_tokens`, so it can still be split by document."""
    return [Document(f"{name}#{i}", tokens[start:start + chunk_tokens])
            for i, start in enumerate(range(0, len(tokens), chunk_tokens))]


def _bin_documents(path: Path, data: DataConfig) -> tuple[list[Document], str, int]:
    """A nanoGPT-style token file: raw little-endian uint8 or uint16 ids, no header."""
    dtype = np.dtype(data.bin_dtype)
    size = path.stat().st_size
    if size % dtype.itemsize:
        raise SweepError(f"data.corpus: {cut(str(path), 200)} has {size} bytes, not a whole number of {data.bin_dtype} tokens")
    tokens = np.fromfile(path, dtype=dtype)
    if dtype != np.uint8:
        tokens = tokens.astype(np.int32)  # torch indexes int32 well; it has little uint16 support
    vocab_size = data.vocab_size or int(tokens.max()) + 1
    return _chunks(path.name, tokens, data.chunk_tokens), str(path.resolve()), vocab_size


def get_batch(tokens: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator,
              device: torch.device, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of `tokens`: inputs x and next-token targets y, each (B / world_size, T) int64,
    rank `rank`'s contiguous share of a batch of B windows. Every rank draws all B starts, so the
    generator advances as one process's does and the shares tile the one-process batch.
    One fancy-indexing gather, no Python loop over rows."""
    starts = torch.randint(len(tokens) - seq_len - 1, (batch_size,), generator=generator)
    starts = starts.view(world_size, -1)[rank]  # (B / world_size,)
    windows = tokens[starts[:, None] + torch.arange(seq_len + 1)].long()  # (B / world_size, T+1)
    x, y = windows[:, :-1], windows[:, 1:]
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x, y


def validation_set(val: torch.Tensor, seq_len: int, max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed held-out set every evaluation reads: up to `max_tokens` targets in non-overlapping
    windows spread evenly over the whole validation split, so that every kind of document in it is
    measured, not only the first few (in path order, those can all be of one kind). x and y are
    (n_windows, T)."""
    windows = max(1, min(max_tokens // seq_len, (len(val) - 1) // seq_len))
    stride = (len(val) - 1 - seq_len) // max(1, windows - 1) if windows > 1 else 0  # >= seq_len
    starts = torch.arange(windows) * stride
    spans = val[starts[:, None] + torch.arange(seq_len + 1)].long()  # (n_windows, T+1)
    return spans[:, :-1].contiguous(), spans[:, 1:].contiguous()
