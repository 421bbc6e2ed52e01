"""A run's JSON files and its metrics log: written whole, checked when read.

Every JSON file is written to a temporary file and renamed into place (`atomic.atomic_write`), so a
reader sees the old file or the new one, never half of one. Metrics lines are appended whole and
flushed (`layout.Store.append_metrics`).

Every file is checked when it is read, by type as well as by syntax. A damaged one is warned about
and read as what it leaves certain: an unreadable JSON file as none, a damaged metrics line as no line.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from sweep.columns import METRICS_NUMBERS
from sweep.store.atomic import atomic_write


def is_number(value) -> bool:
    """A JSON number. json reads true as True, which Python counts as an int: not a number here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_count(value, least: int = 0) -> bool:
    """A whole number >= `least`, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


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
    if not is_count(row.get("step"), least=1):
        raise ValueError(f"step {row.get('step')!r} is not a whole number >= 1")
    for name in METRICS_NUMBERS:
        if name in row and not is_number(row[name]):
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


def metrics_through(directory: Path, step: int) -> list[dict]:
    """The rows of `directory`'s metrics log up to and including `step`."""
    return [row for row in read_metrics(directory) if row["step"] <= step]
