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
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from sweep.config import RunSpec
from sweep.data import Corpus, get_batch, get_epoch_batch, validation_set
from sweep.engine import compress, distributed
from sweep.engine.device import configure_device, resolve_dtype, step_module
from sweep.engine.memory import PeakMemory
from sweep.engine.prequential import prequential_reason
from sweep.engine.schedules import eval_steps, schedule_lr
from sweep.engine.state import TrainState
from sweep.engine.steps import accumulate_gradients, evaluate, make_optimizer, micro_batch_rows, optimizer_step
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


def train(spec: RunSpec, corpus: Corpus, device: torch.device, log: Log = lambda row: None,
          progress: Log = lambda row: None, resume: TrainState | None = None,
          save_checkpoint: Callable[[TrainState], None] | None = None,
          final_weights: Callable[[dict], None] | None = None,
          snapshot_steps: frozenset[int] = frozenset(),
          save_snapshot: Callable[[TrainState], None] | None = None) -> RunResult:
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
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        generator.set_state(resume.generator)
        start_step, elapsed_before = resume.step, resume.elapsed_s
        first_loss, train_loss, val_loss = resume.first_loss, resume.train_loss, resume.val_loss
        strikes = resume.strikes
        prequential_nats = resume.prequential_nats
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
        state = lambda: TrainState(step=done, model=model.state_dict(), optimizer=optimizer.state_dict(),  # noqa: E731
                                   generator=generator.get_state(), first_loss=first_loss, train_loss=train_loss,
                                   val_loss=val_loss, strikes=strikes, prequential_nats=prequential_nats,
                                   elapsed_s=time.perf_counter() - started)
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
