"""Train one run: `train(spec, corpus, device, log) -> RunResult`. One readable loop (nanoGPT train.py).

AdamW, linear warmup, then either cosine decay over the run's own token budget or warmup-stable-decay
(`schedules`); gradient clipping, weight decay on matrices only, bf16 autocast where chosen (`steps`,
`device`). On CPU a given seed and thread count give the same numbers. A batch may run as
micro-batches whose gradients accumulate, and across the processes torchrun started
(`sweep.engine.distributed`); either way the update is the unsplit batch's. `train` does no I/O of its
own: what it measures and saves goes to the callbacks it is given.
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
from sweep.engine.device import resolve_dtype, step_module
from sweep.engine.memory import PeakMemory
from sweep.engine.prequential import CodeLength
from sweep.engine.schedules import eval_steps, schedule_lr
from sweep.engine.state import TrainState
from sweep.engine.steps import accumulate_gradients, evaluate, make_optimizer, micro_batch_rows, optimizer_step
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


def _ignore(row: dict) -> None:
    """The callbacks of a rank that does not write."""


def train(
    spec: RunSpec,
    corpus: Corpus,
    device: torch.device,
    log: Log = _ignore,
    progress: Log = _ignore,
    resume: TrainState | None = None,
    save_checkpoint: Callable[[TrainState], None] | None = None,
    final_weights: Callable[[dict], None] | None = None,
    snapshot_steps: frozenset[int] = frozenset(),
    save_snapshot: Callable[[TrainState], None] | None = None,
) -> RunResult:
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
    one process or several alike. Every rank returns the same losses.
    The process's thread count and device settings are its starter's (`device.setup_process`)."""
    if not distributed.is_writer():  # decided here, so no caller can have two processes write one run
        log = progress = _ignore
        save_checkpoint = final_weights = save_snapshot = None
    run = _Run(spec, corpus, device, resume)
    steps = spec.steps
    evaluate_after = eval_steps(steps, spec.train.evals) | snapshot_steps  # a branch starts with its point's loss
    log_every = max(1, steps // 100)
    loss_sum, loss_count = torch.zeros((), device=device), 0
    last_save = time.perf_counter()
    for step in range(run.start_step, steps):
        lr = schedule_lr(spec, step)
        x, y = run.batch(step)
        loss_sum += accumulate_gradients(run.step_model, x, y, run.micro_rows, device, run.dtype)
        optimizer_step(run.model, run.optimizer, lr, spec.train.grad_clip)
        loss_count += 1

        done = step + 1
        if done % log_every and done not in evaluate_after:
            continue
        # The only host sync, once per logging interval; the mean over ranks is the whole batch's.
        loss_total = distributed.mean_across_ranks(loss_sum).item()  # Σ over the interval's steps of their mean loss
        row, reason = run.end_interval(done, loss_total, loss_count, lr, evaluates=done in evaluate_after)
        loss_sum, loss_count = torch.zeros((), device=device), 0
        log(row)
        progress({**row, "steps": steps})
        if reason:
            return run.result("diverged", done, None, reason=reason, prequential_reason="the run diverged")
        if save_snapshot and done in snapshot_steps:
            save_snapshot(run.state(done))
        every = spec.train.checkpoint_every
        if save_checkpoint and every and done < steps and time.perf_counter() - last_save >= every:
            save_checkpoint(run.state(done))
            last_save = time.perf_counter()
    return _finish(run, final_weights)


class _Run:
    """One call of `train`: what it trains with, set up once, and what it has measured so far."""

    def __init__(self, spec: RunSpec, corpus: Corpus, device: torch.device, resume: TrainState | None):
        """The model, optimizer, sampler and validation windows of `spec`, from `resume` where given.
        The order is part of the result: the seed is set just before the model's initialisation draws."""
        self.spec, self.tokens, self.device = spec, corpus.train, device
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.micro_rows = micro_batch_rows(spec, self.world_size)  # first, so a batch that does not split fails at once
        self.started = time.perf_counter()
        self.memory = PeakMemory(device)
        self.dtype = resolve_dtype(spec.train.dtype, device)
        torch.manual_seed(spec.seed)
        self.model = GPT(spec.shape).to(device)
        compiled_model, self.compiled = step_module(self.model, spec.train.compile, device)
        self.step_model = distributed.wrap(compiled_model, device)  # DDP around the compiled module (nanoGPT's order)
        self.optimizer = make_optimizer(self.model, spec, device)
        self.generator = torch.Generator().manual_seed(spec.seed)
        self.val_x, self.val_y = validation_set(corpus.val, spec.shape.seq_len, spec.data.val_tokens)
        self.batch_size = spec.train.batch_tokens // spec.shape.seq_len  # windows of the whole batch, all ranks'
        self.code_length = CodeLength(spec, len(corpus.train), resume)
        self.start_step, self.first_loss, self.train_loss, self.val_loss, self.strikes = 0, None, None, None, 0
        if resume is not None:
            self.model.load_state_dict(resume.model)
            self.optimizer.load_state_dict(resume.optimizer)
            self.generator.set_state(resume.generator)
            self.start_step = resume.step
            self.first_loss, self.train_loss, self.val_loss = resume.first_loss, resume.train_loss, resume.val_loss
            self.strikes = resume.strikes
            self.started -= resume.elapsed_s  # elapsed time and wall_s count every attempt's training

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share x, y (B_share, T) of step `step`'s batch: the epoch's next windows, or
        windows at random."""
        spec = self.spec
        if spec.data.order == "epoch":
            return get_epoch_batch(
                self.tokens,
                step,
                self.batch_size,
                spec.shape.seq_len,
                spec.seed,
                self.device,
                self.rank,
                self.world_size,
            )
        return get_batch(
            self.tokens, self.batch_size, spec.shape.seq_len, self.generator, self.device, self.rank, self.world_size
        )

    def end_interval(
        self, done: int, loss_total: float, loss_count: int, lr: float, evaluates: bool
    ) -> tuple[dict, str | None]:
        """The metrics row of the logging interval that ends after step `done`, whose `loss_count` steps'
        mean losses sum to `loss_total`, and why the run must stop there (it diverged), or None. Where
        `evaluates`, the row has the validation loss."""
        batch_tokens = self.spec.train.batch_tokens
        self.train_loss = loss_total / loss_count
        self.code_length.add(loss_total * batch_tokens)
        self.first_loss = self.first_loss or self.train_loss
        row = {
            "step": done,
            "tokens": done * batch_tokens,
            "flops": done * self.spec.flops_per_step,
            "train_loss": self.train_loss,
            "lr": lr,
            "elapsed_s": round(time.perf_counter() - self.started, 3),
        }
        above = _above_start(self.train_loss, self.first_loss, done, self.spec.steps, self.spec.train.warmup)
        self.strikes = self.strikes + 1 if above else 0
        reason = _divergence(self.train_loss, self.first_loss, done, self.strikes)
        if reason is None and evaluates:
            self.val_loss = self.validation_loss()
            row["val_loss"] = self.val_loss
            if not math.isfinite(self.val_loss):
                reason = f"validation loss became {self.val_loss} at step {done}"
        return row, reason

    def validation_loss(self) -> float:
        # The eager model: a few batches per evaluation do not repay compiling a no-grad graph.
        # The writer evaluates and every rank gets its number, so all take the same decisions.
        return distributed.from_writer(lambda: self.evaluate(self.model), self.device)

    def evaluate(self, model: GPT) -> float:
        """`model`'s loss on the run's validation windows, in its dtype. Batches of `micro_rows` windows,
        the most a training forward reads, so memory stays in bounds."""
        return evaluate(model, self.val_x, self.val_y, self.micro_rows, self.device, self.dtype)

    def state(self, step: int) -> TrainState:
        """The state to resume from after step `step`, holding the live tensors (saved at once)."""
        return TrainState(
            step=step,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            generator=self.generator.get_state(),
            first_loss=self.first_loss,
            train_loss=self.train_loss,
            val_loss=self.val_loss,
            strikes=self.strikes,
            elapsed_s=time.perf_counter() - self.started,
            prequential_nats=self.code_length.nats,
        )

    def result(self, status: str, steps: int, loss: float | None, **measured) -> RunResult:
        """The run's result after `steps` steps, with its wall time and peak memory up to now."""
        wall_s = time.perf_counter() - self.started
        tokens = steps * self.spec.train.batch_tokens
        return RunResult(
            status=status,
            steps=steps,
            tokens=tokens,
            loss=loss,
            train_loss=self.train_loss,
            wall_s=wall_s,
            tokens_per_s=tokens / wall_s,
            peak_mem_bytes=self.memory.read(),
            dtype="bf16" if self.dtype == torch.bfloat16 else "fp32",
            compiled=self.compiled,
            **measured,
        )


def _finish(run: _Run, final_weights: Callable[[dict], None] | None) -> RunResult:
    """The result of a run that trained to its last step: its final validation loss, its weights given
    to `final_weights`, and then, a step of its own, the losses of the compressed variants its
    `eval` asks for (`compress`), which the writer alone measures."""
    if run.start_step >= run.spec.steps:  # resumed at its very end (a branch with no cooldown steps): measure it here
        run.val_loss = run.validation_loss()
    if final_weights:
        final_weights(run.model.state_dict())
    compression, compressing = {}, time.perf_counter()
    if distributed.is_writer():  # the one rank that records results
        compression = compress.compression_losses(run.model, run.spec.eval, run.val_loss, run.evaluate)
    return run.result(
        "done",
        run.spec.steps,
        run.val_loss,
        prequential_bits=run.code_length.bits,
        prequential_reason=run.code_length.reason,
        compression=compression,
        compression_s=time.perf_counter() - compressing if compression else None,
    )


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
        return (
            f"training loss exploded to {train_loss:.3f} at step {step} (started at {first_loss:.3f}; "
            f"above 1.5x that for {strikes} logging intervals)"
        )
    return None
