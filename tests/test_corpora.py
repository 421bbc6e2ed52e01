"""Corpora beyond byte-level text files: .jsonl and .parquet records, BPE tokenizers trained on the
training split and cached in the store, a user's tokenizer.json, and bits per byte across them."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_dirs, tiny_config
from typer.testing import CliRunner

from sweep.cli import app
from sweep.config import DataConfig
from sweep.data import bits_per_byte, is_validation, load_corpus, stdlib_root, validation_set
from sweep.data.tokenizer import CACHE_DIR

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def email_texts() -> list[tuple[str, str]]:
    """(name, text) of the standard library's email package: real text, about 40 documents."""
    root = stdlib_root() / "email"
    return [(str(p.relative_to(root)), p.read_text()) for p in sorted(root.rglob("*.py"))]


@pytest.fixture
def jsonl(tmp_path) -> Path:
    """The email package as a .jsonl file, one record per source file, with an extra field."""
    path = tmp_path / "email.jsonl"
    path.write_text("".join(json.dumps({"id": name, "text": text}) + "\n" for name, text in email_texts()))
    return path


def data(corpus, **fields) -> DataConfig:
    return DataConfig(**{"corpus": str(corpus), "seq_len": 32, "val_fraction": 0.2, "val_tokens": 2048, **fields})


def test_jsonl_lines_are_documents_split_by_name(jsonl):
    corpus = load_corpus(data(jsonl))
    texts = email_texts()
    assert corpus.train_documents + corpus.val_documents == len(texts) and corpus.malformed == 0
    val = [text for line, (_, text) in enumerate(texts, 1) if is_validation(f"email.jsonl#{line}", 0.2)]
    assert len(corpus.val) == sum(len(t.encode()) + 1 for t in val)  # each document and its separator


@pytest.mark.slow
def test_a_jsonl_sweep_trains(jsonl, tmp_path, write_config):
    store = tmp_path / "store"
    result = invoke("run", write_config(tiny_config(str(jsonl), tokens=["8192"])), "--store", store)
    assert result.exit_code == 0, result.output
    records = [json.loads((d / "result.json").read_text()) for d in run_dirs(store / "tiny")]
    assert len(records) == 2 and all(r["status"] == "done" and r["loss"] < 5 for r in records)
    assert records[0]["corpus"]["malformed_records"] == 0 and records[0]["corpus"]["tokenizer"]["kind"] == "bytes"


@pytest.mark.parametrize(
    "line, problem",
    [
        ("not json", "line 30: not JSON"),
        ("[1, 2]", "line 30: not a JSON object but an array"),
        ('{"text": 5}', "line 30: field 'text' is a number, not a string"),
        ('{"body": "x"}', "line 30: no field 'text' (fields: body)"),
    ],
)
def test_a_malformed_line_exits_2_naming_it_and_writes_nothing(jsonl, tmp_path, write_config, line, problem):
    with open(jsonl, "a") as file:
        file.write(line + "\n")
    store = tmp_path / "store"
    result = invoke("run", write_config(tiny_config(str(jsonl))), "--store", store)
    assert result.exit_code == 2 and problem in result.output and "data.malformed: skip" in result.output
    assert "Traceback" not in result.output and not store.exists()


@pytest.mark.slow
def test_skipped_malformed_lines_are_counted_and_recorded(jsonl, tmp_path, write_config):
    with open(jsonl, "a") as file:
        file.write('not json\n\n{"text": null}\n')  # two malformed records and a blank line
    raw = tiny_config(str(jsonl), tokens=["8192"])
    raw["data"]["malformed"] = "skip"
    store = tmp_path / "store"
    result = invoke("run", write_config(raw), "--store", store)
    assert result.exit_code == 0 and "2 malformed record(s) of the corpus left out" in result.output
    record = json.loads((run_dirs(store / "tiny")[0] / "result.json").read_text())
    assert record["corpus"]["malformed_records"] == 2


def test_a_wrong_text_field_exits_2_naming_the_fields_there(jsonl, tmp_path, write_config):
    raw = tiny_config(str(jsonl))
    raw["data"]["text_field"] = "content"
    result = invoke("run", write_config(raw), "--store", tmp_path / "store")
    assert result.exit_code == 2
    assert "data.text_field: no record has a field 'content'; the first has fields: id, text" in result.output


