"""Text → token ids with a BPE tokenizer, cached in the store as memory-mapped arrays.

`data.tokenizer: bpe` trains a byte-level BPE (GPT-2's pre-tokenisation, Hugging Face `tokenizers`)
on the training split's documents only, so nothing of the validation text leaks into the vocabulary.
`data.tokenizer: path/to/tokenizer.json` loads a user's own. Either way the corpus is tokenised once:
the tokenizer and the token arrays go to <store>/.tokenized/<key>/, keyed by the corpus's hash and
the tokenizer's settings, and every worker maps them from there.

Bits per byte stays exact whatever the tokenizer: each token is credited with the bytes of text it
ends (from the tokenizer's offsets), so the bytes of a validation set's targets are a sum, and
bpb = Σ nats / (ln 2 × bytes). The document separator is credited with one byte, as the byte-level
tokenizer's separator byte is, so the two tokenizers' bpb measure the same text.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from sweep.errors import SweepError, cut, require_package, shown

SEPARATOR = "<|endoftext|>"  # the special token put after every document
# A user's tokenizer may name its separator otherwise; the first of these it has is used.
SEPARATORS = (SEPARATOR, "</s>", "<eos>", "<|end_of_text|>", "[SEP]")
CACHE_DIR = ".tokenized"  # under the store root; `store.walk` skips dot directories
FORMAT = 1  # of the cache's files: a new one retokenises
ENCODE_BATCH = 256  # documents tokenised at a time


@dataclass(frozen=True)
class Tokenized:
    """A corpus's two splits as token files in the cache, and what they came from."""

    directory: Path
    dtype: np.dtype
    train_tokens: int
    val_tokens: int
    vocab_size: int
    tokenizer_sha256: str

    @property
    def train_path(self) -> Path:
        return self.directory / "train.bin"

    @property
    def val_path(self) -> Path:
        return self.directory / "val.bin"

    def val_bytes(self) -> np.ndarray:
        """(N_val,) the bytes of text each validation token ends: small (the validation split)."""
        return np.fromfile(self.directory / "val_bytes.bin", dtype=np.uint32)

    def record(self, kind: str) -> dict:
        """What every run records of its tokenizer."""
        return {
            "kind": kind,
            "vocab_size": self.vocab_size,
            "sha256": self.tokenizer_sha256,
            "path": str(self.directory / "tokenizer.json"),
        }


