"""Train one run: `train(spec, corpus, device, log) -> RunResult`. One readable loop (nanoGPT train.py).

AdamW, linear warmup, then either cosine decay over the run's own token budget (Hoffmann et al. 2022:
a cosine longer than the run overestimates the loss of short runs) or warmup-stable-decay, whose
constant phase lets every budget of a size branch from one trunk (Hägele et al. 2024); gradient
clipping, weight decay on matrices only, bf16 autocast where chosen. On CPU a given seed and thread
count give the same numbers. A batch may run as micro-batches whose gradients accumulate, and across
the processes torchrun started (`sweep.engine.distributed`); either way the update is the unsplit batch's.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch

from sweep.engine import distributed
from sweep.engine.allocator import keep_freed_memory, release_freed_memory
from sweep.config import RunSpec
from sweep.engine import compress
from sweep.data import Corpus, epoch_windows, get_batch, get_epoch_batch, validation_set
from sweep.errors import SweepError
from sweep.model.flops import flops_per_token
from sweep.model.gpt import GPT

Log = Callable[[dict], None]


@dataclass(frozen=True)
class RunResult:
    status: str  # 'done' or 'diverged'
    steps: int
    tokens: int  # tokens trained on: steps × batch_tokens
    loss: float | None  # final validation loss, nats per token
    train_loss: float | None  # mean training loss over the last logged interval
    wall_s: float
    tokens_per_s: float
    peak_mem_bytes: int | None
    dtype: str
    compiled: bool  # trained through torch.compile
    reason: str | None = None  # why a run diverged
    # Σ over steps of the batch's loss before its update × its tokens / ln 2: the online code length of
    # the tokens trained on (Blier & Ollivier 2018), where each was read once (`prequential_reason`).
    prequential_bits: float | None = None
    prequential_reason: str | None = None  # why there is no prequential_bits
    # `eval.quantize`/`eval.prune`: {variant: {'loss', 'delta'}} (`compress.compression_losses`)
    compression: dict = field(default_factory=dict)
    compression_s: float | None = None  # the time those evaluations took, part of wall_s


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
    (README, Performance)."""
    if name == "bf16":
        return torch.bfloat16
    if name == "auto" and (device.type == "cuda" or cpu_has_bf16()):
        return torch.bfloat16
    return torch.float32


def configure_device(device: torch.device) -> None:
    """Process-wide settings for training on `device`.
    CPU: flush denormals to zero; at 3M parameters (bf16, 2 threads) steps ran 9-16% faster, with no
    change at the quickstart's sizes. Values below 1e-38 (AdamW's second moments, tiny gradients)
    become 0. And freed activation memory stays in the heap (`allocator.keep_freed_memory`).
    CUDA: TF32 for fp32 matmuls (10-bit mantissa; bf16 autocast covers most of the work)."""
    if device.type == "cpu":
        torch.set_flush_denormal(True)
        keep_freed_memory()
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def compiles(setting: bool | str, device: torch.device) -> bool:
    """Whether `train.compile` compiles on `device`. 'auto' compiles on CUDA only. On the 2-core
    development CPU compiled bf16 steps were 1.02-1.14x faster (medians of 3 `sweep bench --compile`
    / `--no-compile` pairs) for 12-24 s of compiling per shape with a cold cache, and Inductor needs a
    C++ compiler: not worth it for short CPU runs, so there it is opt-in (README, Performance)."""
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


def lr_at(step: int, steps: int, peak_lr: float, warmup: float, min_lr_ratio: float) -> float:
    """Cosine schedule: the learning rate for `step` (0-based) of `steps`: linear warmup over the first
    `warmup` share of steps, then cosine decay to `min_lr_ratio × peak_lr` at the last step."""
    warmup_steps = int(warmup * steps)
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - 1 - warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return peak_lr * (min_lr_ratio + (1 - min_lr_ratio) * cosine)


def wsd_lr_at(step: int, steps: int, peak_lr: float, warmup_steps: int, branch_step: int, min_lr_ratio: float,
              decay: str) -> float:
    """Warmup-stable-decay (Hägele et al. 2024, arXiv 2405.18392): linear warmup over `warmup_steps`,
    the peak held until `branch_step`, then a decay to `min_lr_ratio × peak_lr` at the last step,
    linear or 1 − √progress (their best cooldown shape). Up to `branch_step` the rate does not depend
    on `steps`, which is what lets budgets of one size share a trunk."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if step < branch_step:
        return peak_lr
    progress = min(1.0, (step - branch_step) / max(1, steps - 1 - branch_step))
    remaining = 1 - (math.sqrt(progress) if decay == "sqrt" else progress)
    return peak_lr * (min_lr_ratio + (1 - min_lr_ratio) * remaining)


def schedule_lr(spec: RunSpec, step: int) -> float:
    """The learning rate `spec`'s schedule gives `step`."""
    train = spec.train
    if train.schedule == "wsd":
        return wsd_lr_at(step, spec.steps, spec.lr, spec.warmup_steps, spec.branch_step, train.min_lr_ratio,
                         train.decay)
    return lr_at(step, spec.steps, spec.lr, train.warmup, train.min_lr_ratio)


