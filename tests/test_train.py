import math

import pytest
import torch

from sweep.config import expand, parse_config
from sweep.data import load_corpus
from sweep.train import eval_steps, lr_at, train

from conftest import tiny_config


def test_schedule_warms_up_then_decays_to_the_floor():
    steps, peak = 100, 1e-2
    rates = [lr_at(s, steps, peak, warmup=0.1, min_lr_ratio=0.1) for s in range(steps)]
    assert rates[0] == pytest.approx(peak / 10)
    assert rates[9] == pytest.approx(peak)
    assert max(rates) == pytest.approx(peak)
    assert rates[-1] == pytest.approx(0.1 * peak)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))  # monotone decay after warmup


def test_eval_steps_spread_and_end_at_the_last_step():
    assert eval_steps(100, 3) == {25, 50, 75, 100}
    assert eval_steps(3, 4) == {1, 2, 3}
    assert eval_steps(10, 0) == {10}


@pytest.fixture(scope="module")
def tiny(request):
    from sweep.data import stdlib_root
    raw = tiny_config(str(stdlib_root() / "email" / "**" / "*.py"))
    config = parse_config(raw)
    corpus = load_corpus(config.data)
    return expand(config, corpus.sha256), corpus


def test_training_is_deterministic_on_cpu_and_learns(tiny):
    specs, corpus = tiny
    spec = specs[1]
    rows_a, rows_b = [], []
    first = train(spec, corpus, torch.device("cpu"), log=rows_a.append)
    second = train(spec, corpus, torch.device("cpu"), log=rows_b.append)
    assert first.status == "done" and first.loss == second.loss
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]
    assert first.loss < math.log(256) - 0.5  # well below a uniform guess over bytes
    assert first.tokens == 16 * 1024 and rows_a[-1]["tokens"] == first.tokens
    assert "val_loss" in rows_a[-1] and rows_a[-1]["val_loss"] == first.loss
    assert first.peak_mem_bytes > 0


def test_absurd_learning_rate_is_reported_as_diverged(tiny):
    specs, corpus = tiny
    spec = specs[1]
    import dataclasses
    wild = dataclasses.replace(spec, lr=50.0, train=dataclasses.replace(spec.train, lr=50.0, grad_clip=0.0, warmup=0.0))
    result = train(wild, corpus, torch.device("cpu"))
    assert result.status == "diverged"
    assert "training loss" in result.reason and "at step" in result.reason
