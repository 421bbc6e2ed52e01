import dataclasses
import math
import subprocess
import sys

import pytest
import torch
from conftest import tiny_config

from sweep.config import expand, parse_config
from sweep.data import load_corpus
from sweep.engine import PeakMemory, configure_device, eval_steps, lr_at, setup_process, train


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
    setup_process(torch.device("cpu"), config.train.threads)  # what sweep does before a process trains
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

    wild = dataclasses.replace(spec, train=dataclasses.replace(spec.train, lr=50.0, grad_clip=0.0, warmup=0.0))
    result = train(wild, corpus, torch.device("cpu"))
    assert result.status == "diverged"
    assert "training loss" in result.reason and "at step" in result.reason


_FAULTS_PER_ROUND = """
import ctypes, resource, sys, torch
from sweep.engine import configure_device
if sys.argv[1] == "configured":
    configure_device(torch.device("cpu"))
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes, libc.memset.argtypes = [ctypes.c_void_p], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size, faults = 16 << 20, []
for _ in range(12):  # a training step's shape: activations allocated, written, all freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(size) for _ in range(4)]
    for block in blocks:
        libc.memset(block, 1, size)
    for block in blocks:
        libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")
def test_cpu_training_reuses_freed_activation_memory_instead_of_faulting_pages_in_again():
    """After `configure_device(cpu)`, memory freed at the end of one step serves the next. glibc's
    default trims it back to the OS and every step faults 64 MiB of pages in again. Faults over
    rounds 2-12, each mode in a fresh process: measured 0 configured, about 180,000 not.

    Plain malloc/free rather than training steps: with torch's threads the heap settles in a varying
    number of steps (one-off 8 MiB growths seen as late as step 29 of a 1-layer model), which made a
    count over training steps flaky."""

    def faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _FAULTS_PER_ROUND, mode], capture_output=True, text=True, check=True
        )
        return int(done.stdout)

    assert faults("configured") < 256
    assert faults("default") > 10 * 8192  # the probe can tell the two apart


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


def test_compiled_training_matches_eager_and_the_next_run_of_a_shape_reuses_the_compiled_code(tiny):
    """train.compile: true on CPU, the path CUDA takes by default. fp32, so the two paths differ only by
    rounding. A sweep trains many runs of one shape in a worker: only the first may trace and compile."""
    from torch._dynamo.utils import counters

    specs, corpus = tiny
    spec = dataclasses.replace(specs[0], train=dataclasses.replace(specs[0].train, dtype="fp32"))
    compiled_spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, compile=True))
    eager = train(spec, corpus, torch.device("cpu"))
    first = train(compiled_spec, corpus, torch.device("cpu"))
    graphs = counters["stats"]["unique_graphs"]
    second = train(dataclasses.replace(compiled_spec, seed=1, tokens=2 * spec.tokens), corpus, torch.device("cpu"))
    assert not eager.compiled and first.compiled and second.compiled
    assert graphs >= 1 and counters["stats"]["unique_graphs"] == graphs  # nothing traced again
    assert first.loss == pytest.approx(eager.loss, rel=1e-4)
    assert second.status == "done" and second.loss < math.log(256) - 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_compiles_by_default_in_bf16_and_learns(tiny):
    specs, corpus = tiny
    setup_process(torch.device("cuda"))  # TF32, as sweep sets it before a process trains on CUDA
    result = train(specs[1], corpus, torch.device("cuda"))
    eager = train(
        dataclasses.replace(specs[1], train=dataclasses.replace(specs[1].train, compile=False)),
        corpus,
        torch.device("cuda"),
    )
    assert result.compiled and result.dtype == "bf16" and not eager.compiled
    assert result.loss == pytest.approx(eager.loss, rel=2e-2)
    assert result.loss < math.log(256) - 0.5
