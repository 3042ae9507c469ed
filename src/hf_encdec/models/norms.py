"""Normalisation layers: LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019, arXiv 1910.07467).

Shapes: (..., D) -> (..., D).

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * g + b
    RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * g
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.RMSNorm):
    """torch's RMSNorm (gain g, no re-centring, no bias); half-precision inputs are normalised in float32 and cast
    back, as Llama does, where torch would normalise in the input's precision."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__(hidden_size, eps=eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = hidden_states.dtype
        if dtype == torch.float32 and self.weight.dtype == torch.float32:
            return super().forward(hidden_states)
        normed = F.rms_norm(hidden_states.float(), self.normalized_shape, eps=self.eps)
        return self.weight * normed.to(dtype)


NORM_TYPES = ("layernorm", "rmsnorm")


def build_norm(norm_type: str, hidden_size: int, eps: float) -> nn.Module:
    """The norm layer named by `norm_type` (one of `NORM_TYPES`)."""
    if norm_type == "layernorm":
        return nn.LayerNorm(hidden_size, eps=eps)
    if norm_type == "rmsnorm":
        return RMSNorm(hidden_size, eps=eps)
    raise ValueError(f"norm_type={norm_type!r} is not supported; valid values: {NORM_TYPES}")