def tokenize(
    kind: str,
    vocab_size: int,
    train_texts: list[str],
    val_texts: list[str],
    corpus_sha256: str,
    split_sha256: str,
    cache_root: Path | None,
) -> Tokenized:
    """Both splits tokenised by `kind` ('bpe' or a tokenizer.json path), from the cache when there.
    The cache is keyed by the text (`corpus_sha256`) and by which documents the split holds out
    (`split_sha256`: another data.val_fraction trains BPE on other documents and cuts other splits)."""
    tokenizers = require_package("tokenizers", "bpe", f"data.tokenizer: {shown(kind)}")
    user_file = None if kind == "bpe" else _user_tokenizer(kind, tokenizers)
    settings = {
        "format": FORMAT,
        "corpus": corpus_sha256,
        "split": split_sha256,
        "kind": "bpe" if user_file is None else "file",
        "vocab_size": vocab_size,
        "tokenizers": tokenizers.__version__,
        "file": None if user_file is None else hashlib.sha256(user_file.to_str().encode()).hexdigest(),
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    directory = Path(cache_root if cache_root is not None else default_cache()) / CACHE_DIR / key
    if not (directory / "meta.json").is_file():
        tokenizer = user_file or train_bpe(train_texts, vocab_size, tokenizers)
        _write_cache(directory, tokenizer, train_texts, val_texts, settings)
    return _read_cache(directory)


def default_cache() -> Path:
    """Where a corpus is tokenised when no store is at hand (`sweep bench`, a library call)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sweep"


def train_bpe(texts: list[str], vocab_size: int, tokenizers):
    """A byte-level BPE of `vocab_size` ids (256 bytes, the separator, merges) trained on `texts`.
    Deterministic: the same texts give the same merges in any process."""
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SEPARATOR],
        show_progress=False,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def _user_tokenizer(path: str, tokenizers):
    file = Path(path).expanduser()
    if not file.is_file():
        raise SweepError(f"data.tokenizer: {shown(path)} is not a file")
    try:
        return tokenizers.Tokenizer.from_file(str(file))
    except Exception as err:  # the Rust side raises plain Exception for any parse error
        raise SweepError(
            f"data.tokenizer: {cut(str(file), 200)} is not a tokenizer file that Hugging Face "
            f"tokenizers can read: {cut(str(err), 300)}"
        ) from None


def separator_id(tokenizer) -> int | None:
    """The id put after each document, or None when the tokenizer has none (documents then abut)."""
    for name in SEPARATORS:
        if (token := tokenizer.token_to_id(name)) is not None:
            return token
    return None


def encode(tokenizer, texts: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, bytes), each (n,), per ENCODE_BATCH documents: their tokens laid end to end, each document
    followed by the separator, and the bytes of UTF-8 text each token ends. A token is credited with
    its text from the previous token's end to its own, so every byte of a document is credited once,
    whitespace a tokenizer trims from its offsets included. In batches, so that the tokenizer's
    per-token objects never exist for the whole corpus at once."""
    separator = separator_id(tokenizer)
    for first in range(0, len(texts), ENCODE_BATCH):
        batch = texts[first : first + ENCODE_BATCH]
        ids, credits = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for text, encoding in zip(batch, tokenizer.encode_batch(batch, add_special_tokens=False)):
            ends = np.array([end for _, end in encoding.offsets], dtype=np.int64)  # (n,) in characters
            byte_ends = _utf8_prefix(text)[np.maximum.accumulate(ends) if len(ends) else ends]  # (n,)
            if len(byte_ends):
                byte_ends[-1] = len(text.encode())  # what no token covers goes to the last one
            ids.append(np.array(encoding.ids, dtype=np.int64))
            credits.append(np.diff(byte_ends, prepend=0))
            if separator is not None:
                ids.append(np.array([separator]))
                credits.append(np.array([1]))
        yield np.concatenate(ids), np.concatenate(credits)


def _encode_to(tokenizer, texts: list[str], dtype, ids_path: Path, bytes_path: Path | None) -> int:
    """Tokenise `texts` into the raw files `ids_path` (dtype) and `bytes_path` (uint32); the tokens written."""
    count = 0
    with open(ids_path, "wb") as ids_file, open(bytes_path or os.devnull, "wb") as bytes_file:
        for ids, credits in encode(tokenizer, texts):
            ids.astype(dtype).tofile(ids_file)
            credits.astype(np.uint32).tofile(bytes_file)
            count += len(ids)
    return count


def _utf8_prefix(text: str) -> np.ndarray:
    """(len(text) + 1,) the UTF-8 byte offset of each character position."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    widths = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    return np.concatenate(([0], np.cumsum(widths)))


def _write_cache(directory: Path, tokenizer, train_texts: list[str], val_texts: list[str], settings: dict) -> None:
    """Tokenise into a temporary directory beside `directory` and rename it into place, so a reader
    finds all the files or none; a concurrent runner that got there first wins and this copy goes."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    vocab_size = tokenizer.get_vocab_size()
    dtype = np.uint16 if vocab_size <= 1 << 16 else np.uint32
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        train_tokens = _encode_to(tokenizer, train_texts, dtype, staging / "train.bin", None)
        val_tokens = _encode_to(tokenizer, val_texts, dtype, staging / "val.bin", staging / "val_bytes.bin")
        tokenizer.save(str(staging / "tokenizer.json"))
        sha256 = hashlib.sha256((staging / "tokenizer.json").read_bytes()).hexdigest()
        meta = {
            **settings,
            "dtype": np.dtype(dtype).name,
            "train_tokens": train_tokens,
            "val_tokens": val_tokens,
            "tokenizer_vocab_size": vocab_size,
            "tokenizer_sha256": sha256,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))  # last: it marks the copy whole
        try:
            os.rename(staging, directory)
        except OSError:
            if not (directory / "meta.json").is_file():
                raise
    except OSError as err:
        raise SweepError(
            f"data.tokenizer: cannot write the tokenised corpus under {cut(str(directory.parent), 200)}: {err.strerror}"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read_cache(directory: Path) -> Tokenized:
    try:
        meta = json.loads((directory / "meta.json").read_text())
        return Tokenized(
            directory,
            np.dtype(meta["dtype"]),
            meta["train_tokens"],
            meta["val_tokens"],
            meta["tokenizer_vocab_size"],
            meta["tokenizer_sha256"],
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SweepError(
            f"data.tokenizer: the tokenised corpus in {cut(str(directory), 200)} is damaged ({err}); "
            "delete that directory and it is made again"
        ) from None
