"""The shared blocks against their papers' formulas and against reference implementations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hf_encdec import TransformerConfig
from hf_encdec.models.attention import MultiHeadAttention
from hf_encdec.models.feed_forward import build_feed_forward
from hf_encdec.models.losses import token_cross_entropy
from hf_encdec.models.norms import RMSNorm, build_norm
from hf_encdec.models.positions import (
    AlibiBias,
    RotaryEmbedding,
    SinusoidalPositionalEmbedding,
    alibi_slopes,
    apply_rotary,
)


def test_sinusoidal_positions_follow_the_paper() -> None:
    table = SinusoidalPositionalEmbedding(16)(torch.arange(9)[None])[0]  # (T, D)
    for pos in (0, 3, 8):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_rope_scores_depend_only_on_relative_distance() -> None:
    rotary = RotaryEmbedding(8)
    query, key = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(query_pos: int, key_pos: int) -> float:
        cos_q, sin_q = rotary(torch.tensor([[query_pos]]), torch.float32)
        cos_k, sin_k = rotary(torch.tensor([[key_pos]]), torch.float32)
        rotated_q, _ = apply_rotary(query, query, cos_q, sin_q)
        _, rotated_k = apply_rotary(key, key, cos_k, sin_k)
        return (rotated_q * rotated_k).sum().item()

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_alibi_slopes_match_press_et_al() -> None:
    assert alibi_slopes(8).tolist() == pytest.approx([2 ** -(i + 1) for i in range(8)])
    # 6 heads: the 4 slopes of 4 heads, then every other slope of 8 heads
    expected = [2 ** (-2 * (i + 1)) for i in range(4)] + [2**-1, 2**-3]
    assert alibi_slopes(6).tolist() == pytest.approx(expected)


def test_alibi_bias_is_minus_slope_times_distance() -> None:
    bias = AlibiBias(2)(torch.arange(4)[None], torch.arange(4)[None], torch.float32)  # (1, 2, 4, 4)
    slopes = alibi_slopes(2)
    assert bias[0, 1, 3, 0].item() == pytest.approx(-3 * slopes[1].item())
    assert bias[0, 0, 1, 2].item() == pytest.approx(-1 * slopes[0].item())
    assert torch.all(bias[0, :, range(4), range(4)] == 0)


def test_rmsnorm_formula() -> None:
    norm = RMSNorm(6, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(2, 3, 6)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    with pytest.raises(ValueError, match="norm_type='batchnorm'"):
        build_norm("batchnorm", 6, 1e-5)


@pytest.mark.parametrize(("activation", "inner"), [("swiglu", F.silu), ("geglu", F.gelu)])
def test_gated_feed_forward_formula(activation: str, inner) -> None:
    ffn = build_feed_forward(activation, 6, 11, dropout=0.0, bias=False)
    x = torch.randn(2, 3, 6)
    expected = ffn.down_proj(inner(ffn.gate_proj(x)) * ffn.up_proj(x))
    torch.testing.assert_close(ffn(x), expected)


def test_token_cross_entropy_means_over_labelled_tokens_without_num_items() -> None:
    logits = torch.randn(2, 4, 7)
    labels = torch.tensor([[1, 2, -100, -100], [3, 4, 5, -100]])
    expected = F.cross_entropy(logits.reshape(-1, 7), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(token_cross_entropy(logits, labels), expected)


def _attention(config: TransformerConfig, kv_heads: int) -> MultiHeadAttention:
    return MultiHeadAttention(
        config,
        hidden_size=32,
        num_heads=4,
        num_key_value_heads=kv_heads,
        head_dim=8,
        bias=True,
        dropout=0.0,
        layer_idx=0,
        is_causal=True,
    ).eval()


@pytest.mark.parametrize("kv_heads", [1, 2])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_grouped_query_attention_with_repeated_weights_equals_multi_head(kv_heads: int, implementation: str) -> None:
    config = TransformerConfig(hidden_size=32, num_attention_heads=4)
    config._attn_implementation = implementation
    grouped, full = _attention(config, kv_heads), _attention(config, 4)
    groups = 4 // kv_heads
    with torch.no_grad():
        for name in ("q_proj", "o_proj"):
            getattr(full, name).load_state_dict(getattr(grouped, name).state_dict())
        for name in ("k_proj", "v_proj"):
            # (K*d, D) -> (K, d, D) -> repeat each kv head for its query group -> (H*d, D)
            weight = getattr(grouped, name).weight.view(kv_heads, 8, 32).repeat_interleave(groups, 0)
            bias = getattr(grouped, name).bias.view(kv_heads, 8).repeat_interleave(groups, 0)
            getattr(full, name).weight.copy_(weight.reshape(32, 32))
            getattr(full, name).bias.copy_(bias.reshape(32))
    x = torch.randn(3, 7, 32)
    torch.testing.assert_close(grouped(x)[0], full(x)[0], atol=1e-5, rtol=1e-4)


def test_attention_weights_are_returned_with_sdpa_by_falling_back_to_eager() -> None:
    config = TransformerConfig(hidden_size=32, num_attention_heads=4)
    config._attn_implementation = "sdpa"
    attention = _attention(config, 2)
    x = torch.randn(2, 5, 32)
    output, weights = attention(x, output_attentions=True)
    assert weights.shape == (2, 4, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))
    assert torch.all(weights.triu(1) == 0)  # causal without a mask
    torch.testing.assert_close(output, attention(x)[0], atol=1e-5, rtol=1e-4)


def test_position_modules_recompute_their_buffers() -> None:
    for module in (SinusoidalPositionalEmbedding(8), RotaryEmbedding(8), AlibiBias(4)):
        buffer = next(module.buffers())
        original = buffer.clone()
        buffer.fill_(float("nan"))
        module.reset_buffers()
        torch.testing.assert_close(next(module.buffers()), original)


def test_rmsnorm_keeps_its_half_precision_path() -> None:
    norm = RMSNorm(6, eps=1e-6).to(torch.bfloat16)
    x = torch.randn(2, 3, 6, dtype=torch.bfloat16)
    expected = (x.float() / torch.sqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)
    torch.testing.assert_close(norm(x), norm.weight * expected)
