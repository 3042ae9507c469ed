"""Position-wise feed-forward networks.

Shapes: (B, T, D) -> (B, T, D), inner width F.

- Plain (Vaswani et al. 2017, arXiv 1706.03762):  FFN(x) = W_2 act(W_1 x + b_1) + b_2,  act in relu/gelu/silu;
  gelu_new is GPT-2's tanh approximation of GELU.
- Gated (Shazeer 2020, arXiv 2002.05202):          FFN(x) = W_down (act(W_gate x) * W_up x),
  SwiGLU with act = SiLU (Llama), GEGLU with act = GELU.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN


PLAIN_ACTIVATIONS = ("relu", "gelu", "gelu_new", "silu")
GATED_ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu"}
HIDDEN_ACTS = PLAIN_ACTIVATIONS + tuple(GATED_ACTIVATIONS)


class FeedForward(nn.Module):
    """Two linear maps with an activation between them (names as in BART: fc1, fc2)."""

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str, *, dropout: float, bias: bool) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.act = ACT2FN[activation]
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.fc2.residual_output = True  # the branch's last map (config.scale_residual_init)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.act(self.fc1(hidden_states))))


class GatedFeedForward(nn.Module):
    """GLU-variant feed-forward (names as in Llama: gate_proj, up_proj, down_proj)."""

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str, *, dropout: float, bias: bool) -> None:
        super().__init__()
        if activation not in ("silu", "gelu"):
            raise ValueError(f"gated feed-forward activation must be 'silu' or 'gelu', got {activation!r}")
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.activation = activation
        self.act = ACT2FN[activation]
        self.dropout = nn.Dropout(dropout)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.down_proj.residual_output = True  # the branch's last map (config.scale_residual_init)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_proj(hidden_states), self.up_proj(hidden_states)  # (B, T, F) each
        return self.down_proj(self.dropout(self.act(gate) * up))


def build_feed_forward(
    hidden_act: str, hidden_size: int, intermediate_size: int, *, dropout: float, bias: bool
) -> nn.Module:
    """The feed-forward block for `hidden_act` (one of `HIDDEN_ACTS`)."""
    if hidden_act in GATED_ACTIVATIONS:
        return GatedFeedForward(
            hidden_size, intermediate_size, GATED_ACTIVATIONS[hidden_act], dropout=dropout, bias=bias
        )
    if hidden_act in PLAIN_ACTIVATIONS:
        return FeedForward(hidden_size, intermediate_size, hidden_act, dropout=dropout, bias=bias)
    raise ValueError(f"hidden_act={hidden_act!r} is not supported; valid values: {HIDDEN_ACTS}")
