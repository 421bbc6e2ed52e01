"""The run store on disk, and `load_runs` that reads it back as a DataFrame.

Layout, one directory per run:

    <store>/<sweep>/<run_id>/spec.json      the resolved RunSpec (written before training starts)
                             status.json    {"status", "attempts", "updated_at", "host", "pid", "reason"}
                             metrics.jsonl  one row per logging interval / evaluation
                             result.json    the final record (written once, when the run ends)
    <store>/<sweep>/trunks/<trunk_id>/      a wsd trunk: trunk.json, status, metrics, branch points

Every JSON file is written to a temporary file and renamed into place, so a reader sees the old
file or the new one, never half of one. Metrics lines are appended whole and flushed.

Every file is checked when it is read, by type as well as by syntax. A damaged one (a killed writer,
a disk error, a hand edit) is warned about and read as what it leaves certain: a damaged status.json
as a run never tried, a damaged result.json as an unfinished run, a damaged metrics line as no line.
So the next `sweep run` trains such a run again, and listing or fitting the store never fails on it.
Those warnings name the file and point at this module (no stacklevel), so each is shown once however
many callers read the file.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sweep.store.atomic import atomic_write
from sweep.config import RunSpec, spec_from_dict
from sweep.errors import SweepError
from sweep.model.flops import param_counts, training_flops
from sweep.errors import shown
from sweep import columns as variants
from sweep.columns import COLUMNS, FINISHED, FLAG_COLUMNS, METRICS_NUMBERS, STATUSES, TEXT_COLUMNS  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    import pandas as pd


def _number(value) -> bool:
    """A JSON number. json reads true as True, which Python counts as an int: not a number here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value, least: int = 0) -> bool:
    """A whole number >= `least`, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _column_problem(name: str, value) -> str | None:
    """Why `value` cannot be column `name`'s, or None if it can."""
    if value is None:
        return None
    if name in TEXT_COLUMNS:
        return None if isinstance(value, str) else f"{name} {value!r} is not text"
    if name in FLAG_COLUMNS:
        return None if isinstance(value, bool) else f"{name} {value!r} is not true or false"
    return None if _number(value) else f"{name} {value!r} is not a number"


def write_json(path: Path, obj: dict) -> None:
    """Atomically replace `path` with `obj` as JSON."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None if it is missing or unreadable (a warning says which)."""
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as err:  # a UnicodeDecodeError is a ValueError
        warnings.warn(f"{path}: unreadable ({err}); the run shows as incomplete")
        return None
    if not isinstance(obj, dict):
        warnings.warn(f"{path}: not a JSON object; the run shows as incomplete")
        return None
    return obj


def spec_columns(spec: RunSpec) -> dict:
    """What the spec alone says about a run: shape, sizes and FLOPs of its token budget."""
    counts = param_counts(spec.shape)
    return {
        "run_id": spec.run_id, "sweep": spec.sweep, "n_layers": spec.shape.n_layers,
        "d_model": spec.shape.d_model, "n_heads": spec.shape.n_heads, "d_ff": spec.shape.d_ff,
        "params": counts.non_embedding, "params_total": counts.total, "params_embedding": counts.embedding,
        "tokens": spec.tokens, "seed": spec.seed, "lr": spec.lr, "steps": spec.steps, "order": spec.data.order,
        **_branch_columns(spec),
        **training_flops(spec.shape, spec.tokens),
    }


def _branch_columns(spec: RunSpec) -> dict:
    """The schedule and, for a wsd branch, its parent trunk and the step it leaves it at."""
    wsd = spec.train.schedule == "wsd"
    return {"schedule": spec.train.schedule, "trunk_id": spec.trunk_id if wsd else None,
            "branch_step": spec.branch_step if wsd else None}


