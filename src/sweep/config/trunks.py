"""Trunks and branches: how a warmup-stable-decay sweep trains every budget of a size from one run.

With `train.schedule: wsd` the learning rate of every budget D of one (shape, seed, lr) is the same
until D's cooldown starts (`engine.wsd_lr_at`). So one *trunk* trains at the held peak rate, and its
exact state (model, optimizer, data position) is saved at each budget's cooldown start, its *branch
point*. Each budget is then a *branch*: a run that resumes from its branch point and decays over the
last `cooldown` share of its own steps (Hägele et al. 2024, arXiv 2405.18392, §3; OLMo's WSD-S). A
branch ends where a separate wsd run of that budget ends, step for step. The sweep pays for the
longest trunk plus every cooldown instead of every budget in full.

Pure bookkeeping over `RunSpec`s: no torch, no files.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

from sweep.config.spec import RunSpec


@dataclass(frozen=True)
class Trunk:
    """One trunk and the branches that leave it, sorted by branch point."""

    trunk_id: str
    branches: tuple[RunSpec, ...]

    @property
    def branch_steps(self) -> tuple[int, ...]:
        return tuple(sorted({branch.branch_step for branch in self.branches}))

    def spec_to(self, last_step: int) -> RunSpec:
        """The trunk as a run of its own: the branches' settings, held at the peak rate (cooldown 0)
        up to `last_step`. Its `trunk_id` is the branches'."""
        template = self.branches[0]
        train = dataclasses.replace(template.train, cooldown=0.0)
        return dataclasses.replace(template, tokens=last_step * template.train.batch_tokens, train=train)


def trunks(specs: list[RunSpec]) -> list[Trunk]:
    """The wsd specs of `specs` grouped by trunk, in the order their first branch appears."""
    groups: dict[str, list[RunSpec]] = defaultdict(list)
    for spec in specs:
        if spec.train.schedule == "wsd":
            groups[spec.trunk_id].append(spec)
    return [
        Trunk(trunk_id, tuple(sorted(branches, key=lambda s: s.branch_step))) for trunk_id, branches in groups.items()
    ]


def spent_flops(specs: list[RunSpec]) -> tuple[int, int]:
    """(FLOPs the grid costs as trained, FLOPs separate runs of every spec would cost), both 6·N·D.
    A wsd trunk costs its longest branch's steps before the cooldown; each branch its cooldown."""
    separate = sum(spec.flops for spec in specs)
    spent = sum(spec.flops for spec in specs if spec.train.schedule != "wsd")
    for trunk in trunks(specs):
        per_step = trunk.branches[0].flops_per_step
        spent += per_step * max(trunk.branch_steps)
        spent += sum(per_step * (branch.steps - branch.branch_step) for branch in trunk.branches)
    return spent, separate
