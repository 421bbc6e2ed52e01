import dataclasses
import math

import pytest
from conftest import REPO, tiny_config

from sweep.config import (
    ModelConfig,
    expand,
    kaplan_lr,
    load_config,
    lr_for_params,
    parse_config,
    shape_for_params,
    tokens_for_ratio,
)
from sweep.errors import ConfigError, SweepError
from sweep.model.flops import param_counts


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value.problems


def test_numbers_written_as_yaml_strings_parse():
    config = parse_config(tiny_config("stdlib", tokens=["1e6", 3e6, 2_000_000]))
    assert config.tokens == (1_000_000, 3_000_000, 2_000_000)
    assert config.train.lr == (0.01,)


def test_shipped_configs_load():
    for name in ("quickstart", "smoke"):
        config = load_config(REPO / "configs" / f"{name}.yaml")
        assert config.name == name
        assert len(expand(config)) >= 4


def test_grid_is_sizes_by_tokens_by_lrs_by_seeds():
    raw = tiny_config("stdlib", seeds=[0, 1])
    raw["train"]["lr"] = [1e-3, 3e-3, 1e-2]
    specs = expand(parse_config(raw))
    assert len(specs) == 2 * 2 * 3 * 2
    assert len({spec.run_id for spec in specs}) == len(specs)


def test_run_id_is_stable_and_follows_what_decides_the_result():
    base = expand(parse_config(tiny_config("stdlib")))[0]
    again = expand(parse_config(tiny_config("stdlib")))[0]
    assert base.run_id == again.run_id
    assert base.run_id.startswith("L1-d16-h2-D8.192e3-s0-")
    raw = tiny_config("stdlib")
    raw["train"]["lr"] = 2e-2
    assert expand(parse_config(raw))[0].run_id != base.run_id
    for key, value in (("threads", 1), ("compile", True), ("compile", False)):
        raw = tiny_config("stdlib")  # how a run was executed does not change what the run is
        raw["train"][key] = value
        assert expand(parse_config(raw))[0].run_id == base.run_id


def test_run_ids_of_existing_stores_survive_new_config_keys():
    # The id this spec had before train.compile and train.schedule existed (runs then were cosine):
    # a store written then is still recognised.
    raw = tiny_config("stdlib")
    raw["train"]["schedule"] = "cosine"
    assert expand(parse_config(raw))[0].run_id == "L1-d16-h2-D8.192e3-s0-514ff66a"


def test_unknown_key_names_the_nearest_valid_key():
    raw = tiny_config("stdlib")
    raw["model"]["sizes"][0]["d_modle"] = 64
    raw["trian"] = {}
    found = problems_of(raw)
    assert "model.sizes[0].d_modle: unknown key; did you mean 'd_model'?" in found
    assert "trian: unknown key; did you mean 'train'?" in found


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("train", "batch_tokens", "lots", "train.batch_tokens: expected an integer, got str 'lots'"),
        ("train", "batch_tokens", 10.5, "train.batch_tokens: expected an integer, got float 10.5"),
        ("train", "lr", "fast", "train.lr: expected a positive number, a list of them, 'auto' or 'kaplan'"),
        ("train", "schedule", "step", "train.schedule: 'step' is not one of cosine, wsd"),
        ("train", "decay", "cubic", "train.decay: 'cubic' is not one of linear, sqrt"),
        ("train", "cooldown", 1.5, "train.cooldown: 1.5 must be a share of the steps in [0, 1]"),
        ("train", "lr", -1, "train.lr: expected a positive number"),
        ("train", "warmup", 1.5, "train.warmup: 1.5 must be a share of the steps in [0, 1)"),
        ("model", "norm", "batchnorm", "model.norm: 'batchnorm' is not one of layernorm, rmsnorm"),
        ("model", "tie_embeddings", "yes", "model.tie_embeddings: expected true or false"),
        ("data", "seq_len", 4, "data.seq_len: 4 is too short"),
        ("data", "val_fraction", 0.9, "data.val_fraction: 0.9 must be between 0 and 0.5"),
    ],
)
def test_wrong_values_are_named_with_their_key_path(section, key, value, expected):
    raw = tiny_config("stdlib")
    raw[section][key] = value
    assert any(problem.startswith(expected) for problem in problems_of(raw)), problems_of(raw)


def test_impossible_shape_is_reported():
    raw = tiny_config("stdlib")
    raw["model"]["sizes"][1] = {"n_layers": 2, "d_model": 30, "n_heads": 4}
    assert "model.sizes[1]: d_model 30 is not divisible by n_heads 4" in problems_of(raw)


