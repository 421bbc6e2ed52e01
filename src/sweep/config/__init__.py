"""Sweep configuration: YAML → typed, frozen config objects → the grid of `RunSpec`s.

Loading follows one order (litgpt's `Config.__post_init__`): fill defaults, validate, then derive.
Every problem is collected with its key path and reported together; an unknown key names the
nearest valid one (nanoGPT's configurator refuses unknown keys too). PyYAML reads `1e6` as a string
(YAML 1.1 wants a dot), so numeric fields accept numeric strings. YAML is read strictly (`_ConfigLoader`):
no alias bombs, no nesting deeper than a config needs, no key given twice. Sizes, threads, seeds and
the memory a run needs are bounded (`limits.py`) before anything is allocated, and a message echoes
at most about 60 characters of any value.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sweep.config import limits
from sweep.errors import ConfigError, SweepError
from sweep.model.flops import flops_per_token, param_counts
from sweep.errors import cut, shown
from sweep.config.strict_yaml import load_yaml
from sweep.model.shape import ACTIVATIONS, NORMS, POSITIONS, ModelShape, default_d_ff, default_heads

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "fp32", "bf16")
BIN_DTYPES = ("uint8", "uint16")
TOKENIZERS = ("bytes", "bpe")  # or the path of a tokenizer.json
MALFORMED = ("error", "skip")
ORDERS = ("random", "epoch")
SCHEDULES = ("cosine", "wsd")
DECAYS = ("linear", "sqrt")
LR_RULES = ("auto", "kaplan")
TRACKERS = ("wandb", "tensorboard")  # train.log: `sweep.runner.trackers`
DEFAULT_VAL_TOKENS = 65536
MIN_BPE_VOCAB = 258


def _choices(*allowed: str) -> dict:
    return {"choices": allowed}


@dataclass(frozen=True)
class DataConfig:
    # 'stdlib', a text file, a .jsonl or .parquet file, a directory or glob of them, or a token .bin
    corpus: str = "stdlib"
    seq_len: int = 256
    val_fraction: float = 0.02  # share of documents held out for validation
    # Targets of the fixed validation set each evaluation reads. A value given must fit in the
    # validation split (`data.load_corpus`); the default is a cap, so a small corpus reads all of its split.
    val_tokens: int = DEFAULT_VAL_TOKENS
    chunk_tokens: int = 65536  # a single file or .bin is cut into documents of this many tokens
    bin_dtype: str = field(default="uint16", metadata=_choices(*BIN_DTYPES))
    # .bin: 0 = largest token + 1. Text: bpe's vocabulary (required); a tokenizer file's if 0.
    vocab_size: int = 0
    # Text: 'bytes' (vocabulary 256), 'bpe' (byte-level BPE trained on the training split, cached in
    # the store) or the path of a Hugging Face tokenizer.json (`sweep.data.tokenizer`).
    tokenizer: str = "bytes"
    text_field: str = "text"  # .jsonl and .parquet: the field or column that holds each document's text
    malformed: str = field(default="error", metadata=_choices(*MALFORMED))  # .jsonl lines: 'skip' counts and leaves them out
    # How training windows are drawn (`data.get_batch`): 'random' starts, which overlap and repeat, or
    # 'epoch': the non-overlapping windows in a seeded shuffle, each read once per epoch, which is
    # what a prequential code length needs (`train.prequential_reason`).
    order: str = field(default="random", metadata=_choices(*ORDERS))


@dataclass(frozen=True)
class SizeConfig:
    """One explicit rung of the ladder. n_heads 0 = d_model / head_dim; d_ff 0 = the activation's default."""

    n_layers: int
    d_model: int
    n_heads: int = 0
    d_ff: int = 0


@dataclass(frozen=True)
class ModelConfig:
    sizes: tuple[SizeConfig, ...] = ()
    params: tuple[int, ...] = ()  # target non-embedding parameters; shapes from `shape_for_params`
    norm: str = field(default="rmsnorm", metadata=_choices(*NORMS))
    activation: str = field(default="gelu", metadata=_choices(*ACTIVATIONS))
    positions: str = field(default="rotary", metadata=_choices(*POSITIONS))
    tie_embeddings: bool = True
    aspect_ratio: int = 32  # d_model / n_layers aimed at by the params rule (nanochat uses 64)
    head_dim: int = 64  # GPT-2's; on CPU 64-wide heads trained 1.35x faster than 32-wide at 3M params


