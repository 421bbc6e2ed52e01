"""Corpora → token arrays, a train/validation split by document, and batches.

Text is tokenised as bytes (vocabulary 256) unless data.tokenizer names BPE or a tokenizer file
(`sweep.data.tokenizer`); bits per byte is exact either way (`bits_per_byte`). Documents are text files,
.jsonl lines and .parquet rows (`sweep.data.documents`). The split is by document: each document's name is hashed and the hash alone
decides its side, so the split never overlaps, does not depend on the order files are listed, and a
document never moves when others are added.

A token .bin (nanoGPT's train.bin, any size) is memory-mapped, never read whole into memory nor
widened: its chunks' sides come from their names alone, each side is a `TokenRanges` over the file,
and batches convert only the windows they read.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import math
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sweep.config import DEFAULT_VAL_TOKENS, DataConfig
from sweep.errors import SweepError
from sweep.errors import cut, shown
from sweep.data.documents import Malformed, is_record_file, read_records
from sweep.data.tokenizer import tokenize

DOCUMENT_SEPARATOR = b"\x00"  # a byte that text files do not contain

# A .bin up to this size is read whole at load, as every .bin was: its sha256 is a text corpus's (of
# every chunk's name and tokens) and its ids are checked against data.vocab_size there. A larger one
# is never read whole for either, since for nanoGPT's 17 GB OpenWebText train.bin that read would cost
# every worker a minute or more from disk; only a data.vocab_size of 0 makes it scan for the largest id.
WHOLE_READ_BYTES = 64 << 20
# A larger .bin's sha256 is a fingerprint: of its name, its size and this many evenly spaced samples
# of this many bytes, its first and last among them (16 MiB read, whatever the size).
FINGERPRINT_SAMPLES = 16
FINGERPRINT_SAMPLE_BYTES = 1 << 20
SCAN_BLOCK_BYTES = 16 << 20  # the block the largest id is searched for in, so memory stays flat


class TokenRanges:
    """One side of a token file's split as one sequence, without copying it: the (start, length) token
    ranges of the file that hold the side's chunks, in file order, laid end to end, as concatenating
    the chunks did; a window may run from one range into the next as it ran across chunks. uint8 files
    keep the separator that joining byte documents puts after each part (`_join`), so their batches
    stay the same too. Ids are checked against `vocab_size` as windows are read: a large file's are
    not all read at load (WHOLE_READ_BYTES)."""

    def __init__(self, path: Path, dtype: np.dtype, starts: np.ndarray, lengths: np.ndarray, separated: bool,
                 vocab_size: int):
        self.path, self.dtype = path, dtype
        self.vocab_size = vocab_size
        # Per range (n_ranges,), in the sequence: where it begins (and one past the last), where its
        # tokens end (its separator's position, where `separated`), and file position minus sequence position.
        self.offsets = np.concatenate(([0], np.cumsum(lengths + separated)))
        self.ends = self.offsets[:-1] + lengths
        self.shifts = starts - self.offsets[:-1]

    def mapped(self) -> np.memmap:
        """The whole file, (N_file,) ids as stored, mapped read-only afresh for each read: a map held
        across reads would keep every page a batch ever touched in this process's resident set, up to
        the file's size (nanoGPT maps each batch anew for this reason). The pages stay in the page
        cache, shared by every process that reads the file."""
        return np.memmap(self.path, dtype=self.dtype, mode="r")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def windows(self, starts: torch.Tensor, length: int) -> torch.Tensor:
        """The `length` tokens from each of `starts` (n,), positions in the sequence: (n, length) int64.
        Only these are read from the file and converted."""
        starts = starts.numpy()
        ranges = np.searchsorted(self.offsets, starts, side="right") - 1  # (n,) the range each window starts in
        file_positions = (starts + self.shifts[ranges])[:, None] + np.arange(length)  # (n, length)
        crossing = starts + length > self.ends[ranges]  # (n,) windows that run past their range's tokens
        separators = np.zeros(file_positions.shape, dtype=bool)  # (n, length)
        if crossing.any():  # their tokens mapped one by one, by binary search over the ranges' offsets
            positions = starts[crossing, None] + np.arange(length)  # (n_crossing, length) in the sequence
            position_ranges = np.searchsorted(self.offsets, positions, side="right") - 1
            file_positions[crossing] = positions + self.shifts[position_ranges]
            separators[crossing] = positions == self.ends[position_ranges]  # only where separated
            file_positions[separators] = 0  # a separator's position may lie past the file's end
        ids = self.mapped()[file_positions].astype(np.int64)
        ids[separators] = DOCUMENT_SEPARATOR[0]
        if int(ids.max()) >= self.vocab_size:
            raise SweepError(f"data.vocab_size: {self.vocab_size} is too small for token id {int(ids.max())} "
                             f"read from {cut(str(self.path), 200)}")
        return torch.from_numpy(ids)


Tokens = torch.Tensor | TokenRanges  # a text corpus's tensor or a token file's ranges


@dataclass(frozen=True)
class Corpus:
    source: str  # 'stdlib' or the resolved path
    sha256: str  # of the documents' names and contents, in order; a large .bin's: a fingerprint (_fingerprint)
    train: Tokens  # (N_train,) token ids: uint8 tensor for bytes, a token file's TokenRanges
    val: Tokens  # (N_val,)
    vocab_size: int
    train_documents: int
    val_documents: int
    # (N_val,) the bytes of text each validation token ends (`sweep.data.tokenizer`); None: one each (bytes)
    val_bytes: torch.Tensor | None = None
    tokenizer: dict = field(default_factory=lambda: {"kind": "bytes", "vocab_size": 256})
    malformed: int = 0  # records left out under data.malformed: skip


@dataclass(frozen=True)
class Document:
    name: str
    tokens: np.ndarray


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def load_corpus(data: DataConfig, cache: Path | str | None = None) -> Corpus:
    """Read the corpus that `data.corpus` names and split it. Raises SweepError on a bad path.
    A BPE or file tokenizer tokenises under `cache` (a store's root; `sweep.data.tokenizer`)."""
    path = Path(data.corpus).expanduser()
    if path.suffix == ".bin" and path.is_file():
        return _load_token_file(path, data)
    documents, malformed, source = _documents(data)
    _check_documents(data, len(documents))
    digest = hashlib.sha256()
    train_docs, val_docs = [], []
    for doc in documents:
        digest.update(doc.name.encode() + b"\x00" + doc.tokens.tobytes())
        (val_docs if is_validation(doc.name, data.val_fraction) else train_docs).append(doc)
    if not val_docs or not train_docs:  # a tiny corpus: at least one document on each side
        train_docs, val_docs = documents[:-1], documents[-1:]
    if data.tokenizer != "bytes":
        return _tokenized_corpus(data, source, digest.hexdigest(), train_docs, val_docs, malformed, cache)
    train, val = _join([d.tokens for d in train_docs]), _join([d.tokens for d in val_docs])
    _check_sizes(data, len(train), len(val))
    _check_vocab(int(max(train.max(), val.max())), 256)
    _check_val_tokens(data, len(val))
    return Corpus(source, digest.hexdigest(), torch.from_numpy(train), torch.from_numpy(val),
                  256, len(train_docs), len(val_docs), malformed=malformed)


def _tokenized_corpus(data: DataConfig, source: str, text_sha256: str, train_docs: list[Document],
                      val_docs: list[Document], malformed: int, cache) -> Corpus:
    """The splits tokenised by data.tokenizer, mapped from the cache. The corpus's hash covers the
    tokenizer too, so runs of another tokenisation of the same text are other runs."""
    text = lambda docs: [bytes(d.tokens).decode("utf-8", "replace") for d in docs]  # noqa: E731
    split = hashlib.sha256("\x00".join(d.name for d in val_docs).encode()).hexdigest()  # the held-out documents
    tokens = tokenize(data.tokenizer, data.vocab_size, text(train_docs), text(val_docs), text_sha256, split, cache)
    if data.tokenizer != "bpe" and data.vocab_size and data.vocab_size < tokens.vocab_size:
        raise SweepError(f"data.vocab_size: {data.vocab_size} is smaller than the tokenizer's vocabulary "
                         f"({tokens.vocab_size}); give 0 to use the tokenizer's")
    vocab_size = data.vocab_size if data.tokenizer != "bpe" and data.vocab_size else tokens.vocab_size
    whole = lambda path, count: TokenRanges(path, tokens.dtype, np.array([0]), np.array([count]), False, vocab_size)  # noqa: E731
    train, val = whole(tokens.train_path, tokens.train_tokens), whole(tokens.val_path, tokens.val_tokens)
    _check_sizes(data, len(train), len(val))
    _check_val_tokens(data, len(val))
    sha256 = hashlib.sha256(f"{text_sha256}\x00{tokens.tokenizer_sha256}".encode()).hexdigest()
    return Corpus(source, sha256, train, val, vocab_size, len(train_docs), len(val_docs),
                  val_bytes=torch.from_numpy(tokens.val_bytes().astype(np.int64)),
                  tokenizer=tokens.record("bpe" if data.tokenizer == "bpe" else "file"), malformed=malformed)


def _check_documents(data: DataConfig, documents: int) -> None:
    if documents < 2:
        raise SweepError(f"data.corpus: {shown(data.corpus)} holds {documents} document(s); at least 2 are needed "
                         "to hold one out for validation (a single file is cut into data.chunk_tokens pieces)")


def _check_sizes(data: DataConfig, train_tokens: int, val_tokens: int) -> None:
    if train_tokens <= data.seq_len or val_tokens <= data.seq_len:
        raise SweepError(f"data.corpus: {shown(data.corpus)} is too small for seq_len {data.seq_len} "
                         f"({train_tokens} training and {val_tokens} validation tokens)")


def _check_vocab(largest_id: int, vocab_size: int) -> None:
    if largest_id >= vocab_size:
        raise SweepError(f"data.vocab_size: {vocab_size} is too small for token id {largest_id}")


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


def _documents(data: DataConfig) -> tuple[list[Document], int, str]:
    """(documents, malformed records left out, source) for any text corpus kind the config may name."""
    if data.corpus == "stdlib":
        root = stdlib_root()
        files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
        return [_text_document(p, str(p.relative_to(root))) for p in files], 0, "stdlib"
    path = Path(data.corpus).expanduser()
    if path.is_dir() and (path / "train.bin").is_file():
        raise SweepError(f"data.corpus: {cut(str(path), 200)} holds nanoGPT's train.bin; name the .bin file itself")
    if path.is_file() and not is_record_file(path):
        return _chunks(path.name, _read(path), data.chunk_tokens), 0, str(path.resolve())
    if path.is_file():
        return *_file_documents(data, [(path, path.name)]), str(path.resolve())
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        return *_file_documents(data, [(p, str(p.relative_to(path))) for p in files]), str(path.resolve())
    matches = sorted(glob.glob(str(path), recursive=True))
    files = [Path(m) for m in matches if Path(m).is_file()]
    if files:
        return *_file_documents(data, [(p, str(p)) for p in files]), data.corpus
    raise SweepError(f"data.corpus: {shown(data.corpus)} is not 'stdlib', an existing file or directory, or a glob that matches files")


def _file_documents(data: DataConfig, files: list[tuple[Path, str]]) -> tuple[list[Document], int]:
    """One document per text file, per .jsonl line and per .parquet row, and the malformed records
    left out (`sweep.data.documents`)."""
    documents, malformed = [], Malformed()
    for path, name in files:
        if not is_record_file(path):
            documents.append(_text_document(path, name))
            continue
        for record_name, text in read_records(path, name, data.text_field, malformed):
            documents.append(Document(record_name, np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8)))
    malformed.check(data.text_field, data.malformed)
    return documents, malformed.count


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


