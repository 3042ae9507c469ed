"""Dropout (Hinton et al. 2012, arXiv 1207.0580; Srivastava et al. 2014) that keeps a one-byte mask for backward.

Shapes: any; the output has the input's shape.

    y = x * m / (1 - p),   m_i ~ Bernoulli(1 - p)  (training);   y = x  (evaluation)

On CPU, `torch.nn.functional.dropout` draws the mask with a Bernoulli kernel and keeps it for the backward pass as a
tensor of the input's dtype: 4 bytes per element in float32, as much as the activation it masks. `Dropout` keeps it
as bool (1 byte) and draws it as `uniform >= p`, which is also faster on CPU. On other devices torch's fused kernel
already keeps a bool mask and is used unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


def dropout(hidden_states: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with probability `p`; identity outside training or for p = 0."""
    if not training or p == 0.0:
        return hidden_states
    if hidden_states.device.type != "cpu" or p >= 1.0:
        return F.dropout(hidden_states, p, training=True)
    keep = torch.rand(hidden_states.shape, dtype=torch.float32, device=hidden_states.device) >= p  # (...,) bool
    return _MaskedScale.apply(hidden_states, keep, 1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """`nn.Dropout` with a bool mask kept for backward on CPU (see the module docstring)."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(hidden_states)
        return dropout(hidden_states, self.p, self.training)
