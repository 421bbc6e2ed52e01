"""The architecture of one decoder-only Transformer: everything needed to build it and count it.

Pure data, no torch: `flops` counts it, `gpt` builds it, `config.rules` derives it from a target
parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass

NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "swiglu")
POSITIONS = ("learned", "rotary")


def default_d_ff(d_model: int, activation: str) -> int:
    """MLP width: 4·d for GELU (GPT-2); for SwiGLU 2/3 of that, rounded up to a multiple of 16, so the
    three SwiGLU matrices hold about as many parameters as GELU's two (Shazeer 2020; LLaMA)."""
    if activation == "swiglu":
        return -(-int(8 * d_model / 3) // 16) * 16
    return 4 * d_model


def default_heads(d_model: int, head_dim: int) -> int:
    """About d_model / head_dim heads: the largest count not above that which divides d_model."""
    heads = max(1, d_model // head_dim)
    while d_model % heads:
        heads -= 1
    return heads


@dataclass(frozen=True)
class ModelShape:
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    vocab_size: int = 256
    seq_len: int = 256
    norm: str = "rmsnorm"
    activation: str = "gelu"
    positions: str = "rotary"
    tie_embeddings: bool = True

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def name(self) -> str:
        """Short label used in listings and run names, e.g. 'L4-d128-h4'."""
        return f"L{self.n_layers}-d{self.d_model}-h{self.n_heads}"
