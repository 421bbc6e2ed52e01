import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SWEEP, tiny_config
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.config import DataConfig
from sweep.data import WHOLE_READ_BYTES, get_batch, is_validation, load_corpus, stdlib_root, validation_set
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
    assert corpus.train.mapped().dtype == np.uint16  # as stored: batches widen only what they read


@pytest.mark.parametrize(
    "corpus, message",
    [
        ("/no/such/place", "is not 'stdlib', an existing file or directory, or a glob"),
        ("/no/such/*.txt", "is not 'stdlib', an existing file or directory, or a glob"),
    ],
)
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


# --- token .bin files, memory-mapped -------------------------------------------------------------


def widened_split(path, dtype: str, chunk_tokens: int, val_fraction: float):
    """How a .bin was loaded before it was memory-mapped: read whole, uint16 widened to int32, cut into
    chunks `name#i`, each side the concatenation of its chunks (uint8 ones each followed by the byte
    separator 0, as text documents are). (train, val, val chunk indices, sha256)."""
    tokens = np.fromfile(path, dtype=dtype)
    tokens = tokens if dtype == "uint8" else tokens.astype(np.int32)
    chunks = [tokens[start : start + chunk_tokens] for start in range(0, len(tokens), chunk_tokens)]
    names = [f"{path.name}#{i}" for i in range(len(chunks))]
    held_out = [i for i, name in enumerate(names) if is_validation(name, val_fraction)]
    sha256 = hashlib.sha256()
    for name, chunk in zip(names, chunks):
        sha256.update(name.encode() + b"\x00" + chunk.tobytes())
    separator = [np.zeros(1, np.uint8)] if dtype == "uint8" else []

    def joined(indices):
        return torch.from_numpy(np.concatenate([part for i in indices for part in [chunks[i], *separator]]))

    train = joined([i for i in range(len(chunks)) if i not in held_out])
    return train, joined(held_out), held_out, sha256.hexdigest()


def write_tokens(path, count: int, dtype: str, vocab: int):
    np.random.default_rng(0).integers(0, vocab, count).astype(dtype).tofile(path)
    return path


def test_token_bin_is_memory_mapped_not_copied(tmp_path):
    path = write_tokens(tmp_path / "train.bin", 300_001, "uint16", 50_257)
    corpus = load_corpus(DataConfig(corpus=str(path), seq_len=32, val_fraction=0.1, chunk_tokens=1000))
    for side in (corpus.train, corpus.val):
        tokens = side.mapped()
        assert isinstance(tokens, np.memmap) and tokens.mode == "r" and not tokens.flags.writeable
        assert tokens.dtype == np.uint16 and len(tokens) == 300_001  # the whole file, not widened
        held = [value for value in vars(side).values() if isinstance(value, np.ndarray)]
        assert held and all(len(array) <= len(side.offsets) for array in held)  # ranges, no tokens
    assert len(corpus.train.offsets) - 1 < corpus.train_documents  # neighbouring chunks are one range


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_reading_a_token_bin_keeps_it_out_of_resident_memory(tmp_path):
    """Loading, the validation set and batches of a 100 MB file leave resident memory where it was: the
    widened copy took 200 MB, a map held across batches would keep the pages they touched."""
    path = tmp_path / "train.bin"
    np.tile(np.arange(2**16, dtype=np.uint16), 763).tofile(path)  # 100 MB
    before = resident_bytes()
    corpus = load_corpus(DataConfig(corpus=str(path), seq_len=256, vocab_size=2**16))
    validation_set(corpus.val, 256, 65_536)
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        get_batch(corpus.train, 32, 256, generator, torch.device("cpu"))
    assert resident_bytes() - before < 20 * 2**20


