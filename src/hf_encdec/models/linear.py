"""The linear layer of the Transformer projections, with a CPU path for the few rows of a decoding step.

Shapes: (..., D_in) -> (..., D_out).

    y = x W^T + b

A decoding step multiplies only a few rows (sequences x beams) by each weight. MKL's CPU matrix product packs its
second operand into blocks first, and for x W^T that operand is the whole (D_out, D_in) weight: with few rows the
packing costs more than the product. Computing the same product as (W x^T)^T packs the rows instead. Which row
counts gain depends on MKL's kernel choice, not smoothly on the count. On this machine's MKL (bench/README.md):
alone (`bench/projections.py`), the swapped product of the small and base projections was 1.1-1.9x faster at 2-5
rows and 1.02-1.35x at 16 and 32, slower at 1 and at 6-14 rows, and the output layer (D_out >= 8 D_in) gained 2-6x
at 2-10 rows; in whole `generate()` calls (`bench/run.py`) 8 rows still gained (greedy 1.22-1.31x with it,
1.16-1.19x without), so the window keeps 2-8 and adds 16 and 32 (beam search over 4 and 8 sources with 4 beams).
Everything else (training, GPUs, half precision) runs `nn.Linear` unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

# rows of a product that take the (W x^T)^T path on CPU in float32 without autograd
FEW_ROWS = frozenset(range(2, 9)) | frozenset({16, 32})
# the same for an output layer (D_out >= 8 D_in), whose weight packing dominates up to 10 rows
WIDE_FEW_ROWS = FEW_ROWS | frozenset(range(2, 11))


class Linear(nn.Linear):
    """`nn.Linear` (same parameters, same results) with the few-row CPU path described in the module docstring."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        rows = input.numel() // self.in_features if input.dim() else 0
        if (
            rows not in (WIDE_FEW_ROWS if self.out_features >= 8 * self.in_features else FEW_ROWS)
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
