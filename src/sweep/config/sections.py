"""The typed, frozen sections of a sweep config, each with the checks of its own keys.

A section's `check(path, problems)` appends every problem it finds, prefixed by its key path, and
runs once the section is built (`loading.parse_config`), on defaults as on given values; rules that
span sections are `SweepConfig.check`'s. A field's metadata says which values it takes ("choices")
and whether it decides a run's result ("identity", read by `RunSpec.identity`): see NEVER, WSD_ONLY
and UNLESS_DEFAULT below, and "branch_only" for a wsd trunk's id (`RunSpec.trunk_id`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sweep.config import limits
from sweep.config.rules import params_rule_limit
from sweep.errors import shown
from sweep.model.shape import ACTIVATIONS, NORMS, POSITIONS, default_heads

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

# How a field enters a run's identity (`RunSpec.identity`); a field without "identity" always does.
NEVER = "never"  # how a run is executed or watched, or what is measured after it: not what it trains
WSD_ONLY = "wsd"  # the wsd schedule's fields: cosine runs keep the ids they had before schedules existed
UNLESS_DEFAULT = "unless_default"  # a field added later: runs at its default keep the ids they had before it
# A field only a wsd branch's cooldown uses: left out of `RunSpec.trunk_id`, shared by the trunk's branches.
BRANCH_ONLY = {"branch_only": True}


def need_into(problems: list[str], prefix: str = "") -> Callable[[bool, str], None]:
    """A `need(ok, message)` that appends `prefix + message` to `problems` unless `ok`: each check states
    the condition that must hold, and every problem is reported together."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(f"{prefix}{message}")

    return need


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
    bin_dtype: str = field(default="uint16", metadata={"choices": BIN_DTYPES})
    # .bin: 0 = largest token + 1. Text: bpe's vocabulary (required); a tokenizer file's if 0.
    vocab_size: int = 0
    # Text: 'bytes' (vocabulary 256), 'bpe' (byte-level BPE trained on the training split, cached in
    # the store) or the path of a Hugging Face tokenizer.json (`sweep.data.tokenizer`). What text was
    # read and how it was tokenised is in corpus_sha256 (`data.load_corpus`); the tokenizer enters a
    # run id only where it names one, so byte-level runs keep the ids they had.
    tokenizer: str = field(default="bytes", metadata={"identity": UNLESS_DEFAULT})
    # .jsonl and .parquet: the field or column that holds each document's text (in corpus_sha256)
    text_field: str = field(default="text", metadata={"identity": NEVER})
    # .jsonl lines: 'skip' counts and leaves them out (in corpus_sha256)
    malformed: str = field(default="error", metadata={"choices": MALFORMED, "identity": NEVER})
    # How training windows are drawn (`data.get_batch`): 'random' starts, which overlap and repeat, or
    # 'epoch': the non-overlapping windows in a seeded shuffle, each read once per epoch, which is
    # what a prequential code length needs (`engine.prequential_reason`). Runs from before
    # `data.order` keep their ids.
    order: str = field(default="random", metadata={"choices": ORDERS, "identity": UNLESS_DEFAULT})

    def check(self, path: str, problems: list[str]) -> None:
        need = need_into(problems, f"{path}.")
        need(bool(self.corpus.strip()), "corpus: must name 'stdlib' or a path")
        need(self.seq_len >= 8, f"seq_len: {self.seq_len} is too short (at least 8)")
        need(0 < self.val_fraction < 0.5, f"val_fraction: {self.val_fraction} must be between 0 and 0.5")
        need(
            self.val_tokens >= self.seq_len, f"val_tokens: {self.val_tokens} is less than one sequence ({self.seq_len})"
        )
        need(self.chunk_tokens >= 2 * self.seq_len, f"chunk_tokens: {self.chunk_tokens} must be at least 2 × seq_len")
        need(self.vocab_size >= 0, f"vocab_size: {self.vocab_size} must be 0 (auto) or positive")
        need(
            self.vocab_size <= limits.MAX_VOCAB,
            f"vocab_size: {shown(self.vocab_size)} is more than {limits.MAX_VOCAB:,}",
        )
        named_file = self.tokenizer not in TOKENIZERS
        need(
            not named_file or self.tokenizer.endswith(".json"),
            f"tokenizer: {shown(self.tokenizer)} is not 'bytes', 'bpe' or the path of a tokenizer .json file",
        )
        need(
            self.tokenizer != "bpe" or self.vocab_size >= MIN_BPE_VOCAB,
            f"vocab_size: tokenizer bpe needs a vocabulary of at least {MIN_BPE_VOCAB} (256 bytes, the document "
            f"separator and merges), e.g. data.vocab_size: 2048; got {self.vocab_size}",
        )
        need(
            self.tokenizer == "bytes" or not self.corpus.endswith(".bin"),
            f"tokenizer: {shown(self.tokenizer)} applies to text; a .bin corpus holds tokens already",
        )
        need(bool(self.text_field.strip()), "text_field: must name a field")


