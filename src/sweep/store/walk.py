"""Where a store's runs are: the run directories under a store, and the specs registered in it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterator

from sweep.config import RunSpec, spec_from_dict
from sweep.errors import SweepError
from sweep.store.files import read_json


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