def peak_resident_bytes(command: list[str]) -> int:
    """The largest resident set of any process `command` starts, itself included (it runs in a fresh
    interpreter, as ru_maxrss of RUSAGE_CHILDREN is a maximum over every child ever waited for)."""
    measure = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True);"
    measure += " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    done = subprocess.run([sys.executable, "-c", measure, *command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout) * 1024  # Linux reports kilobytes


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in kilobytes is Linux's")
def test_a_sweep_on_a_1_gib_token_file_takes_no_more_memory_than_on_a_small_one(tmp_path, write_config):
    """`sweep run` end to end: its resident memory is set by what it trains on (model, batch, vocabulary),
    not by the size of the file it samples from (issue 23, case 1; a whole read would add 1 GiB)."""
    small = write_tokens(tmp_path / "small.bin", 2**21, "uint16", 512)  # 4 MiB
    large = tmp_path / "large.bin"
    with open(large, "wb") as file:
        file.truncate(2**30)  # 1 GiB, sparse: zeros, written at once
    peaks = {}
    for path in (small, large):
        raw = {
            "name": path.stem,
            "data": {"corpus": str(path), "seq_len": 32, "vocab_size": 512, "val_tokens": 2048},
            "model": {"sizes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}]},
            "tokens": ["8192"],
            "train": {"batch_tokens": 1024, "lr": "1e-2", "evals": 1},
            "device": "cpu",
        }
        store = tmp_path / f"store-{path.stem}"
        peaks[path.stem] = peak_resident_bytes([*SWEEP, "run", str(write_config(raw)), "--store", str(store)])
        assert (load_runs(store)["status"] == "done").all()
    assert peaks["large"] - peaks["small"] < 64 * 2**20, peaks


@pytest.mark.parametrize("dtype, vocab", [("uint16", 50_257), ("uint8", 256)])
def test_bin_batches_are_those_of_the_widened_copy(tmp_path, dtype, vocab):
    """Same generator, same windows as when the file was read whole and its sides concatenated,
    windows that cross from one chunk into the next (and uint8's separators) included."""
    path = write_tokens(tmp_path / "train.bin", 100_003, dtype, vocab)
    corpus = load_corpus(DataConfig(corpus=str(path), bin_dtype=dtype, seq_len=64, val_fraction=0.2, chunk_tokens=100))
    train, val, _, _ = widened_split(path, dtype, 100, 0.2)
    assert len(corpus.train) == len(train) and len(corpus.val) == len(val)
    cpu = torch.device("cpu")
    for rank, world_size in [(0, 1), (1, 2)]:
        mapped, widened = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        for _ in range(20):
            x, y = get_batch(corpus.train, 32, 64, mapped, cpu, rank, world_size)
            x_old, y_old = get_batch(train, 32, 64, widened, cpu, rank, world_size)
            assert x.dtype == y.dtype == torch.int64
            assert torch.equal(x, x_old) and torch.equal(y, y_old)
    for max_tokens in (640, 10**9):
        assert all(
            torch.equal(a, b)
            for a, b in zip(validation_set(corpus.val, 64, max_tokens), validation_set(val, 64, max_tokens))
        )


def test_bin_split_holds_out_the_same_chunks_as_before(tmp_path):
    path = write_tokens(tmp_path / "train.bin", 250_000, "uint16", 1000)
    corpus = load_corpus(DataConfig(corpus=str(path), seq_len=32, val_fraction=0.1, chunk_tokens=1000))
    train, val, held_out, sha256 = widened_split(path, "uint16", 1000, 0.1)
    assert corpus.val_documents == len(held_out) and corpus.train_documents == 250 - len(held_out)
    everything = torch.tensor([0])
    assert torch.equal(corpus.val.windows(everything, len(corpus.val))[0], val.long())
    assert torch.equal(corpus.train.windows(everything, len(corpus.train))[0], train.long())
    assert corpus.sha256 == sha256 and corpus.vocab_size == 1000  # a small file is still read whole


def test_large_bin_is_fingerprinted_and_its_ids_checked_as_read(tmp_path):
    """Above WHOLE_READ_BYTES the file is not read whole: its sha256 is a fingerprint of samples and,
    with data.vocab_size given, an id too large is found by the batch that reads it."""
    path = tmp_path / "train.bin"
    with open(path, "wb") as file:
        file.truncate(WHOLE_READ_BYTES + 2**20)  # sparse: zeros, written at once
    data = DataConfig(corpus=str(path), seq_len=32, vocab_size=50_257)
    first = load_corpus(data).sha256
    assert load_corpus(data).sha256 == first
    np.memmap(path, np.uint16, mode="r+")[-1] = 7  # the last sample
    assert load_corpus(data).sha256 != first
    np.memmap(path, np.uint16, mode="r+")[: 10 * 65_536] = 60_000  # the first ten chunks
    corpus = load_corpus(data)
    with pytest.raises(SweepError, match="data.vocab_size: 50257 is too small for token id 60000"):
        corpus.train.windows(torch.tensor([0]), 33)


def test_odd_sized_bin_exits_2_with_its_message(tmp_path, write_config):
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"abc")
    config = write_config(tiny_config(str(odd)))
    result = CliRunner().invoke(app, ["run", str(config), "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and "has 3 bytes, not a whole number of uint16 tokens" in result.output


@pytest.mark.slow
def test_a_sweep_on_a_token_file_of_non_byte_ids_finishes_and_says_its_bpb_is_unknown(tmp_path, write_config):
    """GPT-2 ids (as nanoGPT writes them): bits per byte are unknown, and the progress line says so
    instead of crashing the sweep after its first run (issue 23, case 1)."""
    path = write_tokens(tmp_path / "train.bin", 60_000, "uint16", 50_257)
    raw = {
        "name": "gpt2ids",
        "data": {"corpus": str(path), "seq_len": 32, "val_fraction": 0.2, "val_tokens": 2048, "chunk_tokens": 4096},
        "model": {"sizes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}]},
        "tokens": ["4096", "8192"],
        "train": {"batch_tokens": 1024, "lr": "1e-2", "evals": 1, "schedule": "cosine"},
        "device": "cpu",
    }
    store = tmp_path / "store"
    done = subprocess.run(
        [*SWEEP, "run", str(write_config(raw)), "--store", str(store), "--workers", "1"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("(bpb –)") == 2 and "2 trained" in done.stdout
    runs = load_runs(store)
    assert (runs["status"] == "done").all() and runs["bpb"].isna().all()
