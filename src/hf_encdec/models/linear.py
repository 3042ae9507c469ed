"""The linear layer of the Transformer projections, with a CPU path for the few rows of a decoding step.

Shapes: (..., D_in) -> (..., D_out).

    y = x W^T + b

A decoding step multiplies only a few rows (the batch) by each weight. MKL's CPU matrix product packs its second
operand into blocks first, and for x W^T that operand is the whole (D_out, D_in) weight: with 2 to 8 rows the packing
costs more than the product. Computing the same product as (W x^T)^T packs the few rows instead. On this machine's
MKL (bench/README.md) that made single projections 1.2-2.9x faster for 2 and 4 rows and up to 1.26x for 8 when
D_out >= D_in, and slower for 1 row, for 12 or more rows and for narrowing weights at 8 rows; hence the window below.
Everything else (training, prefill, GPUs, half precision) runs `nn.Linear` unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

# rows of a product that take the (W x^T)^T path on CPU in float32 without autograd
FEW_ROWS = range(2, 9)


class Linear(nn.Linear):
    """`nn.Linear` (same parameters, same results) with the few-row CPU path described in the module docstring."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        rows = input.numel() // self.in_features if input.dim() else 0
        if (
            rows not in FEW_ROWS
            or self.out_features < self.in_features
            or input.device.type != "cpu"
            or input.dtype != torch.float32
            or self.weight.dtype != torch.float32
            or (torch.is_grad_enabled() and (input.requires_grad or self.weight.requires_grad))
        ):
            return super().forward(input)
        flat = input.reshape(rows, self.in_features)  # (N, D_in)
        if self.bias is None:
            output = torch.mm(self.weight, flat.t())  # (D_out, N)
        else:
            output = torch.addmm(self.bias[:, None], self.weight, flat.t())
        return output.t().contiguous().view(*input.shape[:-1], self.out_features)
