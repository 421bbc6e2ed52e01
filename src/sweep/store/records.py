"""A run's records: status.json, which says where it stands, and result.json, its final record,
each checked against the run table's contract (`sweep.columns`) when it is read.

A damaged record (a killed writer, a disk error, a hand edit) is warned about and read as what it
leaves certain: a damaged status.json as a run never tried, a damaged result.json as an unfinished
run. So the next `sweep run` trains such a run again, and listing or fitting the store never fails on
it. Those warnings name the file and point at the store (no stacklevel), so each is shown once
however many callers read the file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

from sweep.columns import COLUMNS, FINISHED, FLAG_COLUMNS, STATUSES, TEXT_COLUMNS
from sweep.store.files import is_count, is_number, read_json


def _column_problem(name: str, value) -> str | None:
    """Why `value` cannot be column `name`'s, or None if it can."""
    if value is None:
        return None
    if name in TEXT_COLUMNS:
        return None if isinstance(value, str) else f"{name} {value!r} is not text"
    if name in FLAG_COLUMNS:
        return None if isinstance(value, bool) else f"{name} {value!r} is not true or false"
    return None if is_number(value) else f"{name} {value!r} is not a number"


def _status_problem(status: dict) -> str | None:
    """Why `status` is no status.json, or None: its status is one of STATUSES, its attempts a count."""
    if status.get("status") not in STATUSES:
        return f"status {status.get('status')!r} is not one of {', '.join(STATUSES)}"
    if not is_count(status.get("attempts")):
        return f"attempts {status.get('attempts')!r} is not a whole number >= 0"
    return _column_problem("reason", status.get("reason"))


def _result_problem(result: dict, status: str) -> str | None:
    """Why `result` is no record of a run that ended `status`, or None. Each column it sets has that
    column's type, and a done run has a finite positive loss (cross-entropy in nats per token); a
    failed or diverged one may have none (`runner.result_record`, `failure_record`)."""
    for name in COLUMNS:
        if name in result and (problem := _column_problem(name, result[name])):
            return problem
    loss = result.get("loss")
    if status == "done" and not (is_number(loss) and math.isfinite(loss) and loss > 0):
        return f"loss {loss!r} is not the finite positive number a done run has"
    return None


def status_and_result(run_dir: Path, warn: Callable[[str], None] = warnings.warn) -> tuple[dict, dict | None, bool]:
    """status.json and, for a finished run, result.json, both checked, and whether status.json holds
    the status the run reads as. A missing or damaged status.json reads as a run never tried. A
    finished run whose result.json is missing or damaged reads as pending: its result is lost, so it
    must be trained again. The reason says which file was damaged, and `warn` hears it."""
    path = run_dir / "status.json"
    status = read_json(path)
    if status is None:
        return {"status": "pending", "attempts": 0}, None, False
    if problem := _status_problem(status):
        warn(f"{path}: damaged: {problem}; the run shows as pending")
        return {"status": "pending", "attempts": 0, "reason": f"damaged status.json: {problem}"}, None, False
    if status["status"] not in FINISHED:
        return status, None, True
    path = run_dir / "result.json"
    result = read_json(path)
    if result is None:
        warn(f"{run_dir}: status {status['status']!r} but no readable result.json; shown as incomplete")
        return {**status, "status": "pending", "reason": "result.json missing or unreadable"}, None, False
    if problem := _result_problem(result, status["status"]):
        warn(f"{path}: damaged: {problem}; the run shows as pending")
        return {**status, "status": "pending", "reason": f"damaged result.json: {problem}"}, None, False
    return status, result, True


def run_status(run_dir: Path, warn: Callable[[str], None] = warnings.warn) -> dict:
    return status_and_result(run_dir, warn)[0]