def test_parquet_rows_are_documents(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as parquet

    texts = email_texts()
    parquet.write_table(pyarrow.table({"body": [t for _, t in texts] + [None]}), tmp_path / "email.parquet")
    with pytest.raises(Exception, match="'body' is null"):
        load_corpus(data(tmp_path / "email.parquet", text_field="body"))
    corpus = load_corpus(data(tmp_path / "email.parquet", text_field="body", malformed="skip"))
    assert corpus.train_documents + corpus.val_documents == len(texts) and corpus.malformed == 1
    with pytest.raises(Exception, match=r"'text' is not a column of email.parquet \(columns: body\)"):
        load_corpus(data(tmp_path / "email.parquet"))


def test_missing_extras_exit_2_naming_them(jsonl, tmp_path, write_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers now raises ImportError
    raw = tiny_config(str(jsonl))
    raw["data"].update(tokenizer="bpe", vocab_size=512)
    result = invoke("run", write_config(raw), "--store", tmp_path / "store")
    assert result.exit_code == 2 and "pip install 'sweep[bpe]'" in result.output and not (tmp_path / "store").exists()
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    result = invoke("run", write_config(tiny_config(str(tmp_path / "x.parquet"))), "--store", tmp_path / "store")
    assert result.exit_code == 2 and "pip install 'sweep[parquet]'" in result.output


def bpe_corpus(tmp_path, vocab_size=512, **fields):
    return load_corpus(
        data(stdlib_root() / "email" / "**" / "*.py", tokenizer="bpe", vocab_size=vocab_size, **fields),
        tmp_path / "store",
    )


def test_bpe_is_trained_on_the_training_split_only(tmp_path):
    pytest.importorskip("tokenizers")
    corpus_dir = tmp_path / "text"
    corpus_dir.mkdir()
    names = [f"doc{i}.txt" for i in range(40)]
    held_out = [n for n in names if is_validation(n, 0.2)]
    assert held_out
    for name in names:  # the same plain text everywhere; a word repeated only in validation documents
        extra = " zyzzogeton" * 300 if name in held_out else ""
        (corpus_dir / name).write_text("the quick brown fox jumps over the lazy dog. " * 40 + extra)
    corpus = load_corpus(data(corpus_dir, tokenizer="bpe", vocab_size=400), tmp_path / "store")
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(corpus.tokenizer["path"]).get_vocab()
    assert any("quick" in token for token in vocab) and not any("zz" in token for token in vocab)


@pytest.mark.slow
def test_bpe_is_deterministic_cached_and_recorded(tmp_path):
    pytest.importorskip("tokenizers")
    code = (
        "import sys; from sweep.config import DataConfig; from sweep.data import load_corpus, stdlib_root; "
        "c = load_corpus(DataConfig(corpus=str(stdlib_root() / 'email' / '**' / '*.py'), seq_len=32, "
        "val_fraction=0.2, tokenizer='bpe', vocab_size=512), sys.argv[1]); print(c.sha256, c.tokenizer['sha256'])"
    )
    shas = [
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / f"s{i}")], capture_output=True, text=True, check=True
        ).stdout
        for i in range(2)
    ]
    assert shas[0] == shas[1]  # two processes, two caches: the same merges
    first = bpe_corpus(tmp_path)
    cached = Path(first.tokenizer["path"])
    assert cached.parent.parent == tmp_path / "store" / CACHE_DIR and first.vocab_size == 512
    mtime = cached.stat().st_mtime_ns
    again = bpe_corpus(tmp_path)
    assert again.sha256 == first.sha256 and cached.stat().st_mtime_ns == mtime  # read, not retrained
    assert bpe_corpus(tmp_path, vocab_size=600).sha256 != first.sha256  # another tokenisation, other runs
    byte_level = load_corpus(data(stdlib_root() / "email" / "**" / "*.py"))
    assert len(first.train) < len(byte_level.train) / 2  # merges make fewer tokens than bytes


