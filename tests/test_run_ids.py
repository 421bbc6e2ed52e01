"""Run ids and trunk ids name runs in every store: a change to what enters them orphans stored runs.
tests/data/run_ids.json holds the ids of every shipped config (and two `--set` variants), recorded
with `expand(load_config(path, sets), corpus_sha256="0"*64, vocab_size=256)`."""

import json
import shlex

import pytest
from conftest import REPO, tiny_config

from sweep.config import expand, load_config, parse_config, spec_from_dict

RECORDED = json.loads((REPO / "tests" / "data" / "run_ids.json").read_text())


def specs_of(entry: str):
    """An entry names a config in configs/ and its `--set` overrides: 'smoke.yaml --set train.lr=...'."""
    name, *words = shlex.split(entry)
    assert words[0::2] == ["--set"] * (len(words) // 2), entry
    return expand(load_config(REPO / "configs" / name, words[1::2]), corpus_sha256="0" * 64, vocab_size=256)


@pytest.mark.parametrize("entry", sorted(RECORDED))
def test_run_ids_and_trunk_ids_are_those_recorded(entry):
    specs = specs_of(entry)
    assert [spec.run_id for spec in specs] == RECORDED[entry]["run_ids"]
    trunk_ids = {spec.trunk_id for spec in specs if spec.train.schedule == "wsd"}
    assert sorted(trunk_ids) == sorted(RECORDED[entry]["trunk_ids"])


def test_a_default_wsd_spec_keeps_its_ids():
    spec = expand(parse_config(tiny_config("stdlib")))[0]
    assert spec.train.schedule == "wsd"
    assert spec.run_id == "L1-d16-h2-D8.192e3-s0-ae0aa8da"
    assert spec.trunk_id == "trunk-L1-d16-h2-s0-fb397eb5"


def test_identity_names_what_decides_the_result():
    identity = expand(parse_config(tiny_config("stdlib")))[0].identity()
    assert sorted(identity) == [
        "corpus_sha256",
        "data",
        "lr",
        "seed",
        "shape",
        "sweep",
        "tokens",
        "train",
        "warmup_steps",
    ]
    assert sorted(identity["train"]) == [
        "batch_tokens",
        "beta1",
        "beta2",
        "cooldown",
        "decay",
        "dtype",
        "evals",
        "grad_clip",
        "lr",
        "min_lr_ratio",
        "schedule",
        "warmup",
        "weight_decay",
    ]
    assert sorted(identity["data"]) == [
        "bin_dtype",
        "chunk_tokens",
        "corpus",
        "seq_len",
        "val_fraction",
        "val_tokens",
        "vocab_size",
    ]


# The spec.json of the default-wsd spec above, as stores wrote it before the learning rate was stated
# once: the resolved rate at the top level and in train.
STORED_SPEC = {
    "sweep": "tiny",
    "tokens": 8192,
    "seed": 0,
    "lr": 0.01,
    "corpus_sha256": "",
    "warmup_steps": 0,
    "shape": {
        "n_layers": 1,
        "d_model": 16,
        "n_heads": 2,
        "d_ff": 64,
        "vocab_size": 256,
        "seq_len": 32,
        "norm": "rmsnorm",
        "activation": "gelu",
        "positions": "rotary",
        "tie_embeddings": True,
    },
    "train": {
        "batch_tokens": 1024,
        "lr": 0.01,
        "warmup": 0.05,
        "min_lr_ratio": 0.1,
        "schedule": "wsd",
        "cooldown": 0.2,
        "decay": "linear",
        "weight_decay": 0.1,
        "grad_clip": 1.0,
        "beta1": 0.9,
        "beta2": 0.95,
        "evals": 1,
        "dtype": "auto",
        "threads": 0,
        "compile": "auto",
        "checkpoint_every": 300.0,
        "micro_batch_tokens": 0,
        "ddp": False,
        "log": [],
    },
    "data": {
        "corpus": "stdlib",
        "seq_len": 32,
        "val_fraction": 0.2,
        "val_tokens": 2048,
        "chunk_tokens": 4096,
        "bin_dtype": "uint16",
        "vocab_size": 0,
        "tokenizer": "bytes",
        "text_field": "text",
        "malformed": "error",
        "order": "random",
    },
    "eval": {"quantize": [], "prune": [], "embeddings": False},
}


def test_a_stored_spec_reads_back_with_its_ids_and_writes_back_the_same():
    spec = spec_from_dict(json.loads(json.dumps(STORED_SPEC)))
    assert spec == expand(parse_config(tiny_config("stdlib")))[0]
    assert spec.lr == spec.train.lr == 0.01
    assert spec.run_id == "L1-d16-h2-D8.192e3-s0-ae0aa8da"
    assert spec.trunk_id == "trunk-L1-d16-h2-s0-fb397eb5"
    written = json.loads(json.dumps(spec.to_dict()))
    assert written.pop("model") is None  # the rule's settings, kept beside specs written since
    assert written == STORED_SPEC


def test_the_params_rules_settings_are_kept_beside_a_spec_and_enter_no_id():
    raw = tiny_config("stdlib")
    spec = expand(parse_config(raw))[0]
    raw["model"]["aspect_ratio"] = 64
    wide = expand(parse_config(raw))[0]
    assert wide.model.aspect_ratio == 64 and wide.model.sizes == ()
    assert wide.run_id == spec.run_id and wide.trunk_id == spec.trunk_id
    assert spec_from_dict(json.loads(json.dumps(wide.to_dict()))) == wide
