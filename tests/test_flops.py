import itertools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from sweep.model.flops import flops_per_token, matmul_flops_per_token, param_counts, training_flops
from sweep.model.gpt import GPT
from sweep.model.shape import ModelShape, default_d_ff

VARIANTS = list(itertools.product(["layernorm", "rmsnorm"], ["gelu", "swiglu"], ["learned", "rotary"], [True, False]))


def shape_of(norm="rmsnorm", activation="gelu", positions="rotary", tied=True, layers=2, d_model=48, heads=4):
    return ModelShape(
        layers, d_model, heads, default_d_ff(d_model, activation), 256, 32, norm, activation, positions, tied
    )


@pytest.mark.parametrize("norm, activation, positions, tied", VARIANTS)
def test_param_counts_equal_the_module(norm, activation, positions, tied):
    shape = shape_of(norm, activation, positions, tied)
    model = GPT(shape)
    counts = param_counts(shape)
    assert counts.total == sum(p.numel() for p in model.parameters())
    embedding = model.token_embedding.weight.numel()
    embedding += model.position_embedding.weight.numel() if model.position_embedding is not None else 0
    embedding += 0 if tied else model.head.weight.numel()
    assert counts.embedding == embedding
    assert counts.non_embedding == sum(p.numel() for p in model.blocks.parameters()) + model.norm_final.weight.numel()


@pytest.mark.parametrize("activation, positions, tied", [("gelu", "rotary", True), ("swiglu", "learned", False)])
def test_matmul_flops_equal_torch_flop_counter(activation, positions, tied):
    """Forward + backward; on CPU attention runs as baddbmm and bmm (ops.causal_attention), which the
    counter sees, unlike the fused flash kernel."""
    shape = shape_of(activation=activation, positions=positions, tied=tied)
    model = GPT(shape)
    tokens = torch.randint(0, 256, (3, shape.seq_len))
    counter = FlopCounterMode(display=False)
    with counter:
        model(tokens, tokens).backward()
    assert counter.get_total_flops() == matmul_flops_per_token(shape) * tokens.numel()


def test_conventions_relate_as_documented():
    shape = shape_of()
    counts = param_counts(shape)
    assert flops_per_token(shape, "6n") == 6 * counts.non_embedding
    assert flops_per_token(shape, "6n_total") == 6 * counts.total
    attention = 12 * shape.n_layers * shape.seq_len * shape.d_model  # PaLM App. B
    assert flops_per_token(shape, "6n_attn") == 6 * counts.non_embedding + attention
    flops = training_flops(shape, 1000)
    assert flops["flops"] == 6 * counts.non_embedding * 1000
    assert flops["flops"] < flops["flops_attn"] < flops["flops_matmul"]
    with pytest.raises(ValueError):
        flops_per_token(shape, "7n")
