"""Warmup-stable-decay sweeps: one trunk per (shape, seed, lr), a branch per budget that ends where a
separate wsd run of that budget ends, and the bookkeeping that keeps kills and edits safe."""

import copy
import dataclasses
import json

import pytest
import torch
from conftest import tiny_config
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.config import expand, parse_config
from sweep.config.trunks import spent_flops, trunks
from sweep.data import load_corpus
from sweep.engine import schedule_lr, train, wsd_lr_at
from sweep.store import read_metrics

runner = CliRunner()


def wsd_config(corpus: str, **overrides) -> dict:
    raw = tiny_config(corpus, **{"tokens": ["8192", "16384", "32768"], **overrides})
    raw["train"].update({"schedule": "wsd", "threads": 1, "warmup": 0.25})
    return raw


def test_wsd_schedule_warms_up_holds_then_decays_to_the_floor():
    steps, peak = 100, 1e-2
    for decay in ("linear", "sqrt"):
        rates = [
            wsd_lr_at(s, steps, peak, warmup_steps=5, branch_step=80, min_lr_ratio=0.1, decay=decay)
            for s in range(steps)
        ]
        assert rates[0] == pytest.approx(peak / 5) and rates[4] == pytest.approx(peak)
        assert all(rate == peak for rate in rates[5:81])
        assert rates[-1] == pytest.approx(0.1 * peak)
        assert all(a >= b for a, b in zip(rates[80:], rates[81:]))
    # 1 - sqrt drops faster early in the cooldown than linear (Hägele et al. 2024, Fig. 4)
    assert wsd_lr_at(85, steps, peak, 5, 80, 0.1, "sqrt") < wsd_lr_at(85, steps, peak, 5, 80, 0.1, "linear")


def test_budgets_of_a_size_share_a_trunk_warmup_and_rate_until_their_cooldown(email_glob):
    specs = expand(parse_config(wsd_config(email_glob)))
    groups = trunks(specs)
    assert len(groups) == 2 and all(len(group.branches) == 3 for group in groups)
    for group in groups:
        assert len({branch.warmup_steps for branch in group.branches}) == 1
        assert group.branch_steps == (6, 13, 26)  # 8, 16, 32 steps less 20% cooldown
        short, long = group.branches[0], group.branches[-1]
        assert [schedule_lr(short, s) for s in range(6)] == [schedule_lr(long, s) for s in range(6)]
    spent, separate = spent_flops(specs)
    assert spent / separate == pytest.approx((26 + 2 + 3 + 6) / (8 + 16 + 32))


def test_a_branch_ends_exactly_where_a_separate_wsd_run_of_its_budget_ends(email_glob):
    config = parse_config(wsd_config(email_glob))
    corpus = load_corpus(config.data)
    torch.set_num_threads(1)
    group = trunks(expand(config, corpus.sha256))[1]
    snapshots = {}
    trunk = group.spec_to(max(group.branch_steps))
    train(
        trunk,
        corpus,
        torch.device("cpu"),
        snapshot_steps=frozenset(group.branch_steps),
        save_snapshot=lambda state: snapshots.setdefault(state.step, copy.deepcopy(state)),
    )
    assert sorted(snapshots) == list(group.branch_steps)
    for branch in group.branches[:2]:
        separate_rows, branch_rows = [], []
        separate = train(branch, corpus, torch.device("cpu"), log=separate_rows.append)
        branched = train(
            branch, corpus, torch.device("cpu"), log=branch_rows.append, resume=snapshots[branch.branch_step]
        )
        assert branched.loss == separate.loss and branched.steps == separate.steps
        after = [(r["step"], r["train_loss"], r["lr"]) for r in separate_rows if r["step"] > branch.branch_step]
        assert [(r["step"], r["train_loss"], r["lr"]) for r in branch_rows] == after


