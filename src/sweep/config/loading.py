"""YAML → typed, frozen config: `load_config` reads a file and its `--set` overrides, `parse_config`
builds and validates it.

Loading follows one order (litgpt's `Config.__post_init__`): fill defaults, validate, then derive.
Every problem is collected with its key path and reported together; an unknown key names the
nearest valid one (nanoGPT's configurator refuses unknown keys too). PyYAML reads `1e6` as a string
(YAML 1.1 wants a dot), so numeric fields accept numeric strings. YAML is read strictly (`strict_yaml`):
no alias bombs, no nesting deeper than a config needs, no key given twice. Sizes, threads, seeds and
the memory a run needs are bounded (`limits.py`) before anything is allocated, and a message echoes
at most about 60 characters of any value.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from pathlib import Path
from typing import Any

import yaml

from sweep.config import limits
from sweep.config.root import SweepConfig
from sweep.config.sections import LR_RULES
from sweep.config.strict_yaml import load_yaml
from sweep.errors import ConfigError, SweepError, cut, shown


def load_config(path: str | Path, overrides: list[str] = ()) -> SweepConfig:
    """Read a sweep YAML, apply `--set key.path=value` overrides, validate everything at once."""
    path = Path(path)
    name = cut(str(path), 200)
    if path.is_dir():
        raise SweepError(f"config: {name} is a directory, not a YAML file")
    if not path.is_file():
        raise SweepError(f"config file not found: {name}")
    try:
        raw = load_yaml(path.read_text(), f"{name}:")
    except yaml.YAMLError as err:
        raise SweepError(f"{name}: not valid YAML: {cut(str(err), 400)}") from None
    except UnicodeDecodeError:
        raise SweepError(f"{name}: not a text file") from None
    if not isinstance(raw, dict):
        raise SweepError(f"{name}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    for override in overrides:
        _apply_override(raw, override)
    return parse_config(raw)


def parse_config(raw: dict, memory_bytes: int | None = None) -> SweepConfig:
    """Validate a config read from YAML. `memory_bytes` is what one run may use: by default this
    machine's RAM (`limits.physical_memory_bytes`)."""
    problems: list[str] = []
    if sum(_given(raw, key) for key in ("tokens", "flops", "tokens_per_param")) != 1:  # known before parsing
        problems.append(
            "tokens: give exactly one of 'tokens' (training-token budgets), 'flops' (compute budgets) "
            "or 'tokens_per_param' (ratios r: each size trains r·N tokens)"
        )
    config = _build(SweepConfig, raw, "", problems)
    if not problems:
        config.check_memory(limits.physical_memory_bytes() if memory_bytes is None else memory_bytes, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _given(raw: dict, key: str) -> bool:
    """Present with a value: `tokens: 0` is given (and then refused as not positive), `tokens: []` is not."""
    return key in raw and raw[key] is not None and raw[key] != [] and raw[key] != ""


def _apply_override(raw: dict, override: str) -> None:
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SweepError(f"--set {shown(override)}: expected key.path=value, e.g. train.lr=1e-3")
    try:
        value = load_yaml(text, "--set", root=cut(key))
    except yaml.YAMLError:
        value = text
    node: Any = raw
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SweepError(f"--set {cut(key)}: {cut('.'.join(parts[:depth]))} has no item {shown(part)}")
            part = int(part)
        elif not isinstance(node, dict):
            raise SweepError(f"--set {cut(key)}: {cut('.'.join(parts[:depth]))} is not a mapping")
        if last:
            node[part] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]


def _build(cls, raw: Any, path: str, problems: list[str]):
    """Build dataclass `cls` from a mapping; append every problem to `problems`; None if any. A section
    with a `check(path, problems)` runs it once built (a size is checked by its model section)."""
    where = path or "config"
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping, got {_kind(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values, before = {}, len(problems)
    for key, value in raw.items():
        key_path = f"{path}.{cut(str(key))}" if path else cut(str(key))
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(fields)}"
            problems.append(f"{key_path}: unknown key{hint}")
            continue
        values[key] = _coerce(value, hints[key], fields[key], key_path, problems)
    for name, f in fields.items():
        if name not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{path + '.' if path else ''}{name}: required key is missing")
    if len(problems) > before:
        return None
    built = cls(**values)
    for name, f in fields.items():  # sections left out get their defaults, checked like given ones
        if name not in raw and dataclasses.is_dataclass(hints[name]) and hasattr(hints[name], "check"):
            getattr(built, name).check(f"{path}.{name}" if path else name, problems)
    if hasattr(cls, "check") and len(problems) == before:
        built.check(path, problems)
    return built


def _coerce(value: Any, hint: Any, f: dataclasses.Field, path: str, problems: list[str]):
    if f.name == "lr" and hint is Any:
        return _coerce_lr(value, path, problems)
    if f.name == "compile" and hint is Any:
        if value != "auto" and not isinstance(value, bool):
            problems.append(f"{path}: expected true, false or 'auto', got {_kind(value)}")
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, problems)
    if typing.get_origin(hint) is tuple:
        item_hint = typing.get_args(hint)[0]
        items = value if isinstance(value, list) else [value]
        return tuple(_coerce(item, item_hint, f, f"{path}[{i}]", problems) for i, item in enumerate(items))
    if hint is bool:
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true or false, got {_kind(value)}")
        return value
    if hint in (int, float):
        number = _number(value)
        if number is None or (hint is int and not float(number).is_integer()):
            problems.append(f"{path}: expected {'an integer' if hint is int else 'a number'}, got {_kind(value)}")
            return None
        return int(number) if hint is int else float(number)
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {_kind(value)}")
            return None
        allowed = f.metadata.get("choices")
        if allowed and value not in allowed:
            problems.append(f"{path}: {shown(value)} is not one of {', '.join(allowed)}")
        return value
    raise TypeError(f"no coercion for {hint}")  # a programming error, not a user's


def _coerce_lr(value: Any, path: str, problems: list[str]):
    if value in LR_RULES:
        return value
    items = value if isinstance(value, list) else [value]
    numbers = [_number(item) for item in items]
    if not items or any(n is None or n <= 0 for n in numbers):
        problems.append(f"{path}: expected a positive number, a list of them, 'auto' or 'kaplan', got {shown(value)}")
        return None
    return tuple(float(n) for n in numbers)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return value if math.isfinite(value) else None
        except OverflowError:  # an integer beyond float range: no size, budget or seed is that large
            return None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return f"{type(value).__name__} {shown(value)}"