@dataclass(frozen=True)
class TrainConfig:
    batch_tokens: int = 8192
    lr: Any = (3e-3,)  # a number, a list (a grid axis), 'auto' (`lr_for_params`) or 'kaplan' (`kaplan_lr`)
    warmup: float = 0.05  # share of the steps warming up linearly; wsd: of the size's smallest budget
    min_lr_ratio: float = 0.1  # the schedule decays to this share of the peak (Hoffmann et al. 2022)
    schedule: str = field(default="wsd", metadata=_choices(*SCHEDULES))  # see `train.lr_at`
    cooldown: float = 0.2  # wsd: share of each budget's steps spent decaying (Hägele et al. 2024)
    decay: str = field(default="linear", metadata=_choices(*DECAYS))  # wsd: the cooldown's shape
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.95
    evals: int = 4  # validation evaluations during the run, besides the final one
    dtype: str = field(default="auto", metadata=_choices(*DTYPES))
    threads: int = 0  # CPU threads per run; 0 = all cores
    compile: Any = "auto"  # torch.compile the model: true, false, or 'auto' (on CUDA only)
    checkpoint_every: float = 300.0  # seconds between checkpoints of a run in training; 0 = none
    # Tokens one process runs through forward and backward at a time; 0 = its whole share of the batch.
    # Gradients accumulate to the unsplit batch's update (`train.accumulate_gradients`), so only memory
    # and rounding change: it is left out of the run id.
    micro_batch_tokens: int = 0
    # Train each run across the processes torchrun started (`sweep.engine.distributed`): every process takes
    # its share of each batch, with the same batches and update as one process. Not in the run id either.
    ddp: bool = False
    # Experiment trackers each run's metrics rows also go to (`sweep.runner.trackers`). They record a run, they
    # do not change it: not in the run id.
    log: tuple[str, ...] = field(default=(), metadata=_choices(*TRACKERS))

    def __post_init__(self):
        # A spec read back from JSON holds a list: a tuple keeps the config hashable; one tracker once.
        object.__setattr__(self, "log", tuple(dict.fromkeys(self.log)))


@dataclass(frozen=True)
class EvalConfig:
    """Post-training compression of every finished run (`compress.py`): its validation loss with the
    matmul weights rounded to each of `quantize`'s bit widths, and with each share of `prune` of them
    zeroed by magnitude. It evaluates a copy of the final weights and trains nothing, so it is in no
    run id."""

    quantize: tuple[int, ...] = ()  # bit widths, 2-16
    prune: tuple[float, ...] = ()  # shares of each matrix's entries, 0 < share < 1
    embeddings: bool = False  # compress the embeddings and the output head too

    def __post_init__(self):
        # A spec read back from JSON holds lists; each variant once, in the order given.
        object.__setattr__(self, "quantize", tuple(dict.fromkeys(self.quantize)))
        object.__setattr__(self, "prune", tuple(dict.fromkeys(self.prune)))


CLUSTERS = ("auto", "slurm", "local")


@dataclass(frozen=True)
class ExecutorConfig:
    """The `executor:` section: how `sweep run --executor slurm|ray` trains a sweep, as W `sweep
    worker`s started as batch jobs (submitit) or Ray tasks (`sweep.launch.slurm`, `.ray_cluster`).
    Where a run trains does not change what it trains: no field enters a run id (`RunSpec` never
    holds this section)."""

    workers: int = 2  # W: workers started, each one batch job or Ray task training one run at a time
    # submitit: 'slurm'; 'local' runs the jobs as processes of this machine (one box, tests); 'auto' is
    # slurm when sbatch is on PATH, else local.
    cluster: str = field(default="auto", metadata=_choices(*CLUSTERS))
    partition: str = ""  # SLURM partition; '' = the cluster's default
    gpus_per_node: int = 0  # GPUs of each job (Ray: of each task); on CUDA a worker trains one run per GPU
    cpus_per_task: int = 1  # CPU cores of each job or Ray task
    mem_gb: float = 0.0  # memory of each job; 0 = the cluster's default
    # A job's time limit. A job that reaches it (or is preempted) is requeued by submitit, and its run
    # in flight resumes from its checkpoint in the next job.
    timeout_min: int = 60
    array_parallelism: int = 0  # jobs of the array running at once (sbatch --array=...%N); 0 = all W
    sbatch: tuple[str, ...] = ()  # more sbatch settings as 'key=value', e.g. ['qos=high', 'account=lab']
    address: str = ""  # Ray cluster to join; '' = the running one, else a new one on this machine
    device: str = field(default="auto", metadata=_choices(*DEVICES))  # what each worker trains on
    threads: int = 0  # CPU threads of each worker's run; 0 = cpus_per_task


@dataclass(frozen=True)
class SweepConfig:
    name: str
    tokens: tuple[int, ...] = ()  # training-token budgets: an N × D grid ...
    flops: tuple[float, ...] = ()  # ... or compute budgets C: each size trains C / 6N tokens (IsoFLOP) ...
    tokens_per_param: tuple[float, ...] = ()  # ... or ratios r: each size trains r·N tokens
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    seeds: tuple[int, ...] = (0,)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    device: str = field(default="auto", metadata=_choices(*DEVICES))
    executor: ExecutorConfig = ExecutorConfig()  # only `sweep run --executor` reads it; in no run id


