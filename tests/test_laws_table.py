"""Input preparation: which runs count, how repeats become one point, and every bad input is an
InputError that names the problem."""

import numpy as np
import pandas as pd
import pytest

from sweep.errors import InputError
from sweep.laws.table import prepare_table, read_table


def store_frame():
    """A run store's DataFrame: two sizes x two token counts, two seeds x two lrs each, plus runs
    that did not finish."""
    rows = []
    for params in (1e6, 1e7):
        for tokens in (1e8, 1e9):
            for lr, lr_penalty in ((1e-3, 0.0), (3e-3, 0.1)):
                for seed, seed_offset in ((0, -0.02), (1, 0.02)):
                    rows.append(
                        {
                            "run_id": f"n{params:.0e}-d{tokens:.0e}-lr{lr}-s{seed}",
                            "sweep": "ladder",
                            "status": "done",
                            "params": params,
                            "params_total": params + 65536,
                            "tokens": tokens,
                            "flops": 6 * params * tokens,
                            "flops_6nd_total": 6 * (params + 65536) * tokens,
                            "loss": 3.0 - 0.1 * np.log10(params * tokens) + lr_penalty + seed_offset,
                            "seed": seed,
                            "lr": lr,
                            "wall_s": 1e-12 * params * tokens,
                            "peak_mem_bytes": np.nan,
                        }
                    )
    for status in ("failed", "diverged", "running", "pending"):
        reason = {"failed": "out of memory", "diverged": "loss is NaN at step 120"}.get(status)
        rows.append(
            {
                "run_id": f"bad-{status}",
                "sweep": "ladder",
                "status": status,
                "reason": reason,
                "params": 1e8,
                "tokens": 1e9,
            }
        )
    return pd.DataFrame(rows)


def test_unfinished_runs_are_excluded_and_listed():
    table = prepare_table(store_frame())
    assert {(excluded.run_id, excluded.reason) for excluded in table.excluded} == {
        ("bad-failed", "status 'failed': out of memory"),
        ("bad-diverged", "status 'diverged': loss is NaN at step 120"),
        ("bad-running", "status 'running'"),
        ("bad-pending", "status 'pending'"),
    }
    assert len(table.points) == 4
    assert table.points.n_runs.tolist() == [4, 4, 4, 4]


def test_repeats_become_min_over_lr_of_mean_over_seeds():
    points = prepare_table(store_frame()).points.set_index(["params", "tokens"])
    # The best lr (1e-3) averaged over seeds -0.02 and +0.02: exactly the noiseless loss.
    assert points.loss[(1e6, 1e8)] == pytest.approx(3.0 - 0.1 * 14)
    assert points.loss[(1e7, 1e9)] == pytest.approx(3.0 - 0.1 * 16)
    mean = prepare_table(store_frame(), aggregate="mean").points.set_index(["params", "tokens"])
    assert mean.loss[(1e6, 1e8)] == pytest.approx(3.0 - 0.1 * 14 + 0.05)
    best = prepare_table(store_frame(), aggregate="min").points.set_index(["params", "tokens"])
    assert best.loss[(1e6, 1e8)] == pytest.approx(3.0 - 0.1 * 14 - 0.02)


def test_conventions_choose_the_columns():
    table = prepare_table(store_frame(), params_convention="total", flops_column="flops_6nd_total")
    assert sorted(table.points.params.unique()) == [1e6 + 65536, 1e7 + 65536]
    assert table.points.flops.iloc[0] == pytest.approx(6 * (1e6 + 65536) * 1e8)
    assert (table.params_convention, table.flops_source) == ("total", "flops_6nd_total")


def test_a_user_table_without_flops_gets_6nd(tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"params": [1e6, 2e6], "tokens": [1e8, 1e8], "loss": [3.0, 2.9]}).to_csv(path, index=False)
    table = prepare_table(read_table(path))
    assert table.points.flops.tolist() == [6e14, 1.2e15]
    assert table.flops_source == "6ND"
    assert table.excluded == ()


def test_sweep_selection():
    runs = store_frame()
    runs.loc[0, "sweep"] = "other"
    assert prepare_table(runs, sweep="other").points.n_runs.sum() == 1
    with pytest.raises(InputError, match="no runs in sweep 'nope'; sweeps in the table: ladder, other"):
        prepare_table(runs, sweep="nope")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda runs: runs.drop(columns=["loss", "tokens"]), "missing column\\(s\\): tokens, loss"),
        (
            lambda runs: runs.assign(loss=runs.loss.where(runs.index > 2)),
            "column 'loss' has NaN or inf in 3 of 16 rows",
        ),
        (
            lambda runs: runs.assign(tokens=runs.tokens.replace(1e9, np.inf)),
            "column 'tokens' has NaN or inf in 8 of 16",
        ),
        (lambda runs: runs.assign(params=runs.params.replace(1e6, 0.0)), "column 'params' has 8 non-positive values"),
        (
            lambda runs: runs.assign(loss=runs.loss.astype(object).where(runs.index > 0, "n/a")),
            "'loss' holds non-numeric values, e.g. 'n/a'",
        ),
        (lambda runs: runs.assign(status="failed"), "no finished runs to fit: all 20 runs are excluded"),
    ],
)
def test_bad_input_names_the_problem(change, message):
    with pytest.raises(InputError, match=message):
        prepare_table(change(store_frame()))


