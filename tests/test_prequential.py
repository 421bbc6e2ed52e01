"""`data.order: epoch` and the prequential code length a run counts in it: every training token coded
once, by the model before it trains on it (Blier & Ollivier 2018)."""

import copy
import dataclasses
import json
import math

import pytest
import torch
from conftest import run_dirs, tiny_config
from typer.testing import CliRunner

from sweep.config import expand, parse_config
from sweep.data import epoch_starts, epoch_targets, epoch_windows, get_epoch_batch, load_corpus
from sweep.engine import TrainState, prequential_reason, setup_process, train
from sweep.store import load_runs


def test_no_window_repeats_within_an_epoch_and_each_epoch_reshuffles():
    length, seq_len, batch = 10_000, 32, 8
    windows = epoch_windows(length, seq_len)  # 312
    starts = torch.cat([epoch_starts(length, seq_len, 7, step * batch, batch) for step in range(2 * windows // batch)])
    first, second = starts[:windows], starts[windows : 2 * windows]
    assert sorted(first.tolist()) == [k * seq_len for k in range(windows)]  # each window once
    assert sorted(second.tolist()) == sorted(first.tolist()) and not torch.equal(first, second)
    assert (first + seq_len + 1 <= length).all()  # a window's targets stay inside the split
    assert not torch.equal(first, epoch_starts(length, seq_len, 8, 0, windows))  # another seed, another order


def test_an_epoch_batch_is_a_function_of_its_step_and_ranks_tile_it():
    tokens = torch.arange(5000) % 251
    whole_x, whole_y = get_epoch_batch(tokens, 3, 8, 16, 0, torch.device("cpu"))
    shares = [get_epoch_batch(tokens, 3, 8, 16, 0, torch.device("cpu"), rank, 2) for rank in range(2)]
    assert torch.equal(torch.cat([x for x, _ in shares]), whole_x)
    assert torch.equal(torch.cat([y for _, y in shares]), whole_y)
    assert torch.equal(whole_x[:, 1:], whole_y[:, :-1])
    targets = epoch_targets(tokens, 16, 0, 4 * 8 * 16)  # steps 0-3: batch 3 is its last quarter
    assert targets[-8 * 16 :].tolist() == whole_y.reshape(-1).tolist()


@pytest.fixture(scope="module")
def epoch_sweep(email_glob_module):
    config = parse_config(
        tiny_config(
            email_glob_module,
            data={**tiny_config("")["data"], "corpus": email_glob_module, "order": "epoch"},
            train={"batch_tokens": 1024, "lr": "1e-2", "evals": 1, "schedule": "cosine"},
        )
    )
    corpus = load_corpus(config.data)
    setup_process(torch.device("cpu"), config.train.threads)  # what sweep does before a process trains
    return expand(config, corpus.sha256), corpus


@pytest.fixture(scope="module")
def email_glob_module():
    from sweep.data import stdlib_root

    return str(stdlib_root() / "email" / "**" / "*.py")


def test_prequential_bits_are_the_logged_pre_update_losses(epoch_sweep):
    specs, corpus = epoch_sweep
    spec = specs[1]
    rows = []
    result = train(spec, corpus, torch.device("cpu"), log=rows.append)
    assert result.prequential_reason is None
    steps = [0] + [row["step"] for row in rows]
    logged_nats = sum(
        row["train_loss"] * (step - before) * spec.train.batch_tokens
        for row, before, step in zip(rows, steps, steps[1:])
    )
    assert result.prequential_bits == pytest.approx(logged_nats / math.log(2), rel=1e-9)
    # the first tokens are coded by an untrained model: about 8 bits each
    assert rows[0]["train_loss"] / math.log(2) > 7


def test_prequential_bits_survive_a_resume(epoch_sweep):
    specs, corpus = epoch_sweep
    spec = specs[1]
    states = []
    whole = train(spec, corpus, torch.device("cpu"))
    train(
        spec,
        corpus,
        torch.device("cpu"),
        snapshot_steps=frozenset({5}),  # saved as a file is: a copy
        save_snapshot=lambda state: states.append(copy.deepcopy(state)),
    )
    resumed = train(spec, corpus, torch.device("cpu"), resume=states[0])
    assert resumed.prequential_bits == pytest.approx(whole.prequential_bits, rel=1e-12)
    # a state saved before code lengths were counted: its file has no prequential_nats
    old = TrainState.from_dict({key: value for key, value in states[0].to_dict().items() if key != "prequential_nats"})
    assert train(spec, corpus, torch.device("cpu"), resume=old).prequential_bits is None


def test_runs_that_repeat_data_record_no_code_length_and_say_why(epoch_sweep, email_glob_module):
    specs, corpus = epoch_sweep
    spec = specs[0]
    random_order = dataclasses.replace(spec, data=dataclasses.replace(spec.data, order="random"))
    result = train(random_order, corpus, torch.device("cpu"))
    assert result.prequential_bits is None and "data.order: epoch" in result.prequential_reason
    # a split of half the run's tokens is read twice (the check `train` makes before it trains)
    assert "reads 2.0" in prequential_reason(spec, spec.tokens // 2 + 1)
    assert prequential_reason(spec, spec.tokens + 1) is None


@pytest.mark.slow
def test_an_epoch_sweep_records_the_code_length_and_keeps_random_run_ids(tmp_path, write_config, email_glob):
    from sweep.cli import app

    data = {**tiny_config(email_glob)["data"], "order": "epoch"}
    raw = tiny_config(email_glob, data=data)
    store = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(write_config(raw)), "--store", str(store)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = [json.loads((run / "result.json").read_text()) for run in run_dirs(store / "tiny")]
    for record in records:  # byte tokens: bits per byte is bits per token
        assert record["prequential_bpb"] == pytest.approx(record["prequential_bits"] / record["tokens"])
    frame = load_runs(store)
    assert (frame["order"] == "epoch").all() and frame["prequential_bpb"].notna().all()
    random_ids = {spec.run_id for spec in expand(parse_config(tiny_config(email_glob)))}
    epoch_ids = {spec.run_id for spec in expand(parse_config(raw))}
    assert not random_ids & epoch_ids  # another order trains other runs
    random_again = {**tiny_config(email_glob)["data"], "order": "random"}
    assert {spec.run_id for spec in expand(parse_config(tiny_config(email_glob, data=random_again)))} == random_ids


@pytest.fixture(scope="module")
def epoch_store(tmp_path_factory, email_glob_module):
    """A 2-size × 3-budget sweep in epoch order: enough points for sweep fit."""
    import yaml

    from sweep.cli import app

    raw = tiny_config(
        email_glob_module,
        tokens=["8192", "16384", "32768"],
        data={**tiny_config("")["data"], "corpus": email_glob_module, "order": "epoch"},
    )
    root = tmp_path_factory.mktemp("epoch")
    (root / "sweep.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(
        app, ["run", str(root / "sweep.yaml"), "--store", str(root / "runs")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return root / "runs"


@pytest.mark.slow
def test_compressors_get_the_very_bytes_the_run_coded(epoch_store):
    from sweep.codelength.section import coded_bytes
    from sweep.config import spec_from_dict

    [run_dir] = [path for path in run_dirs(epoch_store / "tiny") if "D3.277e4" in path.name and "L2" in path.name]
    spec = spec_from_dict(json.loads((run_dir / "spec.json").read_text()))
    corpus = load_corpus(spec.data)
    batches = [
        get_epoch_batch(
            corpus.train,
            step,
            spec.train.batch_tokens // spec.shape.seq_len,
            spec.shape.seq_len,
            spec.seed,
            torch.device("cpu"),
        )[1]
        for step in range(spec.steps)
    ]  # targets coded
    assert coded_bytes(epoch_store, run_dir.name) == torch.cat(batches).reshape(-1).to(torch.uint8).numpy().tobytes()


@pytest.mark.slow
def test_sweep_fit_prints_the_compression_table_and_the_frontier(epoch_store, tmp_path):
    from sweep.cli import app

    out = tmp_path / "laws"
    printed = CliRunner().invoke(
        app, ["fit", str(epoch_store), "--bootstrap", "0", "--out", str(out)], catch_exceptions=False
    )
    assert printed.exit_code == 0, printed.output
    assert "gzip -9" in printed.output and "xz -9" in printed.output and "LM, prequential" in printed.output
    assert "description length per D" in printed.output
    assert (out / "description_length.png").stat().st_size > 10_000
    as_json = CliRunner().invoke(
        app, ["fit", str(epoch_store), "--bootstrap", "0", "--json", "--model-bits", "8"], catch_exceptions=False
    )
    section = json.loads(as_json.output)["compression"]
    assert section["bits_per_param"] == 8
    frame = load_runs(epoch_store)
    assert [row["tokens"] for row in section["frontier"]] == sorted(frame["tokens"].unique())
    for row in section["frontier"]:  # the shortest two-part code at its D, model counted at 8 bits
        at_d = frame[frame["tokens"] == row["tokens"]]
        totals = at_d["tokens"] * at_d["loss"] / math.log(2) + 8 * at_d["params_total"]
        assert row["total_bits"] == pytest.approx(totals.min())
    [coded] = section["tables"]
    lm = [r for r in coded["rows"] if r["code"].startswith("LM")][0]
    assert lm["bpb"] == pytest.approx(frame["prequential_bpb"].min())


def test_a_table_of_runs_gets_the_frontier_but_no_compressors(epoch_store, tmp_path):
    from sweep.cli import app

    table = tmp_path / "runs.csv"
    load_runs(epoch_store).to_csv(table, index=False)
    as_json = CliRunner().invoke(app, ["fit", str(table), "--bootstrap", "0", "--json"], catch_exceptions=False)
    section = json.loads(as_json.output)["compression"]
    assert "fit the run store" in section["tables"][0]["why"] and section["frontier"]


def test_a_corpus_changed_since_the_runs_gets_no_compressor_table(tmp_path, write_config):
    import shutil

    from sweep.cli import app
    from sweep.codelength.section import coding_tables
    from sweep.data import stdlib_root

    text = tmp_path / "text"
    shutil.copytree(stdlib_root() / "email", text)
    raw = tiny_config(
        str(text / "**" / "*.py"),
        tokens=["8192"],
        data={**tiny_config("")["data"], "corpus": str(text / "**" / "*.py"), "order": "epoch"},
    )
    raw["model"]["sizes"] = raw["model"]["sizes"][:1]
    store = tmp_path / "runs"
    CliRunner().invoke(app, ["run", str(write_config(raw)), "--store", str(store)], catch_exceptions=False)
    [before] = coding_tables(store, load_runs(store))
    assert before.why is None and "gzip -9" in set(before.table["code"])
    (text / "charset.py").write_text("changed")
    # the compressors' results, kept from the first fit, still describe the bytes the run coded
    [cached] = coding_tables(store, load_runs(store))
    assert cached.table.equals(before.table)
    [cache_file] = (store / ".coding").iterdir()
    cache_file.write_text("{damaged")  # a damaged cache is computed again, from the corpus, now changed
    with pytest.warns(UserWarning):
        [after] = coding_tables(store, load_runs(store))
    assert after.table is None and "is no longer the text the run trained on" in after.why


def test_a_sweep_of_other_tokens_beside_an_epoch_sweep_is_left_out_of_the_frontier(epoch_store, tmp_path):
    import pandas as pd

    from sweep.codelength.section import compression_section

    byte_runs = load_runs(epoch_store)
    bpe_runs = byte_runs.assign(sweep="bpe", bpb=byte_runs["loss"] / 4, prequential_bpb=None, order="random")
    both = pd.concat([byte_runs, bpe_runs], ignore_index=True)
    section = compression_section(tmp_path / "runs.csv", both)  # before: InputError, "need byte tokens"
    assert len(section["frontier"]) == byte_runs["tokens"].nunique()
    assert sum(row["n_runs"] for row in section["codes"]) == len(byte_runs)
