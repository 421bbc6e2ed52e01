"""Learning-rate schedules and when to evaluate: linear warmup, then either cosine decay over the run's
own token budget (Hoffmann et al. 2022: a cosine longer than the run overestimates the loss of short
runs) or warmup-stable-decay, whose constant phase lets every budget of a size branch from one trunk
(Hägele et al. 2024)."""

from __future__ import annotations

import math

from sweep.config import RunSpec


def lr_at(step: int, steps: int, peak_lr: float, warmup: float, min_lr_ratio: float) -> float:
    """Cosine schedule: the learning rate for `step` (0-based) of `steps`: linear warmup over the first
    `warmup` share of steps, then cosine decay to `min_lr_ratio × peak_lr` at the last step."""
    warmup_steps = int(warmup * steps)
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - 1 - warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return peak_lr * (min_lr_ratio + (1 - min_lr_ratio) * cosine)


def wsd_lr_at(
    step: int, steps: int, peak_lr: float, warmup_steps: int, branch_step: int, min_lr_ratio: float, decay: str
) -> float:
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
        return wsd_lr_at(
            step, spec.steps, spec.lr, spec.warmup_steps, spec.branch_step, train.min_lr_ratio, train.decay
        )
    return lr_at(step, spec.steps, spec.lr, train.warmup, train.min_lr_ratio)


def eval_steps(steps: int, evals: int) -> set[int]:
    """Steps after which validation loss is measured: `evals` evenly spaced ones and the last."""
    return {round(steps * k / (evals + 1)) for k in range(1, evals + 1)} - {0} | {steps}
