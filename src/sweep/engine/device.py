"""Device and number-format policy: which device and dtype a run trains in, the process-wide settings
for that device, and whether its steps run through torch.compile; and what the device is (the CPU's
model and ISA) and how fast it multiplies matrices, the peak MFU is taken against (`sweep bench`)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from sweep.engine.memory import keep_freed_memory
from sweep.model.gpt import GPT


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 matrix arithmetic natively (AVX512-BF16 or AMX), where oneDNN's
    bf16 matmuls run several times faster than fp32 ones."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' is bf16 autocast on CUDA and on CPUs with native bf16, fp32 otherwise. On CPU bf16 was
    1.2-2.5x faster from d_model 32 up, with the quickstart's final losses within 1.12% of fp32
    (docs/performance.md)."""
    if name == "bf16":
        return torch.bfloat16
    if name == "auto" and (device.type == "cuda" or cpu_has_bf16()):
        return torch.bfloat16
    return torch.float32


def setup_process(device: torch.device, threads: int = 0) -> None:
    """Settings of the whole process, made once by whatever starts a process that trains, before its
    first run: `threads` CPU threads for torch's operators (`train.threads`; 0 leaves torch's default,
    all cores) and `configure_device(device)`. `train` itself changes neither: they hold for every run
    the process trains, and a run does not reset what its process was started with."""
    if threads:
        torch.set_num_threads(threads)
    configure_device(device)


def configure_device(device: torch.device) -> None:
    """Process-wide settings for training on `device` (`setup_process` makes them).
    CPU: flush denormals to zero; at 3M parameters (bf16, 2 threads) steps ran 9-16% faster, with no
    change at the quickstart's sizes. Values below 1e-38 (AdamW's second moments, tiny gradients)
    become 0. And freed activation memory stays in the heap (`memory.keep_freed_memory`).
    CUDA: TF32 for fp32 matmuls (10-bit mantissa; bf16 autocast covers most of the work)."""
    if device.type == "cpu":
        torch.set_flush_denormal(True)
        keep_freed_memory()
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compiles(setting: bool | str, device: torch.device) -> bool:
    """Whether `train.compile` compiles on `device`. 'auto' compiles on CUDA only. On the 2-core
    development CPU compiled bf16 steps were 1.02-1.14x faster (medians of 3 `sweep bench --compile`
    / `--no-compile` pairs) for 12-24 s of compiling per shape with a cold cache, and Inductor needs a
    C++ compiler: not worth it for short CPU runs, so there it is opt-in (docs/performance.md)."""
    return setting is True or (setting == "auto" and device.type == "cuda")


# torch.compile keeps one compiled entry per guard set (shape, dtype, grad mode) on each code object
# and falls back to eager after `recompile_limit` of them (8 by default). A worker that trains many
# shapes of a sweep needs more; same-shape runs reuse their entry.
RECOMPILE_LIMIT = 64


def step_module(model: GPT, setting: bool | str, device: torch.device) -> tuple[torch.nn.Module, bool]:
    """The module training steps call, and whether it is compiled: `model` itself, or `model`
    compiled (same parameters; the first step compiles) where `compiles(setting, device)`.
    Guards are on shapes and dtypes, not on the module object (Dynamo inlines nn.Modules and treats
    parameters as inputs), so a later run of the same shape in this process reuses the compiled code
    without tracing again; a new process reuses Inductor's kernels from its on-disk cache
    (TORCHINDUCTOR_CACHE_DIR). dynamic=False: a new shape gets its own static graph rather than
    turning earlier ones into slower dynamic-shape code."""
    if not compiles(setting, device):
        return model, False
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    return torch.compile(model, dynamic=False), True


# --- what the device is and how fast it multiplies matrices (`sweep bench`, MFU) ---------------------


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # what decides CPU matmul speed


def cpu_description() -> dict:
    """This CPU's model name and the ISA flags of ISA_FLAGS it has, from /proc/cpuinfo (Linux)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"model": model, "isa": [flag for flag in ISA_FLAGS if flag in flags], "cores": os.cpu_count()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(
    device: torch.device, dtype: torch.dtype, size: int | tuple[int, int, int], seconds: float = 1.0
) -> float:
    """FLOP/s of an (m, k) @ (k, n) matmul (`size` m = k = n, or (m, k, n)), from the
    10th-percentile time of repeats over about `seconds`: on a shared machine a neighbour slows some
    repeats, and a low peak would inflate MFU."""
    m, k, n = (size, size, size) if isinstance(size, int) else size
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    sync(device)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        begin = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - begin)
    return 2 * m * k * n / statistics.quantiles(times, n=10)[0]


# The CPU shapes the peak is sampled at, the fastest kept. On the Intel Xeon with AMX (2 cores,
# 2026-12-01, `python scripts/bench_peak.py`) a 1024³ bf16 matmul ran at 1.13 TFLOP/s, 8192×896×224
# at 2.46 and 8192×4096×1024 at 2.07: AMX reaches its peak on tall products with a narrow output,
# which a cube never shows, so the cube alone overstated MFU about 2×.
CPU_PEAK_SHAPES = ((1024, 1024, 1024), (8192, 896, 224), (8192, 4096, 1024))


def matmul_peaks(device: torch.device, seconds: float) -> dict[str, float | None]:
    """The matmul peak of each dtype MFU can be taken against: fp32 and bf16 on CPU (the fastest of
    CPU_PEAK_SHAPES, `seconds` shared among them), bf16 on CUDA."""
    if device.type == "cuda":
        return {"bf16": matmul_peak(device, torch.bfloat16, 4096, seconds), "fp32": None}
    share = seconds / len(CPU_PEAK_SHAPES)
    return {
        name: max(matmul_peak(device, dtype, shape, share) for shape in CPU_PEAK_SHAPES)
        for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32))
    }


def fastest(samples: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Per dtype, the highest of several peak measurements. Noise only ever slows a matmul, so the
    fastest is the nearest to the peak. On the shared 2-core development machine whole seconds ran at
    half speed: 3 of 10 2-second measurements gave about 405 GFLOP/s bf16 against 750-850 in the
    others, which put MFU above 100% when one was taken alone."""
    return {
        dtype: max((sample[dtype] for sample in samples if sample.get(dtype)), default=None) for dtype in samples[0]
    }
