"""Training memory: what a training step keeps for its backward pass, made smaller without changing what it computes.

Shapes: B batch, T length, F feed-forward width, H heads, S key length.

| module swapped in | what it saves | plain module |
|---|---|---|
| `Dropout`: the mask as bool on CPU | 1 byte per element kept for backward, not 4 | `nn.Dropout` |
| `GatedProductFeedForward`: act(gate) * up recomputed in backward | one (B, T, F) tensor per gated layer | `GatedFeedForward` |
| `BoolDropoutAttention`: eager attention with a bool dropout mask when training with attention dropout on CPU | torch's sdpa math kernel keeps a float (B, H, T, S) mask | sdpa |
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.attention import MultiHeadAttention, attention_weights, repeat_kv
from ..models.feed_forward import GatedFeedForward

# Inverted dropout (Hinton et al. 2012, arXiv 1207.0580): y = x * m / (1 - p), m_i ~ Bernoulli(1 - p). On CPU,
# `F.dropout` keeps its mask for backward as a tensor of the input's dtype (4 bytes per element in float32, as much as
# the activation); here it is kept as bool and drawn as `uniform >= p`, which is also faster on CPU. Other devices
# already keep a bool mask in torch's fused kernel.

class _MaskedScale(torch.autograd.Function):
    """y = x * keep * scale with a bool `keep` saved for backward (dy/dx = keep * scale)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, hidden_states: torch.Tensor, keep: torch.Tensor, scale: float
    ) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return hidden_states.mul(keep).mul_(scale)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return grad_output.mul(keep).mul_(ctx.scale), None, None


def bool_mask_dropout(hidden_states: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with probability `p`; identity outside training or for p = 0."""
    if not training or p == 0.0:
        return hidden_states
    if hidden_states.device.type != "cpu" or p >= 1.0:
        return F.dropout(hidden_states, p, training=True)
    keep = torch.rand(hidden_states.shape, dtype=torch.float32, device=hidden_states.device) >= p  # (...,) bool
    return _MaskedScale.apply(hidden_states, keep, 1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """`nn.Dropout` with a bool mask kept for backward on CPU."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(hidden_states)
        return bool_mask_dropout(hidden_states, self.p, self.training)


# act(W_gate x) * W_up x (Shazeer 2020, 2002.05202): autograd would keep act(gate) next to gate and up, one more
# (B, T, F) tensor per layer, the largest activation of a Llama block; it is recomputed in backward instead.

def _activate(gate: torch.Tensor, activation: str) -> torch.Tensor:
    return F.silu(gate) if activation == "silu" else F.gelu(gate)


class _GatedProduct(torch.autograd.Function):
    """act(gate) * up, saving gate and up only; act(gate) is recomputed in backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, gate: torch.Tensor, up: torch.Tensor, activation: str
    ) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        ctx.activation = activation
        return _activate(gate, activation).mul_(up)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor):  # type: ignore[override]
        gate, up = ctx.saved_tensors
        grad_activated = grad_output * up  # d loss / d act(gate)
        if ctx.activation == "silu":
            grad_gate = torch.ops.aten.silu_backward(grad_activated, gate)
        else:
            grad_gate = torch.ops.aten.gelu_backward(grad_activated, gate, approximate="none")
        grad_up = grad_output * _activate(gate, ctx.activation)
        return grad_gate, grad_up, None


def gated_product(gate: torch.Tensor, up: torch.Tensor, activation: str) -> torch.Tensor:
    """act(gate) * up for `activation` in ("silu", "gelu")."""
    if torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
        return _GatedProduct.apply(gate, up, activation)
    return _activate(gate, activation) * up



class GatedProductFeedForward(GatedFeedForward):
    """`GatedFeedForward` whose act(gate) * up is recomputed in backward (`gated_product`)."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_proj(hidden_states), self.up_proj(hidden_states)  # (B, T, F) each
        return self.down_proj(self.dropout(gated_product(gate, up, self.activation)))


def eager_attention_with_bool_dropout(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    position_bias: torch.Tensor | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`eager_attention_forward` with the attention dropout's mask kept as bool (`dropout`)."""
    weights = attention_weights(module, query, key, attention_mask, scaling, position_bias)  # (B, H, T, S)
    weights = bool_mask_dropout(weights, dropout, module.training)
    output = torch.matmul(weights, repeat_kv(value, module.num_key_value_groups))  # (B, H, T, d)
    return output.transpose(1, 2).contiguous(), weights  # (B, T, H, d)


class BoolDropoutAttention(MultiHeadAttention):
    """`MultiHeadAttention` that trains with attention dropout on CPU through the eager kernel with a bool mask: torch
    runs sdpa with dropout on CPU through its math kernel, which keeps a float32 (B, H, T, S) dropout mask for
    backward."""

    def attention_interface(self, output_attentions: bool) -> Callable:
        # cheapest checks first: in decoding (eval) this runs for every attention call, and reading the config's
        # attention implementation goes through transformers' config attribute machinery
        if (
            self.training
            and self.dropout > 0
            and not output_attentions
            and self.q_proj.weight.device.type == "cpu"
            and (self.config._attn_implementation or "sdpa") == "sdpa"
        ):
            return eager_attention_with_bool_dropout
        return super().attention_interface(output_attentions)
