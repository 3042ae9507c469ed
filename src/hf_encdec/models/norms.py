"""Normalisation layers: LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019, arXiv 1910.07467).

Shapes: (..., D) -> (..., D).

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * g + b
    RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * g
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm without re-centring or bias; computed in float32 for half-precision inputs."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = hidden_states.dtype
        if dtype == torch.float32 and self.weight.dtype == torch.float32:
            # the same numbers in one call, which keeps one (..., D) tensor fewer for the backward pass
            return F.rms_norm(hidden_states, self.weight.shape, self.weight, self.eps)
        normed = F.rms_norm(hidden_states.float(), self.weight.shape, eps=self.eps)
        return self.weight * normed.to(dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


NORM_TYPES = ("layernorm", "rmsnorm")


def build_norm(norm_type: str, hidden_size: int, eps: float) -> nn.Module:
    """The norm layer named by `norm_type` (one of `NORM_TYPES`)."""
    if norm_type == "layernorm":
        return nn.LayerNorm(hidden_size, eps=eps)
    if norm_type == "rmsnorm":
        return RMSNorm(hidden_size, eps=eps)
    raise ValueError(f"norm_type={norm_type!r} is not supported; valid values: {NORM_TYPES}")
