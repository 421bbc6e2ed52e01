"""laws.json: a fit report as JSON, plus what `sweep predict` needs to give intervals.

The file is `FitReport.to_json()` with two more keys: "format" (a version tag, checked on load) and
"bootstrap_samples": the chosen law's form, every bootstrap refit of its parameters and each refit's
noise draw, so a prediction's intervals are computed from the samples themselves:

    "bootstrap_samples": {"form": "chinchilla", "params": {"E": [...], "A": [...], ...}, "noise": [...]}

Format 2 added the form choice and the noise draws. A format-1 file (always the Chinchilla law, no
noise draws) still loads; its predictions carry the law's parameter interval (`ci`) only.

When the table had compression variants, "degradation" (from `to_json`) holds each variant's law and
"degradation_samples" its bootstrap refits and noise draws (`degradation.py`):

    "degradation_samples": {"q4": {"C": [...], "gamma_D": [...], "gamma_N": [...], "noise": [...]}}

Both keys are optional within format 2: readers that predate them ignore them, and a file without them
has no degradation laws (`load_degradation` says so when one is asked for).

"model" holds the settings of the sweep the laws were fit to that `sweep predict` needs to suggest a
shape by the sweep's own params rule (`MODEL_SETTINGS`): `sweep fit` records each setting every run of
the store shares, as their specs hold it:

    "model": {"norm": "rmsnorm", "activation": "swiglu", "positions": "rotary", "tie_embeddings": true,
              "seq_len": 256, "vocab_size": 256}

It is optional within format 2 as well: readers that predate it ignore it, and a file without it (fit
to a table, or written before it was recorded) has no settings (`load_model_settings` returns {}).
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from sweep.errors import InputError, shown
from sweep.laws.degradation import PARAMETERS as DEGRADATION_PARAMETERS
from sweep.laws.degradation import DegradationFit, DegradationLaw, DegradationLaws
from sweep.laws.fitreport import FitReport
from sweep.laws.forms.equations import ChinchillaParams
from sweep.laws.forms.joint import FORMS
from sweep.laws.predict import Laws

FORMAT = "sweep-laws/2"
FORMAT_1 = "sweep-laws/1"
FORMAT_1_WHY = (
    "this laws file (sweep-laws/1) has no noise draws, so there is no prediction interval, only the law's own "
    "interval (ci); fit again with `sweep fit --out` for prediction intervals"
)
# The model settings a laws file may record, each with its JSON type: what the params rule
# (`sweep.config.shape_for_params`) reads or passes on to the shape it picks, besides the sizes it
# chooses itself: fields of a run's shape (`ModelShape`), and the rule's dials aspect_ratio and head_dim.
MODEL_SETTINGS = {
    "norm": str,
    "activation": str,
    "positions": str,
    "tie_embeddings": bool,
    "seq_len": int,
    "vocab_size": int,
    "aspect_ratio": int,
    "head_dim": int,
}
_KIND_NAMES = {str: "text", bool: "true or false", int: "a positive whole number"}


def save_laws(report: FitReport, path: str | Path, model: dict | None = None) -> Path:
    """`report` as a laws file at `path`; `model`: the settings of the sweep it was fit to (`MODEL_SETTINGS`)."""
    names = [field.name for field in fields(report.laws.law)]
    samples = {name: [getattr(sample, name) for sample in report.laws.samples] for name in names}
    contents = {
        "format": FORMAT,
        **report.to_json(),
        "bootstrap_samples": {"form": report.laws.form, "params": samples, "noise": list(report.laws.noise)},
    }
    if report.degradation.variants:
        contents["degradation_samples"] = {
            variant: {
                **{name: [getattr(sample, name) for sample in fit.samples] for name in DEGRADATION_PARAMETERS},
                "noise": list(fit.noise),
            }
            for variant, fit in report.degradation.fits.items()
        }
    if model:
        contents["model"] = model
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(contents, indent=2, allow_nan=False) + "\n")
    return path


def _contents(path: Path) -> dict:
    """The laws file's JSON, checked to be one `sweep fit` wrote."""
    if not path.is_file():
        raise InputError(f"no such laws file: {path}")
    try:
        contents = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not a JSON file: {error}") from error
    version = contents.get("format") if isinstance(contents, dict) else None
    if version not in (FORMAT, FORMAT_1):
        raise InputError(f"{path} is not a laws file written by `sweep fit` (expected format {FORMAT!r})")
    return contents


