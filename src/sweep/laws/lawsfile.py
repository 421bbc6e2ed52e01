"""laws.json: a fit report as JSON, plus what `sweep predict` needs to give intervals.

The file is `FitReport.to_json()` with two more keys: "format" (a version tag, checked on load) and
"bootstrap_samples" {"chinchilla": {"E": [...], "A": [...], ...}}, every bootstrap refit of the
Chinchilla parameters, so a prediction's interval is computed from the samples themselves.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from sweep.errors import InputError
from sweep.laws.forms import ChinchillaParams
from sweep.laws.predict import Laws
from sweep.laws.report import FitReport

FORMAT = "sweep-laws/1"
CHINCHILLA_FIELDS = tuple(field.name for field in fields(ChinchillaParams))


def save_laws(report: FitReport, path: str | Path) -> Path:
    samples = {name: [getattr(sample, name) for sample in report.laws.samples] for name in CHINCHILLA_FIELDS}
    contents = {"format": FORMAT, **report.to_json(), "bootstrap_samples": {"chinchilla": samples}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(contents, indent=2, allow_nan=False) + "\n")
    return path


def load_laws(path: str | Path) -> Laws:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such laws file: {path}")
    try:
        contents = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not a JSON file: {error}") from error
    if not isinstance(contents, dict) or contents.get("format") != FORMAT:
        raise InputError(f"{path} is not a laws file written by `sweep fit` (expected format {FORMAT!r})")
    try:
        chinchilla = ChinchillaParams(**{name: float(contents["chinchilla"][name]) for name in CHINCHILLA_FIELDS})
        samples = contents["bootstrap_samples"]["chinchilla"]
        sample_params = tuple(
            ChinchillaParams(**{name: float(samples[name][index]) for name in CHINCHILLA_FIELDS})
            for index in range(len(samples["E"]))
        )
        conventions = contents["conventions"]
        return Laws(chinchilla, sample_params, conventions["params"], conventions["flops"])
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise InputError(f"{path} is damaged: cannot read the Chinchilla law from it ({error!r})") from error
