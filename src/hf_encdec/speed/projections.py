"""Few-row products: `ProjectionLinear`, an `nn.Linear` whose decoding products run the way this machine measured
fastest for their shape.

Shapes: N rows, D_in / D_out features.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

# A decoding step multiplies only a few rows (sequences x beams) by each weight, so the step reads every weight once
# for little arithmetic: its speed is how fast the kernel streams the weight in. The same product can run four ways,
# with different kernels under them:
#   plain    x W^T, nn.Linear's product;
#   swapped  (W x^T)^T: the BLAS packs the rows, not the whole (D_out, D_in) weight;
#   blocked  one row only: the weight's rows cut into blocks, one batched matrix-vector product (bmm) over them.
#            (With more rows it gained nothing in isolation and cost 4% of a whole test translation at 64 rows,
#            through its trials: AMD EPYC, 2 cores, AVX2, 2026-11-28.)
#   rowsum   one row only: W * x broadcast and summed over each row of W (torch's elementwise and reduction kernels,
#            not the BLAS), in chunks of ROWSUM_CHUNK weights so the temporary product stays small.
# Which is fastest depends on the CPU, its caches, the BLAS kernel it picks and what else runs between the products.
# Measured inside generate() on 2026-11-28 (bench/README.md, issue 15): on an AMD EPYC (2 cores, AVX2), for one row,
# blocked 1.6x the plain product's decoding speed where swapped gains nothing; at 8 rows swapped 1.4x; on an Intel
# Xeon the swapped product lost 5-25%; on an AMD EPYC with AVX-512 blocked lost, and rowsum streamed a cold
# 8000 x 256 weight 2.4x faster than F.linear. So nothing is assumed and nothing is timed apart from the real work:
# the first products of each shape in a process take the ways in turn on the caller's own data, TRIAL_CALLS timed
# calls each (after one untimed call each), and the shape then keeps the way whose median was fastest; another way
# than plain only when it was at least 10% faster than plain. `product_choices()` shows what was chosen. The ways
# agree up to float rounding (~1e-6), so outputs can differ at that level between calls while a shape is on trial;
# `apply_speed_paths(model, product_way="swapped")` (or `plain`, `blocked`, `rowsum`) fixes the way for runs that
# must repeat bit for bit.

PRODUCT_WAYS = ("plain", "swapped", "blocked", "rowsum")
FEW_ROW_PRODUCTS = ("measured", *PRODUCT_WAYS)
MAX_CHOSEN_ROWS = 64  # more rows than this always take nn.Linear's product (the weight's packing is then shared)
TRIAL_CALLS = 8  # timed real products per way before a shape's choice
MAX_BLOCKS = 8  # the blocked product cuts the weight into at most this many blocks
ROWSUM_CHUNK = 1 << 20  # weights multiplied at once by the rowsum product (at least one row of W): 4 MiB in float32
_product_choices: dict[tuple[int, int, int, bool, int], str] = {}
_product_trials: dict[tuple[int, int, int, bool, int], ProductTrial] = {}


def product_choices() -> dict[tuple[int, int, int, bool, int], str]:
    """What this process chose so far: (rows, D_in, D_out, bias, threads) -> the way ("plain", "swapped",
    "blocked" or "rowsum") that was fastest."""
    return dict(_product_choices)


def product_blocks(out_features: int, threads: int) -> int:
    """The number of row blocks of the blocked product: the largest of 8, 4, 2 that divides D_out and is at most
    max(2, threads); 0 where none divides D_out (no blocked product for that shape).

    >>> product_blocks(8000, 2), product_blocks(8000, 16), product_blocks(37, 2)
    (2, 8, 0)
    """
    return next((b for b in (8, 4, 2) if b <= max(2, threads) and out_features % b == 0), 0)


def trial_ways(rows: int, blocks: int) -> tuple[str, ...]:
    """The ways a shape's trial takes: plain and swapped; for one row also blocked (where `blocks`, the shape's block
    count, is not 0) and rowsum.

    >>> trial_ways(8, 0), trial_ways(1, 2), trial_ways(1, 0)
    (('plain', 'swapped'), ('plain', 'swapped', 'blocked', 'rowsum'), ('plain', 'swapped', 'rowsum'))
    """
    if rows > 1:
        return ("plain", "swapped")
    return ("plain", "swapped", *(("blocked",) if blocks else ()), "rowsum")


def _swapped_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """(W x^T)^T (+ b) for x (N, D_in): the product F.linear computes, with the rows as the packed operand."""
    output = torch.mm(weight, x.t()) if bias is None else torch.addmm(bias[:, None], weight, x.t())  # (D_out, N)
    return output.t().contiguous()


def _blocked_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, blocks: int) -> torch.Tensor:
    """x W^T (+ b) for one row x (1, D_in) as one batched matrix-vector product over `blocks` row blocks of W
    (D_out % blocks == 0)."""
    out_features, in_features = weight.shape
    weight_blocks = weight.view(blocks, out_features // blocks, in_features)  # (b, D_out / b, D_in)
    column = x.view(1, in_features, 1).expand(blocks, in_features, 1)  # (b, D_in, 1), no copy
    if bias is None:
        output = torch.bmm(weight_blocks, column)
    else:
        output = torch.baddbmm(bias.view(blocks, out_features // blocks, 1), weight_blocks, column)  # (b, D_out / b, 1)
    return output.view(1, out_features)


def _rowsum_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x W^T (+ b) for one row x (1, D_in) as sum_j W[i, j] * x[j]: a broadcast multiply and a sum over each row of W,
    ROWSUM_CHUNK weights at a time."""
    out_features, in_features = weight.shape
    row = x.view(in_features)
    output = torch.empty(out_features, dtype=x.dtype, device=x.device)
    step = max(1, ROWSUM_CHUNK // in_features)  # rows of W a chunk
    for start in range(0, out_features, step):
        torch.sum(weight[start : start + step] * row, dim=-1, out=output[start : start + step])
    if bias is not None:
        output += bias
    return output.view(1, out_features)


class ProductTrial:
    """The timings of one shape's real products so far, taking the ways in turn.

    >>> trial = ProductTrial(calls=2, ways=("plain", "swapped"))
    >>> for seconds in [9.0, 9.0, 1.0, 0.5, 1.0, 0.5]:  # untimed first calls, then plain 1.0 s, swapped 0.5 s
    ...     way = trial.next_way()
    ...     decided = trial.record(way, seconds)
    >>> decided
    'swapped'
    """

    def __init__(self, calls: int = TRIAL_CALLS, ways: tuple[str, ...] = PRODUCT_WAYS) -> None:
        self.calls = calls
        self.times: dict[str, list[float]] = {way: [] for way in ways}

    def next_way(self) -> str:
        """The way with the fewest calls so far, in the order of `ways` (plain first)."""
        return min(self.times, key=lambda way: len(self.times[way]))

    def record(self, way: str, seconds: float) -> str | None:
        """Add one call's time; once every way has its calls, the choice, else None."""
        self.times[way].append(seconds)
        if any(len(times) <= self.calls for times in self.times.values()):
            return None
        medians = {way: statistics.median(times[1:]) for way, times in self.times.items()}  # the first is untimed
        fastest = min(medians, key=medians.get)
        return fastest if medians[fastest] < 0.9 * medians["plain"] else "plain"


class ProjectionLinear(nn.Linear):
    """`nn.Linear` (same parameters, same results up to rounding) whose few-row float32 CPU product without autograd
    runs the way that was measured fastest on this machine for this shape (plain, swapped, blocked or rowsum), or the
    fixed way `product_way` names (one of `FEW_ROW_PRODUCTS`; "measured" by default).

    >>> layer = ProjectionLinear(4, 3)
    >>> x = torch.randn(2, 4)
    >>> with torch.no_grad():
    ...     torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias))
    True
    """

    product_way = "measured"

    @classmethod
    def swap_in(cls, linear: nn.Linear, product_way: str = "measured") -> None:
        """Make `linear`, an `nn.Linear`, a `ProjectionLinear` in place (its parameters, hooks and tied weights stay
        as they are) that multiplies its few rows the `product_way` way."""
        if product_way not in FEW_ROW_PRODUCTS:
            raise ValueError(f"product_way={product_way!r} is not one of {FEW_ROW_PRODUCTS}")
        linear.__class__ = cls
        linear.product_way = product_way

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # the checks run on every product of a decoding step: cheapest first, the plain product straight to F.linear
        if (
            input.dtype != torch.float32
            or input.device.type != "cpu"
            or (torch.is_grad_enabled() and (input.requires_grad or self.weight.requires_grad))
            or self.weight.dtype != torch.float32
            or torch.compiler.is_compiling()
        ):
            return F.linear(input, self.weight, self.bias)
        rows = input.numel() // self.in_features if input.dim() else 0
        if not 0 < rows <= MAX_CHOSEN_ROWS:
            return F.linear(input, self.weight, self.bias)
        threads = torch.get_num_threads()
        key = (rows, self.in_features, self.out_features, self.bias is not None, threads)
        way = _product_choices.get(key) if self.product_way == "measured" else self.product_way
        if way == "plain":
            return F.linear(input, self.weight, self.bias)
        blocks = product_blocks(self.out_features, threads) if rows == 1 else 0  # blocked: matrix-vector only
        if way is not None and way not in trial_ways(rows, blocks):
            way = "plain"  # a fixed one-row way on several rows, or `blocked` on D_out without a block count
        trial = None
        if way is None:
            trial = _product_trials.get(key)
            if trial is None:
                trial = _product_trials[key] = ProductTrial(ways=trial_ways(rows, blocks))
            way = trial.next_way()
            started = time.perf_counter()
        if way == "plain":
            output = F.linear(input, self.weight, self.bias)
        else:
            flat = input.reshape(rows, self.in_features)
            if way == "swapped":
                output = _swapped_product(flat, self.weight, self.bias)  # (N, D_out)
            elif way == "blocked":
                output = _blocked_product(flat, self.weight, self.bias, blocks)
            else:
                output = _rowsum_product(flat, self.weight, self.bias)
            output = output.view(*input.shape[:-1], self.out_features)
        if trial is not None:
            decided = trial.record(way, time.perf_counter() - started)
            if decided is not None:
                _product_choices[key] = decided
                del _product_trials[key]
        return output