@pytest.mark.slow
def test_a_wsd_sweep_records_branches_as_runs_and_drops_branch_points_when_done(tmp_path, write_config, email_glob):
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", str(write_config(wsd_config(email_glob))), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "6 trained" in result.output and "(0.66x)" in result.output
    runs = load_runs(store)
    assert (runs["status"] == "done").all() and len(runs) == 6
    assert (runs["schedule"] == "wsd").all() and runs["trunk_id"].nunique() == 2
    assert sorted(runs["branch_step"].unique()) == [6, 13, 26]
    trunk_dirs = list((store / "tiny" / "trunks").iterdir())
    assert len(trunk_dirs) == 2 and not [saved for trunk in trunk_dirs for saved in trunk.glob("*.pt")]
    for run_dir in (store / "tiny").glob("L*"):
        rows = read_metrics(run_dir)
        steps = [row["step"] for row in rows]
        assert (
            steps == sorted(set(steps))
            and rows[-1]["step"] == json.loads((run_dir / "result.json").read_text())["steps"]
        )
        assert rows[0]["step"] < rows[-1]["step"] * 0.8  # the trunk's rows before the branch point come along


@pytest.mark.slow
def test_adding_a_larger_budget_extends_the_trunk_and_keeps_the_finished_branches(tmp_path, write_config, email_glob):
    store = tmp_path / "store"
    assert runner.invoke(app, ["run", str(write_config(wsd_config(email_glob))), "--store", str(store)]).exit_code == 0
    before = load_runs(store).set_index("run_id")
    grown = wsd_config(email_glob, tokens=["8192", "16384", "32768", "65536"])
    result = runner.invoke(app, ["run", str(write_config(grown, name="grown.yaml")), "--store", str(store)])
    assert result.exit_code == 0 and "2 trained, 6 already finished" in result.output, result.output
    after = load_runs(store).set_index("run_id")
    assert (after.loc[before.index, "loss"] == before["loss"]).all()
    # the new branch is the run a separate wsd schedule of 64 steps gives
    config = parse_config(grown)
    corpus = load_corpus(config.data)
    longest = max(expand(config, corpus.sha256), key=lambda spec: (spec.shape.d_model, spec.tokens))
    torch.set_num_threads(1)
    assert after.loc[longest.run_id, "loss"] == train(longest, corpus, torch.device("cpu")).loss


@pytest.mark.slow
def test_a_diverged_trunk_strands_only_the_branches_past_its_divergence(tmp_path, write_config, email_glob):
    raw = wsd_config(email_glob)
    raw["model"]["sizes"] = raw["model"]["sizes"][:1]
    raw["train"].update({"lr": 50.0, "grad_clip": 0.0})
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", str(write_config(raw)), "--store", str(store)])
    assert result.exit_code == 1, result.output
    runs = load_runs(store)
    assert set(runs["status"]) <= {"done", "diverged"} and (runs["status"] == "diverged").any()
    stranded = runs[runs["reason"].fillna("").str.contains("its trunk")]
    assert len(stranded) >= 1 and "before the branch point" in stranded["reason"].iloc[0]


def test_dry_run_shows_the_flops_wsd_saves_and_writes_nothing(tmp_path, write_config, email_glob):
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", str(write_config(wsd_config(email_glob))), "--store", str(store), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "as separate runs of the same grid (0.66x)" in result.output and "trunks" in result.output
    assert not store.exists()


def test_cosine_runs_have_no_trunk_and_wsd_ids_follow_the_shared_warmup(email_glob):
    raw = tiny_config(email_glob)
    raw["train"]["schedule"] = "cosine"
    specs = expand(parse_config(raw))
    assert trunks(specs) == [] and spent_flops(specs)[0] == spent_flops(specs)[1]
    wsd = expand(parse_config(wsd_config(email_glob)))[0]
    assert wsd.run_id != dataclasses.replace(wsd, warmup_steps=wsd.warmup_steps + 1).run_id
