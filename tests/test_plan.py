"""The scheduler: what a sweep offers its workers next, read from a real store. No training: a branch
point is a file the Plan only asks the existence of, and a trunk's end is the record a runner writes."""

import pytest
from conftest import tiny_config

from sweep.config import expand, parse_config
from sweep.config.trunks import trunks
from sweep.runner import Options, pending, register
from sweep.runner.plan import TAKEN_TRUNK_RETRY_S, Plan
from sweep.store import Store, spec_columns


def wsd_config(corpus: str) -> dict:
    """Two sizes, each one trunk with branches at steps 6, 13 and 26 (budgets of 8, 16 and 32 steps)."""
    raw = tiny_config(corpus, tokens=["8192", "16384", "32768"])
    raw["train"].update({"schedule": "wsd", "threads": 1, "warmup": 0.25})
    return raw


def planned(raw: dict, store: Store, options: Options = Options(), **plan_args) -> Plan:
    """The Plan a sweep of `raw` starts with on `store`, as `runner.outcome._begin` makes it."""
    specs = expand(parse_config(raw))
    register(specs, store)
    return Plan(pending(specs, store, options), store, options, **plan_args)


def described(tasks) -> list[tuple]:
    """Each task as a user reads it: its kind, its model's width, its budget or branch points."""
    return [(task.kind, task.spec.shape.d_model, task.snapshot_steps or task.spec.tokens) for task in tasks]


def test_ready_offers_the_most_work_first(tmp_path, email_glob):
    raw = tiny_config(email_glob)
    raw["train"]["schedule"] = "cosine"  # whole runs, no trunks
    plan = planned(raw, Store(tmp_path))
    # The 2-layer width-32 model at half the budget is still more work than the small one at full.
    assert described(plan.ready()) == [("run", 32, 16384), ("run", 32, 8192), ("run", 16, 16384), ("run", 16, 8192)]
    first = plan.ready()[0]
    plan.start(first)
    assert first not in plan.ready()  # in flight: not handed to a second worker
    plan.end(first, taken=False)
    assert first not in plan.ready() and plan.remaining()


def test_a_branch_is_ready_once_its_trunk_saved_its_branch_point(tmp_path, email_glob):
    store = Store(tmp_path)
    plan = planned(wsd_config(email_glob), store)
    # Nothing to branch from yet: only the trunks, the larger first, each to save every branch point.
    assert described(plan.ready()) == [("trunk", 32, (6, 13, 26)), ("trunk", 16, (6, 13, 26))]
    big = next(trunk for trunk in trunks(plan.todo) if trunk.branches[0].shape.d_model == 32)
    store.branch_point(big.branches[0]).write_bytes(b"")  # the trunk saved its state at step 6
    # The trunk goes on (it still owes steps 13 and 26, and its cooldowns wait on it) before the branch.
    assert described(plan.ready()) == [("trunk", 32, (13, 26)), ("trunk", 16, (6, 13, 26)), ("branch", 32, 8192)]
    # A branch that saved a checkpoint of its own resumes from it, whatever its trunk has saved.
    (store.run_dir(big.branches[1]) / "checkpoint.pt").write_bytes(b"")
    assert ("branch", 32, 16384) in described(plan.ready())
    assert ("trunk", 32, (26,)) in described(plan.ready())


def test_a_trunk_held_by_another_runner_is_asked_for_again_only_after_the_retry_wait(tmp_path, email_glob):
    now = [1000.0]
    plan = planned(wsd_config(email_glob), Store(tmp_path), clock=lambda: now[0])
    trunk = plan.ready()[0]
    plan.start(trunk)
    plan.end(trunk, taken=True)  # another runner holds its claim
    assert trunk not in plan.ready() and plan.remaining()  # its branches still wait for it
    assert plan.stranded() == []  # held elsewhere is no failure: its branches are not given up
    now[0] += TAKEN_TRUNK_RETRY_S - 0.5
    assert trunk not in plan.ready()
    now[0] += 1.0
    assert plan.ready()[0] == trunk


@pytest.mark.parametrize("status", ["failed", "diverged"])
def test_a_trunk_that_ended_without_a_branch_point_strands_the_branches_that_wait_for_it(tmp_path, email_glob, status):
    store = Store(tmp_path)
    plan = planned(wsd_config(email_glob), store)
    big = next(trunk for trunk in trunks(plan.todo) if trunk.branches[0].shape.d_model == 32)
    trunk_spec = big.spec_to(26)
    store.branch_point(big.branches[0]).write_bytes(b"")  # it saved step 6 before it ended
    record = {**spec_columns(trunk_spec), "status": status, "reason": "RuntimeError: boom"}
    store.finish(store.trunk_dir(trunk_spec), record)
    stranded = plan.stranded()
    assert [branch.branch_step for branch, _ in stranded] == [13, 26]  # the branch at step 6 can still train
    assert all(
        trunk_status["status"] == status and trunk_status["reason"] == "RuntimeError: boom"
        for _, trunk_status in stranded
    )
    assert ("branch", 32, 8192) in described(plan.ready())
    assert not any(task.kind == "trunk" and task.spec.shape.d_model == 32 for task in plan.ready())


def test_a_failed_trunk_trains_again_under_retry_failed_and_strands_nothing(tmp_path, email_glob):
    store = Store(tmp_path)
    plan = planned(wsd_config(email_glob), store, Options(retry_failed=True))
    big = next(trunk for trunk in trunks(plan.todo) if trunk.branches[0].shape.d_model == 32)
    trunk_spec = big.spec_to(26)
    store.finish(store.trunk_dir(trunk_spec), {**spec_columns(trunk_spec), "status": "failed", "reason": "killed"})
    assert plan.stranded() == []
    assert ("trunk", 32, (6, 13, 26)) in described(plan.ready())


def test_a_trunk_trained_here_strands_a_branch_whose_point_it_did_not_save(tmp_path, email_glob):
    store = Store(tmp_path)
    plan = planned(wsd_config(email_glob), store)
    trunk = plan.ready()[0]
    plan.start(trunk)
    assert plan.stranded() == []  # in flight: its branch points may still come
    plan.end(trunk, taken=False)  # it ended here (done) but saved no branch point
    assert [branch.branch_step for branch, _ in plan.stranded()] == [6, 13, 26]
