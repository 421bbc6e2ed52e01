"""The BPE tokenizer cache under <store>/.tokenized/<key>/ is trusted only once it agrees with its own
meta.json; a damaged one is refused with exit 2, naming the directory to delete, and is never rebuilt
under runners that may be mapping it. A tokenisation the run would refuse writes no cache at all, and
a BPE that learns fewer ids than data.vocab_size asks for says so."""

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import run_dirs, tiny_config
from typer.testing import CliRunner

from sweep.cli import app
from sweep.config import DataConfig
from sweep.data import load_corpus, stdlib_root
from sweep.data.tokenizer import CACHE_DIR, _write_cache
from sweep.errors import SweepError

pytest.importorskip("tokenizers")
runner = CliRunner()
EMAIL = str(stdlib_root() / "email" / "**" / "*.py")


def data(**fields) -> DataConfig:
    return DataConfig(
        **{"corpus": EMAIL, "seq_len": 32, "val_fraction": 0.2, "val_tokens": 2048, "tokenizer": "bpe", **fields}
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, str]:
    """A store holding the email corpus's BPE-512 cache, built once: (store, the corpus's sha256)."""
    store = tmp_path_factory.mktemp("pristine") / "store"
    return store, load_corpus(data(vocab_size=512), store).sha256


@pytest.fixture
def cached(pristine, tmp_path) -> tuple[Path, Path]:
    """A copy of the pristine store to damage: (store, its cache directory)."""
    store = tmp_path / "store"
    shutil.copytree(pristine[0], store)
    (directory,) = (store / CACHE_DIR).iterdir()
    return store, directory


def edit_meta(**fields):
    def edit(directory: Path) -> None:
        meta = json.loads((directory / "meta.json").read_text())
        (directory / "meta.json").write_text(json.dumps({**meta, **fields}))

    return edit


def shift_meta(name: str, by: int):
    def edit(directory: Path) -> None:
        meta = json.loads((directory / "meta.json").read_text())
        edit_meta(**{name: meta[name] + by})(directory)

    return edit


def truncate(name: str, by: int):
    def edit(directory: Path) -> None:
        path = directory / name
        path.write_bytes(path.read_bytes()[:-by])

    return edit


def append_byte(directory: Path) -> None:
    with open(directory / "train.bin", "ab") as file:
        file.write(b"\x01")


def id_past_vocab(directory: Path) -> None:
    ids = np.fromfile(directory / "train.bin", dtype=np.uint16)
    ids[1000] = 40000
    ids.tofile(directory / "train.bin")


def zeros(directory: Path) -> None:
    path = directory / "train.bin"
    path.write_bytes(bytes(path.stat().st_size))


def delete(name: str):
    return lambda directory: (directory / name).unlink()