class Store:
    """Where each run and each wsd trunk keeps its files. Methods that write take the directory, so
    runs and trunks share them."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def run_dir(self, spec: RunSpec) -> Path:
        return self.root / spec.sweep / spec.run_id

    def trunk_dir(self, spec: RunSpec) -> Path:
        """<store>/<sweep>/trunks/<trunk id>/: trunk.json (not spec.json, so listings skip it), status,
        metrics, claim, checkpoint.pt while it trains and branch-<step>.pt, each branch point's state,
        until every branch of the trunk is done."""
        return self.root / spec.sweep / "trunks" / spec.trunk_id

    def branch_point(self, spec: RunSpec) -> Path:
        """The saved trunk state a wsd branch starts from."""
        return self.trunk_dir(spec) / f"branch-{spec.branch_step}.pt"

    def status(self, spec: RunSpec) -> dict:
        return run_status(self.run_dir(spec))

    def register(self, spec: RunSpec) -> None:
        """Create the run's directory with its spec, unless it exists; never touches a run's results.
        A wsd run registers its trunk too."""
        self._register(self.run_dir(spec), "spec.json", spec)
        if spec.train.schedule == "wsd":
            self._register(self.trunk_dir(spec), "trunk.json", spec)

    def _register(self, directory: Path, name: str, spec: RunSpec) -> None:
        """A status.json that is missing, damaged, or finished with its result lost is rewritten as the
        pending status it reads as: the damage is warned about here, once, not again by every worker
        that reads the run's status."""
        directory.mkdir(parents=True, exist_ok=True)
        if read_json(directory / name) is None:
            write_json(directory / name, spec.to_dict())
        status, _, as_stored = _status_and_result(directory)
        if not as_stored:
            self.set_status(directory, status["status"], reason=status.get("reason"))

    def set_status(self, directory: Path, status: str, *, attempt: bool = False, reason: str | None = None) -> None:
        assert status in STATUSES, status
        previous = run_status(directory)
        write_json(directory / "status.json", {
            "status": status,
            "attempts": previous["attempts"] + (1 if attempt else 0),
            "updated_at": time.time(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "reason": reason,
        })

    def start_metrics(self, directory: Path, kept: list[dict]) -> None:
        """The metrics log of a new attempt, holding `kept`: the rows up to the state it resumes from
        (a checkpoint's, or for a branch its trunk's up to the branch point). Later rows belong to
        training that is about to be redone, and go."""
        path = directory / "metrics.jsonl"
        if not kept:
            path.unlink(missing_ok=True)
            return
        atomic_write(path, lambda f: f.write("".join(json.dumps(row, sort_keys=True) + "\n" for row in kept)))

    def append_metrics(self, directory: Path, row: dict) -> None:
        line = json.dumps(row, sort_keys=True) + "\n"
        with open(directory / "metrics.jsonl", "a") as f:
            f.write(line)
            f.flush()

    def finish(self, directory: Path, record: dict) -> None:
        """Write the final record, then the status that points readers at it."""
        write_json(directory / "result.json", record)
        self.set_status(directory, record["status"], reason=record.get("reason"))


def metrics_through(directory: Path, step: int) -> list[dict]:
    """The rows of `directory`'s metrics log up to and including `step`."""
    return [row for row in read_metrics(directory) if row["step"] <= step]


def _status_problem(status: dict) -> str | None:
    """Why `status` is no status.json, or None: its status is one of STATUSES, its attempts a count."""
    if status.get("status") not in STATUSES:
        return f"status {status.get('status')!r} is not one of {', '.join(STATUSES)}"
    if not _count(status.get("attempts")):
        return f"attempts {status.get('attempts')!r} is not a whole number >= 0"
    return _column_problem("reason", status.get("reason"))


def _result_problem(result: dict, status: str) -> str | None:
    """Why `result` is no record of a run that ended `status`, or None. Each column it sets has that
    column's type, and a done run has a finite positive loss (cross-entropy in nats per token); a
    failed or diverged one may have none (`executors.result_record`, `failure_record`)."""
    for name in COLUMNS:
        if name in result and (problem := _column_problem(name, result[name])):
            return problem
    loss = result.get("loss")
    if status == "done" and not (_number(loss) and math.isfinite(loss) and loss > 0):
        return f"loss {loss!r} is not the finite positive number a done run has"
    return None


def _status_and_result(run_dir: Path) -> tuple[dict, dict | None, bool]:
    """status.json and, for a finished run, result.json, both checked, and whether status.json holds
    the status the run reads as. A missing or damaged status.json reads as a run never tried. A
    finished run whose result.json is missing or damaged reads as pending: its result is lost, so it
    must be trained again. The reason says which file was damaged."""
    path = run_dir / "status.json"
    status = read_json(path)
    if status is None:
        return {"status": "pending", "attempts": 0}, None, False
    if problem := _status_problem(status):
        warnings.warn(f"{path}: damaged: {problem}; the run shows as pending")
        return {"status": "pending", "attempts": 0, "reason": f"damaged status.json: {problem}"}, None, False
    if status["status"] not in FINISHED:
        return status, None, True
    path = run_dir / "result.json"
    result = read_json(path)
    if result is None:
        warnings.warn(f"{run_dir}: status {status['status']!r} but no readable result.json; shown as incomplete")
        return {**status, "status": "pending", "reason": "result.json missing or unreadable"}, None, False
    if problem := _result_problem(result, status["status"]):
        warnings.warn(f"{path}: damaged: {problem}; the run shows as pending")
        return {**status, "status": "pending", "reason": f"damaged result.json: {problem}"}, None, False
    return status, result, True


def run_status(run_dir: Path) -> dict:
    return _status_and_result(run_dir)[0]


def _metrics_row(line: bytes) -> dict:
    """The metrics row on `line`: a JSON object whose step is a whole number >= 1 and whose other
    fields of METRICS_NUMBERS are numbers (NaN and inf included: a diverging run logs them).
    ValueError says what else the line is."""
    try:
        row = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError:
        raise ValueError("not JSON") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(row, dict):
        raise ValueError(f"{type(row).__name__}, not a JSON object")
    if not _count(row.get("step"), least=1):
        raise ValueError(f"step {row.get('step')!r} is not a whole number >= 1")
    for name in METRICS_NUMBERS:
        if name in row and not _number(row[name]):
            raise ValueError(f"{name} {row[name]!r} is not a number")
    return row


def read_metrics(run_dir: Path) -> list[dict]:
    """Rows of metrics.jsonl. A line that is no `_metrics_row` (a killed writer's half line, bytes that
    are not text, a value of the wrong type) is skipped, with one warning for the file."""
    path = run_dir / "metrics.jsonl"
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    except OSError as err:
        warnings.warn(f"{path}: unreadable ({err}); no metrics")
        return []
    rows, skipped = [], []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(_metrics_row(line))
        except ValueError as err:
            skipped.append(f"line {number}: {err}")
    if skipped:
        warnings.warn(f"{path}: skipped {len(skipped)} truncated or corrupt line(s) ({skipped[0]})")
    return rows


def run_dirs(path: Path) -> Iterator[Path]:
    """Run directories under a store root (<root>/<sweep>/<run>) or under one sweep (<sweep>/<run>)."""
    if (path / "spec.json").exists():
        yield path
        return
    for child in sorted(path.iterdir()):
        if child.is_dir() and (child / "spec.json").exists():
            yield child
        elif child.is_dir() and not child.name.startswith("."):
            yield from (run for run in sorted(child.iterdir()) if (run / "spec.json").exists())


def load_runs(path: str | Path, sweep: str | None = None) -> "pd.DataFrame":
    """One row per run in the store (or sweep directory) at `path`, columns `COLUMNS`.
    Runs whose files are missing or corrupt still appear, with what could be read."""
    import pandas as pd  # here, not at the top: worker processes write runs and never need pandas

    path = Path(path)
    if not path.is_dir():
        raise SweepError(f"run store not found: {path} is not a directory")
    rows = [row for run_dir in run_dirs(path) if (row := _run_row(run_dir)) is not None]
    measured = sorted({key for row in rows for key in row if key.startswith(VARIANT_PREFIXES)}, key=_variant_order)
    frame = pd.DataFrame(rows, columns=COLUMNS + measured)
    if sweep is not None:
        frame = frame[frame["sweep"] == sweep].reset_index(drop=True)
    return frame


VARIANT_PREFIXES = (variants.LOSS_PREFIX, variants.DELTA_PREFIX)


def _variant_order(column: str) -> tuple:
    """loss_q8, delta_q8, loss_q4, …, then pruning by share (`variants.order`)."""
    name = column.split("_", 1)[1]
    return variants.order(name), not column.startswith(variants.LOSS_PREFIX)


def _variant_columns(compression, run_dir: Path) -> dict:
    """loss_<v> and delta_<v> of each compressed variant in result.json's `compression`; an entry
    that is not {variant: {'loss': number, 'delta': number}} is skipped with a warning."""
    if not compression:
        return {}
    if not isinstance(compression, dict):
        warnings.warn(f"{run_dir / 'result.json'}: compression is not a mapping; skipped")
        return {}
    columns = {}
    for name, measured in compression.items():
        if (variants.parse(name) and isinstance(measured, dict)
                and all(_number(measured.get(key)) for key in ("loss", "delta"))):
            columns[variants.LOSS_PREFIX + name], columns[variants.DELTA_PREFIX + name] = measured["loss"], measured["delta"]
        else:
            warnings.warn(f"{run_dir / 'result.json'}: compression entry {shown(name)} is not "
                          "a variant with a number for 'loss' and 'delta'; skipped")
    return columns


def _run_row(run_dir: Path) -> dict | None:
    raw_spec = read_json(run_dir / "spec.json")
    if raw_spec is None:
        return None
    try:
        row = spec_columns(spec_from_dict(raw_spec))
    except (KeyError, TypeError, ValueError) as err:
        warnings.warn(f"{run_dir / 'spec.json'}: not a run spec ({err}); skipped")
        return None
    status, result, _ = _status_and_result(run_dir)
    row["attempts"] = status["attempts"]
    row["reason"] = status.get("reason")
    if result is not None:
        row.update({key: result[key] for key in COLUMNS if key in result})
        row.update(_variant_columns(result.get("compression"), run_dir))
    row["status"] = status["status"]
    if row.get("loss") is not None and "bpb" not in row:
        row["bpb"] = row["loss"] / math.log(2)
    return row


def store_specs(root: Path, sweep: str | None = None) -> list[RunSpec]:
    """Every run spec registered under `root` (one sweep if `sweep` names it). A spec.json that is not
    a spec is skipped with a warning, as `sweep ls` does."""
    if not root.is_dir():
        raise SweepError(f"store: {root} is not a directory")
    found = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    sweeps = [root / sweep] if sweep else found  # .submitit and other dot-directories hold no runs
    if sweep and not sweeps[0].is_dir():
        known = ", ".join(path.name for path in found) or "none"
        raise SweepError(f"--sweep: no sweep {sweep!r} in {root}; sweeps there: {known}")
    specs = []
    for sweep_dir in sweeps:
        for spec_path in sorted(sweep_dir.glob("*/spec.json")):
            raw = read_json(spec_path)
            try:
                specs.append(spec_from_dict(raw))
            except (KeyError, TypeError, ValueError) as err:
                warnings.warn(f"{spec_path}: not a run spec ({err}); skipped", stacklevel=2)
    return specs
