import math
import subprocess
import sys

import pytest
import torch

from sweep.config import expand, parse_config
from sweep.data import load_corpus
from sweep.train import PeakMemory, configure_device, eval_steps, lr_at, train

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


_FAULTS_PER_STEP = """
import resource, sys, torch
from sweep.model import GPT
from sweep.shape import ModelShape
from sweep.train import configure_device, forward_backward
device = torch.device("cpu")
if sys.argv[1] == "configured":
    configure_device(device)
model = GPT(ModelShape(n_layers=1, d_model=32, n_heads=2, d_ff=128, vocab_size=256, seq_len=64))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, 256, (128, 64))
for step in range(40):
    if step == 30:  # by now the heap has grown to its working size
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    forward_backward(model, x, x, device, torch.float32)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")
def test_cpu_training_steps_reuse_freed_memory_instead_of_faulting_pages_in_again():
    """After `configure_device(cpu)` a training step's activations come from memory freed by the step
    before; glibc's default maps and unmaps them. Page faults over 10 steps, each in a fresh process:
    measured 2-3 configured, 11,000-35,000 not."""
    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP, mode], capture_output=True, text=True,
                              check=True)
        return int(done.stdout)

    assert faults("configured") < 256 <= faults("default")


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator and /proc")
def test_a_runs_peak_memory_excludes_memory_an_earlier_run_freed():
    """Pool workers train run after run; memory the allocator kept from a bigger earlier run must not
    count toward the next run's peak."""
    configure_device(torch.device("cpu"))
    blocks = [torch.ones(4 << 20) for _ in range(16)]  # 256 MiB in 16 MiB blocks, served from the heap
    del blocks
    kept = _rss_bytes()
    assert PeakMemory(torch.device("cpu")).read() < kept - (128 << 20)
