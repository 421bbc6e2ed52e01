"""Token files: a nanoGPT-style .bin (train.bin, any size) as a corpus, split without reading it.

The file is memory-mapped, never read whole into memory nor widened: its chunks' sides come from
their names alone, each side is a `TokenRanges` over the file, and batches convert only the windows
they read. A small file is hashed whole, as a text corpus is; a large one by a fingerprint.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from sweep.config import DataConfig
from sweep.data.corpus import Corpus, check_documents, check_sizes, check_val_tokens, check_vocab, is_validation
from sweep.data.token_ranges import TokenRanges
from sweep.errors import SweepError, cut

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


def load_token_file(path: Path, data: DataConfig) -> Corpus:
    """A nanoGPT-style token file: raw little-endian uint8 or uint16 ids, no header. Cut into documents
    of data.chunk_tokens like a long text file, and split by their names (`name#i`) alone, so the file
    is not read to split it; the same chunks go to the same sides as when the file was read whole."""
    dtype = np.dtype(data.bin_dtype)
    size = path.stat().st_size
    if size % dtype.itemsize:
        raise SweepError(
            f"data.corpus: {cut(str(path), 200)} has {size} bytes, not a whole number of {data.bin_dtype} tokens"
        )
    count = size // dtype.itemsize
    chunks = -(-count // data.chunk_tokens)
    check_documents(data, chunks)
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
    source, separated = path.resolve(), dtype == np.uint8  # `load._join` puts the byte separator after each uint8 part
    sides = [_chunk_ranges(side, data.chunk_tokens, count, merge=not separated) for side in (~in_val, in_val)]
    train, val = (TokenRanges(source, dtype, starts, lengths, separated, vocab_size) for starts, lengths in sides)
    check_sizes(data, len(train), len(val))
    if largest is not None:
        check_vocab(largest, vocab_size)
    check_val_tokens(data, len(val))
    return Corpus(
        str(source),
        sha256,
        train,
        val,
        vocab_size,
        int((~in_val).sum()),
        int(in_val.sum()),
        tokenizer={"kind": "token file", "vocab_size": vocab_size},
    )


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
            largest = max(largest, int(block[: read // dtype.itemsize].max()))
    return largest


def _chunks_sha256(path: Path, dtype: np.dtype, chunk_tokens: int) -> str:
    """A small file's sha256: of each chunk's name and tokens in order, as a text corpus's is and as
    this file's was (uint16 ids as the int32 they were held in)."""
    digest = hashlib.sha256()
    tokens = np.fromfile(path, dtype=dtype)  # at most WHOLE_READ_BYTES
    held = np.uint8 if dtype == np.uint8 else np.int32
    for i, start in enumerate(range(0, len(tokens), chunk_tokens)):
        digest.update(
            f"{path.name}#{i}".encode() + b"\x00" + tokens[start : start + chunk_tokens].astype(held).tobytes()
        )
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
