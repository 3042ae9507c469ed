"""The default layer (post-LN, ReLU, biases) is exactly torch's reference Transformer layer with copied weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import build
from hf_encdec.models.attention import MultiHeadAttention
from hf_encdec.models.transformer_layers import TransformerLayer


def _copy_attention(ours: MultiHeadAttention, reference: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        weights = reference.in_proj_weight.chunk(3)
        biases = reference.in_proj_bias.chunk(3)
        for projection, weight, bias in zip((ours.q_proj, ours.k_proj, ours.v_proj), weights, biases):
            projection.weight.copy_(weight)
            projection.bias.copy_(bias)
        ours.o_proj.weight.copy_(reference.out_proj.weight)
        ours.o_proj.bias.copy_(reference.out_proj.bias)


def _copy_feed_forward(ours: TransformerLayer, reference: nn.Module) -> None:
    with torch.no_grad():
        ours.feed_forward.fc1.load_state_dict(reference.linear1.state_dict())
        ours.feed_forward.fc2.load_state_dict(reference.linear2.state_dict())


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_encoder_layer_equals_torch_transformer_encoder_layer(attn_implementation: str) -> None:
    model = build("seq2seq", {"num_key_value_heads": 4, "attn_implementation": attn_implementation})
    ours = model.model.encoder.layers[0]
    reference = nn.TransformerEncoderLayer(32, 4, dim_feedforward=37, dropout=0.0, batch_first=True).eval()
    _copy_attention(ours.self_attn, reference.self_attn)
    _copy_feed_forward(ours, reference)
    with torch.no_grad():
        ours.self_attn_norm.load_state_dict(reference.norm1.state_dict())
        ours.feed_forward_norm.load_state_dict(reference.norm2.state_dict())
    x = torch.randn(3, 7, 32)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 5:] = True  # torch: True = ignore
    keep = (~padding)[:, None, None, :]  # ours: (B, 1, 1, S), True = attend
    expected = reference(x, src_key_padding_mask=padding)
    got = ours(x, keep)[0]
    real = ~padding
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_decoder_layer_equals_torch_transformer_decoder_layer(attn_implementation: str) -> None:
    model = build("seq2seq", {"num_key_value_heads": 4, "attn_implementation": attn_implementation})
    ours = model.model.decoder.layers[0]
    reference = nn.TransformerDecoderLayer(32, 4, dim_feedforward=37, dropout=0.0, batch_first=True).eval()
    _copy_attention(ours.self_attn, reference.self_attn)
    _copy_attention(ours.cross_attn, reference.multihead_attn)
    _copy_feed_forward(ours, reference)
    with torch.no_grad():
        ours.self_attn_norm.load_state_dict(reference.norm1.state_dict())
        ours.cross_attn_norm.load_state_dict(reference.norm2.state_dict())
        ours.feed_forward_norm.load_state_dict(reference.norm3.state_dict())
    target, memory = torch.randn(3, 5, 32), torch.randn(3, 7, 32)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    expected = reference(target, memory, tgt_mask=causal, tgt_is_causal=True)
    got = ours(target, None, memory)[0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
