"""Shared fixtures: tiny configs on small real corpora, so the suite runs in minutes on 2 cores."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sweep.data import stdlib_root

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def email_glob() -> str:
    """About 40 real Python files from the standard library's email package: a small real corpus."""
    return str(stdlib_root() / "email" / "**" / "*.py")


def tiny_config(corpus: str, **overrides) -> dict:
    """A raw config dict for a 2-size × 2-budget sweep of tiny models; `overrides` replace top-level keys."""
    raw = {
        "name": "tiny",
        "data": {"corpus": corpus, "seq_len": 32, "val_fraction": 0.2, "val_tokens": 2048, "chunk_tokens": 4096},
        "model": {"sizes": [{"n_layers": 1, "d_model": 16, "n_heads": 2}, {"n_layers": 2, "d_model": 32, "n_heads": 2}]},
        "tokens": ["8192", "16384"],
        "seeds": [0],
        "train": {"batch_tokens": 1024, "lr": "1e-2", "evals": 1},
        "device": "cpu",
    }
    raw.update(overrides)
    return raw


def run_dirs(sweep_dir: Path) -> list[Path]:
    """The run directories of one sweep, sorted; wsd trunks (under trunks/) are not runs."""
    return sorted(path.parent for path in sweep_dir.glob("*/spec.json"))


@pytest.fixture
def write_config(tmp_path):
    def write(raw: dict, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return path

    return write
