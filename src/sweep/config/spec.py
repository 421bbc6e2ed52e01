"""`RunSpec`: one point of the grid, fully resolved, and its identity: the run id a store names it by
and, under wsd, the id of the trunk it branches from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from sweep.config.sections import (
    BRANCH_ONLY,
    NEVER,
    UNLESS_DEFAULT,
    WSD_ONLY,
    DataConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
)
from sweep.model.flops import flops_per_token
from sweep.model.shape import ModelShape


@dataclass(frozen=True)
class RunSpec:
    """One point of the grid, fully resolved: everything that decides its result."""

    sweep: str
    shape: ModelShape
    tokens: int = field(metadata=BRANCH_ONLY)  # a trunk serves every budget of its size
    seed: int
    train: TrainConfig  # train.lr: the one learning rate this run trains at, resolved (`lr` reads it)
    data: DataConfig
    corpus_sha256: str = ""
    # wsd: warmup shared by every branch of a trunk; cosine: 0 (a share of its own steps)
    warmup_steps: int = field(default=0, metadata={"identity": WSD_ONLY})
    eval: EvalConfig = field(default=EvalConfig(), metadata={"identity": NEVER})
    # The params rule's settings (the model section less its ladder): the shape already holds what they
    # decide, so they are in no id; spec.json keeps them so that `sweep predict` can apply the sweep's rule.
    # None: read from a spec.json written before they were kept.
    model: ModelConfig | None = field(default=None, compare=False, metadata={"identity": NEVER})

    def __post_init__(self):
        if isinstance(self.train.lr, bool) or not isinstance(self.train.lr, (int, float)):
            raise ValueError(
                f"run {self.shape.name} at {self.tokens} tokens: train.lr must be the one learning rate "
                f"it trains at, a number; got {self.train.lr!r}"
            )
        if self.train.schedule == "wsd" and not 0 <= self.warmup_steps <= self.branch_step:
            raise ValueError(
                f"wsd run {self.shape.name} at {self.tokens} tokens: warmup of {self.warmup_steps} steps "
                f"runs past its branch point at step {self.branch_step}"
            )

    @property
    def lr(self) -> float:
        """The peak learning rate this run trains at: `train.lr`, resolved from the config's grid or rule."""
        return self.train.lr

    def to_dict(self) -> dict:
        """What spec.json stores. The rate appears at the top level too, as in every spec.json written
        when RunSpec held it twice; `identity` hashes it there, so the run ids stay what they were."""
        return {**dataclasses.asdict(self), "lr": self.lr}

    @property
    def steps(self) -> int:
        """Optimizer steps: the token budget in whole batches."""
        return max(1, round(self.tokens / self.train.batch_tokens))

    @property
    def branch_step(self) -> int:
        """wsd: the step at which this budget's cooldown starts, where its branch leaves the trunk."""
        if self.train.schedule != "wsd":
            return 0
        return self.steps - round(self.train.cooldown * self.steps)

    @property
    def flops(self) -> int:
        """6·N·D of this run's budget, N non-embedding: the cost sweeps are ordered and shown by."""
        return flops_per_token(self.shape, "6n") * self.tokens

    @property
    def flops_per_step(self) -> int:
        """6·N per token × batch_tokens, N non-embedding: the FLOPs of one optimizer step, in the
        convention of `flops`."""
        return flops_per_token(self.shape, "6n") * self.train.batch_tokens

    def identity(self) -> dict:
        """The fields that decide the result, by each field's "identity" metadata (`sections.NEVER`,
        `WSD_ONLY`, `UNLESS_DEFAULT`). Thread count, checkpoint interval, compiling, micro-batching,
        training across processes and device change rounding, not what is trained, trackers only
        watch it, and `eval` measures copies of the final weights, so running the same config again
        elsewhere skips what is done. The schedule's fields enter only for wsd, so cosine runs keep the
        ids they had before schedules existed."""
        wsd = self.train.schedule == "wsd"
        return _without(self, self.to_dict(), lambda f, value: not _decides(f, value, wsd))

    @property
    def run_id(self) -> str:
        """Readable prefix plus a hash of `identity()`."""
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        return f"{self.shape.name}-D{_short_number(self.tokens)}-s{self.seed}-{digest[:8]}"

    @property
    def trunk_id(self) -> str:
        """wsd: the trunk this run branches from, shared by every budget of one (shape, seed, lr):
        the identity less what only the cooldown uses (its length, shape and floor, the evaluations)."""
        identity = _without(self, self.identity(), lambda f, value: f.metadata.get("branch_only", False))
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        return f"trunk-{self.shape.name}-s{self.seed}-{digest[:8]}"


def _decides(f: dataclasses.Field, value, wsd: bool) -> bool:
    """Whether field `f`, holding `value`, enters the run id of a spec under wsd or not."""
    rule = f.metadata.get("identity")
    return not (rule == NEVER or (rule == WSD_ONLY and not wsd) or (rule == UNLESS_DEFAULT and value == f.default))


def _without(section, record: dict, left_out) -> dict:
    """`record`, `section` as a dict, less each field (of nested sections too) that `left_out(field,
    value)` names; a field already gone stays gone."""
    for f in dataclasses.fields(section):
        if f.name not in record:
            continue
        value = getattr(section, f.name)
        if left_out(f, value):
            del record[f.name]
        elif dataclasses.is_dataclass(value):
            _without(value, record[f.name], left_out)
    return record


def _short_number(value: float) -> str:
    mantissa, exponent = f"{value:.3e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def spec_from_dict(record: dict) -> RunSpec:
    """Inverse of `RunSpec.to_dict`, for specs read back from the store. A spec written before
    schedules existed was trained with cosine decay. The rate is the top-level "lr": the one a run
    trained at when RunSpec held it beside `train.lr`, which every spec.json has."""
    train = {"schedule": "cosine", **record["train"], "lr": record["lr"]}
    return RunSpec(
        sweep=record["sweep"],
        shape=ModelShape(**record["shape"]),
        tokens=record["tokens"],
        seed=record["seed"],
        train=TrainConfig(**train),
        data=DataConfig(**record["data"]),
        corpus_sha256=record.get("corpus_sha256", ""),
        warmup_steps=record.get("warmup_steps", 0),
        eval=EvalConfig(**record.get("eval", {})),
        model=ModelConfig(**{**record["model"], "sizes": (), "params": ()}) if record.get("model") else None,
    )
