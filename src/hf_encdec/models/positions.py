"""Position information, each acting in exactly one place.

Shapes: B batch, T positions (query length), K key length, D hidden, H heads, d head dim.

- `SinusoidalPositionalEmbedding` (Vaswani et al. 2017, arXiv 1706.03762), added to the token embeddings:
      PE(pos, 2i) = sin(pos / 10000^(2i/D)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/D))
  computed from the positions on the fly, so any length works.
- `LearnedPositionalEmbedding` (BERT/GPT-2), added to the token embeddings; limited to `max_positions`.
- `RotaryEmbedding` (Su et al. 2021, arXiv 2104.09864), rotating queries and keys of self-attention:
      q'_t = q_t * cos(t * theta) + rotate_half(q_t) * sin(t * theta)
- `AlibiBias` (Press et al. 2021, arXiv 2108.12409), a score bias  -m_h * |i - j|  added before the softmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def inverse_frequencies(dim: int, base: float) -> torch.Tensor:
    """1 / base^(2i/dim) for i = 0 .. dim/2 - 1, the angular rates shared by sinusoidal positions and RoPE."""
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))


class SinusoidalPositionalEmbedding(nn.Module):
    """Fixed sinusoids of Vaswani et al., interleaved sin/cos as in the paper; no parameters."""

    def __init__(self, hidden_size: int, base: float = 10000.0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.base = base
        self.register_buffer("inv_freq", inverse_frequencies(hidden_size, base), persistent=False)

    def reset_buffers(self) -> None:
        """Recompute the non-persistent table (after meta-device loading)."""
        self.inv_freq.copy_(inverse_frequencies(self.hidden_size, self.base))

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        angles = position_ids.float().unsqueeze(-1) * self.inv_freq  # (B, T, D/2)
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (B, T, D)


class LearnedPositionalEmbedding(nn.Embedding):
    """One trained vector per absolute position (BERT, GPT-2); cannot extrapolate past `num_embeddings`."""

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(position_ids)


class RotaryEmbedding(nn.Module):
    """Returns (cos, sin) for the positions; `apply_rotary` rotates q and k with them (GPT-NeoX/Llama layout)."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.base = base
        self.register_buffer("inv_freq", inverse_frequencies(head_dim, base), persistent=False)

    def reset_buffers(self) -> None:
        self.inv_freq.copy_(inverse_frequencies(self.head_dim, self.base))

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        angles = position_ids.float().unsqueeze(-1) * self.inv_freq  # (B, T, d/2)
        angles = torch.cat((angles, angles), dim=-1)  # (B, T, d)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(
    query: torch.Tensor, key: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate (B, H, T, d) queries and (B, K, T, d) keys by position; cos/sin are (B, T, d)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, d)
    return query * cos + rotate_half(query) * sin, key * cos + rotate_half(key) * sin


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Head slopes m_h: the geometric sequence 2^(-8h/n) of Press et al., interleaved for non-powers of two."""
    closest = 2 ** math.floor(math.log2(num_heads))
    slopes = [2 ** (-8 * (h + 1) / closest) for h in range(closest)]
    if closest < num_heads:
        extra = [2 ** (-4 * (h + 1) / closest) for h in range(2 * closest)]
        slopes += extra[0::2][: num_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


class AlibiBias(nn.Module):
    """Linear distance penalty per head: bias[b, h, i, j] = -m_h * |pos_i - pos_j| (symmetric for encoders)."""

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.register_buffer("slopes", alibi_slopes(num_heads), persistent=False)

    def reset_buffers(self) -> None:
        self.slopes.copy_(alibi_slopes(self.num_heads))

    def forward(self, query_positions: torch.Tensor, key_positions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        distance = (query_positions.unsqueeze(-1) - key_positions.unsqueeze(-2)).abs()  # (B, T, K)
        bias = -self.slopes.view(1, -1, 1, 1) * distance.unsqueeze(1).float()  # (B, H, T, K)
        return bias.to(dtype)


#: position_type -> (where it acts, builder from a config). Where it acts is the attribute of the Transformer stack
#: that holds it: `embed_positions` (added to the token embeddings), `rotary` (rotates self-attention queries and
#: keys) or `alibi` (a score bias).
POSITIONS: dict[str, tuple[str, Callable[[Any], nn.Module]]] = {
    "sinusoidal": ("embed_positions", lambda config: SinusoidalPositionalEmbedding(config.hidden_size)),
    "learned": (
        "embed_positions",
        lambda config: LearnedPositionalEmbedding(config.max_position_embeddings, config.hidden_size),
    ),
    "rope": ("rotary", lambda config: RotaryEmbedding(config.head_dim, config.rope_theta)),
    "alibi": ("alibi", lambda config: AlibiBias(config.num_attention_heads)),
}
POSITION_TYPES = tuple(POSITIONS)
