"""`sweep status STORE`: where each sweep of a run store stands, read from the store alone.

Read-only: it opens files and never writes, renames or claims one, so it is safe beside any number
of runners; the store's readers (`store.run_status`, `read_json`, `read_metrics`) read a damaged file
as what it leaves certain, so a damaged store still shows. Runs and wsd trunks are *tasks*, each in
one of STATES:
- done / failed / diverged: its status.json (and result.json) say so;
- running: its claim is live (`claims.is_stale` is false: the holder process exists, on this machine,
  or has beaten within the stale time, from another one);
- stale: unfinished, with a stale claim, or none while status.json says running: its holder died or
  stopped beating. The next `sweep run` or `sweep worker` takes it over and resumes it;
- pending: the rest.

Work is FLOPs as trained, 6·N per token (N non-embedding, the `flops` column's convention), counted as
`config.trunks.spent_flops` counts it: a run its steps, a trunk the steps to its last branch point, a
branch its cooldown. Done: done tasks' work, running tasks' progress to their latest metrics row, and
each trunk up to its last saved branch point. Left: the rest of every pending, running and stale run,
and of each trunk up to the last branch point a branch still waits for. A pending or stale run counts
as not begun: where it resumes from a checkpoint, less is left than shown. Failed and diverged runs
count in neither: nothing trains them again without --retry-failed.

Time left = FLOPs left / (FLOP/s per worker × workers). Workers: the tasks running now (a runner
trains one task per worker). FLOP/s per worker: the mean over the running tasks of their latest
metrics row's tokens / elapsed_s (training time over every attempt) times the task's FLOPs per token;
before any of them has logged, the same mean over done tasks' recorded tokens_per_s. It assumes the
work left trains as fast per FLOP as the work measured (larger models use a machine better, so a
ladder's big runs can go faster) and that the workers stay. It is None, shown as unknown, when
nothing has been measured or nothing is running: never a guess.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

from sweep.columns import FINISHED
from sweep.config import RunSpec
from sweep.config.trunks import Trunk, trunks
from sweep.errors import SweepError
from sweep.model.flops import flops_per_token
from sweep.store.claims import CLAIM, is_stale, stale_after_s
from sweep.store.files import read_json, read_metrics
from sweep.store.layout import Store
from sweep.store.records import run_status
from sweep.store.walk import directory_kind, store_specs

STATES = ("done", "running", "pending", "failed", "diverged", "stale")
UNFINISHED = ("running", "pending", "stale")
STALE_NOTE = "holder gone or silent; the next sweep run or sweep worker takes it over"


def read_status(path: Path, sweep: str | None = None, now: float | None = None) -> dict:
    """Every sweep of the store at `path` (or the one sweep directory `path` is, or `sweep`) as one
    JSON-ready object: {store, time, stale_after_s, sweeps: [...]}, each sweep with its counts of runs
    and trunks, FLOPs, time left and tasks in flight. SweepError if `path` holds no runs."""
    now = time.time() if now is None else now
    path = Path(path)
    if not path.is_dir():
        raise SweepError(f"run store not found: {path} is not a directory")
    if directory_kind(path) == "sweep":  # one sweep's directory, as `sweep ls` accepts
        path, sweep = path.parent, sweep or path.name
    specs = store_specs(path, sweep)
    if not specs:
        raise SweepError(
            f"{path}: not a run store, or no runs are registered in it yet "
            "(a store holds <sweep>/<run id>/spec.json, written by sweep run)"
        )
    store = Store(path)
    names = sorted({spec.sweep for spec in specs})
    return {
        "store": str(path),
        "time": now,
        "stale_after_s": stale_after_s(),
        "sweeps": [_sweep_status(store, [s for s in specs if s.sweep == name], now) for name in names],
    }


def _state(directory: Path, now: float) -> tuple[str, dict]:
    """The task's state (one of STATES) and its status.json as read."""
    status = run_status(directory)
    if status["status"] in FINISHED:
        return status["status"], status
    claim = directory / CLAIM
    if claim.exists() and not is_stale(claim, now):
        return "running", status
    status = run_status(directory)  # it may have finished, and released its claim, since the first look
    if status["status"] in FINISHED:
        return status["status"], status
    return ("stale" if status["status"] == "running" or claim.exists() else "pending"), status


def _task(kind: str, name: str, directory: Path, spec: RunSpec, start_step: int, steps: int, now: float) -> dict:
    """One run, branch or trunk: its state, progress and, while it is claimed, its holder. Keys that
    start with _ are for this module only and leave before the JSON does."""
    state, status = _state(directory, now)
    rows = read_metrics(directory) if state in UNFINISHED or kind == "trunk" else []
    last = rows[-1] if rows else {}
    reached = min(max({"done": steps, "running": last.get("step", 0)}.get(state, 0), start_step), steps)
    claim = read_json(directory / CLAIM) if state in ("running", "stale") else None
    holder = claim if claim is not None else status
    try:
        heartbeat = now - (directory / CLAIM).stat().st_mtime
    except OSError:
        heartbeat = None
    elapsed = last.get("elapsed_s")
    return {
        "kind": kind,
        "id": name,
        "state": state,
        "host": holder.get("host") if isinstance(holder.get("host"), str) else None,
        "pid": holder.get("pid") if type(holder.get("pid")) is int else None,
        "step": last.get("step"),
        "steps": steps,
        "tokens": last.get("tokens"),
        "train_loss": _finite(last.get("train_loss")),
        "val_loss": _finite(next((row["val_loss"] for row in reversed(rows) if "val_loss" in row), None)),
        "tokens_per_s": last["tokens"] / elapsed if elapsed and "tokens" in last else None,
        "heartbeat_age_s": heartbeat if state in ("running", "stale") else None,
        "_flops_per_token": flops_per_token(spec.shape, "6n"),
        "_done_flops": spec.flops_per_step * (reached - start_step),
        "_left_flops": spec.flops_per_step * (steps - reached) if state in UNFINISHED else 0,
    }


