"""`data.order: epoch` and the prequential code length a run counts in it: every training token coded
once, by the model before it trains on it (Blier & Ollivier 2018)."""

import copy
import dataclasses
import json
import math

import pytest
import torch

from sweep.config import expand, parse_config
from sweep.data import epoch_starts, epoch_targets, epoch_windows, get_epoch_batch, load_corpus
from sweep.store import load_runs
from sweep.train import prequential_reason, train
from typer.testing import CliRunner

from conftest import run_dirs, tiny_config


def test_no_window_repeats_within_an_epoch_and_each_epoch_reshuffles():
    length, seq_len, batch = 10_000, 32, 8
    windows = epoch_windows(length, seq_len)  # 312
    starts = torch.cat([epoch_starts(length, seq_len, 7, step * batch, batch) for step in range(2 * windows // batch)])
    first, second = starts[:windows], starts[windows:2 * windows]
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
    assert targets[-8 * 16:].tolist() == whole_y.reshape(-1).tolist()


@pytest.fixture(scope="module")
def epoch_sweep(email_glob_module):
    config = parse_config(tiny_config(email_glob_module, data={**tiny_config("")["data"], "corpus": email_glob_module,
                                                               "order": "epoch"},
                                      train={"batch_tokens": 1024, "lr": "1e-2", "evals": 1, "schedule": "cosine"}))
    corpus = load_corpus(config.data)
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
    logged_nats = sum(row["train_loss"] * (step - before) * spec.train.batch_tokens
                      for row, before, step in zip(rows, steps, steps[1:]))
    assert result.prequential_bits == pytest.approx(logged_nats / math.log(2), rel=1e-9)
    # the first tokens are coded by an untrained model: about 8 bits each
    assert rows[0]["train_loss"] / math.log(2) > 7


def test_prequential_bits_survive_a_resume(epoch_sweep):
    specs, corpus = epoch_sweep
    spec = specs[1]
    states = []
    whole = train(spec, corpus, torch.device("cpu"))
    train(spec, corpus, torch.device("cpu"), snapshot_steps=frozenset({5}),  # saved as a file is: a copy
          save_snapshot=lambda state: states.append(copy.deepcopy(state)))
    resumed = train(spec, corpus, torch.device("cpu"), resume=states[0])
    assert resumed.prequential_bits == pytest.approx(whole.prequential_bits, rel=1e-12)
    old = {key: value for key, value in states[0].items() if key != "prequential_nats"}
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