def eval_steps(steps: int, evals: int) -> set[int]:
    """Steps after which validation loss is measured: `evals` evenly spaced ones and the last."""
    return {round(steps * k / (evals + 1)) for k in range(1, evals + 1)} - {0} | {steps}


def micro_batch_rows(spec: RunSpec, world_size: int) -> int:
    """Windows one process runs through forward and backward at a time: its share of each batch
    (batch_tokens / world_size), or `train.micro_batch_tokens` of it. The config cannot check these
    against seq_len and the number of processes, so they are checked here; SweepError if a share or a
    micro-batch is not whole windows."""
    train, seq_len = spec.train, spec.shape.seq_len
    if train.batch_tokens % (world_size * seq_len):
        raise SweepError(f"train.batch_tokens: {train.batch_tokens} is not divisible by {world_size} processes × "
                         f"data.seq_len ({seq_len}); each process trains on whole windows of every batch")
    share = train.batch_tokens // world_size
    micro = train.micro_batch_tokens or share
    if micro % seq_len or share % micro:
        raise SweepError(f"train.micro_batch_tokens: {micro} must be a multiple of data.seq_len ({seq_len}) that "
                         f"divides the {share} tokens of each batch one of {world_size} process(es) trains on")
    return micro // seq_len


def accumulate_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, micro_rows: int,
                         device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Forward and backward of this process's share x, y (B_share, T) of a batch, `micro_rows` windows
    at a time. Each micro-batch's loss is a mean over its tokens and all k have the same size, so
    scaling each by 1/k accumulates the gradient of the share's mean loss; under DDP the last backward
    averages that over ranks (the others skip the all-reduce), which is the whole batch's mean.
    Returns the share's mean loss, not synced."""
    micro_xs, micro_ys = x.split(micro_rows), y.split(micro_rows)  # k × (micro_rows, T)
    count = len(micro_xs)
    loss_sum = torch.zeros((), device=device)
    for i, (micro_x, micro_y) in enumerate(zip(micro_xs, micro_ys)):
        with distributed.gradient_sync(model, sync=i == count - 1):
            loss_sum += forward_backward(model, micro_x, micro_y, device, dtype, scale=1 / count)
    return loss_sum / count


def forward_backward(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                     dtype: torch.dtype, scale: float = 1.0) -> torch.Tensor:
    """Loss of one batch, gradients of `scale` × loss accumulated into the parameters. Returns the
    unscaled loss, not synced."""
    with autocast(device, dtype):
        loss = model(x, y)
    (loss * scale).backward()
    return loss.detach()


