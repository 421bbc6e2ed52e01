import numpy as np
import pytest
import torch

from sweep.config import DataConfig
from sweep.data import get_batch, is_validation, load_corpus, stdlib_root, validation_set
from sweep.errors import SweepError


def test_stdlib_split_is_by_document_and_disjoint():
    data = DataConfig(corpus="stdlib", val_fraction=0.05)
    root = stdlib_root()
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "site-packages" not in p.parts)
    val_names = {n for n in names if is_validation(n, data.val_fraction)}
    train_names = set(names) - val_names
    assert val_names and train_names and not (val_names & train_names)
    assert 0.02 < len(val_names) / len(names) < 0.08  # close to the fraction asked for
    corpus = load_corpus(data)
    assert corpus.val_documents == len(val_names) and corpus.train_documents == len(train_names)
    assert corpus.vocab_size == 256 and len(corpus.sha256) == 64
    assert len(corpus.train) + len(corpus.val) > 10_000_000  # ~30 MB of source text


def test_directory_corpus_split_never_overlaps(tmp_path):
    for i in range(40):
        (tmp_path / f"doc{i:02d}.txt").write_text(f"document {i} " * 50)
    corpus = load_corpus(DataConfig(corpus=str(tmp_path), seq_len=16, val_fraction=0.25))
    val_text = corpus.val.numpy().tobytes()
    train_text = corpus.train.numpy().tobytes()
    held_out = [i for i in range(40) if f"document {i} ".encode() in val_text]
    assert held_out, "some documents are held out"
    for i in held_out:
        assert f"document {i} ".encode() not in train_text
    assert corpus.train_documents + corpus.val_documents == 40


def test_single_text_file_is_cut_into_documents(tmp_path):
    path = tmp_path / "book.txt"
    path.write_bytes(bytes(range(97, 123)) * 2000)  # 52,000 bytes
    corpus = load_corpus(DataConfig(corpus=str(path), seq_len=16, val_fraction=0.3, chunk_tokens=1000))
    assert corpus.train_documents + corpus.val_documents == 52
    assert corpus.val_documents >= 1


def test_token_bin_uint16(tmp_path):
    tokens = (np.arange(200_000) % 1000).astype(np.uint16)
    path = tmp_path / "train.bin"
    tokens.tofile(path)
    corpus = load_corpus(DataConfig(corpus=str(path), seq_len=32, val_fraction=0.2, chunk_tokens=5000))
    assert corpus.vocab_size == 1000
    assert len(corpus.train) + len(corpus.val) == 200_000  # no separators between token chunks
    assert corpus.train.dtype == torch.int32


@pytest.mark.parametrize("corpus, message", [
    ("/no/such/place", "is not 'stdlib', an existing file or directory, or a glob"),
    ("/no/such/*.txt", "is not 'stdlib', an existing file or directory, or a glob"),
])
def test_bad_corpus_paths(corpus, message):
    with pytest.raises(SweepError, match=message):
        load_corpus(DataConfig(corpus=corpus))


def test_odd_sized_bin_and_tiny_corpus(tmp_path):
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"abc")
    with pytest.raises(SweepError, match="not a whole number of uint16 tokens"):
        load_corpus(DataConfig(corpus=str(odd)))
    small = tmp_path / "small.txt"
    small.write_text("hello")
    with pytest.raises(SweepError, match="holds 1 document"):
        load_corpus(DataConfig(corpus=str(small), seq_len=16, chunk_tokens=32))
    small.write_text("hello world, " * 5)
    with pytest.raises(SweepError, match="too small for seq_len 16"):
        load_corpus(DataConfig(corpus=str(small), seq_len=16, chunk_tokens=32))


def test_batches_are_next_token_windows():
    tokens = torch.arange(1000, dtype=torch.int32)
    x, y = get_batch(tokens, 8, 16, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # targets are the inputs shifted by one
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(8, 15, dtype=torch.int64))
    again, _ = get_batch(tokens, 8, 16, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(x, again)


def test_validation_set_is_fixed_and_bounded():
    val = torch.arange(1000, dtype=torch.int32)
    x, y = validation_set(val, 16, 320)
    assert x.shape == (20, 16) and torch.equal(y, x + 1)
    x_all, _ = validation_set(val, 16, 10**9)
    assert x_all.shape == (62, 16)  # (1000 - 1) // 16 whole windows


def test_validation_windows_cover_the_whole_split_without_overlap():
    """Documents are laid out in path order, so windows from the start alone can all come from one kind
    of document; spread over the split they measure all of it."""
    val = torch.arange(10_000, dtype=torch.int32)  # each token is its own position
    x, y = validation_set(val, 16, 320)
    starts = x[:, 0]
    assert len(starts) == 20 and starts[0] == 0 and starts[-1] > 9_000
    assert (starts.diff() >= 16).all() and torch.equal(y, x + 1)
