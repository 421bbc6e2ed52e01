"""Attention, RMSNorm and rotary embeddings written for speed on CPU.

On a 2-core CPU a small Transformer's step is mostly memory passes around the matmuls. PyTorch's
generic versions of these three layers make many passes (RMSNorm: pow, mean, add, rsqrt, mul, mul
forward and twice as many backward, each recorded by autograd); the versions here do the same
arithmetic in fewer passes, with hand-written backward passes: RMSNorm leaves its gain to the next
matmul's weight (`model.norm_then_linear`), rotary embeddings write the layout attention reads. Each
is held equal to its PyTorch reference in tests/test_ops.py. On other devices the model keeps
PyTorch's own kernels, and so does a compiled model (`train.compile`): Inductor fuses the plain
formulation's passes itself, and its fake-tensor tracing does not follow the hand-written kernels'
`out=` layouts (reshaping the rotary output for attention failed to lower).

Measured with `sweep bench` on a 2-core EPYC with avx512_bf16 (docs/performance.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Up to this context length, attention as two batched matmuls around a softmax beats SDPA's CPU flash
# kernel. Forward+backward, bf16, 8,192 tokens, heads of 64-112: 1.8-2.7x faster at T=256, 1.4-2.3x
# at 512, 0.85-1.03x at 1024, 0.64-0.84x at 2048 (its (B·H, T, T) scores grow with T²);
# `python scripts/bench_attention.py` repeats the measurement.
MATMUL_ATTENTION_MAX_SEQ = 512


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q·kᵀ/√d + mask)·v for q, k, v of shape (B, H, T, head_dim); `mask` (at least T × T)
    holds 0 on and below the diagonal and -inf above, or is None to always use SDPA.

    The scale and the mask are fused into one `baddbmm`; the softmax runs in the inputs' dtype
    (PyTorch's CPU softmax accumulates bf16 in fp32, and the flash kernel also rounds P to bf16
    before P·v).
    """
    batch, heads, seq, head_dim = q.shape
    if mask is None or q.device.type != "cpu" or seq > MATMUL_ATTENTION_MAX_SEQ:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    q, k, v = (t.reshape(batch * heads, seq, head_dim) for t in (q, k, v))
    scores = torch.baddbmm(mask[:seq, :seq].to(q.dtype), q, k.transpose(1, 2), alpha=head_dim**-0.5)
    return torch.bmm(torch.softmax(scores, dim=-1), v).view(batch, heads, seq, head_dim)


class _RMSNormalize(torch.autograd.Function):
    """x̂ = x · rstd with rstd = 1/√(mean(x²) + eps): RMSNorm without its gain (Zhang & Sennrich 2019,
    eq. 4), which `model.norm_then_linear` folds into the next layer's weight.

    Backward, per row of width d:  dx = rstd · (g − x · rstd² · ⟨g, x⟩ / d).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float, dtype: torch.dtype) -> torch.Tensor:
        width = x.shape[-1]
        rstd = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(width).add_(eps).rsqrt_()  # (..., 1)
        ctx.save_for_backward(x, rstd)
        # Multiply, then cast: one op that multiplies fp32 and writes bf16 takes TensorIterator's
        # unvectorised mixed-dtype loop, slower than the two vectorised passes.
        return (x * rstd).to(dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, rstd = ctx.saved_tensors
        grad = grad.to(x.dtype)
        coef = torch.linalg.vecdot(grad, x, dim=-1).unsqueeze(-1).mul_(rstd.square()).div_(-x.shape[-1])
        return torch.addcmul(grad, x, coef).mul_(rstd), None, None


def rms_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / √(mean(x²) + eps) over the last dimension, in the autocast dtype when autocast is on (the
    dtype the next matmul would cast it to anyway)."""
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return F.rms_norm(x, (x.shape[-1],), None, eps)
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    return _RMSNormalize.apply(x, eps, dtype)


def rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-width rotary tables (Su et al. 2021, RoFormer eq. 34), each (T, head_dim): cos repeated for
    the two halves, and sin with the sign each half takes, so that rotating is x·cos + swap(x)·sin."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, head_dim/2)
    return torch.cat((angles.cos(), angles.cos()), dim=-1), torch.cat((-angles.sin(), angles.sin()), dim=-1)


def _swap_halves(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((x[..., half:], x[..., :half]), dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: int) -> torch.Tensor:
    """x·cos + swap(x)·(sign·sin) into a new contiguous (B, H, T, head_dim) tensor: the layout
    `causal_attention`'s batched matmuls read, so they need no copy of q and k. Every operand of the
    in-place addcmul is contiguous over (T, head_dim), one long vectorised loop; adding each half's
    sine term from a strided half view instead (no swapped copy) ran 1.5-2.8x slower at head_dim
    76-112, its inner loops being only head_dim/2 long."""
    out = torch.mul(x, cos, out=torch.empty(x.shape, dtype=x.dtype, device=x.device))
    return out.addcmul_(_swap_halves(x), sin, value=sign)


class _Rotary(torch.autograd.Function):
    """Rotate channel pairs (i, i + head_dim/2) by their angles, GPT-NeoX style. A rotation's
    transpose is the rotation by minus the angle, so backward is the same formula with −sin."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, sin, -1), None, None


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, head_dim) rotated by the tables of `rotary_tables` (cut to T, cast to x's dtype)."""
    seq = x.shape[-2]
    cos, sin = cos[:seq].to(x.dtype), sin[:seq].to(x.dtype)
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return x * cos + _swap_halves(x) * sin
    return _Rotary.apply(x, cos, sin)
