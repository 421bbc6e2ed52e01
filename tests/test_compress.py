"""Post-training compression (`sweep.engine.compress`) and what a sweep records of it: a copy of the final
weights quantised or pruned, its validation loss and δ in result.json and the store's table."""

import json

import pytest
import torch
from conftest import run_dirs, tiny_config
from typer.testing import CliRunner

from sweep.config import EvalConfig, expand, parse_config
from sweep.data import load_corpus, stdlib_root, validation_set
from sweep.engine import evaluate, setup_process, train
from sweep.engine.compress import compressed_weights, compression_losses, prune_smallest, quantize_rows
from sweep.model.gpt import GPT
from sweep.store import load_runs


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_quantised_rows_take_at_most_two_to_the_bits_levels(bits):
    weight = torch.randn(16, 200, generator=torch.Generator().manual_seed(bits))
    quantised = quantize_rows(weight, bits)
    for row, original in zip(quantised, weight):
        assert len(row.unique()) <= 2**bits
        assert row.abs().max() == pytest.approx(original.abs().max().item())  # symmetric: the largest is kept
    # round to nearest: no value moves by more than half a step of its row
    step = weight.abs().amax(dim=1, keepdim=True) / (2 ** (bits - 1) - 1)
    assert ((quantised - weight).abs() <= step / 2 + 1e-6).all()