def test_cross_key_rules_and_all_problems_at_once():
    raw = tiny_config("stdlib", tokens=[100], name="my sweep")
    raw["data"]["seq_len"] = 100
    found = problems_of(raw)
    assert len(found) == 3
    assert any(p.startswith("tokens[0]: 100 is less than one batch") for p in found)
    assert any(p.startswith("train.batch_tokens: 1024 must be a multiple of data.seq_len (100)") for p in found)
    assert any(p.startswith("name: 'my sweep'") for p in found)


def test_missing_required_key_and_both_size_forms():
    raw = tiny_config("stdlib")
    del raw["tokens"]
    raw["model"]["params"] = [1e5]
    found = problems_of(raw)
    assert any(p.startswith("tokens: give exactly one of 'tokens'") for p in found)
    assert any(p.startswith("model: give exactly one of 'sizes'") for p in found)


def test_set_overrides_any_key(write_config):
    path = write_config(tiny_config("stdlib"))
    config = load_config(
        path,
        [
            "train.lr=[1e-3, 2e-3]",
            "model.sizes.0.d_model=64",
            "data.seq_len=64",
            "train.batch_tokens=2048",
            "device=auto",
        ],
    )
    assert config.train.lr == (1e-3, 2e-3)
    assert config.model.sizes[0].d_model == 64
    assert config.data.seq_len == 64 and config.device == "auto"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.lr", "--set 'train.lr': expected key.path=value"),
        ("model.sizes.7.d_model=3", "--set model.sizes.7.d_model: model.sizes has no item '7'"),
    ],
)
def test_bad_set_is_a_clear_error(write_config, override, expected):
    path = write_config(tiny_config("stdlib"))
    with pytest.raises(SweepError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        load_config(path, [override])


def test_set_of_unknown_key_is_caught_by_validation(write_config):
    path = write_config(tiny_config("stdlib"))
    with pytest.raises(ConfigError, match="train.learning_rate: unknown key"):
        load_config(path, ["train.learning_rate=1"])


def test_unreadable_files(tmp_path):
    with pytest.raises(SweepError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SweepError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SweepError, match="expected a mapping of keys at the top level"):
        load_config(bad)


def test_params_rule_never_shrinks_depth_or_width_as_the_target_grows():
    """A ladder that jumps in depth bends the loss curve: from 1e3 to 1e8, a larger target never gets
    fewer layers or a narrower model, and it lands near the target (within 10% from 1e7, where a
    layer more moves N by under 10%; within 1.55x below, where one layer more doubles a small model)."""
    previous = None
    for target in [round(10 ** (3 + k / 40)) for k in range(201)]:
        shape = shape_for_params(target, ModelConfig(params=(target,)), seq_len=256, vocab_size=256)
        ratio = param_counts(shape).non_embedding / target
        assert shape.d_model % shape.n_heads == 0 and shape.head_dim % 2 == 0
        if previous:
            assert shape.n_layers >= previous.n_layers and shape.d_model >= previous.d_model, (target, shape, previous)
        assert 1 / 1.55 < ratio < 1.55 if target >= 1e4 else True
        assert abs(ratio - 1) < 0.1 if target >= 1e7 else True
        previous = shape


def test_lr_rules():
    config = parse_config({**tiny_config("stdlib"), "train": {"batch_tokens": 1024, "lr": "kaplan"}})
    spec = expand(config)[0]
    assert spec.lr == pytest.approx(0.003239 - 0.0001395 * math.log(param_counts(spec.shape).non_embedding))
    assert lr_for_params(10**6) < lr_for_params(10**5) and kaplan_lr(10**6) < kaplan_lr(10**5)
    assert lr_for_params(10**5, 8e6) == pytest.approx(lr_for_params(10**5) * 4**-0.32)  # longer: lower
    for schedule in ("wsd", "cosine"):
        auto = expand(
            parse_config({**tiny_config("stdlib"), "train": {"batch_tokens": 1024, "lr": "auto", "schedule": schedule}})
        )
        for s in auto:  # wsd: one rate per trunk, tuned for its largest budget; cosine: for its own
            horizon = 16384 if schedule == "wsd" else s.tokens
            assert s.lr == lr_for_params(param_counts(s.shape).non_embedding, horizon)
        assert len({s.lr for s in auto}) == (2 if schedule == "wsd" else 4)


def test_tokens_per_param_gives_every_size_the_same_ratio():
    raw = tiny_config("stdlib", tokens_per_param=[2, 8])
    del raw["tokens"]
    specs = expand(parse_config(raw))
    assert len(specs) == 4
    for spec in specs:
        ratio = spec.tokens / param_counts(spec.shape).non_embedding
        assert spec.tokens % 1024 == 0 and (abs(ratio - 2) < 0.3 or abs(ratio - 8) < 0.3)
    assert tokens_for_ratio(specs[0].shape, 2, 1024) == specs[0].tokens
    raw["tokens_per_param"] = [0.001]
    with pytest.raises(ConfigError, match="tokens_per_param: L1-d16-h2 gets 0 tokens"):
        parse_config(raw)
    raw["tokens"] = [8192]
    with pytest.raises(ConfigError, match="give exactly one of 'tokens'"):
        parse_config(raw)


def test_flops_budgets_make_isoflop_groups():
    """With `flops`, every size of a budget trains C / 6N tokens (in whole batches): equal-compute groups."""
    raw = tiny_config("stdlib", flops=["2e9", "8e9"])
    del raw["tokens"]
    specs = expand(parse_config(raw))
    assert len(specs) == 4
    for spec in specs:
        compute = 6 * param_counts(spec.shape).non_embedding * spec.tokens
        budget = 2e9 if compute < 4e9 else 8e9
        assert spec.tokens % 1024 == 0
        assert abs(compute / budget - 1) <= 6 * param_counts(spec.shape).non_embedding * 512 / budget + 1e-12
    raw["tokens"] = [8192]
    with pytest.raises(ConfigError, match="give exactly one of 'tokens'"):
        parse_config(raw)


def test_a_run_spec_trains_at_one_resolved_learning_rate():
    spec = expand(parse_config(tiny_config("stdlib")))[0]
    assert spec.lr == spec.train.lr == 0.01 and spec.to_dict()["lr"] == 0.01
    with pytest.raises(ValueError, match="train.lr must be the one learning rate"):
        dataclasses.replace(spec, train=dataclasses.replace(spec.train, lr=(1e-3, 2e-3)))


def test_flops_per_step_is_6n_times_the_batch():
    for spec in expand(parse_config(tiny_config("stdlib"))):
        assert spec.flops_per_step == 6 * param_counts(spec.shape).non_embedding * spec.train.batch_tokens
        assert spec.flops_per_step * spec.steps == spec.flops  # the budgets are whole batches


def test_micro_batches_make_a_batch_too_big_to_hold_at_once_fit_in_memory():
    """Gradients accumulate over micro-batches (`engine.accumulate_gradients`), so a run holds one
    micro-batch's activations at a time, not the whole batch's: the memory check sizes them so."""
    raw = tiny_config("stdlib", tokens=[131072], model={"sizes": [{"n_layers": 4, "d_model": 256, "n_heads": 4}]})
    raw["train"]["batch_tokens"] = 65536  # one batch's activations: about 4.5 GB; 2048 tokens' about 0.14 GB
    with pytest.raises(ConfigError, match=r"model.sizes\[0\]: L4-d256-h4 needs about 4.5 GB to train .* one batch's"):
        parse_config(raw, memory_bytes=2**30)
    raw["train"]["micro_batch_tokens"] = 2048
    assert parse_config(raw, memory_bytes=2**30).train.micro_batch_tokens == 2048
    raw["train"]["micro_batch_tokens"] = 32768
    with pytest.raises(ConfigError, match=r"needs about 2.3 GB to train .* one micro-batch's activations 2.2 GB"):
        parse_config(raw, memory_bytes=2**30)


@pytest.mark.parametrize(
    "budget, key",
    [
        ({"tokens": [1e30]}, "tokens[0]"),
        ({"flops": [1e40]}, "flops"),
        ({"tokens_per_param": [1e30]}, "tokens_per_param"),
    ],
)
def test_a_budget_beyond_any_training_run_is_refused_at_load(budget, key):
    """Issue 23, case 4: tokens 1e30 or flops 1e40 passed --dry-run and tokens_per_param 1e30 started a
    run of 6e30 steps. A run of more than limits.MAX_TOKENS tokens is a typo, refused before anything."""
    raw = {"name": "huge", "model": {"sizes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}]}, **budget}
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    assert any(problem.startswith(key) and "more than 1e+15 tokens" in problem for problem in refused.value.problems)