@dataclass(frozen=True)
class SizeConfig:
    """One explicit rung of the ladder. n_heads 0 = d_model / head_dim; d_ff 0 = the activation's default."""

    n_layers: int
    d_model: int
    n_heads: int = 0
    d_ff: int = 0

    def check_in(self, model: ModelConfig, where: str, problems: list[str]) -> None:
        """Checked by its `model` section, whose head size and positions decide which shapes are whole."""
        need = need_into(problems, where)
        before = len(problems)
        for name, limit in (
            ("n_layers", limits.MAX_LAYERS),
            ("d_model", limits.MAX_D_MODEL),
            ("d_ff", limits.MAX_D_FF),
        ):
            need(getattr(self, name) <= limit, f".{name}: {shown(getattr(self, name))} is more than {limit:,}")
        need(self.n_layers >= 1, f".n_layers: {self.n_layers} must be at least 1")
        need(self.d_model >= 1, f".d_model: {self.d_model} must be at least 1")
        need(self.n_heads >= 0, f".n_heads: {self.n_heads} must be positive")
        need(self.d_ff >= 0, f".d_ff: {self.d_ff} must be positive")
        if len(problems) > before:
            return
        heads = self.n_heads or default_heads(self.d_model, model.head_dim)
        need(self.d_model % heads == 0, f": d_model {self.d_model} is not divisible by n_heads {shown(heads)}")
        rotary_ok = model.positions != "rotary" or self.d_model % heads or (self.d_model // heads) % 2 == 0
        need(rotary_ok, f": rotary positions need an even head size, got d_model/n_heads = {self.d_model / heads:g}")


@dataclass(frozen=True)
class ModelConfig:
    sizes: tuple[SizeConfig, ...] = ()
    params: tuple[int, ...] = ()  # target non-embedding parameters; shapes from `shape_for_params`
    norm: str = field(default="rmsnorm", metadata={"choices": NORMS})
    activation: str = field(default="gelu", metadata={"choices": ACTIVATIONS})
    positions: str = field(default="rotary", metadata={"choices": POSITIONS})
    tie_embeddings: bool = True
    aspect_ratio: int = 32  # d_model / n_layers aimed at by the params rule (nanochat uses 64)
    head_dim: int = 64  # GPT-2's; on CPU 64-wide heads trained 1.35x faster than 32-wide at 3M params

    def check(self, path: str, problems: list[str]) -> None:
        need = need_into(problems, path)
        need(
            bool(self.sizes) != bool(self.params),
            ": give exactly one of 'sizes' (explicit shapes) or 'params' (target non-embedding params)",
        )
        need(self.aspect_ratio >= 1, f".aspect_ratio: {self.aspect_ratio} must be at least 1")
        need(self.head_dim >= 2 and self.head_dim % 2 == 0, f".head_dim: {self.head_dim} must be even and at least 2")
        limit = params_rule_limit(self) if self.params and self.aspect_ratio >= 1 else math.inf
        for i, n in enumerate(self.params):
            need(n >= 1000, f".params[{i}]: {n} is too small (at least 1000 non-embedding parameters)")
            need(
                n <= limit,
                f".params[{i}]: {n:.3g} is more than the params rule's largest shape holds "
                f"({limit:.3g} non-embedding parameters); give model.sizes instead",
            )
        for i, size in enumerate(self.sizes):
            size.check_in(self, f"{path}.sizes[{i}]", problems)


@dataclass(frozen=True)
class TrainConfig:
    batch_tokens: int = 8192
    # A number, a list (a grid axis), 'auto' (`lr_for_params`) or 'kaplan' (`kaplan_lr`); in a `RunSpec`,
    # the one resolved number the run trains at.
    lr: Any = (3e-3,)
    warmup: float = 0.05  # share of the steps warming up linearly; wsd: of the size's smallest budget
    # the schedule decays to this share of the peak (Hoffmann et al. 2022)
    min_lr_ratio: float = field(default=0.1, metadata=BRANCH_ONLY)
    # see `engine.lr_at`
    schedule: str = field(default="wsd", metadata={"choices": SCHEDULES, "identity": WSD_ONLY})
    # wsd: share of each budget's steps spent decaying (Hägele et al. 2024)
    cooldown: float = field(default=0.2, metadata={"identity": WSD_ONLY, **BRANCH_ONLY})
    # wsd: the cooldown's shape
    decay: str = field(default="linear", metadata={"choices": DECAYS, "identity": WSD_ONLY, **BRANCH_ONLY})
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.95
    evals: int = field(default=4, metadata=BRANCH_ONLY)  # validation evaluations during the run, besides the final one
    dtype: str = field(default="auto", metadata={"choices": DTYPES})
    # Thread count, checkpoint interval and compiling change rounding, not what is trained: in no run id.
    threads: int = field(default=0, metadata={"identity": NEVER})  # CPU threads per run; 0 = all cores
    # torch.compile the model: true, false, or 'auto' (on CUDA only)
    compile: Any = field(default="auto", metadata={"identity": NEVER})
    # seconds between checkpoints of a run in training; 0 = none
    checkpoint_every: float = field(default=300.0, metadata={"identity": NEVER})
    # Tokens one process runs through forward and backward at a time; 0 = its whole share of the batch.
    # Gradients accumulate to the unsplit batch's update (`engine.accumulate_gradients`), so only memory
    # and rounding change: it is left out of the run id.
    micro_batch_tokens: int = field(default=0, metadata={"identity": NEVER})
    # Train each run across the processes torchrun started (`sweep.engine.distributed`): every process takes
    # its share of each batch, with the same batches and update as one process. Not in the run id either.
    ddp: bool = field(default=False, metadata={"identity": NEVER})
    # Experiment trackers each run's metrics rows also go to (`sweep.runner.trackers`). They record a run, they
    # do not change it: not in the run id.
    log: tuple[str, ...] = field(default=(), metadata={"choices": TRACKERS, "identity": NEVER})

    def __post_init__(self):
        # A spec read back from JSON holds a list: a tuple keeps the config hashable; one tracker once.
        object.__setattr__(self, "log", tuple(dict.fromkeys(self.log)))

    def check(self, path: str, problems: list[str]) -> None:
        need = need_into(problems, f"{path}.")
        need(self.batch_tokens >= 1, f"batch_tokens: {self.batch_tokens} must be positive")
        need(0 <= self.warmup < 1, f"warmup: {self.warmup} must be a share of the steps in [0, 1)")
        need(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio: {self.min_lr_ratio} must be in [0, 1]")
        need(self.weight_decay >= 0, f"weight_decay: {self.weight_decay} must be non-negative")
        need(self.grad_clip >= 0, f"grad_clip: {self.grad_clip} must be non-negative (0 turns it off)")
        need(0 <= self.beta1 < 1, f"beta1: {self.beta1} must be in [0, 1)")
        need(0 <= self.beta2 < 1, f"beta2: {self.beta2} must be in [0, 1)")
        need(self.evals >= 0, f"evals: {self.evals} must be non-negative")
        need(self.threads >= 0, f"threads: {self.threads} must be non-negative (0 = all cores)")
        need(self.threads <= limits.MAX_THREADS, f"threads: {shown(self.threads)} is more than {limits.MAX_THREADS}")
        need(self.checkpoint_every >= 0, f"checkpoint_every: {self.checkpoint_every} must be non-negative (0 = none)")
        need(
            self.micro_batch_tokens >= 0,
            f"micro_batch_tokens: {self.micro_batch_tokens} must be non-negative (0 = the whole batch at once)",
        )
        need(
            self.micro_batch_tokens <= 0 or self.batch_tokens % self.micro_batch_tokens == 0,
            f"micro_batch_tokens: {self.micro_batch_tokens} does not divide batch_tokens ({self.batch_tokens}); "
            "each optimizer step's batch is split into equal micro-batches",
        )
        need(0 <= self.cooldown <= 1, f"cooldown: {self.cooldown} must be a share of the steps in [0, 1]")
        if self.schedule == "wsd":
            need(
                self.warmup + self.cooldown <= 1,
                f"warmup: {self.warmup} + cooldown {self.cooldown} exceed the whole run; wsd warms up, then holds, "
                "then cools down",
            )


@dataclass(frozen=True)
class EvalConfig:
    """Post-training compression of every finished run (`engine.compress`): its validation loss with the
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

    def check(self, path: str, problems: list[str]) -> None:
        need = need_into(problems, f"{path}.")
        for i, bits in enumerate(self.quantize):  # 2 bits is the least a symmetric code has a nonzero level in
            need(2 <= bits <= 16, f"quantize[{i}]: {shown(bits)} bits must be between 2 and 16")
        for i, share in enumerate(self.prune):
            need(0 < share < 1, f"prune[{i}]: {shown(share)} must be a share of the weights between 0 and 1, e.g. 0.5")
