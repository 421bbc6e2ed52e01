"""Parameter counts and training FLOPs as pure arithmetic over a `ModelShape`.

Tests hold `param_counts` equal to `sum(p.numel())` of the module `gpt.GPT` builds, and
`matmul_flops_per_token` equal to what `torch.utils.flop_counter` sees for a forward+backward pass.

Conventions (all per training token, forward + backward = 3 × forward):
- "6n"        6·N, N = non-embedding parameters (Kaplan et al. 2020, C ≈ 6ND).
- "6n_total"  6·N_total, every parameter including embeddings (Hoffmann et al. 2022 count all).
- "6n_attn"   6·N + 12·L·T·d: PaLM's attention term (Chowdhery et al. 2022, App. B: 12·L·H·Q·T with
              H·Q = d), counting the full T×T score and value products with no causal discount.
              Kaplan's Table 1 counts only the QKᵀ product (6·L·T·d for training).
- "matmul"    every matrix product the model runs: non-embedding matmuls, the output projection to the
              vocabulary (6·d·V, which Kaplan leaves out and which Porian et al. 2024 show matters for
              small models) and the attention products. This is what the hardware does; use it for MFU.
The run table records each in its own column (`sweep.columns.FLOPS_COLUMNS`, re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass

from sweep.columns import FLOPS_COLUMNS, FLOPS_CONVENTIONS
from sweep.model.shape import ModelShape


@dataclass(frozen=True)
class ParamCounts:
    token_embedding: int
    position_embedding: int
    output_head: int  # 0 when tied to the token embedding
    attention: int  # all layers: query, key, value and output projections
    mlp: int  # all layers
    norms: int  # per-layer norms and the final norm

    @property
    def embedding(self) -> int:
        """Parameters that map between tokens and vectors (Kaplan et al. 2020 leave these out of N)."""
        return self.token_embedding + self.position_embedding + self.output_head

    @property
    def non_embedding(self) -> int:
        return self.attention + self.mlp + self.norms

    @property
    def total(self) -> int:
        return self.embedding + self.non_embedding


def param_counts(shape: ModelShape) -> ParamCounts:
    """Exact parameter counts of `model.GPT(shape)`: no biases; each norm has one weight per channel."""
    d, layers, vocab = shape.d_model, shape.n_layers, shape.vocab_size
    mlp_matrices = 3 if shape.activation == "swiglu" else 2
    return ParamCounts(
        token_embedding=vocab * d,
        position_embedding=shape.seq_len * d if shape.positions == "learned" else 0,
        output_head=0 if shape.tie_embeddings else vocab * d,
        attention=layers * 4 * d * d,  # q, k, v, out: each d×d
        mlp=layers * mlp_matrices * d * shape.d_ff,
        norms=(2 * layers + 1) * d,
    )


def _attention_flops_per_token(shape: ModelShape) -> int:
    # Forward per token per layer: QKᵀ is T·d multiply-adds, (scores)V another T·d: 4·T·d FLOPs.
    # Training triples it: 12·L·T·d (PaLM App. B), with no causal discount.
    return 12 * shape.n_layers * shape.seq_len * shape.d_model


def flops_per_token(shape: ModelShape, convention: str) -> int:
    """Training FLOPs per token under one of `FLOPS_CONVENTIONS`."""
    counts = param_counts(shape)
    if convention == "6n":
        return 6 * counts.non_embedding
    if convention == "6n_total":
        return 6 * counts.total
    if convention == "6n_attn":
        return 6 * counts.non_embedding + _attention_flops_per_token(shape)
    if convention == "matmul":
        return matmul_flops_per_token(shape)
    raise ValueError(f"unknown FLOPs convention {convention!r}; expected one of {FLOPS_CONVENTIONS}")


def matmul_flops_per_token(shape: ModelShape) -> int:
    """Every matmul of one forward+backward pass, per token: the weights' 6 FLOPs per parameter
    (norm weights excluded: they multiply element-wise), the vocabulary projection, attention."""
    counts = param_counts(shape)
    weight_matmuls = counts.attention + counts.mlp + shape.vocab_size * shape.d_model
    return 6 * weight_matmuls + _attention_flops_per_token(shape)


def training_flops(shape: ModelShape, tokens: int) -> dict[str, int]:
    """Training FLOPs for `tokens` tokens under every convention, keyed as the run store records them."""
    return {column: flops_per_token(shape, convention) * tokens for convention, column in FLOPS_COLUMNS.items()}