def _finite(value) -> float | None:
    """A loss for JSON: NaN and inf (a diverging run logs them) are no number JSON can hold."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _trunk_task(store: Store, trunk: Trunk, branches: dict[str, dict], now: float) -> dict:
    """A trunk trains to its last branch point. Done: up to its latest metrics row while it runs or
    once it is done (a grown sweep may need it further), else up to its last saved branch point,
    where it resumes. Left: up to the last branch point that a branch not finished or running, with
    neither a saved branch point nor a checkpoint, waits for."""
    template = trunk.branches[0]
    task = _task("trunk", trunk.trunk_id, store.trunk_dir(template), template, 0, max(trunk.branch_steps), now)
    saved = [branch.branch_step for branch in trunk.branches if store.branch_point(branch).exists()]
    waiting = [
        branch.branch_step
        for branch in trunk.branches
        if branches[branch.run_id]["state"] in ("pending", "stale")
        and branch.branch_step not in saved
        and not (store.run_dir(branch) / "checkpoint.pt").exists()
    ]
    if task["state"] in ("failed", "diverged"):
        return task
    if task["state"] in ("done", "running") and task["step"] is not None:
        reached = min(task["step"], task["steps"])
    elif task["state"] == "done":
        reached = task["steps"]
    else:
        reached = max(saved, default=0)
    per_step = template.flops_per_step
    task["_done_flops"], task["_left_flops"] = per_step * reached, per_step * max(0, max(waiting, default=0) - reached)
    return task


def _sweep_status(store: Store, specs: list[RunSpec], now: float) -> dict:
    """One sweep: counts, FLOPs, time left, and the tasks in flight (running or stale)."""
    runs = {
        spec.run_id: _task(
            "branch" if spec.train.schedule == "wsd" else "run",
            spec.run_id,
            store.run_dir(spec),
            spec,
            spec.branch_step,
            spec.steps,
            now,
        )
        for spec in specs
    }
    trunk_tasks = [_trunk_task(store, trunk, runs, now) for trunk in trunks(specs)]
    tasks = [*runs.values(), *trunk_tasks]
    done, left = sum(task["_done_flops"] for task in tasks), sum(task["_left_flops"] for task in tasks)
    return {
        "name": specs[0].sweep,
        "runs": _counts(runs.values()),
        "trunks": _counts(trunk_tasks),
        "flops": {"convention": "6n", "done": done, "left": left, "total": done + left},
        "eta": _eta(store, specs, tasks, left),
        "in_flight": [
            {key: value for key, value in task.items() if not key.startswith("_")}
            for task in sorted(tasks, key=lambda task: task["id"])
            if task["state"] in ("running", "stale")
        ],
    }


def _counts(tasks) -> dict:
    counted = Counter(task["state"] for task in tasks)
    return {"total": sum(counted.values()), **{state: counted[state] for state in STATES}}


def _eta(store: Store, specs: list[RunSpec], tasks: list[dict], left: int) -> dict:
    """Time left as the module docstring says: {seconds, workers, flops_per_s_per_worker, measured_from,
    why}; seconds is None, with the reason in why, when it cannot be estimated."""
    running = [task for task in tasks if task["state"] == "running"]
    rates = [task["tokens_per_s"] * task["_flops_per_token"] for task in running if task["tokens_per_s"]]
    measured_from = "runs in flight"
    if not rates:
        rates, measured_from = _finished_rates(store, specs, tasks), "finished runs"
    rate = sum(rates) / len(rates) if rates else None
    eta = {
        "seconds": None,
        "workers": len(running),
        "flops_per_s_per_worker": rate,
        "measured_from": measured_from if rates else None,
        "why": None,
    }
    if left == 0:
        eta["seconds"] = 0.0
    elif not running:
        eta["why"] = "nothing is running"
    elif rate is None:
        eta["why"] = "nothing measured yet"
    else:
        eta["seconds"] = left / (rate * len(running))
    return eta


def _finished_rates(store: Store, specs: list[RunSpec], tasks: list[dict]) -> list[float]:
    """FLOP/s of every done run and trunk, from the tokens_per_s its result.json records."""
    directories = {spec.run_id: store.run_dir(spec) for spec in specs}
    directories.update({spec.trunk_id: store.trunk_dir(spec) for spec in specs if spec.train.schedule == "wsd"})
    rates = []
    for task in tasks:
        if task["state"] == "done":
            result = read_json(directories[task["id"]] / "result.json") or {}
            tokens_per_s = result.get("tokens_per_s")
            if isinstance(tokens_per_s, (int, float)) and math.isfinite(tokens_per_s) and tokens_per_s > 0:
                rates.append(tokens_per_s * task["_flops_per_token"])
    return rates
