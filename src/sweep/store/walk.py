"""The one walk over a store's directories: every reader (the run table, `sweep status`, workers,
`sweep export`, `sweep fit`'s compression section) finds runs and trunks by the same rules.

A store holds <sweep>/<run id>/spec.json and <sweep>/trunks/<trunk id>/trunk.json (`layout.Store`).
Directories whose names start with a dot (.submitit: SLURM's job files; .coding and .tokenized:
caches) hold no runs and are skipped at every level, as are files (an exported runs.csv).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sweep.config import RunSpec, spec_from_dict
from sweep.errors import SweepError
from sweep.store.files import read_json

SPEC_FILES = {"run": "spec.json", "trunk": "trunk.json"}  # what marks each kind's directory


@dataclass(frozen=True)
class RunDir:
    """One run's or one wsd trunk's directory."""

    path: Path
    sweep: str  # the name of the sweep directory it is in
    kind: str  # "run" (a run, wsd branches included) or "trunk" (a wsd trunk, under <sweep>/trunks/)

    @property
    def spec_file(self) -> Path:
        return self.path / SPEC_FILES[self.kind]


def directory_kind(path: Path) -> str:
    """What the directory `path` is: "run" (a run's or a trunk's own directory), "sweep" (one sweep's
    directory: it holds runs) or "store" (anything else: a store, perhaps empty)."""
    if any((path / name).is_file() for name in SPEC_FILES.values()):
        return "run"
    if any((child / SPEC_FILES["run"]).is_file() for child in _visible_dirs(path)):
        return "sweep"
    return "store"


def walk(root: Path, sweep: str | None = None) -> Iterator[RunDir]:
    """Each run's and wsd trunk's directory under the directory `root`, in path order: `root` is a
    store, one sweep's directory or one run's or trunk's own (`directory_kind`). `sweep` keeps that
    sweep's alone; in a store, SweepError if it has no such sweep directory."""
    kind = directory_kind(root)
    if kind == "store":
        yield from _walk_store(root, sweep)
        return
    found = [_own_directory(root)] if kind == "run" else _in_sweep(root, root.absolute().name)
    yield from (run for run in found if sweep is None or run.sweep == sweep)


def read_spec(run: RunDir) -> RunSpec | None:
    """The run spec in `run`'s spec.json or trunk.json, or None if it is unreadable (`read_json`
    warns) or no spec (warned here: the run is skipped, as `sweep ls` skips it)."""
    raw = read_json(run.spec_file)
    if raw is None:
        return None
    try:
        return spec_from_dict(raw)
    except (KeyError, TypeError, ValueError) as err:
        warnings.warn(f"{run.spec_file}: not a run spec ({err}); skipped")
        return None


def store_specs(root: Path, sweep: str | None = None) -> list[RunSpec]:
    """Every run spec registered in the store at `root` (one sweep if `sweep` names it). A spec.json
    that is not a spec is skipped with a warning, as `sweep ls` does. `root` is taken as a store
    whatever it holds, since the runner writes runs beside it: a sweep's own directory holds no
    sweeps, so no runs."""
    if not root.is_dir():
        raise SweepError(f"store: {root} is not a directory")
    return [spec for run in _walk_store(root, sweep) if run.kind == "run" and (spec := read_spec(run)) is not None]


def _walk_store(root: Path, sweep: str | None) -> Iterator[RunDir]:
    """The runs and trunks of each sweep of the store at `root`, or of the one `sweep` names."""
    found = _visible_dirs(root)
    sweeps = [root / sweep] if sweep else found  # .submitit and other dot-directories hold no runs
    if sweep and not sweeps[0].is_dir():
        known = ", ".join(path.name for path in found) or "none"
        raise SweepError(f"--sweep: no sweep {sweep!r} in {root}; sweeps there: {known}")
    for sweep_dir in sweeps:
        yield from _in_sweep(sweep_dir, sweep_dir.name)


def _in_sweep(sweep_dir: Path, sweep: str) -> Iterator[RunDir]:
    """The runs of one sweep's directory and the wsd trunks in its trunks/, in path order."""
    for child in _visible_dirs(sweep_dir):
        if (child / SPEC_FILES["run"]).is_file():
            yield RunDir(child, sweep, "run")
        elif child.name == "trunks":
            yield from (
                RunDir(trunk, sweep, "trunk")
                for trunk in _visible_dirs(child)
                if (trunk / SPEC_FILES["trunk"]).is_file()
            )


def _own_directory(path: Path) -> RunDir:
    """A run's directory given itself: <sweep>/<run id>, or a trunk's, <sweep>/trunks/<trunk id>."""
    parent = path.absolute().parent  # absolute: "." has no parent to name the sweep
    if (path / SPEC_FILES["run"]).is_file():
        return RunDir(path, parent.name, "run")
    return RunDir(path, parent.parent.name, "trunk")


def _visible_dirs(path: Path) -> list[Path]:
    """The directories in `path` whose names start with no dot, sorted."""
    return sorted(child for child in path.iterdir() if child.is_dir() and not child.name.startswith("."))