def test_bad_options_and_missing_convention_columns():
    runs = store_frame()
    with pytest.raises(InputError, match="missing column\\(s\\): params_total"):
        prepare_table(runs.drop(columns=["params_total"]), params_convention="total")
    with pytest.raises(InputError, match="missing column\\(s\\): flops_attn"):
        prepare_table(runs, flops_column="flops_attn")
    with pytest.raises(InputError, match="params convention must be one of"):
        prepare_table(runs, params_convention="embedding")
    with pytest.raises(InputError, match="aggregate must be one of"):
        prepare_table(runs, aggregate="median")
    with pytest.raises(InputError, match="no 'sweep' column"):
        prepare_table(runs.drop(columns=["sweep"]), sweep="ladder")


def test_read_table_errors(tmp_path):
    with pytest.raises(InputError, match="no such table file"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "runs.xlsx").write_text("x")
    with pytest.raises(InputError, match=r"must be a \.csv or \.parquet file"):
        read_table(tmp_path / "runs.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match=r"cannot read .* as CSV"):
        read_table(tmp_path / "empty.csv")


def test_parquet_reads_or_says_what_is_missing(tmp_path):
    path = tmp_path / "runs.parquet"
    frame = pd.DataFrame({"params": [1e6], "tokens": [1e8], "loss": [3.0]})
    try:
        frame.to_parquet(path)
    except ImportError:
        path.write_bytes(b"PAR1")  # no Parquet engine here: reading must say so
        with pytest.raises(InputError, match="Parquet needs pyarrow"):
            read_table(path)
    else:
        pd.testing.assert_frame_equal(read_table(path), frame)


def test_a_best_lr_at_the_grid_edge_is_warned_about_per_size():
    runs = store_frame()
    # At N = 1e7 the larger lr wins at both token counts: its best lr may lie above the grid.
    runs.loc[runs.params == 1e7, "loss"] -= np.where(runs.loc[runs.params == 1e7, "lr"] == 3e-3, 0.2, 0.0)
    runs = pd.concat([runs, runs[runs.lr == 1e-3].assign(lr=2e-3, loss=lambda rows: rows.loss + 0.01)])
    table = prepare_table(runs)
    points = table.points.set_index(["params", "tokens"])
    assert points.lr[(1e6, 1e8)] == 1e-3 and points.lr[(1e7, 1e8)] == 3e-3
    assert points.n_lrs.tolist() == [3, 3, 3, 3]
    assert len(table.warnings) == 2
    small, large = sorted(table.warnings, key=lambda warning: "1e+07" in warning)
    assert "N = 1e+06, D = 1e+08, 1e+09 the best lr is the smallest of the 3 tried" in small
    assert "N = 1e+07, D = 1e+08, 1e+09 the best lr is the largest of the 3 tried" in large
    assert "extend the lr grid above 0.003" in large


def test_short_runs_are_named_and_left_out_with_min_steps():
    runs = store_frame()
    runs["steps"] = np.where(runs.tokens == 1e8, 500.0, 5000.0)
    runs.loc[runs.status != "done", "steps"] = np.nan
    table = prepare_table(runs.assign(lr=1e-3))  # one lr: no lr warning
    assert table.warnings == (
        "2 of 4 points trained fewer than 1000 optimizer steps (sweep.laws.table.MIN_STEPS), so their loss may still be "
        "limited by optimisation and sit above the law: D = 1e+08 (500 steps) at N = 1e+06, 1e+07; give them more "
        "steps (smaller batches or more tokens), or leave them out with --min-steps 1000",
    )
    kept = prepare_table(runs.assign(lr=1e-3), min_steps=1000)
    assert kept.points.tokens.tolist() == [1e9, 1e9] and kept.warnings == ()
    short = [excluded for excluded in kept.excluded if "steps" in excluded.reason]
    assert len(short) == 8 and short[0].reason == "500 optimizer steps, fewer than --min-steps 1000"


def test_min_steps_needs_a_steps_column():
    with pytest.raises(InputError, match="--min-steps 100 needs a 'steps' column"):
        prepare_table(store_frame(), min_steps=100)
    runs = store_frame().assign(steps=10.0)
    with pytest.raises(InputError, match="every finished run trained fewer than --min-steps 100 steps"):
        prepare_table(runs, min_steps=100)