def test_bpe_bits_per_byte_count_every_byte_of_the_validation_text_once(tmp_path):
    pytest.importorskip("tokenizers")
    corpus = bpe_corpus(tmp_path)
    byte_level = load_corpus(data(stdlib_root() / "email" / "**" / "*.py"))
    # every document's bytes and its separator's one byte, as the byte-level split counts them
    assert int(corpus.val_bytes.sum()) == len(byte_level.val)
    assert corpus.val_documents == byte_level.val_documents
    _, y = validation_set(corpus.val, 32, 2048)
    loss = 2.0  # nats per token: bpb scales it by tokens / bytes of those very targets
    bpb = bits_per_byte(loss, corpus, 32, 2048)
    assert 1 / 8 < bpb * math.log(2) / loss < 1  # a BPE token covers more than a byte, at most 8 here
    assert bits_per_byte(loss, byte_level, 32, 2048) == loss / math.log(2)


@pytest.mark.slow
def test_a_bpe_sweep_records_its_tokenizer_and_both_parameter_counts(tmp_path, write_config):
    pytest.importorskip("tokenizers")
    raw = tiny_config(str(stdlib_root() / "email" / "**" / "*.py"), tokens=["8192"])
    raw["data"].update(tokenizer="bpe", vocab_size=512)
    store = tmp_path / "store"
    result = invoke("run", write_config(raw), "--store", store)
    assert result.exit_code == 0, result.output
    record = json.loads((run_dirs(store / "tiny")[0] / "result.json").read_text())
    assert record["corpus"]["tokenizer"]["kind"] == "bpe" and record["corpus"]["tokenizer"]["vocab_size"] == 512
    assert record["params_embedding"] == 512 * record["d_model"] and record["params_total"] > record["params"]
    assert record["bpb"] < record["loss"] / math.log(2)
    listing = invoke("ls", store)
    assert listing.exit_code == 0 and "tiny" in listing.output


def test_a_users_tokenizer_file_and_a_damaged_one(tmp_path, write_config):
    pytest.importorskip("tokenizers")
    trained = bpe_corpus(tmp_path)
    own = tmp_path / "own.json"
    own.write_bytes(Path(trained.tokenizer["path"]).read_bytes())
    corpus = load_corpus(data(stdlib_root() / "email" / "**" / "*.py", tokenizer=str(own)), tmp_path / "store2")
    assert corpus.tokenizer["kind"] == "file" and corpus.tokenizer["sha256"] == trained.tokenizer["sha256"]
    starts = torch.arange(3) * 10
    assert torch.equal(corpus.val.windows(starts, 20), trained.val.windows(starts, 20))
    (tmp_path / "bad.json").write_text('{"version": "1.0", "model": ')
    raw = tiny_config(str(stdlib_root() / "email" / "**" / "*.py"))
    raw["data"]["tokenizer"] = str(tmp_path / "bad.json")
    result = invoke("run", write_config(raw), "--store", tmp_path / "store3")
    assert result.exit_code == 2 and "is not a tokenizer file that Hugging Face tokenizers can read" in result.output
    assert not (tmp_path / "store3").exists()
    raw["data"]["tokenizer"] = "sentencepiece"
    result = invoke("run", write_config(raw), "--store", tmp_path / "store3")
    assert result.exit_code == 2 and "not 'bytes', 'bpe' or the path of a tokenizer .json file" in result.output


def test_byte_level_run_ids_do_not_change_with_the_new_data_fields():
    from sweep.config import expand, parse_config

    spec = expand(parse_config(tiny_config("stdlib")))[0]
    assert {"tokenizer", "text_field", "malformed"}.isdisjoint(spec.identity()["data"])


def test_another_split_of_the_same_text_is_tokenised_again(tmp_path):
    """The cache is keyed by the split too: with another val_fraction the cached splits of the first
    would hold the wrong documents, and BPE would have seen validation text."""
    pytest.importorskip("tokenizers")
    first, other = bpe_corpus(tmp_path), bpe_corpus(tmp_path, val_fraction=0.4)
    byte_level = load_corpus(data(stdlib_root() / "email" / "**" / "*.py", val_fraction=0.4))
    assert other.val_documents == byte_level.val_documents != first.val_documents
    assert int(other.val_bytes.sum()) == len(byte_level.val)
    assert other.tokenizer["path"] != first.tokenizer["path"]
