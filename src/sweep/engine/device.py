"""Device and number-format policy: which device and dtype a run trains in, the process-wide settings
for that device, and whether its steps run through torch.compile."""

from __future__ import annotations

from contextlib import nullcontext

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