def optimizer_step(model: GPT, optimizer: torch.optim.Optimizer, lr: float, grad_clip: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def make_optimizer(model: GPT, spec: RunSpec, device: torch.device) -> torch.optim.AdamW:
    """Weight decay on matrices (and embeddings) only, not on norm weights (nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": spec.train.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(spec.train.beta1, spec.train.beta2), fused=fused)


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: GPT, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device,
             dtype: torch.dtype) -> float:
    """Mean loss per token over the fixed validation windows x, y (n, T)."""
    model.eval()
    total = torch.zeros((), device=device)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        with autocast(device, dtype):
            total += model(xb, yb).float() * len(xb)
    model.train()
    return total.item() / len(x)


class PeakMemory:
    """Peak memory of this process during a run: CUDA's allocator peak, or on Linux the resident-set
    high-water mark (VmHWM), reset at the start through /proc/self/clear_refs (Linux ≥ 4.0)."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            release_freed_memory()
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass  # without the reset the peak covers the whole process; still an upper bound

    def read(self) -> int | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def prequential_reason(spec: RunSpec, train_tokens: int) -> str | None:
    """Why `spec` can have no prequential code length on a training split of `train_tokens` tokens, or
    None. The code counts each token once, coded before the model trains on it: random windows overlap
    and repeat, and a second epoch codes tokens the model has seen."""
    if spec.data.order != "epoch":
        return "random windows overlap and repeat; data.order: epoch reads each once"
    windows = epoch_windows(train_tokens, spec.shape.seq_len)
    epochs = spec.steps * spec.train.batch_tokens / (windows * spec.shape.seq_len)
    if epochs > 1:
        return f"reads {epochs:.2f} epochs of the training split; the tokens of a second epoch were seen before"
    return None


def train(spec: RunSpec, corpus: Corpus, device: torch.device, log: Log = lambda row: None,
          progress: Log = lambda row: None, resume: dict | None = None,
          save_checkpoint: Callable[[dict], None] | None = None,
          final_weights: Callable[[dict], None] | None = None,
          snapshot_steps: frozenset[int] = frozenset(),
          save_snapshot: Callable[[dict], None] | None = None) -> RunResult:
    """Train `spec` on `corpus`. `log` gets one metrics row per logging interval and evaluation
    (step, tokens, flops, train_loss, val_loss, lr, elapsed_s); `progress` gets the same rows, for display.
    Where `prequential_reason` finds none, the run counts its prequential code length; at the end it
    evaluates the compressed variants `spec.eval` asks for.
    `resume` is a state `save_checkpoint` was given: training continues from its step, and on CPU the
    rest of the curve is the one an uninterrupted run draws. Checkpoints are taken at logging
    boundaries, at most every `spec.train.checkpoint_every` seconds. `final_weights` gets the
    model's state dict at the end. At each of `snapshot_steps` `save_snapshot` gets the exact state
    there, as `save_checkpoint` would (a wsd trunk's branch points).
    Where torch.distributed is initialised with several processes, every rank calls `train` with the
    same arguments (`resume` too) and trains its share of each batch under DDP; rank 0 alone calls
    the callbacks, and the states it saves hold the unwrapped model's parameters, so they resume in
    one process or several alike. Every rank returns the same losses."""
    if not distributed.is_writer():  # decided here, so no caller can have two processes write one run
        log = progress = _ignore
        save_checkpoint = final_weights = save_snapshot = None
    rank, world_size = distributed.rank(), distributed.world_size()
    micro_rows = micro_batch_rows(spec, world_size)  # first, so a batch that does not split fails at once
    if spec.train.threads:
        torch.set_num_threads(spec.train.threads)
    configure_device(device)
    started = time.perf_counter()
    memory = PeakMemory(device)
    dtype = resolve_dtype(spec.train.dtype, device)
    torch.manual_seed(spec.seed)
    model = GPT(spec.shape).to(device)
    compiled_model, compiled = step_module(model, spec.train.compile, device)
    step_model = distributed.wrap(compiled_model, device)  # DDP around the compiled module (nanoGPT's order)
    optimizer = make_optimizer(model, spec, device)
    generator = torch.Generator().manual_seed(spec.seed)
    val_x, val_y = validation_set(corpus.val, spec.shape.seq_len, spec.data.val_tokens)

    batch_size = spec.train.batch_tokens // spec.shape.seq_len  # windows of the whole batch, all ranks'
    steps = spec.steps
    flops_per_step = flops_per_token(spec.shape, "6n") * spec.train.batch_tokens
    evaluate_after = eval_steps(steps, spec.train.evals) | snapshot_steps  # a branch starts with its point's loss
    log_every = max(1, steps // 100)
    loss_sum, loss_count, first_loss, train_loss, val_loss = torch.zeros((), device=device), 0, None, None, None
    start_step, elapsed_before, strikes = 0, 0.0, 0
    no_prequential = prequential_reason(spec, len(corpus.train))
    prequential_nats = 0.0  # Σ of each step's mean loss × batch_tokens, summed at each logging interval
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"])
        start_step, elapsed_before = resume["step"], resume["elapsed_s"]
        first_loss, train_loss, val_loss = resume["first_loss"], resume["train_loss"], resume["val_loss"]
        strikes = resume["strikes"]
        prequential_nats = resume.get("prequential_nats")
        if prequential_nats is None:
            no_prequential = no_prequential or "resumed from a checkpoint that did not count the code length"
    started -= elapsed_before  # elapsed time and wall_s count every attempt's training
    last_save = time.perf_counter()

    def validation_loss() -> float:
        # The eager model: a few batches per evaluation do not repay compiling a no-grad graph.
        # Batches of `micro_rows` windows, the most a training forward reads, so memory stays in bounds.
        # The writer evaluates and every rank gets its number, so all take the same decisions.
        return distributed.from_writer(lambda: evaluate(model, val_x, val_y, micro_rows, device, dtype), device)

    for step in range(start_step, steps):
        lr = schedule_lr(spec, step)
        if spec.data.order == "epoch":
            x, y = get_epoch_batch(corpus.train, step, batch_size, spec.shape.seq_len, spec.seed, device, rank,
                                   world_size)
        else:
            x, y = get_batch(corpus.train, batch_size, spec.shape.seq_len, generator, device, rank, world_size)
        loss_sum += accumulate_gradients(step_model, x, y, micro_rows, device, dtype)
        optimizer_step(model, optimizer, lr, spec.train.grad_clip)
        loss_count += 1

        done = step + 1
        if done % log_every and done not in evaluate_after and done not in snapshot_steps:
            continue
        # The only host sync, once per logging interval; the mean over ranks is the whole batch's.
        loss_total = distributed.mean_across_ranks(loss_sum).item()  # Σ over the interval's steps of their mean loss
        train_loss = loss_total / loss_count
        if prequential_nats is not None:
            prequential_nats += loss_total * spec.train.batch_tokens
        loss_sum, loss_count = torch.zeros((), device=device), 0
        first_loss = first_loss or train_loss
        row = {"step": done, "tokens": done * spec.train.batch_tokens, "flops": done * flops_per_step,
               "train_loss": train_loss, "lr": lr, "elapsed_s": round(time.perf_counter() - started, 3)}
        strikes = strikes + 1 if _above_start(train_loss, first_loss, done, steps, spec.train.warmup) else 0
        reason = _divergence(train_loss, first_loss, done, strikes)
        if reason is None and done in evaluate_after:
            val_loss = validation_loss()
            row["val_loss"] = val_loss
            if not math.isfinite(val_loss):
                reason = f"validation loss became {val_loss} at step {done}"
        log(row)
        progress({**row, "steps": steps})
        if reason:
            return _result("diverged", spec, done, None, train_loss, started, memory, dtype, compiled, reason)
        state = lambda: {"step": done, "model": model.state_dict(), "optimizer": optimizer.state_dict(),  # noqa: E731
                         "generator": generator.get_state(), "first_loss": first_loss, "train_loss": train_loss,
                         "val_loss": val_loss, "strikes": strikes, "prequential_nats": prequential_nats,
                         "elapsed_s": time.perf_counter() - started}
        if save_snapshot and done in snapshot_steps:
            save_snapshot(state())
        every = spec.train.checkpoint_every
        if save_checkpoint and every and done < steps and time.perf_counter() - last_save >= every:
            save_checkpoint(state())
            last_save = time.perf_counter()
    if start_step >= steps:  # resumed at its very end (a branch with no cooldown steps): measure it here
        val_loss = validation_loss()
    if final_weights:
        final_weights(model.state_dict())
    compression, compressing = {}, time.perf_counter()
    if distributed.is_writer():  # the one rank that records results
        compression = compress.compression_losses(model, spec.eval, val_loss,
                                                  lambda m: evaluate(m, val_x, val_y, micro_rows, device, dtype))
    prequential_bits = None if no_prequential else prequential_nats / math.log(2)
    return _result("done", spec, steps, val_loss, train_loss, started, memory, dtype, compiled,
                   prequential_bits=prequential_bits, prequential_reason=no_prequential, compression=compression,
                   compression_s=time.perf_counter() - compressing if compression else None)


def _ignore(row: dict) -> None:
    """The callbacks of a rank that does not write."""


# Exploding: the loss stayed 1.5x above where it started for this many logging intervals in a row.
# One high interval is not enough: early spikes (seen at step 11 of a tiny model at lr 1e-2) recover.
EXPLODING_STRIKES = 3


def _above_start(train_loss: float, first_loss: float, step: int, steps: int, warmup: float) -> bool:
    return step > warmup * steps and train_loss > 1.5 * first_loss


def _divergence(train_loss: float, first_loss: float, step: int, strikes: int) -> str | None:
    """A reason to stop, or None: a non-finite loss at once, an exploding one when it persists."""
    if not math.isfinite(train_loss):
        return f"training loss became {train_loss} at step {step}"
    if strikes >= EXPLODING_STRIKES:
        return (f"training loss exploded to {train_loss:.3f} at step {step} (started at {first_loss:.3f}; "
                f"above 1.5x that for {strikes} logging intervals)")
    return None


def _result(status, spec, steps, val_loss, train_loss, started, memory, dtype, compiled, reason=None,
            **measured) -> RunResult:
    wall_s = time.perf_counter() - started
    tokens = steps * spec.train.batch_tokens
    return RunResult(status=status, steps=steps, tokens=tokens, loss=val_loss, train_loss=train_loss,
                     wall_s=wall_s, tokens_per_s=tokens / wall_s, peak_mem_bytes=memory.read(),
                     dtype="bf16" if dtype == torch.bfloat16 else "fp32", compiled=compiled, reason=reason,
                     prequential_reason=measured.pop("prequential_reason", "the run diverged"), **measured)