def load_laws(path: str | Path) -> Laws:
    path = Path(path)
    contents = _contents(path)
    try:
        return _laws_of(contents) if contents["format"] == FORMAT else _laws_of_format_1(contents)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise InputError(f"{path} is damaged: cannot read the law from it ({shown(error)})") from error


def load_degradation(path: str | Path) -> DegradationLaws:
    """The file's post-training degradation laws; none (no variants) in a file written without them."""
    path = Path(path)
    contents = _contents(path)
    try:
        return _degradation_of(contents.get("degradation") or {}, contents.get("degradation_samples") or {})
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise InputError(f"{path} is damaged: cannot read its degradation laws ({shown(error)})") from error


def load_model_settings(path: str | Path) -> dict:
    """The settings of the sweep the laws were fit to, those `sweep fit` recorded (`MODEL_SETTINGS`); {}
    for a file without them."""
    path = Path(path)
    model = _contents(path).get("model", {})
    if not isinstance(model, dict):
        raise InputError(f"{path} is damaged: its model settings are {shown(model)}, not a mapping")
    for name, value in model.items():
        if name not in MODEL_SETTINGS:
            raise InputError(f"{path} is damaged: {shown(name)} is not a model setting ({', '.join(MODEL_SETTINGS)})")
        kind = MODEL_SETTINGS[name]
        if type(value) is not kind or (kind is int and value < 1):  # type(): JSON's true is no int here
            raise InputError(f"{path} is damaged: model setting {name} is {shown(value)}, not {_KIND_NAMES[kind]}")
    return model


def _degradation_of(entries: dict, samples: dict) -> DegradationLaws:
    """From `FitReport.to_json()`'s "degradation" entries and "degradation_samples"; an entry without C
    is a variant that has no law, and its "why" says why."""
    fits, why_not = {}, {}
    for variant, entry in entries.items():
        if "C" not in entry:
            why_not[variant] = str(entry["why"])
            continue
        drawn = samples[variant]
        fits[variant] = DegradationFit(
            variant=variant,
            law=_law(DegradationLaw, entry),
            samples=tuple(_law(DegradationLaw, drawn, index) for index in range(len(drawn["noise"]))),
            noise=tuple(float(value) for value in drawn["noise"]),
            n_points=int(entry["n_points"]),
            n_left_out=int(entry["n_left_out"]),
            n_unmeasured=int(entry["n_unmeasured"]),
            residual_rms=float(entry["residual_rms"]),
            noise_scale=float(entry["noise_scale"]),
            why=entry["why"],
        )
    return DegradationLaws(variants=tuple(entries), fits=fits, why_not=why_not)


def _law(law_type: type, values: dict, index: int | None = None):
    """A law_type built from `values` by field name, or from the index-th entry of each list."""
    return law_type(
        **{
            field.name: float(values[field.name] if index is None else values[field.name][index])
            for field in fields(law_type)
        }
    )


def _laws_of(contents: dict) -> Laws:
    form = FORMS[contents["law"]["form"]]
    samples = contents["bootstrap_samples"]
    if samples["form"] != form.name:
        raise ValueError(f"bootstrap samples of {samples['form']!r} for the law {form.name!r}")
    count = len(samples["noise"])
    conventions = contents["conventions"]
    return Laws(
        form=form.name,
        law=_law(form.law_type, contents[form.name]),
        samples=tuple(_law(form.law_type, samples["params"], index) for index in range(count)),
        noise=tuple(float(value) for value in samples["noise"]),
        params_convention=conventions["params"],
        flops_source=conventions["flops"],
        why=contents["law"]["why"],
    )


def _laws_of_format_1(contents: dict) -> Laws:
    samples = contents["bootstrap_samples"]["chinchilla"]
    conventions = contents["conventions"]
    return Laws(
        form="chinchilla",
        law=_law(ChinchillaParams, contents["chinchilla"]),
        samples=tuple(_law(ChinchillaParams, samples, index) for index in range(len(samples["E"]))),
        noise=(),
        params_convention=conventions["params"],
        flops_source=conventions["flops"],
        why=FORMAT_1_WHY if samples["E"] else "the laws file holds no bootstrap samples",
    )
