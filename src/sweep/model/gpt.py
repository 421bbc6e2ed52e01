"""A pre-norm, decoder-only Transformer built from a `ModelShape` (after nanoGPT's model.py).

No biases anywhere, so `flops.param_counts` stays a short formula that a test holds equal to
`sum(p.numel())`. Attention, RMSNorm and rotary embeddings come from `ops.py`: PyTorch's own
kernels on GPUs (SDPA picks flash attention), fewer memory passes on CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from sweep.model.ops import MATMUL_ATTENTION_MAX_SEQ, apply_rotary, causal_attention, rms_normalize, rotary_tables
from sweep.model.shape import ModelShape


class RMSNorm(nn.Module):
    """nn.RMSNorm's parameters and arithmetic. In the model its gain is applied by `norm_then_linear`."""

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(shape: ModelShape) -> nn.Module:
    if shape.norm == "rmsnorm":
        return RMSNorm(shape.d_model)
    return nn.LayerNorm(shape.d_model, bias=False)


def norm_then_linear(norm: nn.Module, x: torch.Tensor, *linears: nn.Linear) -> list[torch.Tensor]:
    """Each of `linears` applied to norm(x). An RMSNorm's gain g is folded into the weights rather than
    multiplied into the activations: (x̂ ⊙ g)·Wᵀ = x̂·(W·diag g)ᵀ, so forward and backward pay a
    (d_out × d) product instead of (tokens × d) passes. Same parameters, same gradients."""
    if not isinstance(norm, RMSNorm):
        normed = norm(x)
        return [linear(normed) for linear in linears]
    normed = rms_normalize(x, norm.eps)
    return [F.linear(normed, linear.weight * norm.weight) for linear in linears]


class CausalSelfAttention(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.n_heads = shape.n_heads
        self.qkv = nn.Linear(shape.d_model, 3 * shape.d_model, bias=False)
        self.proj = nn.Linear(shape.d_model, shape.d_model, bias=False)

    def forward(
        self,
        norm: nn.Module,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Attention over norm(x)."""
        batch, seq, channels = x.shape  # (B, T, C)
        [qkv] = norm_then_linear(norm, x, self.qkv)
        q, k, v = qkv.split(channels, dim=2)
        # (B, T, C) -> (B, H, T, C/H)
        q, k, v = (t.view(batch, seq, self.n_heads, channels // self.n_heads).transpose(1, 2) for t in (q, k, v))
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        y = causal_attention(q, k, v, mask)
        return self.proj(y.transpose(1, 2).contiguous().view(batch, seq, channels))


class MLP(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.swiglu = shape.activation == "swiglu"
        self.up = nn.Linear(shape.d_model, shape.d_ff, bias=False)
        self.gate = nn.Linear(shape.d_model, shape.d_ff, bias=False) if self.swiglu else None
        self.down = nn.Linear(shape.d_ff, shape.d_model, bias=False)

    def forward(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The MLP of norm(x)."""
        if self.swiglu:  # Shazeer 2020, "GLU Variants Improve Transformer": (Swish(xW) ⊙ xV)W2
            gate, up = norm_then_linear(norm, x, self.gate, self.up)
            return self.down(F.silu(gate) * up)
        [up] = norm_then_linear(norm, x, self.up)
        return self.down(F.gelu(up))


class Block(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.norm_attn = make_norm(shape)
        self.attn = CausalSelfAttention(shape)
        self.norm_mlp = make_norm(shape)
        self.mlp = MLP(shape)

    def forward(self, x: torch.Tensor, rotary, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm_attn, x, rotary, mask)
        return x + self.mlp(self.norm_mlp, x)


class GPT(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.shape = shape
        self.token_embedding = nn.Embedding(shape.vocab_size, shape.d_model)
        self.position_embedding = nn.Embedding(shape.seq_len, shape.d_model) if shape.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layers))
        self.norm_final = make_norm(shape)
        self.head = nn.Linear(shape.d_model, shape.vocab_size, bias=False)
        if shape.tie_embeddings:
            self.head.weight = self.token_embedding.weight  # Press & Wolf 2017
        if shape.positions == "rotary":
            cos, sin = rotary_tables(shape.seq_len, shape.head_dim)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)
        causal = None  # (T, T) additive mask, only where ops.causal_attention can use it
        if shape.seq_len <= MATMUL_ATTENTION_MAX_SEQ:
            causal = torch.full((shape.seq_len, shape.seq_len), float("-inf")).triu(1)
        self.register_buffer("causal_mask", causal, persistent=False)
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2·layers) so the residual stream's variance
        # does not grow with depth (Radford et al. 2019, §2.3).
        for name, param in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * shape.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) token ids → logits (B, T, V), or the mean cross-entropy if targets are given."""
        x = self.token_embedding(idx)  # (B, T, C)
        if self.position_embedding is not None:
            x = x + self.position_embedding(torch.arange(idx.shape[1], device=idx.device))
        rotary = (self.rotary_cos, self.rotary_sin) if self.shape.positions == "rotary" else None
        for block in self.blocks:
            x = block(x, rotary, self.causal_mask)
        [logits] = norm_then_linear(self.norm_final, x, self.head)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
