"""The grid of a sweep: sizes × (tokens, compute budgets or ratios) × learning rates × seeds, each
point a `RunSpec` with its learning rate and warmup resolved."""

from __future__ import annotations

import dataclasses
import itertools

from sweep.config.budgets import budgets
from sweep.config.root import SweepConfig
from sweep.config.rules import LR_RULE, rule_horizon
from sweep.config.sections import TrainConfig
from sweep.config.spec import RunSpec
from sweep.model.flops import param_counts


def wsd_warmup_steps(train: TrainConfig, tokens: list[int]) -> int:
    """wsd: every branch of a trunk shares its warmup, `train.warmup` of the steps of the size's
    smallest budget, so even that budget's cooldown starts after warmup ends."""
    return int(train.warmup * max(1, round(min(tokens) / train.batch_tokens)))


def expand(config: SweepConfig, corpus_sha256: str = "", vocab_size: int = 256) -> list[RunSpec]:
    """The grid: sizes × (tokens, compute budgets or ratios) × learning rates × seeds."""
    pairs = budgets(config, vocab_size)
    rule = dataclasses.replace(config.model, sizes=(), params=())
    specs = []
    for shape, tokens in pairs:
        size_tokens = [t for s, t in pairs if s == shape]
        lrs = config.train.lr
        if lrs in LR_RULE:
            lrs = (LR_RULE[lrs](param_counts(shape).non_embedding, rule_horizon(config.train, tokens, size_tokens)),)
        warmup_steps = 0
        if config.train.schedule == "wsd":
            warmup_steps = wsd_warmup_steps(config.train, size_tokens)
        for lr, seed in itertools.product(lrs, config.seeds):
            train = dataclasses.replace(config.train, lr=lr)
            specs.append(
                RunSpec(
                    config.name, shape, tokens, seed, train, config.data, corpus_sha256, warmup_steps, config.eval, rule
                )
            )
    return specs