@dataclass(frozen=True)
class RunSpec:
    """One point of the grid, fully resolved: everything that decides its result."""

    sweep: str
    shape: ModelShape
    tokens: int
    seed: int
    lr: float
    train: TrainConfig  # train.lr holds the resolved number too
    data: DataConfig
    corpus_sha256: str = ""
    warmup_steps: int = 0  # wsd: warmup shared by every branch of a trunk; cosine: 0 (a share of its own steps)
    eval: EvalConfig = EvalConfig()

    def __post_init__(self):
        if self.train.schedule == "wsd" and not 0 <= self.warmup_steps <= self.branch_step:
            raise ValueError(f"wsd run {self.shape.name} at {self.tokens} tokens: warmup of {self.warmup_steps} steps "
                             f"runs past its branch point at step {self.branch_step}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

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

    def identity(self) -> dict:
        """The fields that decide the result. Thread count, checkpoint interval, compiling, micro-batching,
        training across processes and device change rounding, not what is trained, trackers only
        watch it, and `eval` measures copies of the final weights, so running the same config again
        elsewhere skips what is done. The schedule's fields enter only for wsd, so cosine runs keep the
        ids they had before schedules existed."""
        identity = self.to_dict()
        identity.pop("eval")
        for how_not_what in ("threads", "checkpoint_every", "compile", "micro_batch_tokens", "ddp", "log"):
            identity["train"].pop(how_not_what)
        # What text was read and how it was tokenised is in corpus_sha256 (`data.load_corpus`); these
        # fields enter only where they name a tokenizer, so byte-level runs keep the ids they had.
        for in_the_hash in ("text_field", "malformed"):
            identity["data"].pop(in_the_hash)
        if self.data.tokenizer == "bytes":
            identity["data"].pop("tokenizer")
        if self.data.order == "random":  # runs from before `data.order` keep their ids
            identity["data"].pop("order")
        if self.train.schedule == "cosine":
            for wsd_only in ("schedule", "cooldown", "decay"):
                identity["train"].pop(wsd_only)
            identity.pop("warmup_steps")
        return identity

    @property
    def run_id(self) -> str:
        """Readable prefix plus a hash of `identity()`."""
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        return f"{self.shape.name}-D{_short_number(self.tokens)}-s{self.seed}-{digest[:8]}"

    @property
    def trunk_id(self) -> str:
        """wsd: the trunk this run branches from, shared by every budget of one (shape, seed, lr):
        the identity less what only the cooldown uses (its length, shape and floor, the evaluations)."""
        identity = self.identity()
        identity.pop("tokens")
        for branch_only in ("cooldown", "decay", "min_lr_ratio", "evals"):
            identity["train"].pop(branch_only)
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        return f"trunk-{self.shape.name}-s{self.seed}-{digest[:8]}"


def _short_number(value: float) -> str:
    mantissa, exponent = f"{value:.3e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


# --- the shape rule and the learning-rate rule ---------------------------------------------------


def _width_grid(limit: int = 8192):
    """d_model values the params rule steps through: fine where one step moves N most (N grows as
    d², so a step of g moves it by about 2g/d): multiples of 4 below 128, 8 below 512, 16 below 2048,
    then 32, so a step moves N by at most 7% from d = 128 on."""
    return [*range(8, 128, 4), *range(128, 512, 8), *range(512, 2048, 16), *range(2048, limit + 1, 32)]


def depth_for_width(d_model: int, aspect_ratio: int) -> int:
    """The params rule's one dial: depth follows width, n_layers = round(d_model / aspect_ratio), at
    least 1 (nanochat derives width from depth the same way). Never decreasing in d_model."""
    return max(1, round(d_model / aspect_ratio))


def shape_for_params(target: int, model: ModelConfig, seq_len: int, vocab_size: int) -> ModelShape:
    """The shape on the one-dial path (d_model, depth_for_width(d_model)) whose non-embedding count is
    nearest `target` in log terms. N grows with d_model along the path, so a larger target never gets
    fewer layers or a narrower model: a ladder never jumps in depth the way a free search did
    (targets 1e4, 3e4, 1e5, 3e5 gave L3-d16, L1-d48, L2-d64, L2-d112). Where the depth steps up N
    jumps by (L+1)/L at equal width, so a target between the two ends lands up to √2 (L = 1 → 2)
    away; from L = 5 (about 1e6 at aspect 32) the nearest shape is within 10%. Heads follow
    `default_heads`; rotary needs an even head size."""
    best, best_score = None, math.inf
    for d_model in _width_grid():
        shape = _shape(model, depth_for_width(d_model, model.aspect_ratio), d_model, 0, 0, seq_len, vocab_size)
        if model.positions == "rotary" and shape.head_dim % 2:
            continue
        n = param_counts(shape).non_embedding
        score = abs(math.log(n / target))
        if score < best_score:
            best, best_score = shape, score
        if n > 2 * target:
            break
    return best


def params_rule_limit(model: ModelConfig) -> int:
    """The most non-embedding parameters `shape_for_params` reaches: those of its widest shape."""
    widest = _width_grid()[-1]
    shape = _shape(model, depth_for_width(widest, model.aspect_ratio), widest, 0, 0, seq_len=256, vocab_size=256)
    return param_counts(shape).non_embedding


# `lr: auto`: lr*(N) = LR_AUTO_COEFFICIENT · N^-LR_AUTO_EXPONENT, N non-embedding, fit to the best
# learning rate of an lr grid (1e-3 to 3.2e-2) at 12k, 99k and 332k parameters on this engine: wsd,
# 2M tokens, 1024-token batches, AdamW, byte-level stdlib text; optima 0.0164, 0.0067, 0.0028
# (`python scripts/lr_rule.py`, README "A learning rate per size"). Outside 1e4-3e5 it extrapolates.
LR_AUTO_COEFFICIENT = 2.537
LR_AUTO_EXPONENT = 0.5294
# Longer training wants a lower rate: lr* ∝ D^-0.32 for AdamW (Bjorck et al. 2024, arXiv 2409.19913,
# "Scaling Optimal LR Across Token Horizons"). Measured here only in direction (README, "A learning
# rate per size": at 332k the rule's rate wins to 2.6M tokens and loses at 8M), so their exponent.
LR_AUTO_TOKENS = 2e6
LR_HORIZON_EXPONENT = 0.32


def lr_for_params(non_embedding_params: int, tokens: float = LR_AUTO_TOKENS) -> float:
    """`lr: auto`, the rule measured on this engine (see LR_AUTO_COEFFICIENT), moved from the 2M
    tokens it was measured at to a horizon of `tokens` (see LR_HORIZON_EXPONENT)."""
    horizon = (tokens / LR_AUTO_TOKENS) ** -LR_HORIZON_EXPONENT
    return LR_AUTO_COEFFICIENT * non_embedding_params ** -LR_AUTO_EXPONENT * horizon


def kaplan_lr(non_embedding_params: int, tokens: float = 0) -> float:
    """`lr: kaplan`: Kaplan et al. 2020, App. D.6, eq. D.1: LR(N) ≈ 0.003239 − 0.0001395·ln N, for Adam
    with warmup and decay; N non-embedding parameters. It does not depend on the horizon."""
    return 0.003239 - 0.0001395 * math.log(non_embedding_params)


LR_RULE = {"auto": lr_for_params, "kaplan": kaplan_lr}


def _shape(model: ModelConfig, n_layers, d_model, n_heads, d_ff, seq_len, vocab_size) -> ModelShape:
    return ModelShape(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads or default_heads(d_model, model.head_dim),
        d_ff=d_ff or default_d_ff(d_model, model.activation),
        vocab_size=vocab_size,
        seq_len=seq_len,
        norm=model.norm,
        activation=model.activation,
        positions=model.positions,
        tie_embeddings=model.tie_embeddings,
    )


def model_shapes(config: SweepConfig, vocab_size: int = 256) -> list[ModelShape]:
    """The ladder, smallest first, in the order given."""
    model, seq_len = config.model, config.data.seq_len
    if model.sizes:
        return [_shape(model, s.n_layers, s.d_model, s.n_heads, s.d_ff, seq_len, vocab_size) for s in model.sizes]
    return [shape_for_params(n, model, seq_len, vocab_size) for n in model.params]


def tokens_for_flops(shape: ModelShape, flops: float, batch_tokens: int) -> int:
    """Tokens that spend `flops` on `shape` under C = 6·N·D (N non-embedding, the FLOPs convention
    `sweep fit` groups by), in whole batches: runs of one budget form an IsoFLOP group
    (Hoffmann et al. 2022, Approach 2)."""
    return round(flops / (6 * param_counts(shape).non_embedding) / batch_tokens) * batch_tokens


def tokens_for_ratio(shape: ModelShape, tokens_per_param: float, batch_tokens: int) -> int:
    """r·N tokens, N non-embedding (the N `sweep fit` uses by default), in whole batches: every rung
    of the ladder sits at the same tokens per parameter, as the OLMo and Marin ladders train."""
    return round(tokens_per_param * param_counts(shape).non_embedding / batch_tokens) * batch_tokens


def budgets(config: SweepConfig, vocab_size: int = 256) -> list[tuple[ModelShape, int]]:
    """(shape, training tokens) pairs of the grid: sizes × tokens, × compute budgets, or × ratios."""
    shapes = model_shapes(config, vocab_size)
    batch = config.train.batch_tokens
    if config.flops:
        return [(shape, tokens_for_flops(shape, c, batch)) for shape in shapes for c in config.flops]
    if config.tokens_per_param:
        return [(shape, tokens_for_ratio(shape, r, batch)) for shape in shapes for r in config.tokens_per_param]
    return list(itertools.product(shapes, config.tokens))


def wsd_warmup_steps(train: TrainConfig, tokens: list[int]) -> int:
    """wsd: every branch of a trunk shares its warmup, `train.warmup` of the steps of the size's
    smallest budget, so even that budget's cooldown starts after warmup ends."""
    return int(train.warmup * max(1, round(min(tokens) / train.batch_tokens)))


def rule_horizon(train: TrainConfig, tokens: int, size_tokens: list[int]) -> int:
    """The training length an lr rule tunes for. A cosine run is tuned for its own budget; under wsd
    every budget of a size branches off one trunk at one rate, which is tuned for the largest budget:
    the one a sweep extrapolates from, and where a too-high rate costs most."""
    return max(size_tokens) if train.schedule == "wsd" else tokens


def expand(config: SweepConfig, corpus_sha256: str = "", vocab_size: int = 256) -> list[RunSpec]:
    """The grid: sizes × (tokens, compute budgets or ratios) × learning rates × seeds."""
    pairs = budgets(config, vocab_size)
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
            specs.append(RunSpec(config.name, shape, tokens, seed, lr, train, config.data, corpus_sha256, warmup_steps,
                                 config.eval))
    return specs


# --- loading -------------------------------------------------------------------------------------


def load_config(path: str | Path, overrides: list[str] = ()) -> SweepConfig:
    """Read a sweep YAML, apply `--set key.path=value` overrides, validate everything at once."""
    path = Path(path)
    name = cut(str(path), 200)
    if path.is_dir():
        raise SweepError(f"config: {name} is a directory, not a YAML file")
    if not path.is_file():
        raise SweepError(f"config file not found: {name}")
    try:
        raw = load_yaml(path.read_text(), f"{name}:")
    except yaml.YAMLError as err:
        raise SweepError(f"{name}: not valid YAML: {cut(str(err), 400)}") from None
    except UnicodeDecodeError:
        raise SweepError(f"{name}: not a text file") from None
    if not isinstance(raw, dict):
        raise SweepError(f"{name}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    for override in overrides:
        _apply_override(raw, override)
    return parse_config(raw)


def parse_config(raw: dict, memory_bytes: int | None = None) -> SweepConfig:
    """Validate a config read from YAML. `memory_bytes` is what one run may use: by default this
    machine's RAM (`limits.physical_memory_bytes`)."""
    problems: list[str] = []
    if sum(_given(raw, key) for key in ("tokens", "flops", "tokens_per_param")) != 1:  # known before parsing
        problems.append("tokens: give exactly one of 'tokens' (training-token budgets), 'flops' (compute budgets) "
                        "or 'tokens_per_param' (ratios r: each size trains r·N tokens)")
    config = _build(SweepConfig, raw, "", problems)
    if not problems:
        _check_memory(config, limits.physical_memory_bytes() if memory_bytes is None else memory_bytes, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _given(raw: dict, key: str) -> bool:
    """Present with a value: `tokens: 0` is given (and then refused as not positive), `tokens: []` is not."""
    return key in raw and raw[key] is not None and raw[key] != [] and raw[key] != ""


def _apply_override(raw: dict, override: str) -> None:
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SweepError(f"--set {shown(override)}: expected key.path=value, e.g. train.lr=1e-3")
    try:
        value = load_yaml(text, "--set", root=cut(key))
    except yaml.YAMLError:
        value = text
    node: Any = raw
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SweepError(f"--set {cut(key)}: {cut('.'.join(parts[:depth]))} has no item {shown(part)}")
            part = int(part)
        elif not isinstance(node, dict):
            raise SweepError(f"--set {cut(key)}: {cut('.'.join(parts[:depth]))} is not a mapping")
        if last:
            node[part] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]


def _build(cls, raw: Any, path: str, problems: list[str]):
    """Build dataclass `cls` from a mapping; append every problem to `problems`; None if any."""
    where = path or "config"
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping, got {_kind(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values, before = {}, len(problems)
    for key, value in raw.items():
        key_path = f"{path}.{cut(str(key))}" if path else cut(str(key))
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(fields)}"
            problems.append(f"{key_path}: unknown key{hint}")
            continue
        values[key] = _coerce(value, hints[key], fields[key], key_path, problems)
    for name, f in fields.items():
        if name not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{path + '.' if path else ''}{name}: required key is missing")
    if len(problems) > before:
        return None
    built = cls(**values)
    for name, f in fields.items():  # sections left out get their defaults, checked like given ones
        if name not in raw and dataclasses.is_dataclass(hints[name]) and hints[name] in _CHECKS:
            _CHECKS[hints[name]](getattr(built, name), f"{path}.{name}" if path else name, problems)
    check = _CHECKS.get(cls)
    if check and len(problems) == before:
        check(built, path, problems)
    return built


def _coerce(value: Any, hint: Any, f: dataclasses.Field, path: str, problems: list[str]):
    if f.name == "lr" and hint is Any:
        return _coerce_lr(value, path, problems)
    if f.name == "compile" and hint is Any:
        if value != "auto" and not isinstance(value, bool):
            problems.append(f"{path}: expected true, false or 'auto', got {_kind(value)}")
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, problems)
    if typing.get_origin(hint) is tuple:
        item_hint = typing.get_args(hint)[0]
        items = value if isinstance(value, list) else [value]
        return tuple(_coerce(item, item_hint, f, f"{path}[{i}]", problems) for i, item in enumerate(items))
    if hint is bool:
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true or false, got {_kind(value)}")
        return value
    if hint in (int, float):
        number = _number(value)
        if number is None or (hint is int and not float(number).is_integer()):
            problems.append(f"{path}: expected {'an integer' if hint is int else 'a number'}, got {_kind(value)}")
            return None
        return int(number) if hint is int else float(number)
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {_kind(value)}")
            return None
        allowed = f.metadata.get("choices")
        if allowed and value not in allowed:
            problems.append(f"{path}: {shown(value)} is not one of {', '.join(allowed)}")
        return value
    raise TypeError(f"no coercion for {hint}")  # a programming error, not a user's


def _coerce_lr(value: Any, path: str, problems: list[str]):
    if value in LR_RULES:
        return value
    items = value if isinstance(value, list) else [value]
    numbers = [_number(item) for item in items]
    if not items or any(n is None or n <= 0 for n in numbers):
        problems.append(f"{path}: expected a positive number, a list of them, 'auto' or 'kaplan', got {shown(value)}")
        return None
    return tuple(float(n) for n in numbers)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return value if math.isfinite(value) else None
        except OverflowError:  # an integer beyond float range: no size, budget or seed is that large
            return None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return f"{type(value).__name__} {shown(value)}"


def _need(problems: list[str], ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def _check_data(data: DataConfig, path: str, problems: list[str]) -> None:
    need = lambda ok, message: _need(problems, ok, f"{path}.{message}")  # noqa: E731
    need(bool(data.corpus.strip()), "corpus: must name 'stdlib' or a path")
    need(data.seq_len >= 8, f"seq_len: {data.seq_len} is too short (at least 8)")
    need(0 < data.val_fraction < 0.5, f"val_fraction: {data.val_fraction} must be between 0 and 0.5")
    need(data.val_tokens >= data.seq_len, f"val_tokens: {data.val_tokens} is less than one sequence ({data.seq_len})")
    need(data.chunk_tokens >= 2 * data.seq_len, f"chunk_tokens: {data.chunk_tokens} must be at least 2 × seq_len")
    need(data.vocab_size >= 0, f"vocab_size: {data.vocab_size} must be 0 (auto) or positive")
    need(data.vocab_size <= limits.MAX_VOCAB, f"vocab_size: {shown(data.vocab_size)} is more than {limits.MAX_VOCAB:,}")
    named_file = data.tokenizer not in TOKENIZERS
    need(not named_file or data.tokenizer.endswith(".json"),
         f"tokenizer: {shown(data.tokenizer)} is not 'bytes', 'bpe' or the path of a tokenizer .json file")
    need(data.tokenizer != "bpe" or data.vocab_size >= MIN_BPE_VOCAB,
         f"vocab_size: tokenizer bpe needs a vocabulary of at least {MIN_BPE_VOCAB} (256 bytes, the document "
         f"separator and merges), e.g. data.vocab_size: 2048; got {data.vocab_size}")
    need(data.tokenizer == "bytes" or not data.corpus.endswith(".bin"),
         f"tokenizer: {shown(data.tokenizer)} applies to text; a .bin corpus holds tokens already")
    need(bool(data.text_field.strip()), "text_field: must name a field")


def _check_model(model: ModelConfig, path: str, problems: list[str]) -> None:
    need = lambda ok, message: _need(problems, ok, f"{path}{message}")  # noqa: E731
    need(bool(model.sizes) != bool(model.params),
         ": give exactly one of 'sizes' (explicit shapes) or 'params' (target non-embedding params)")
    need(model.aspect_ratio >= 1, f".aspect_ratio: {model.aspect_ratio} must be at least 1")
    need(model.head_dim >= 2 and model.head_dim % 2 == 0, f".head_dim: {model.head_dim} must be even and at least 2")
    limit = params_rule_limit(model) if model.params and model.aspect_ratio >= 1 else math.inf
    for i, n in enumerate(model.params):
        need(n >= 1000, f".params[{i}]: {n} is too small (at least 1000 non-embedding parameters)")
        need(n <= limit, f".params[{i}]: {n:.3g} is more than the params rule's largest shape holds "
                         f"({limit:.3g} non-embedding parameters); give model.sizes instead")
    for i, size in enumerate(model.sizes):
        _check_size(size, model, f"{path}.sizes[{i}]", problems)


def _check_size(size: SizeConfig, model: ModelConfig, where: str, problems: list[str]) -> None:
    need = lambda ok, message: _need(problems, ok, f"{where}{message}")  # noqa: E731
    before = len(problems)
    for name, limit in (("n_layers", limits.MAX_LAYERS), ("d_model", limits.MAX_D_MODEL), ("d_ff", limits.MAX_D_FF)):
        need(getattr(size, name) <= limit, f".{name}: {shown(getattr(size, name))} is more than {limit:,}")
    need(size.n_layers >= 1, f".n_layers: {size.n_layers} must be at least 1")
    need(size.d_model >= 1, f".d_model: {size.d_model} must be at least 1")
    need(size.n_heads >= 0, f".n_heads: {size.n_heads} must be positive")
    need(size.d_ff >= 0, f".d_ff: {size.d_ff} must be positive")
    if len(problems) > before:
        return
    heads = size.n_heads or default_heads(size.d_model, model.head_dim)
    need(size.d_model % heads == 0, f": d_model {size.d_model} is not divisible by n_heads {shown(heads)}")
    rotary_ok = model.positions != "rotary" or size.d_model % heads or (size.d_model // heads) % 2 == 0
    need(rotary_ok, f": rotary positions need an even head size, got d_model/n_heads = {size.d_model / heads:g}")


def _check_train(train: TrainConfig, path: str, problems: list[str]) -> None:
    need = lambda ok, message: _need(problems, ok, f"{path}.{message}")  # noqa: E731
    need(train.batch_tokens >= 1, f"batch_tokens: {train.batch_tokens} must be positive")
    need(0 <= train.warmup < 1, f"warmup: {train.warmup} must be a share of the steps in [0, 1)")
    need(0 <= train.min_lr_ratio <= 1, f"min_lr_ratio: {train.min_lr_ratio} must be in [0, 1]")
    need(train.weight_decay >= 0, f"weight_decay: {train.weight_decay} must be non-negative")
    need(train.grad_clip >= 0, f"grad_clip: {train.grad_clip} must be non-negative (0 turns it off)")
    need(0 <= train.beta1 < 1, f"beta1: {train.beta1} must be in [0, 1)")
    need(0 <= train.beta2 < 1, f"beta2: {train.beta2} must be in [0, 1)")
    need(train.evals >= 0, f"evals: {train.evals} must be non-negative")
    need(train.threads >= 0, f"threads: {train.threads} must be non-negative (0 = all cores)")
    need(train.threads <= limits.MAX_THREADS, f"threads: {shown(train.threads)} is more than {limits.MAX_THREADS}")
    need(train.checkpoint_every >= 0, f"checkpoint_every: {train.checkpoint_every} must be non-negative (0 = none)")
    need(train.micro_batch_tokens >= 0, f"micro_batch_tokens: {train.micro_batch_tokens} must be non-negative "
                                        "(0 = the whole batch at once)")
    need(train.micro_batch_tokens <= 0 or train.batch_tokens % train.micro_batch_tokens == 0,
         f"micro_batch_tokens: {train.micro_batch_tokens} does not divide batch_tokens ({train.batch_tokens}); "
         "each optimizer step's batch is split into equal micro-batches")
    need(0 <= train.cooldown <= 1, f"cooldown: {train.cooldown} must be a share of the steps in [0, 1]")
    if train.schedule == "wsd":
        need(train.warmup + train.cooldown <= 1,
             f"warmup: {train.warmup} + cooldown {train.cooldown} exceed the whole run; wsd warms up, then holds, then cools down")


def _check_eval(evaluation: EvalConfig, path: str, problems: list[str]) -> None:
    need = lambda ok, message: _need(problems, ok, f"{path}.{message}")  # noqa: E731
    for i, bits in enumerate(evaluation.quantize):  # 2 bits is the least a symmetric code has a nonzero level in
        need(2 <= bits <= 16, f"quantize[{i}]: {shown(bits)} bits must be between 2 and 16")
    for i, share in enumerate(evaluation.prune):
        need(0 < share < 1, f"prune[{i}]: {shown(share)} must be a share of the weights between 0 and 1, e.g. 0.5")


SBATCH_SETTING = re.compile(r"[A-Za-z][A-Za-z0-9_-]*=\S.*")


def _check_executor(executor: ExecutorConfig, path: str, problems: list[str]) -> None:
    need = lambda ok, message: _need(problems, ok, f"{path}.{message}")  # noqa: E731
    need(executor.workers >= 1, f"workers: {shown(executor.workers)} must be at least 1")
    need(executor.workers <= limits.MAX_THREADS, f"workers: {shown(executor.workers)} is more than {limits.MAX_THREADS}")
    need(not re.search(r"\s", executor.partition), f"partition: {shown(executor.partition)} must be one name, without spaces")
    need(executor.gpus_per_node >= 0, f"gpus_per_node: {shown(executor.gpus_per_node)} must be 0 or positive")
    need(executor.cpus_per_task >= 1, f"cpus_per_task: {shown(executor.cpus_per_task)} must be at least 1")
    need(executor.cpus_per_task <= limits.MAX_THREADS,
         f"cpus_per_task: {shown(executor.cpus_per_task)} is more than {limits.MAX_THREADS}")
    need(executor.mem_gb >= 0, f"mem_gb: {shown(executor.mem_gb)} must be 0 (the cluster's default) or positive")
    need(executor.timeout_min >= 1, f"timeout_min: {shown(executor.timeout_min)} must be at least 1 minute")
    need(executor.array_parallelism >= 0, f"array_parallelism: {shown(executor.array_parallelism)} must be 0 (all "
                                          "workers at once) or positive")
    need(executor.threads >= 0, f"threads: {shown(executor.threads)} must be 0 (cpus_per_task) or positive")
    need(executor.threads <= limits.MAX_THREADS, f"threads: {shown(executor.threads)} is more than {limits.MAX_THREADS}")
    for i, setting in enumerate(executor.sbatch):
        need(SBATCH_SETTING.fullmatch(setting) is not None,
             f"sbatch[{i}]: {shown(setting)} is not 'key=value' (an sbatch option without its dashes, e.g. qos=high)")


def _check_sweep(config: SweepConfig, path: str, problems: list[str]) -> None:
    """Rules that span sections; runs only when every section built."""
    need = lambda ok, message: _need(problems, ok, message)  # noqa: E731
    need(bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", config.name)),
         f"name: {shown(config.name)} must be letters, digits, '_', '-' or '.' (it names a directory)")
    batch, seq_len = config.train.batch_tokens, config.data.seq_len
    shortest = _check_budgets(config, problems)
    if shortest is not None:  # train.eval_steps spreads the evaluations over the steps
        steps = max(1, round(shortest / batch))
        need(config.train.evals <= steps, f"train.evals: {shown(config.train.evals)} is more than the {steps} optimizer "
                                          f"steps of the shortest run ({shortest:,} tokens); at most one per step")
    need(bool(config.seeds), "seeds: give at least one seed")
    need(len(set(config.seeds)) == len(config.seeds), "seeds: repeated seed")
    for i, seed in enumerate(config.seeds):
        need(0 <= seed < limits.SEED_LIMIT, f"seeds[{i}]: {shown(seed)} must be at least 0 and below 2**63")
    need(batch % seq_len == 0, f"train.batch_tokens: {batch} must be a multiple of data.seq_len ({seq_len})")
    micro = config.train.micro_batch_tokens
    need(micro % seq_len == 0, f"train.micro_batch_tokens: {micro} must be a multiple of data.seq_len ({seq_len}): "
                               "micro-batches are whole sequences")


def _check_budgets(config: SweepConfig, problems: list[str]) -> int | None:
    """Every budget positive and at least one batch; the fewest tokens a run trains, when they all are."""
    need = lambda ok, message: _need(problems, ok, message)  # noqa: E731
    batch, before = config.train.batch_tokens, len(problems)
    for i, tokens in enumerate(config.tokens):
        if tokens <= 0:
            problems.append(f"tokens[{i}]: {tokens:g} must be positive")
        else:
            need(tokens >= batch, f"tokens[{i}]: {tokens:g} is less than one batch (train.batch_tokens = {batch})")
    for i, flops in enumerate(config.flops):
        need(flops > 0, f"flops[{i}]: {flops:g} must be positive")
    for i, ratio in enumerate(config.tokens_per_param):
        need(ratio > 0, f"tokens_per_param[{i}]: {ratio:g} must be positive")
    if len(problems) > before or batch % config.data.seq_len:
        return None
    pairs = budgets(config)
    if config.flops or config.tokens_per_param:  # each size's tokens derive from its budget
        axis = "flops" if config.flops else "tokens_per_param"
        for shape, tokens in pairs:
            need(tokens >= batch, f"{axis}: {shape.name} gets {tokens:,} tokens from its smallest budget, less than "
                                  f"one batch ({batch}); raise the budget or drop the size")
    return min((tokens for _, tokens in pairs), default=None) if len(problems) == before else None


def _check_memory(config: SweepConfig, memory_bytes: int | None, problems: list[str]) -> None:
    """Each size's memory from its shape alone (`limits.memory_problem`), before any tensor exists."""
    if memory_bytes is None:
        return
    axis = "sizes" if config.model.sizes else "params"
    vocab_size = config.data.vocab_size or 256  # text is bytes; an auto-sized .bin vocabulary is known only from the data
    for i, shape in enumerate(model_shapes(config, vocab_size)):
        problem = limits.memory_problem(shape, config.device, config.train.batch_tokens, memory_bytes)
        _need(problems, problem is None, f"model.{axis}[{i}]: {shape.name} {problem}")


_CHECKS = {DataConfig: _check_data, ModelConfig: _check_model, TrainConfig: _check_train, EvalConfig: _check_eval,
           ExecutorConfig: _check_executor, SweepConfig: _check_sweep}


def spec_from_dict(record: dict) -> RunSpec:
    """Inverse of `RunSpec.to_dict`, for specs read back from the store. A spec written before
    schedules existed was trained with cosine decay."""
    train = {"schedule": "cosine", **record["train"]}
    return RunSpec(
        sweep=record["sweep"],
        shape=ModelShape(**record["shape"]),
        tokens=record["tokens"],
        seed=record["seed"],
        lr=record["lr"],
        train=TrainConfig(**train),
        data=DataConfig(**record["data"]),
        corpus_sha256=record.get("corpus_sha256", ""),
        warmup_steps=record.get("warmup_steps", 0),
        eval=EvalConfig(**record.get("eval", {})),
    )


__all__ = [
    "DataConfig", "SizeConfig", "ModelConfig", "TrainConfig", "EvalConfig", "ExecutorConfig", "SweepConfig", "RunSpec",
    "load_config", "parse_config", "expand", "model_shapes", "shape_for_params", "params_rule_limit", "lr_for_params",
    "kaplan_lr",
    "spec_from_dict",
]