DAMAGE = {
    "train.bin truncated": (truncate("train.bin", 2000), "train.bin has"),
    "train.bin of odd length": (append_byte, "train.bin has"),
    "train.bin holds an id past the vocabulary": (id_past_vocab, "token id 40000, past the vocabulary of 512"),
    "train.bin overwritten with zeros": (zeros, "train.bin is not the file whose sha256"),
    "val.bin deleted": (delete("val.bin"), "val.bin: No such file"),
    "val_bytes.bin truncated": (truncate("val_bytes.bin", 4), "val_bytes.bin has"),
    "meta.json deleted": (delete("meta.json"), "meta.json: No such file"),
    "tokenizer.json edited": (
        lambda directory: (directory / "tokenizer.json").write_text("{}"),
        "tokenizer.json is not the file",
    ),
    "meta.json's vocabulary raised": (shift_meta("tokenizer_vocab_size", 88), "tokenizer.json has 512 ids"),
    "meta.json's vocabulary lowered": (shift_meta("tokenizer_vocab_size", -100), "past the vocabulary of 412"),
    "meta.json's asked vocabulary changed": (edit_meta(vocab_size=600), "another tokenisation"),
    "meta.json's token count lowered": (shift_meta("train_tokens", -1000), "train.bin has"),
    "meta.json's token count raised": (shift_meta("val_tokens", 1), "val.bin has"),
    "meta.json's count a string": (edit_meta(train_tokens="104839"), "train_tokens is '104839', not a count"),
    "meta.json's count a bool": (edit_meta(val_tokens=True), "val_tokens is True, not a count"),
    "meta.json's dtype a number": (edit_meta(dtype=5), "dtype 5"),
    "meta.json's dtype too narrow": (edit_meta(dtype="uint8"), "dtype 'uint8'"),
    "meta.json's checksums missing": (edit_meta(sha256=None), "sha256 is None"),
    "meta.json's tokenizer checksum a number": (edit_meta(tokenizer_sha256=1), "tokenizer_sha256 is 1"),
    "meta.json not an object": (lambda directory: (directory / "meta.json").write_text("[]"), "not a JSON object"),
    "meta.json not JSON": (lambda directory: (directory / "meta.json").write_text("{"), "Expecting"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_cache_is_refused_naming_the_directory_to_delete(cached, damage):
    store, directory = cached
    edit, problem = DAMAGE[damage]
    edit(directory)
    left = sorted((path.name, path.stat().st_mtime_ns) for path in directory.iterdir())
    with pytest.raises(SweepError) as refused:
        load_corpus(data(vocab_size=512), store)
    message = str(refused.value)
    assert f"the tokenised corpus in {directory} is damaged" in message and "delete that directory" in message
    assert problem in message
    assert sorted((path.name, path.stat().st_mtime_ns) for path in directory.iterdir()) == left  # left as it was
    assert [path.name for path in (store / CACHE_DIR).iterdir()] == [directory.name]  # nothing staged beside it


def test_the_deleted_cache_is_made_again_the_same(cached, pristine):
    store, directory = cached
    zeros(directory)
    shutil.rmtree(directory)
    assert load_corpus(data(vocab_size=512), store).sha256 == pristine[1]  # the same runs
    assert load_corpus(data(vocab_size=512), store).sha256 == pristine[1]  # and now read, verified


def test_a_sweep_on_a_zeroed_cache_exits_2_and_trains_nothing(cached, write_config):
    store, directory = cached
    zeros(directory)
    raw = tiny_config(EMAIL, tokens=["8192"])
    raw["data"].update(tokenizer="bpe", vocab_size=512)
    result = runner.invoke(app, ["run", str(write_config(raw)), "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert "damaged" in result.output and "delete that directory" in result.output
    assert not run_dirs(store / "tiny")


def test_a_runner_that_loses_the_race_to_write_the_cache_reads_the_winners(cached, pristine):
    """Two runners tokenising at once each write a private copy and rename it into place: the second
    rename fails, the winner's copy stays whole and the loser's goes."""
    store, directory = cached
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    settings = {k: v for k, v in json.loads(before["meta.json"]).items() if k in ("format", "corpus")}
    _write_cache(directory, tokenizer, ["some text"], ["more text"], settings, lambda *counts: None)
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before
    assert [path.name for path in (store / CACHE_DIR).iterdir()] == [directory.name]
    assert load_corpus(data(vocab_size=512), store).sha256 == pristine[1]


def test_a_vocabulary_the_validation_split_cannot_hold_is_refused_before_the_cache_is_written(tmp_path, write_config):
    """50,000 asked of BPE merges the validation split into fewer tokens than data.val_tokens asks for:
    refused as a byte-level corpus that small is, and with nothing written, not the cache either."""
    raw = tiny_config(EMAIL, tokens=["8192"])
    raw["data"].update(tokenizer="bpe", vocab_size=50000, val_tokens=40000)
    store = tmp_path / "store"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BPE learns fewer ids than asked (below)
        result = runner.invoke(app, ["run", str(write_config(raw)), "--store", str(store)])
    assert result.exit_code == 2 and "data.val_tokens: 40000 asked for" in result.output, result.output
    assert not store.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SweepError, match="data.val_tokens"):
            load_corpus(data(vocab_size=50000, val_tokens=40000), store)
    assert not store.exists()
    store.mkdir()  # a store that exists already keeps only what it had
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SweepError, match="data.val_tokens"):
            load_corpus(data(vocab_size=50000, val_tokens=40000), store)
    assert list(store.iterdir()) == []


def test_bpe_that_learns_fewer_ids_than_asked_says_so_when_it_trains(tmp_path):
    store = tmp_path / "store"
    with pytest.warns(UserWarning, match=r"BPE learned [\d,]+ ids, not the 50,000 asked for") as caught:
        corpus = load_corpus(data(vocab_size=50000), store)
    (warning,) = [w for w in caught if "BPE learned" in str(w.message)]
    learned = int(re.search(r"learned ([\d,]+) ids", str(warning.message)).group(1).replace(",", ""))
    assert learned == corpus.vocab_size < 50000 and corpus.tokenizer["vocab_size"] == learned
    assert "data.vocab_size: 50000 as asked" in str(warning.message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read from the cache, as every worker does: trained once, said once
        assert load_corpus(data(vocab_size=50000), store).vocab_size == learned
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a vocabulary BPE can fill is not warned about
        load_corpus(data(vocab_size=512), store)
