"""Text → token ids with a BPE tokenizer, cached in the store as memory-mapped arrays.

`data.tokenizer: bpe` trains a byte-level BPE (GPT-2's pre-tokenisation, Hugging Face `tokenizers`)
on the training split's documents only, so nothing of the validation text leaks into the vocabulary.
`data.tokenizer: path/to/tokenizer.json` loads a user's own. Either way the corpus is tokenised once:
the tokenizer and the token arrays go to <store>/.tokenized/<key>/, keyed by the corpus's hash and
the tokenizer's settings, and every worker maps them from there.

The cache is trusted only once it agrees with its own meta.json (`_verified_meta`): each file's size,
every id inside the vocabulary, each token file's sha256, the tokenizer's vocabulary. One that does
not is refused, naming the directory to delete, rather than rebuilt: other runners, on this machine or
on others sharing the store, map its files by path at every batch, and replacing a directory takes
two renames that no lock working on every filesystem a store may live on could guard. A new copy is
only ever renamed into an empty place.

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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from sweep.errors import SweepError, cut, require_package, shown

SEPARATOR = "<|endoftext|>"  # the special token put after every document
# A user's tokenizer may name its separator otherwise; the first of these it has is used.
SEPARATORS = (SEPARATOR, "</s>", "<eos>", "<|end_of_text|>", "[SEP]")
CACHE_DIR = ".tokenized"  # under the store root; `store.walk` skips dot directories
# Of the cache's files: a new one retokenises (2: meta.json holds each token file's sha256). The
# tokenizer retrained is the same file, so the runs on it keep their ids; the old copy is left unused.
FORMAT = 2
ENCODE_BATCH = 256  # documents tokenised at a time
VERIFY_BLOCK_BYTES = 16 << 20  # read at a time to verify a token file, so memory stays flat


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
    check: Callable[[int, int, int], None] = lambda vocab_size, train_tokens, val_tokens: None,
) -> Tokenized:
    """Both splits tokenised by `kind` ('bpe' or a tokenizer.json path), from the cache when there.
    The cache is keyed by the text (`corpus_sha256`) and by which documents the split holds out
    (`split_sha256`: another data.val_fraction trains BPE on other documents and cuts other splits).
    `check(vocab_size, train_tokens, val_tokens)` refuses a tokenisation the run cannot use; it is
    called before a new cache is written, so that a refusal leaves nothing behind."""
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
    if not directory.exists():  # a copy is renamed into place whole: one there is verified, never rebuilt
        tokenizer = user_file or train_bpe(train_texts, vocab_size, tokenizers)
        if user_file is None and tokenizer.get_vocab_size() < vocab_size:
            warnings.warn(_fewer_ids(tokenizer.get_vocab_size(), vocab_size), stacklevel=2)
        _write_cache(directory, tokenizer, train_texts, val_texts, settings, check)
    tokens = _read_cache(directory, settings, tokenizers)
    check(tokens.vocab_size, tokens.train_tokens, tokens.val_tokens)
    return tokens


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


def _fewer_ids(learned: int, asked: int) -> str:
    """What a BPE that ran out of merges before data.vocab_size says: its runs train with the ids it
    learned, as their records say, while their specs keep the vocabulary asked for, which their run ids
    hash (so the ids of runs already in a store stay)."""
    return (
        f"data.vocab_size: BPE learned {learned:,} ids, not the {asked:,} asked for: the training split has "
        f"no more pairs to merge. The runs train with {learned:,} (result.json records it); their spec.json "
        f"keeps data.vocab_size: {asked} as asked, since their run ids hash it"
    )


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


def _write_cache(
    directory: Path, tokenizer, train_texts: list[str], val_texts: list[str], settings: dict, check
) -> None:
    """Tokenise into a temporary directory beside `directory` and rename it into place, so a reader
    finds all the files or none; a concurrent runner that got there first wins and this copy goes.
    A tokenisation that `check` refuses leaves nothing, not even the directories made for it."""
    made = [path for path in (directory.parent, *directory.parent.parents) if not path.exists()]
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        _stage(directory, tokenizer, train_texts, val_texts, settings, check)
    except OSError as err:
        raise SweepError(
            f"data.tokenizer: cannot write the tokenised corpus under {cut(str(directory.parent), 200)}: {err.strerror}"
        ) from None
    except SweepError:
        for path in made:  # innermost first; one another runner has filled since stays
            try:
                path.rmdir()
            except OSError:
                break
        raise


def _stage(directory: Path, tokenizer, train_texts: list[str], val_texts: list[str], settings: dict, check) -> None:
    vocab_size = tokenizer.get_vocab_size()
    dtype = _dtype(vocab_size)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        train_tokens = _encode_to(tokenizer, train_texts, dtype, staging / "train.bin", None)
        val_tokens = _encode_to(tokenizer, val_texts, dtype, staging / "val.bin", staging / "val_bytes.bin")
        check(vocab_size, train_tokens, val_tokens)
        tokenizer.save(str(staging / "tokenizer.json"))
        meta = {
            **settings,
            "dtype": np.dtype(dtype).name,
            "train_tokens": train_tokens,
            "val_tokens": val_tokens,
            "tokenizer_vocab_size": vocab_size,
            "tokenizer_sha256": hashlib.sha256((staging / "tokenizer.json").read_bytes()).hexdigest(),
            "sha256": {name: _scan(staging / name, item)[0] for name, item in _token_files(dtype).items()},
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))  # last: it marks the copy whole
        try:
            os.rename(staging, directory)
        except OSError:
            if not directory.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _dtype(vocab_size: int) -> type:
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


def _token_files(dtype) -> dict[str, np.dtype]:
    """The cache's arrays and the type of their items; ids are those of the first two."""
    return {"train.bin": np.dtype(dtype), "val.bin": np.dtype(dtype), "val_bytes.bin": np.dtype(np.uint32)}


