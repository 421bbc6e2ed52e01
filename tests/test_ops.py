"""The CPU kernels of ops.py compute what PyTorch's own layers compute, forward and backward."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from sweep.model.gpt import RMSNorm, norm_then_linear
from sweep.model.ops import apply_rotary, causal_attention, rms_normalize, rotary_tables


def _grads(fn, *inputs, grad_out):
    out = fn(*inputs)
    return (out, *torch.autograd.grad(out, inputs, grad_out))


def test_rms_normalize_matches_torch_forward_and_backward():
    torch.manual_seed(0)
    x = torch.randn(3, 7, 24, dtype=torch.float64, requires_grad=True)
    reference = nn.RMSNorm(24, eps=1e-6, elementwise_affine=False)
    grad_out = torch.randn(3, 7, 24, dtype=torch.float64)
    expected = _grads(reference, x, grad_out=grad_out)
    got = _grads(lambda x: rms_normalize(x, 1e-6), x, grad_out=grad_out)
    for want, have in zip(expected, got):
        torch.testing.assert_close(have, want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: rms_normalize(x, 1e-6), (x,))


def test_rms_normalize_writes_the_autocast_dtype_and_returns_fp32_gradients():
    x = torch.randn(4, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rms_normalize(x, 1e-6)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), F.rms_norm(x, (16,), None, 1e-6), rtol=1e-2, atol=1e-2)
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32


@pytest.mark.parametrize("norm", [RMSNorm(24), nn.LayerNorm(24, bias=False)])
def test_norm_then_linear_equals_the_linears_of_the_norm(norm):
    """Folding the RMSNorm gain into the next weights changes neither outputs nor any gradient."""
    torch.manual_seed(0)
    norm = norm.double()
    with torch.no_grad():
        norm.weight.normal_()
    linears = [nn.Linear(24, 10, bias=False).double() for _ in range(2)]
    x = torch.randn(3, 5, 24, dtype=torch.float64, requires_grad=True)
    params = [x, norm.weight, *(linear.weight for linear in linears)]
    grad_outs = [torch.randn(3, 5, 10, dtype=torch.float64) for _ in linears]

    def outputs_and_grads(outputs):
        return [*outputs, *torch.autograd.grad(outputs, params, grad_outs)]

    expected = outputs_and_grads([linear(norm(x)) for linear in linears])
    got = outputs_and_grads(norm_then_linear(norm, x, *linears))
    for want, have in zip(expected, got):
        torch.testing.assert_close(have, want, rtol=1e-12, atol=1e-12)


def _rotary_reference(x, seq_len):
    """RoFormer eq. 34 written out pair by pair: (a, b) → (a cos θ − b sin θ, b cos θ + a sin θ)."""
    head_dim = x.shape[-1]
    inv_freq = 1.0 / 10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    a, b = x[..., : head_dim // 2], x[..., head_dim // 2 :]
    return torch.cat((a * angles.cos() - b * angles.sin(), b * angles.cos() + a * angles.sin()), dim=-1)


def test_rotary_rotates_pairs_and_its_backward_is_the_inverse_rotation():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 10, 8, dtype=torch.float64, requires_grad=True)
    cos, sin = (t.double() for t in rotary_tables(16, 8))
    torch.testing.assert_close(apply_rotary(x, cos, sin), _rotary_reference(x, 10))
    assert torch.autograd.gradcheck(lambda x: apply_rotary(x, cos, sin), (x,))
    # A rotation keeps lengths: each pair's norm is unchanged.
    rotated = apply_rotary(x, cos, sin)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))


def _mask(seq):
    return torch.full((seq, seq), float("-inf")).triu(1)


@pytest.mark.parametrize("seq", [1, 9, 16])
def test_causal_attention_matches_sdpa(seq):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, seq, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    grad_out = torch.randn(2, 3, seq, 8, dtype=torch.float64)
    expected = _grads(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), q, k, v, grad_out=grad_out
    )
    got = _grads(lambda q, k, v: causal_attention(q, k, v, _mask(16).double()), q, k, v, grad_out=grad_out)
    for want, have in zip(expected, got):
        torch.testing.assert_close(have, want)


def test_causal_attention_in_bf16_stays_close_to_fp32():
    """The scores and probabilities round to bf16, as in the flash kernel: errors of bf16 size."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 2, 64, 32) for _ in range(3))
    exact = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    low = causal_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), _mask(64)).float()
    assert (low - exact).abs().max() < 0.05
    assert (low - exact).abs().mean() < 4 * 2**-8 * exact.abs().mean()


def test_causal_attention_ignores_the_future():
    q, k, v = (torch.randn(1, 1, 6, 4) for _ in range(3))
    changed = v.clone()
    changed[..., 3:, :] += 1.0
    mask = _mask(6)
    torch.testing.assert_close(
        causal_attention(q, k, v, mask)[..., :3, :], causal_attention(q, k, changed, mask)[..., :3, :]
    )
    assert not math.isclose(
        causal_attention(q, k, v, mask)[..., 5, 0].item(), causal_attention(q, k, changed, mask)[..., 5, 0].item()
    )
