"""The run table's contract: the columns a run store's table has, the unit and meaning of each, read
by the producers (the store, the runner) and by the laws alike. Standard library and `sweep.errors`
only, so that any part of the package can read it.

- `COLUMNS`: one row per run (`sweep.store.load_runs`, `sweep ls`, `sweep export --to csv`), with
  `TEXT_COLUMNS` and `FLAG_COLUMNS` saying which hold text or a flag; the rest hold numbers.
- `STATUSES`, `FINISHED`: a run's status (status.json), and the ones a run ends in.
- `METRICS_NUMBERS`: the fields of one metrics.jsonl row.
- FLOPs columns by convention (`FLOPS_COLUMNS`; the conventions are defined in `sweep.model.flops`).
- Post-training compression variants, one spelling for the whole package: `q4` for 4-bit
  quantisation, `p50` for pruning half the weights, `p87.5` for 0.875. They key result.json's
  `compression`, name the table's loss_<v> / delta_<v> columns and the laws `sweep fit` fits."""

from __future__ import annotations

import re

from sweep.errors import InputError

STATUSES = ("pending", "running", "done", "failed", "diverged")
FINISHED = ("done", "failed", "diverged")  # a run in one of these has its result.json

# The run table, in its order. Any value may be None: a run not finished yet has only what its spec
# says, a failed one no loss, an older run none of the columns added since.
COLUMNS = [
    "run_id",  # the run's id, the name of its directory (`config.RunSpec.run_id`)
    "sweep",  # the sweep's name, the name of the directory its runs are in
    "status",  # one of STATUSES
    "n_layers",
    "d_model",
    "n_heads",
    "d_ff",  # the shape (`model.shape.ModelShape`)
    "params",  # N: non-embedding parameters (Kaplan et al. 2020), the laws' default
    "params_total",  # every parameter, embeddings and an untied output head included
    "params_embedding",  # token and position embeddings and an untied output head
    "tokens",  # D: tokens trained on, steps × batch_tokens (until the run ends: its budget)
    "seed",
    "lr",  # the peak learning rate
    "flops",
    "flops_6nd_total",
    "flops_attn",
    "flops_matmul",  # training FLOPs of `tokens`: FLOPS_COLUMNS
    "loss",  # the final validation loss, nats per token
    "bpb",  # the same loss in bits per byte of validation text (None for a token file's unknown bytes)
    "train_loss",  # the mean training loss over the last logged interval, nats per token
    "epochs",  # tokens / the training split's tokens
    "steps",  # optimizer steps
    "schedule",  # the learning-rate schedule: cosine or wsd
    "trunk_id",  # a wsd branch's trunk; None for other runs
    "branch_step",  # the step a wsd branch leaves its trunk at; None for other runs
    "wall_s",  # seconds of training over every attempt, compression_s included
    "tokens_per_s",  # tokens / wall_s
    "peak_mem_bytes",  # peak memory in bytes: CUDA's allocator peak, or the process's resident high-water mark
    "device",  # what trained it: cpu or cuda
    "dtype",  # the compute dtype: fp32 or bf16
    "compiled",  # trained through torch.compile
    "attempts",  # how many times its training started (status.json)
    "reason",  # why it failed or diverged, or why it reads as pending (a damaged file)
    "order",  # data.order: random windows or each window once per epoch
    "prequential_bits",  # the online code length of the tokens trained on, in bits (Blier & Ollivier 2018)
    "prequential_bpb",  # prequential_bits / tokens: bits per byte, for byte tokens only
    "prequential_reason",  # why there is no prequential code length
    "compression_s",  # seconds spent evaluating the compressed variants, part of wall_s
]
# Besides these, a run with compressed variants (`eval.quantize`, `eval.prune`) has loss_<v> and
# delta_<v> for each variant v (q4, p50: `variant_name`), after them.
# The columns above that hold text or a flag; every other one holds a number. Any may be None.
TEXT_COLUMNS = (
    "run_id",
    "sweep",
    "status",
    "schedule",
    "trunk_id",
    "device",
    "dtype",
    "reason",
    "order",
    "prequential_reason",
)
FLAG_COLUMNS = ("compiled",)
# The fields of a metrics row (`engine.train`'s `row`) besides its step (a whole number >= 1), all
# numbers: tokens and flops (the "6n" convention) trained through that step, the mean training loss
# since the last row and the validation loss (nats per token; NaN or inf in a diverging run), the
# learning rate, and seconds of training over every attempt.
METRICS_NUMBERS = ("tokens", "flops", "train_loss", "val_loss", "lr", "elapsed_s")

# Each FLOPs convention (`sweep.model.flops`) and the column that records it (`training_flops`, `sweep ls`,
# `sweep fit --flops-convention`). All count training FLOPs (forward + backward) of the run's tokens:
# "6n" 6·N·D (Kaplan et al. 2020), "6n_total" 6·N_total·D (Hoffmann et al. 2022), "6n_attn" adds
# PaLM's attention term, "matmul" every matrix product the model runs (what the hardware does).
FLOPS_COLUMNS = {"6n": "flops", "6n_total": "flops_6nd_total", "6n_attn": "flops_attn", "matmul": "flops_matmul"}
FLOPS_CONVENTIONS = tuple(FLOPS_COLUMNS)
# Each parameter-count convention and its column: N without embeddings (Kaplan et al.), or every
# parameter (Hoffmann et al.): `sweep fit --params-convention`.
PARAMS_COLUMNS = {"non_embedding": "params", "total": "params_total"}
# What a run cost: seconds of wall time (every attempt) and peak memory in bytes (`sweep fit`'s cost laws).
COST_COLUMNS = ("wall_s", "peak_mem_bytes")

VARIANT = re.compile(r"q(?P<bits>[1-9]\d*)|p(?P<percent>\d+(?:\.\d+)?)")
KINDS = ("quantisation", "pruning")  # the order variants are listed in
# A run table's columns per variant v: the compressed copy's validation loss, and δ = that − the run's loss.
LOSS_PREFIX, DELTA_PREFIX = "loss_", "delta_"


def variant_name(*, bits: int | None = None, prune: float | None = None) -> str:
    if (bits is None) == (prune is None):
        raise InputError("name a variant by bits or by a pruning share, one of the two")
    return f"q{int(bits)}" if bits is not None else f"p{round(prune * 100, 4):g}"


def requested(quantize, prune) -> list[str]:
    """The variants of an `eval` section's bit widths and shares, in its order."""
    return [variant_name(bits=b) for b in quantize] + [variant_name(prune=s) for s in prune]


def parse(variant: str) -> tuple[str, float] | None:
    """("quantisation", bits) or ("pruning", percent), or None for a name that is no variant."""
    match = VARIANT.fullmatch(variant)
    if match is None:
        return None
    if match["bits"] is not None:
        return "quantisation", float(match["bits"])
    percent = float(match["percent"])
    return ("pruning", percent) if 0 < percent < 100 else None


def describe(variant: str) -> str:
    """'4-bit quantisation', '50% pruning'."""
    kind, amount = parse(variant)
    return f"{amount:g}-bit quantisation" if kind == "quantisation" else f"{amount:g}% pruning"


def order(variant: str) -> tuple[int, float]:
    """Sort key: quantisation first, most bits first, then pruning, smallest share first."""
    kind, amount = parse(variant)
    return KINDS.index(kind), -amount if kind == "quantisation" else amount