def _scan(path: Path, dtype: np.dtype) -> tuple[str, int]:
    """(sha256, largest item) of the raw array file `path`, read a block at a time. sha256 rather than
    blake2b: OpenSSL's runs on the CPU's SHA instructions, 100 MB in about 0.1 s on the AMD EPYC (blake2b 0.25 s)."""
    digest, largest = hashlib.sha256(), 0
    block = np.empty(VERIFY_BLOCK_BYTES // dtype.itemsize, dtype=dtype)
    with open(path, "rb", buffering=0) as file:
        while read := file.readinto(block):
            items = block[: read // dtype.itemsize]
            digest.update(items)
            largest = max(largest, int(items.max()))
    return digest.hexdigest(), largest


def _read_cache(directory: Path, settings: dict, tokenizers) -> Tokenized:
    """The cache in `directory`, once it agrees with its meta.json, or a SweepError naming the directory."""
    try:
        meta = _verified_meta(directory, settings, tokenizers)
    except OSError as err:
        problem = f"{Path(err.filename).name if err.filename else ''}: {err.strerror}"
    except ValueError as err:
        problem = str(err)
    else:
        return Tokenized(
            directory,
            np.dtype(meta["dtype"]),
            meta["train_tokens"],
            meta["val_tokens"],
            meta["tokenizer_vocab_size"],
            meta["tokenizer_sha256"],
        )
    raise SweepError(
        f"data.tokenizer: the tokenised corpus in {cut(str(directory), 200)} is damaged ({cut(problem, 300)}); "
        "delete that directory and it is made again"
    )


def _verified_meta(directory: Path, settings: dict, tokenizers) -> dict:
    """meta.json, once every file agrees with it; a ValueError saying what does not."""
    meta = json.loads((directory / "meta.json").read_text())
    if not isinstance(meta, dict):
        raise ValueError("meta.json is not a JSON object")
    if {name: meta.get(name) for name in settings} != settings:
        raise ValueError("meta.json describes another tokenisation than this directory's name")
    for name in ("train_tokens", "val_tokens", "tokenizer_vocab_size"):
        if type(meta.get(name)) is not int or meta[name] < 0:
            raise ValueError(f"meta.json's {name} is {shown(meta.get(name))}, not a count")
    vocab_size = meta["tokenizer_vocab_size"]
    if meta.get("dtype") != np.dtype(_dtype(vocab_size)).name:
        raise ValueError(f"meta.json's dtype {shown(meta.get('dtype'))} is not that of {vocab_size} ids")
    files = _token_files(meta["dtype"])
    sha256 = meta.get("sha256")
    if not isinstance(sha256, dict) or any(not isinstance(sha256.get(name), str) for name in files):
        raise ValueError(f"meta.json's sha256 is {shown(sha256)}, not one per token file")
    if not isinstance(meta.get("tokenizer_sha256"), str):
        raise ValueError(f"meta.json's tokenizer_sha256 is {shown(meta.get('tokenizer_sha256'))}")
    counts = {"train.bin": meta["train_tokens"], "val.bin": meta["val_tokens"], "val_bytes.bin": meta["val_tokens"]}
    for name, item in files.items():
        size = (directory / name).stat().st_size
        if size != counts[name] * item.itemsize:
            raise ValueError(f"{name} has {size} bytes; meta.json says {counts[name]} items of {item.name}")
    for name, item in files.items():
        digest, largest = _scan(directory / name, item)
        if name != "val_bytes.bin" and largest >= vocab_size:
            raise ValueError(f"{name} holds token id {largest}, past the vocabulary of {vocab_size}")
        if digest != sha256[name]:
            raise ValueError(f"{name} is not the file whose sha256 meta.json holds")
    if hashlib.sha256((directory / "tokenizer.json").read_bytes()).hexdigest() != meta["tokenizer_sha256"]:
        raise ValueError("tokenizer.json is not the file whose sha256 meta.json holds")
    try:
        ids = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json")).get_vocab_size()
    except Exception as err:  # the Rust side raises plain Exception for any parse error
        raise ValueError(f"tokenizer.json cannot be read: {err}") from None
    if ids != vocab_size:
        raise ValueError(f"tokenizer.json has {ids} ids; meta.json says {vocab_size}")
    return meta
