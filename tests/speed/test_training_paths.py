"""Training memory (speed/training.py): the bool-mask dropout is inverted dropout that keeps 1 byte an element for
backward, also inside attention trained with dropout on CPU, and the gated feed-forward recomputes act(gate) * up
in backward with autograd's gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_encdec.models.feed_forward import build_feed_forward
from hf_encdec import TransformerConfig
from hf_encdec.models.attention import MultiHeadAttention
from hf_encdec.speed.training import BoolDropoutAttention, Dropout, GatedProductFeedForward, bool_mask_dropout


def _saved_dtypes(function) -> list[torch.dtype]:
    dtypes: list[torch.dtype] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        dtypes.append(tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return dtypes


def test_outside_training_or_without_probability_it_is_the_identity() -> None:
    x = torch.randn(3, 5)
    assert bool_mask_dropout(x, 0.3, training=False) is x
    assert bool_mask_dropout(x, 0.0, training=True) is x
    assert Dropout(0.3).eval()(x) is x


def test_kept_entries_are_scaled_and_the_rest_zeroed_at_rate_p() -> None:
    x = torch.rand(200, 500) + 0.5  # no zeros of its own
    y = bool_mask_dropout(x, 0.25, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert abs((~kept).float().mean().item() - 0.25) < 0.01
    # a second draw is a different mask
    assert not torch.equal(kept, bool_mask_dropout(x, 0.25, training=True) != 0)


def test_gradient_is_the_mask_over_keep_probability() -> None:
    x = (torch.rand(7, 9) + 0.5).requires_grad_()
    y = bool_mask_dropout(x, 0.4, training=True)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.6)


def test_backward_keeps_a_bool_mask_not_a_float_one() -> None:
    x = torch.randn(4, 6, requires_grad=True)
    ours = _saved_dtypes(lambda: bool_mask_dropout(x, 0.1, training=True))
    assert ours == [torch.bool]
    # torch's own CPU dropout keeps a mask of the input's dtype: what this block avoids
    assert torch.float32 in _saved_dtypes(lambda: torch.nn.functional.dropout(x, 0.1, training=True))


@pytest.mark.parametrize("p", [1.0])
def test_probability_one_drops_everything(p: float) -> None:
    assert torch.count_nonzero(bool_mask_dropout(torch.randn(3, 4), p, training=True)) == 0


@pytest.mark.parametrize("activation", ["swiglu", "geglu"])
def test_gated_feed_forward_keeps_gate_and_up_only_and_its_gradients_match_autograd(activation: str) -> None:
    ffn = build_feed_forward(activation, 6, 11, dropout=0.0, bias=True)
    ffn.__class__ = GatedProductFeedForward
    x = torch.randn(2, 3, 6, requires_grad=True)
    weights = {parameter.data_ptr() for parameter in ffn.parameters()}
    wide: list[torch.Tensor] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.numel() == 2 * 3 * 11 and tensor.data_ptr() not in weights:
            wide.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = ffn(x)
    # gate and up for the product, and the product itself for down_proj; not act(gate)
    assert len({tensor.data_ptr() for tensor in wide}) == 3
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, *ffn.parameters()], grad)
    inner = F.silu if activation == "swiglu" else F.gelu
    expected_out = ffn.down_proj(inner(ffn.gate_proj(x)) * ffn.up_proj(x))
    expected = torch.autograd.grad(expected_out, [x, *ffn.parameters()], grad)
    for value, reference in zip(got, expected):
        torch.testing.assert_close(value, reference)


def test_attention_dropout_in_cpu_training_runs_the_eager_kernel_with_a_bool_mask() -> None:
    config = TransformerConfig(hidden_size=32, num_attention_heads=4)
    attention = MultiHeadAttention(
        config,
        hidden_size=32,
        num_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        bias=True,
        dropout=0.3,
        layer_idx=0,
        is_causal=True,
    ).train()
    attention.__class__ = BoolDropoutAttention
    x = torch.randn(2, 5, 32, requires_grad=True)
    config._attn_implementation = "sdpa"
    torch.manual_seed(1)
    dropped = attention(x)[0]
    torch.manual_seed(1)
    torch.testing.assert_close(attention(x)[0], dropped)  # the same draws give the same output
    with torch.no_grad():
        kept = attention.eval()(x)[0]  # no dropout: sdpa itself
        attention.__class__ = MultiHeadAttention
        torch.testing.assert_close(kept, attention(x)[0])
    attention.__class__ = BoolDropoutAttention
    attention.train()
    assert not torch.allclose(dropped, kept)
    saved: list[torch.dtype] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.shape == (2, 4, 5, 5):
            saved.append(tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        attention(x)
    assert torch.bool in saved and saved.count(torch.float32) <= 2  # softmax output and dropped weights, no float mask
    attention.__class__ = MultiHeadAttention  # the plain module: sdpa's math kernel, with a float mask
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        attention(x)
    assert torch.bool not in saved
