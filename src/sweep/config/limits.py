"""Bounds on what input may ask for, checked before anything is allocated: sizes, threads, seeds, the
memory a run needs.

A value beyond a bound is a typo or an attack, not an experiment: each bound is far above anything
this engine trains (ladders of small Transformers on CPUs or one GPU), yet keeps shape arithmetic,
torch's int64 sizes and allocation requests sane.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sweep.model.flops import param_counts
from sweep.model.shape import ModelShape

MAX_D_MODEL = 2**16  # the widest published models: GPT-3 12,288, PaLM 18,432
MAX_D_FF = 2**18  # PaLM 540B: 73,728
MAX_LAYERS = 2**12  # DeepNet trained 1,000 layers (Wang et al. 2022)
MAX_VOCAB = 2**24  # Gemma: 256,000; a uint16 .bin corpus holds ids below 65,536
# torch.set_num_threads(1e6) crashes OpenMP. A fixed bound rather than a multiple of os.cpu_count(),
# so one config is valid on every machine it runs on (threads is not part of a run's identity); 1024
# is above the hardware threads of today's largest CPU servers (2 sockets × 192 cores × 2 SMT = 768).
MAX_THREADS = 1024
# A run's training tokens: 60x the largest published run (Llama 3, 1.5e13 tokens). Beyond it a budget
# is a typo (tokens 1e30 passed --dry-run with an estimate of 1e29 s; tokens_per_param 1e30 started a
# run of 6e30 steps).
MAX_TOKENS = 10**15
# torch.manual_seed takes up to 2**64 - 1, but the store's seed column is int64.
SEED_LIMIT = 2**63

BYTES_PER_FLOAT = 4  # fp32: weights and optimizer state always; activations unless autocast halves them
# fp32 weights, their gradients and AdamW's two moments (Rajbhandari et al. 2020, ZeRO, §3.1).
BYTES_PER_PARAMETER = 4 * BYTES_PER_FLOAT
# Per layer and token, the backward pass keeps about 8 d_model-wide tensors (norm inputs and outputs,
# q, k, v, the attention output, the residual sums) and 2 d_ff-wide ones (3 for SwiGLU). Attention
# scores are not counted: scaled_dot_product_attention need not materialise them.
D_MODEL_TENSORS_PER_LAYER = 8
# Logits are held three times: the logits, cross-entropy's log-softmax, and their gradient.
LOGIT_COPIES = 3


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training run holds at once: a lower estimate, so a refusal is certain."""

    states: int  # parameters, gradients, AdamW moments
    activations: int  # what one batch (or micro-batch) keeps for the backward pass, logits included

    @property
    def total(self) -> int:
        return self.states + self.activations


def training_memory(shape: ModelShape, tokens_at_once: int) -> MemoryEstimate:
    """What training `shape` holds, running `tokens_at_once` through forward and backward at a time: the
    whole batch, or one micro-batch when `train.micro_batch_tokens` splits it (the engine accumulates
    their gradients, `engine.accumulate_gradients`, freeing each one's activations before the next)."""
    d_ff_tensors = 3 if shape.activation == "swiglu" else 2
    per_token = (
        shape.n_layers * (D_MODEL_TENSORS_PER_LAYER * shape.d_model + d_ff_tensors * shape.d_ff)
        + LOGIT_COPIES * shape.vocab_size
    )
    return MemoryEstimate(
        states=BYTES_PER_PARAMETER * param_counts(shape).total, activations=BYTES_PER_FLOAT * tokens_at_once * per_token
    )


def host_build_memory(shape: ModelShape) -> int:
    """Bytes a CUDA run needs on the host: the model is built there in fp32 before it moves."""
    return BYTES_PER_FLOAT * param_counts(shape).total


def memory_problem(
    shape: ModelShape, device: str, batch_tokens: int, micro_batch_tokens: int, memory_bytes: int
) -> str | None:
    """Why `shape` cannot train in `memory_bytes`, or None. A CPU run is checked whole, its activations
    those of one micro-batch when `micro_batch_tokens` (0 = none) splits the batch; a CUDA run (or
    'auto', which may pick CUDA) for what surely lands on the host, its fp32 weights."""
    beyond = f"more than the {gigabytes(memory_bytes)} of memory on this machine"
    if device == "cpu":
        needed = training_memory(shape, micro_batch_tokens or batch_tokens)
        held = "one micro-batch's" if micro_batch_tokens else "one batch's"
        if needed.total > memory_bytes:
            return (
                f"needs about {gigabytes(needed.total)} to train (weights, gradients and AdamW state "
                f"{gigabytes(needed.states)}, {held} activations {gigabytes(needed.activations)}), {beyond}"
            )
    elif (host := host_build_memory(shape)) > memory_bytes:
        return f"needs about {gigabytes(host)} of host memory to build its fp32 weights, {beyond}"
    return None


def physical_memory_bytes() -> int | None:
    """This machine's RAM; None where the OS does not say (then nothing is refused for memory)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or the names are unknown
        return None


def gigabytes(size: int) -> str:
    return f"{size / 1e9:.1f} GB"
