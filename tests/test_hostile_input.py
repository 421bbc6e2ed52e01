"""Input built to exhaust memory, time or the parser, or merely odd, gets a clear message and exit
code 2: no traceback, no hang, nothing written, nothing allocated before the config is checked."""

import json
import time
import warnings

import pandas as pd
import pytest
from conftest import tiny_config
from typer.testing import CliRunner

from sweep.cli import app
from sweep.config import DataConfig, load_config, parse_config
from sweep.data import load_corpus
from sweep.errors import ConfigError, SweepError

runner = CliRunner()


def problems_of(raw: dict, **options) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, **options)
    return info.value.problems


def refused(result, *expected: str) -> str:
    """The output of a command that must fail as bad input, each of `expected` in it."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    for text in expected:
        assert text in result.output, result.output
    return result.output


def dry_run(path, store, *overrides: str):
    sets = [arg for override in overrides for arg in ("--set", override)]
    return runner.invoke(app, ["run", str(path), "--dry-run", "--store", str(store), *sets])


def config_text(corpus: str, lr: str = '"1e-2"') -> str:
    """tiny_config as YAML text (JSON is YAML), with train.lr written as `lr`."""
    return json.dumps(tiny_config(corpus)).replace('"lr": "1e-2"', f'"lr": {lr}')


def alias_bomb(levels: int, width: int = 9) -> str:
    """Billion laughs: each anchored list holds `width` aliases of the one before; expanded,
    the last one holds width**levels strings."""
    anchors = [f"&l0 [{', '.join(['lol'] * width)}]"]
    anchors += [f"&l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, levels)]
    return f"[{', '.join(anchors)}]"


# --- YAML ----------------------------------------------------------------------------------------


def test_alias_bomb_in_a_config_is_refused_at_once(tmp_path, email_glob):
    path = tmp_path / "bomb.yaml"
    path.write_text(config_text(email_glob, lr=alias_bomb(levels=9)))
    started = time.perf_counter()
    output = refused(dry_run(path, tmp_path / "store"), "train.lr", "alias")
    assert time.perf_counter() - started < 10 and len(output) < 2000
    assert not (tmp_path / "store").exists()


def test_deep_nesting_is_refused_before_recursion_blows_up(tmp_path, email_glob):
    path = tmp_path / "deep.yaml"
    path.write_text(config_text(email_glob, lr="[" * 20_000 + "]" * 20_000))
    refused(dry_run(path, tmp_path / "store"), "train.lr", "nested more than 64 levels")
    assert not (tmp_path / "store").exists()


def test_duplicate_key_is_an_error_naming_it(tmp_path, email_glob):
    path = tmp_path / "twice.yaml"
    path.write_text(config_text(email_glob).replace('"evals": 1', '"evals": 1, "evals": 2'))
    refused(dry_run(path, tmp_path / "store"), "train.evals", "given twice")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    "override, expected",
    [
        (f"train.lr={alias_bomb(levels=5)}", "alias"),
        ("train.lr=" + "[" * 5000 + "]" * 5000, "nested more than 64 levels"),
        ("train={lr: 1e-2, lr: 2e-2}", "given twice"),
    ],
)
def test_set_values_go_through_the_same_strict_loader(write_config, email_glob, override, expected):
    path = write_config(tiny_config(email_glob))
    with pytest.raises(SweepError, match=expected) as info:
        load_config(path, [override])
    assert str(info.value).startswith("--set train") and len(str(info.value)) < 500


# --- numbers that would hang, crash or allocate --------------------------------------------------


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("train", "evals", "1e9", "train.evals: 1000000000 is more than the 8 optimizer steps of the shortest run"),
        ("train", "threads", "1e6", "train.threads: 1000000 is more than 1024"),
        ("data", "vocab_size", "1e9", "data.vocab_size: 1000000000 is more than"),
    ],
)
def test_unbounded_numbers_are_refused(section, key, value, expected):
    raw = tiny_config("stdlib")
    raw[section][key] = value
    assert any(problem.startswith(expected) for problem in problems_of(raw)), problems_of(raw)


@pytest.mark.parametrize("seed", ["1e20", 2**63, -1])
def test_seeds_must_fit_a_64_bit_generator(seed):
    found = problems_of(tiny_config("stdlib", seeds=[seed]))
    assert any(problem.startswith("seeds[0]: ") and "2**63" in problem for problem in found), found


@pytest.mark.parametrize(
    "size, expected",
    [
        ({"n_layers": 1, "d_model": 16, "d_ff": "1e8"}, "model.sizes[0].d_ff: 100000000 is more than"),
        ({"n_layers": 1, "d_model": "1e7"}, "model.sizes[0].d_model: 10000000 is more than"),
        ({"n_layers": "1e6", "d_model": 16}, "model.sizes[0].n_layers: 1000000 is more than"),
    ],
)
def test_shapes_have_upper_bounds(size, expected):
    found = problems_of(tiny_config("stdlib", model={"sizes": [size]}))
    assert any(problem.startswith(expected) for problem in found), found


def test_params_beyond_the_params_rule_are_refused():
    found = problems_of(tiny_config("stdlib", model={"params": ["1e15"]}))
    assert any(problem.startswith("model.params[0]: 1e+15 is more than the params rule") for problem in found), found


def test_a_run_that_cannot_fit_in_memory_is_refused_with_its_estimate():
    raw = tiny_config("stdlib", model={"sizes": [{"n_layers": 1, "d_model": 16}, {"n_layers": 8, "d_model": 4096}]})
    found = problems_of(raw, memory_bytes=2**30)
    assert len(found) == 1 and found[0].startswith("model.sizes[1]: L8-d4096-h64 needs about 27.9 GB to train"), found
    assert "GB" in found[0] and "1.1 GB" in found[0]
    assert parse_config(raw, memory_bytes=2**40).model.sizes[1].d_model == 4096


def test_huge_model_is_refused_under_dry_run_before_anything_allocates(tmp_path, write_config, email_glob):
    path = write_config(tiny_config(email_glob))
    refused(dry_run(path, tmp_path / "store", "model={params: [1e11]}"), "model.params[0]", "GB")
    assert not (tmp_path / "store").exists()


def test_integers_beyond_float_range_are_a_message_not_a_traceback():
    found = problems_of(tiny_config("stdlib", tokens=[10**400]))
    assert any(problem.startswith("tokens[0]: expected an integer") for problem in found), found
    assert all(len(problem) < 300 for problem in found)


# --- messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokens", [0, [0], "0"])
def test_zero_tokens_says_only_that_tokens_must_be_positive(tokens):
    assert problems_of(tiny_config("stdlib", tokens=tokens)) == ["tokens[0]: 0 must be positive"]


def test_zero_tokens_from_set(write_config):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tiny_config("stdlib")), ["tokens=0"])
    assert info.value.problems == ["tokens[0]: 0 must be positive"]


def test_config_path_that_is_a_directory(tmp_path):
    refused(runner.invoke(app, ["run", str(tmp_path), "--dry-run"]), "is a directory, not a YAML file")


def test_fit_on_an_empty_store_says_it_holds_no_runs(tmp_path):
    output = refused(runner.invoke(app, ["fit", str(tmp_path)]), "holds no runs")
    assert "excluded" not in output


def test_too_few_points_does_not_mention_a_holdout_never_given(tmp_path):
    table = tmp_path / "runs.csv"
    table.write_text("params,tokens,loss\n1e5,1e6,3\n2e5,2e6,2.9\n")
    output = refused(runner.invoke(app, ["fit", str(table), "--bootstrap", "0"]), "needs at least 5", "holds 2")
    assert "--holdout" not in output
    refused(runner.invoke(app, ["fit", str(table), "--holdout", "1"]), "--holdout 1 leaves 1 of 2 points")


# Random losses, not a law: bootstrap refits run off to infinity, and the Kaplan fit with them.
WILD = [
    (8277658.324063124, 45060422483.61129, 84.56594254150872),
    (1444358258002.3816, 446361395931.0387, 1.8552036464714998),
    (30528134372393.402, 17053345206034.955, 12.130296288223015),
    (80902986.9142117, 768753555880.0924, 0.08659257639048173),
    (3456553.9595413534, 32085251519.22961, 0.08467068977182919),
    (639804355.383718, 3458948142.706589, 0.19231827216188557),
    (5636920246426.996, 19505714668.621933, 60.488630912342046),
    (588057739742.2814, 117939640648.84157, 10.785324549740487),
    (32935850.800367344, 7430263044980.27, 44.95895197572284),
]
# Random losses whose refits put an optimum at N = 0.
DEGENERATE = [
    (12830000.0, 499500000000000.0, 0.2151),
    (65740000.0, 536500000000000.0, 0.6832),
    (1093000000.0, 3859000000000000.0, 0.3301),
    (16320000.0, 1861000000000000.0, 0.4657),
    (183900000.0, 1.158e16, 0.2486),
    (39690000.0, 1.181e16, 1.859),
    (24460000.0, 911800000000000.0, 0.8673),
    (18120000.0, 2571000000000000.0, 0.0534),
]


@pytest.mark.slow
@pytest.mark.parametrize("rows", [WILD, DEGENERATE], ids=["wild", "degenerate"])
def test_fit_and_predict_on_wild_tables_print_no_numpy_warnings(tmp_path, rows):
    table = tmp_path / "runs.csv"
    pd.DataFrame(rows, columns=["params", "tokens", "loss"]).to_csv(table, index=False)
    out = tmp_path / "laws"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = runner.invoke(app, ["fit", str(table), "--bootstrap", "5", "--out", str(out)])
        assert fitted.exit_code == 0, fitted.output
        predicted = [
            runner.invoke(app, ["predict", str(out / "laws.json"), *args])
            for args in (["--params", "1e12", "--tokens", "1e3"], ["--flops", "1e30"])
        ]
    # laws.json holds a finite law; the optimum for C may not exist (an exponent at 0), and is then refused.
    assert predicted[0].exit_code == 0 and predicted[1].exit_code in (0, 2), [result.output for result in predicted]
    output = fitted.output + "".join(result.output for result in predicted)
    assert "RuntimeWarning" not in output and "Traceback" not in output
    assert not [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def test_val_tokens_beyond_the_validation_split_is_an_error(email_glob):
    data = DataConfig(corpus=email_glob, seq_len=32, val_fraction=0.2, val_tokens=10**7)
    with pytest.raises(SweepError, match=r"data.val_tokens: 10000000 asked for, but the validation split holds \d"):
        load_corpus(data)


def test_val_tokens_beyond_the_split_exits_2_under_dry_run(tmp_path, write_config, email_glob):
    path = write_config(tiny_config(email_glob))
    refused(dry_run(path, tmp_path / "store", "data.val_tokens=1e7"), "data.val_tokens: 10000000")
    assert not (tmp_path / "store").exists()


def test_fit_refuses_values_no_training_run_has(tmp_path):
    """Losses up to 1e270 crashed the plots; the table is refused first, the column named."""
    table = tmp_path / "runs.csv"
    losses = [1.17e45, 5.26e-110, 1.08e52, 2.04e133, 1.23e250, 5.61e245, 2.06e16, 6.73e270]
    pd.DataFrame(
        {"params": [1e6 * 2**i for i in range(8)], "tokens": [1e9 * 3**i for i in range(8)], "loss": losses}
    ).to_csv(table, index=False)
    refused(
        runner.invoke(app, ["fit", str(table), "--bootstrap", "5", "--out", str(tmp_path / "laws")]),
        "column 'loss' has 8 values outside [1e-06, 1e+06]",
    )


def test_predict_names_no_shape_beyond_the_params_rule(tmp_path):
    """N_opt for 1e300 FLOPs is beyond every shape the params rule makes; naming its widest is wrong."""
    rows = [
        (params, tokens, 1.8 + 400 / params**0.34 + 2000 / tokens**0.28)
        for params in (1e6, 3e6, 1e7, 3e7)
        for tokens in (1e8, 1e9, 1e10)
    ]
    table = tmp_path / "runs.csv"
    pd.DataFrame(rows, columns=["params", "tokens", "loss"]).to_csv(table, index=False)
    out = tmp_path / "laws"
    assert (
        runner.invoke(app, ["fit", str(table), "--bootstrap", "0", "--form", "chinchilla", "--out", str(out)]).exit_code
        == 0
    )
    far = runner.invoke(app, ["predict", str(out / "laws.json"), "--flops", "1e300", "--json"])
    assert far.exit_code == 0 and "shape" not in json.loads(far.output), far.output
    near = runner.invoke(app, ["predict", str(out / "laws.json"), "--flops", "1e21", "--json"])
    assert json.loads(near.output)["shape"]["n_layers"] >= 1