def _load_token_file(path: Path, data: DataConfig) -> Corpus:
    """A nanoGPT-style token file: raw little-endian uint8 or uint16 ids, no header. Cut into documents
    of data.chunk_tokens like a long text file, and split by their names (`name#i`) alone, so the file
    is not read to split it; the same chunks go to the same sides as when the file was read whole."""
    dtype = np.dtype(data.bin_dtype)
    size = path.stat().st_size
    if size % dtype.itemsize:
        raise SweepError(f"data.corpus: {cut(str(path), 200)} has {size} bytes, not a whole number of {data.bin_dtype} tokens")
    count = size // dtype.itemsize
    chunks = -(-count // data.chunk_tokens)
    _check_documents(data, chunks)
    in_val = np.array([is_validation(f"{path.name}#{i}", data.val_fraction) for i in range(chunks)])
    if in_val.all() or not in_val.any():  # a tiny corpus: at least one document on each side
        in_val = np.arange(chunks) == chunks - 1
    whole = size <= WHOLE_READ_BYTES
    try:
        largest = _largest_id(path, dtype) if whole or not data.vocab_size else None
        sha256 = _chunks_sha256(path, dtype, data.chunk_tokens) if whole else _fingerprint(path, size)
    except OSError as err:
        raise SweepError(f"data.corpus: cannot read {cut(str(path), 200)}: {err.strerror}") from None
    vocab_size = data.vocab_size or largest + 1
    source, separated = path.resolve(), dtype == np.uint8  # `_join` puts the byte separator after each uint8 part
    sides = [_chunk_ranges(side, data.chunk_tokens, count, merge=not separated) for side in (~in_val, in_val)]
    train, val = (TokenRanges(source, dtype, starts, lengths, separated, vocab_size) for starts, lengths in sides)
    _check_sizes(data, len(train), len(val))
    if largest is not None:
        _check_vocab(largest, vocab_size)
    _check_val_tokens(data, len(val))
    return Corpus(str(source), sha256, train, val, vocab_size, int((~in_val).sum()), int(in_val.sum()),
                  tokenizer={"kind": "token file", "vocab_size": vocab_size})


def _chunk_ranges(in_side: np.ndarray, chunk_tokens: int, count: int, merge: bool) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) in tokens of the chunks where `in_side` (n_chunks,) holds, in file order; with
    `merge`, each run of neighbouring chunks is one range, as it is one stretch of their concatenation."""
    chunks = np.flatnonzero(in_side)
    starts = chunks * chunk_tokens
    ends = np.minimum(starts + chunk_tokens, count)
    if merge:
        follows = chunks[1:] == chunks[:-1] + 1  # (n - 1,) the next chunk continues the previous one
        starts, ends = starts[np.r_[True, ~follows]], ends[np.r_[~follows, True]]
    return starts, ends - starts


def _largest_id(path: Path, dtype: np.dtype) -> int:
    """The file's largest token id, a block at a time (a full read; memory stays flat)."""
    block = np.empty(SCAN_BLOCK_BYTES // dtype.itemsize, dtype=dtype)
    largest = 0
    with open(path, "rb", buffering=0) as file:
        while read := file.readinto(block):
            largest = max(largest, int(block[:read // dtype.itemsize].max()))
    return largest


def _chunks_sha256(path: Path, dtype: np.dtype, chunk_tokens: int) -> str:
    """A small file's sha256: of each chunk's name and tokens in order, as a text corpus's is and as
    this file's was (uint16 ids as the int32 they were held in)."""
    digest = hashlib.sha256()
    tokens = np.fromfile(path, dtype=dtype)  # at most WHOLE_READ_BYTES
    held = np.uint8 if dtype == np.uint8 else np.int32
    for i, start in enumerate(range(0, len(tokens), chunk_tokens)):
        digest.update(f"{path.name}#{i}".encode() + b"\x00" + tokens[start:start + chunk_tokens].astype(held).tobytes())
    return digest.hexdigest()


def _fingerprint(path: Path, size: int) -> str:
    """A large file's sha256: of its name, its size and FINGERPRINT_SAMPLES evenly spaced samples, so
    that a new size, a new tokenisation or most edits change it, read in milliseconds. Not the hash
    of every chunk such files had before WHOLE_READ_BYTES (their runs' ids change once)."""
    digest = hashlib.sha256(f"fingerprint\x00{path.name}\x00{size}\x00".encode())
    with open(path, "rb") as file:
        for offset in np.linspace(0, size - FINGERPRINT_SAMPLE_BYTES, FINGERPRINT_SAMPLES).astype(np.int64):
            file.seek(int(offset))
            digest.update(file.read(FINGERPRINT_SAMPLE_BYTES))
    return digest.hexdigest()


def get_batch(tokens: Tokens, batch_size: int, seq_len: int, generator: torch.Generator,
              device: torch.device, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
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


def get_epoch_batch(tokens: Tokens, step: int, batch_size: int, seq_len: int, seed: int,
                    device: torch.device, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
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