def test_pruning_zeroes_the_stated_share_of_least_magnitude():
    weight = torch.randn(64, 48, generator=torch.Generator().manual_seed(0)) + 0.01
    for share in (0.0, 0.5, 0.75, 0.9):
        pruned = prune_smallest(weight, share)
        zeroed = pruned == 0
        assert zeroed.sum().item() == round(share * weight.numel())
        if share:  # every zeroed entry was no larger than every kept one
            assert weight.abs()[zeroed].max() <= weight.abs()[~zeroed].min()
        assert torch.equal(pruned[~zeroed], weight[~zeroed])


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained on real text, with its validation windows."""
    config = parse_config(tiny_config(str(stdlib_root() / "email" / "**" / "*.py")))
    corpus = load_corpus(config.data)
    spec = expand(config, corpus.sha256)[1]
    setup_process(torch.device("cpu"), spec.train.threads)  # what sweep does before a process trains
    weights = {}
    result = train(spec, corpus, torch.device("cpu"), final_weights=weights.update)
    model = GPT(spec.shape)
    model.load_state_dict(weights)
    val_x, val_y = validation_set(corpus.val, spec.shape.seq_len, spec.data.val_tokens)
    return model, result.loss, lambda m: evaluate(m, val_x, val_y, 8, torch.device("cpu"), torch.float32)


def test_sixteen_bits_and_no_pruning_leave_the_loss_and_the_model_unchanged(trained):
    model, _, measure = trained
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    loss = measure(model)
    losses = compression_losses(model, EvalConfig(quantize=(16, 2)), loss, measure)
    assert abs(losses["q16"]["delta"]) < 1e-4 * loss
    assert abs(losses["q2"]["delta"]) > 1e-3  # the variants really differ
    assert compression_losses(model, EvalConfig(quantize=(16,)), loss, measure)["q16"]["loss"] == losses["q16"]["loss"]
    # no share pruned, through the same path (the config refuses 0; the function does not): the loss itself
    assert compression_losses(model, EvalConfig(prune=(0.0,)), loss, measure)["p0"]["loss"] == loss
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_embeddings_are_compressed_only_when_asked(trained):
    model, _, _ = trained
    left_out = {id(p) for p in compressed_weights(model, include_embeddings=False)}
    assert id(model.token_embedding.weight) not in left_out
    assert id(model.token_embedding.weight) in {id(p) for p in compressed_weights(model, include_embeddings=True)}
    assert {id(p) for p in model.blocks.parameters() if p.dim() == 2} == left_out


def test_a_sweep_records_each_variant_in_result_json_and_the_store_table(tmp_path, write_config, email_glob):
    from sweep.cli import app

    raw = tiny_config(email_glob, tokens=["8192"], eval={"quantize": [8, 4], "prune": [0.5, 0.9]})
    raw["model"]["sizes"] = raw["model"]["sizes"][:1]
    store = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(write_config(raw)), "--store", str(store)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [run] = run_dirs(store / "tiny")
    record = json.loads((run / "result.json").read_text())
    assert set(record["compression"]) == {"q8", "q4", "p50", "p90"}
    for measured in record["compression"].values():
        assert measured["delta"] == pytest.approx(measured["loss"] - record["loss"])
    assert record["compression"]["p90"]["delta"] > record["compression"]["p50"]["delta"] > 0
    frame = load_runs(store)
    assert [c for c in frame.columns if c.startswith(("loss_", "delta_"))] == [
        "loss_q8",
        "delta_q8",
        "loss_q4",
        "delta_q4",
        "loss_p50",
        "delta_p50",
        "loss_p90",
        "delta_p90",
    ]
    assert frame.loc[0, "delta_p90"] == record["compression"]["p90"]["delta"]


def test_compression_is_in_no_run_id(email_glob):
    plain = parse_config(tiny_config(email_glob))
    compressed = parse_config(tiny_config(email_glob, eval={"quantize": [4], "prune": [0.5], "embeddings": True}))
    assert [s.run_id for s in expand(plain)] == [s.run_id for s in expand(compressed)]
    assert expand(compressed)[0].eval == EvalConfig(quantize=(4,), prune=(0.5,), embeddings=True)


@pytest.mark.slow
def test_a_damaged_compression_entry_is_skipped_with_a_warning(tmp_path, write_config, email_glob):
    from sweep.cli import app

    raw = tiny_config(email_glob, tokens=["8192"], eval={"quantize": [4]})
    raw["model"]["sizes"] = raw["model"]["sizes"][:1]
    store = tmp_path / "runs"
    CliRunner().invoke(app, ["run", str(write_config(raw)), "--store", str(store)], catch_exceptions=False)
    [run] = run_dirs(store / "tiny")
    record = json.loads((run / "result.json").read_text())
    record["compression"] = {"q4": {"loss": "high"}, "../x": {"loss": 1, "delta": 0}}
    (run / "result.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="compression entry"):
        frame = load_runs(store)
    assert frame.loc[0, "status"] == "done" and not [c for c in frame.columns if c.startswith("delta_")]


@pytest.mark.parametrize(
    "eval_section, message",
    [
        ({"quantize": [1]}, "eval.quantize[0]: 1 bits must be between 2 and 16"),
        ({"quantize": [32]}, "eval.quantize[0]: 32 bits must be between 2 and 16"),
        ({"prune": [1.0]}, "eval.prune[0]: 1.0 must be a share"),
        ({"prune": [0]}, "eval.prune[0]: 0.0 must be a share"),
        ({"quantise": [4]}, "eval.quantise: unknown key; did you mean 'quantize'?"),
    ],
)
def test_bad_compression_settings_name_the_key(tmp_path, write_config, email_glob, eval_section, message):
    from sweep.cli import app

    store = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["run", str(write_config(tiny_config(email_glob, eval=eval_section))), "--store", str(store)]
    )
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and not store.exists()


def test_asking_for_variants_after_runs_finished_says_they_have_none(tmp_path, write_config, email_glob):
    from sweep.cli import app

    raw = tiny_config(email_glob, tokens=["8192"], eval={"quantize": [4]})
    raw["model"]["sizes"] = raw["model"]["sizes"][:1]
    store = tmp_path / "runs"
    CliRunner().invoke(app, ["run", str(write_config(raw)), "--store", str(store)], catch_exceptions=False)
    raw["eval"] = {"quantize": [4, 2], "prune": [0.5]}
    again = CliRunner().invoke(app, ["run", str(write_config(raw)), "--store", str(store)], catch_exceptions=False)
    assert again.exit_code == 0
    assert "1 finished run(s) have no result for eval variant(s) p50, q2" in again.output
    assert "0 trained, 1 already finished" in again.output  # nothing is trained again for them
