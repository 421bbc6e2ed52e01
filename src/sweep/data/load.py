"""Corpora → token arrays: the corpus `data.corpus` names, read, tokenised and split by document.

Text is tokenised as bytes (vocabulary 256) unless data.tokenizer names BPE or a tokenizer file
(`sweep.data.tokenizer`). Documents are text files, .jsonl lines and .parquet rows
(`sweep.data.documents`); a single long file is cut into data.chunk_tokens pieces. A .bin is a token
file (`sweep.data.token_files`).
"""

from __future__ import annotations

import glob
import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sweep.config import DataConfig
from sweep.data.corpus import Corpus, check_documents, check_sizes, check_val_tokens, check_vocab, is_validation
from sweep.data.documents import Malformed, is_record_file, read_records
from sweep.data.token_files import load_token_file
from sweep.data.token_ranges import DOCUMENT_SEPARATOR, TokenRanges
from sweep.data.tokenizer import tokenize
from sweep.errors import SweepError, cut, shown


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
        return load_token_file(path, data)
    documents, malformed, source = _documents(data)
    check_documents(data, len(documents))
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
    check_sizes(data, len(train), len(val))
    check_vocab(int(max(train.max(), val.max())), 256)
    check_val_tokens(data, len(val))
    return Corpus(
        source,
        digest.hexdigest(),
        torch.from_numpy(train),
        torch.from_numpy(val),
        256,
        len(train_docs),
        len(val_docs),
        malformed=malformed,
    )


def _tokenized_corpus(
    data: DataConfig,
    source: str,
    text_sha256: str,
    train_docs: list[Document],
    val_docs: list[Document],
    malformed: int,
    cache,
) -> Corpus:
    """The splits tokenised by data.tokenizer, mapped from the cache. The corpus's hash covers the
    tokenizer too, so runs of another tokenisation of the same text are other runs."""
    text = lambda docs: [bytes(d.tokens).decode("utf-8", "replace") for d in docs]  # noqa: E731
    split = hashlib.sha256("\x00".join(d.name for d in val_docs).encode()).hexdigest()  # the held-out documents

    def check(tokenizer_vocab: int, train_tokens: int, val_tokens: int) -> None:  # before the cache is written
        if data.tokenizer != "bpe" and data.vocab_size and data.vocab_size < tokenizer_vocab:
            raise SweepError(
                f"data.vocab_size: {data.vocab_size} is smaller than the tokenizer's vocabulary "
                f"({tokenizer_vocab}); give 0 to use the tokenizer's"
            )
        check_sizes(data, train_tokens, val_tokens)
        check_val_tokens(data, val_tokens)

    tokens = tokenize(
        data.tokenizer, data.vocab_size, text(train_docs), text(val_docs), text_sha256, split, cache, check
    )
    vocab_size = data.vocab_size if data.tokenizer != "bpe" and data.vocab_size else tokens.vocab_size
    whole = lambda path, count: TokenRanges(path, tokens.dtype, np.array([0]), np.array([count]), False, vocab_size)  # noqa: E731
    train, val = whole(tokens.train_path, tokens.train_tokens), whole(tokens.val_path, tokens.val_tokens)
    sha256 = hashlib.sha256(f"{text_sha256}\x00{tokens.tokenizer_sha256}".encode()).hexdigest()
    return Corpus(
        source,
        sha256,
        train,
        val,
        vocab_size,
        len(train_docs),
        len(val_docs),
        val_bytes=torch.from_numpy(tokens.val_bytes().astype(np.int64)),
        tokenizer=tokens.record("bpe" if data.tokenizer == "bpe" else "file"),
        malformed=malformed,
    )


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
    raise SweepError(
        f"data.corpus: {shown(data.corpus)} is not 'stdlib', an existing file or directory, or a glob that matches files"
    )


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
    return [
        Document(f"{name}#{i}", tokens[start : start + chunk_tokens])
        for i, start in enumerate(range(0, len(tokens), chunk_tokens))
    ]
