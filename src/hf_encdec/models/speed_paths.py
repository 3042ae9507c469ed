"""The speed paths: every place where the library computes what a plain `torch.nn` layer or a transformers cache
would compute, in a cheaper way, gathered in one module behind one switch.

The plain path is the reference: with `HF_ENCDEC_SPEED_PATHS=0` in the environment, or inside
`speed_paths_enabled(False)`, every function here falls back to it, and tests/models/test_speed_paths.py checks that
both paths give the same outputs for every family. Nothing here changes a parameter or a saved checkpoint.

| speed path | what it saves | plain path |
|---|---|---|
| `ProjectionLinear`: a decoding step's few-row CPU product as (W x^T)^T, or for one row as one batched product over row blocks of W or as a broadcast multiply summed over W's rows, where its first real calls measured it faster | the kernel streams the weight faster | `nn.Linear` |
| `Dropout` / `dropout`: a bool mask on CPU | 1 byte per element kept for backward, not 4 | `F.dropout` |
| `gated_product`: act(gate) * up recomputed in backward | one (B, T, F) tensor per gated layer | autograd |
| `attention_kernel`: eager attention when training with dropout on CPU | torch's sdpa math fallback keeps a float mask | sdpa |
| `prepare_beam_cache`: appends written in place into spare room, reordering folded into the next append, cross-attention never reordered | a cache copy per step and a second per beam step | `DynamicCache` |
| `kept_cross_mask`: the cross-attention mask built once per generation, kept in the cache | building a (B, 1, T, S) mask at every step | built per call |
| `recurrent_step`: one step of a recurrent stack as torch's cell functions, layer by layer | the per-call set-up of the fused CPU kernel (mkldnn), which dominates a one-token call | `nn.LSTM`/`nn.GRU`/`nn.RNN` |

Shapes: N rows, D_in / D_out features; B batch (times beams), K key/value heads, L cached length, d head dim.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import (
    Cache,
    DynamicCache,
    DynamicLayer,
    EncoderDecoderCache,
)

_enabled = os.environ.get("HF_ENCDEC_SPEED_PATHS", "1") != "0"


def speed_paths_on() -> bool:
    """Whether the speed paths run (default on; `HF_ENCDEC_SPEED_PATHS=0` turns them off)."""
    return _enabled


@contextlib.contextmanager
def speed_paths_enabled(enabled: bool) -> Iterator[None]:
    """Run the speed paths (True) or the plain reference path (False) inside the block.

    >>> import torch
    >>> layer = ProjectionLinear(4, 3)
    >>> x = torch.randn(2, 4)
    >>> with torch.no_grad(), speed_paths_enabled(False):
    ...     plain = layer(x)
    >>> with torch.no_grad():
    ...     torch.allclose(layer(x), plain)
    True
    """
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


# ---- projections ----------------------------------------------------------------------------------------------------
# A decoding step multiplies only a few rows (sequences x beams) by each weight, so the step reads every weight once
# for little arithmetic: its speed is how fast the kernel streams the weight in. The same product can run four ways,
# with different kernels under them:
#   plain    x W^T, nn.Linear's product;
#   swapped  (W x^T)^T: the BLAS packs the rows, not the whole (D_out, D_in) weight;
#   blocked  one row only: the weight's rows cut into blocks, one batched matrix-vector product (bmm) over them.
#            (With more rows it gained nothing in isolation and cost 4% of a whole test translation at 64 rows,
#            through its trials.)
#   rowsum   one row only: W * x broadcast and summed over each row of W (torch's elementwise and reduction kernels,
#            not the BLAS), in chunks of ROWSUM_CHUNK weights so the temporary product stays small.
# Which is fastest depends on the CPU, its caches, the BLAS kernel it picks and what else runs between the products.
# Measured inside generate() on an AMD EPYC (2 cores, AVX2): for one row, blocked 1.6x the plain product's decoding
# speed where swapped gains nothing; at 8 rows swapped 1.4x; on an Intel Xeon the swapped product lost 5-25%; on an
# AMD EPYC with AVX-512 blocked lost, and rowsum streamed a cold 8000 x 256 weight 2.4x faster than F.linear
# (bench/README.md). So nothing is assumed and nothing is timed apart from the real work: the first products of each
# shape in a process take the ways in turn on the caller's own data, TRIAL_CALLS timed calls each (after one untimed
# call each), and the shape then keeps the way whose median was fastest; another way than plain only when it was at
# least 10% faster than plain. `product_choices()` shows what was chosen. The ways agree up to float rounding (~1e-6),
# so outputs can differ at that level between calls while a shape is on trial; `HF_ENCDEC_FEW_ROW_PRODUCT=plain` (or
# `swapped`, `blocked`, `rowsum`) fixes the way for runs that must repeat bit for bit (the test suite uses `swapped`).

PRODUCT_WAYS = ("plain", "swapped", "blocked", "rowsum")
FEW_ROW_PRODUCTS = ("measured", *PRODUCT_WAYS)
_few_row_product = os.environ.get("HF_ENCDEC_FEW_ROW_PRODUCT", "measured")
if _few_row_product not in FEW_ROW_PRODUCTS:
    raise ValueError(f"HF_ENCDEC_FEW_ROW_PRODUCT={_few_row_product!r} is not one of {FEW_ROW_PRODUCTS}")
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
    runs the way that was measured fastest on this machine for this shape (plain, swapped, blocked or rowsum)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # the checks run on every product of a decoding step: cheapest first, the plain product straight to F.linear
        if (
            not _enabled
            or input.dtype != torch.float32
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
        way = _product_choices.get(key) if _few_row_product == "measured" else _few_row_product
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


# ---- dropout --------------------------------------------------------------------------------------------------------
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


def dropout(hidden_states: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with probability `p`; identity outside training or for p = 0."""
    if not training or p == 0.0:
        return hidden_states
    if not _enabled or hidden_states.device.type != "cpu" or p >= 1.0:
        return F.dropout(hidden_states, p, training=True)
    keep = torch.rand(hidden_states.shape, dtype=torch.float32, device=hidden_states.device) >= p  # (...,) bool
    return _MaskedScale.apply(hidden_states, keep, 1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """`nn.Dropout` with a bool mask kept for backward on CPU."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(hidden_states)
        return dropout(hidden_states, self.p, self.training)


# ---- gated feed-forward product ---------------------------------------------------------------------------------------
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
    if _enabled and torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
        return _GatedProduct.apply(gate, up, activation)
    return _activate(gate, activation) * up


# ---- attention kernel -----------------------------------------------------------------------------------------------


def attention_kernel(implementation: str, *, training: bool, dropout: float, device: torch.device) -> str:
    """The kernel to run for `implementation`: on CPU, torch runs sdpa with dropout through its math kernel, which
    keeps a float32 dropout mask of (B, H, T, S) for backward; the eager kernel is the same math with a bool one."""
    if _enabled and implementation == "sdpa" and training and dropout > 0 and device.type == "cpu":
        return "eager"
    return implementation


# ---- decoding cache ---------------------------------------------------------------------------------------------------
# Every decoding step appends one token to each layer's keys and values, and beam search then reorders them
# (`reorder_cache`: gather the rows of the surviving beams). transformers' `DynamicLayer` concatenates, a full copy of
# the cache for each append and another for each reorder: two (B, K, L, d) copies per layer and step, whose cost grows
# with L. `GrowingLayer` keeps the states in buffers with spare room and writes an appended token in place, handing
# attention a view of the filled part (no copy: greedy decoding and sampling); a beam reorder is only recorded, and
# applied in the next append: on CPU, where under half of the rows changed beam, by copying those rows inside the
# buffers (the rest stay where they are), else by gathering all rows straight into new buffers (one copy). Reading `keys`/`values` in between
# applies a pending order first, so every reader sees what a `DynamicLayer` would hold. `SourceSharedCache` never
# reorders the cross-attention half: beam search moves beams only among those of one source, whose encoder
# keys/values are identical rows. Both reach `generate` through transformers' public interface, a `Cache` whose
# `reorder_cache` does the work.

MIN_SPARE_TOKENS = 32  # a new buffer holds at least this many more tokens than it is given (then twice the length)


class GrowingLayer(DynamicLayer):
    """`DynamicLayer` that appends in place into spare room, and applies beam reordering lazily, inside the next
    append. `keys`/`values` are (B, K, L, d) views of the front part of (B, K, capacity, d) buffers."""

    def __init__(self, **kwargs: object) -> None:
        self._pending: torch.Tensor | None = None  # (B,) rows to gather before the cached states are used
        self._keys: torch.Tensor | None = None  # the cached states, (B, K, L, d)
        self._values: torch.Tensor | None = None
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None  # what _keys/_values are the front part of
        super().__init__(**kwargs)

    def _apply_pending(self) -> None:
        if self._pending is not None:
            order, self._pending = self._pending, None
            self._keys = self._keys.index_select(0, order)
            self._values = self._values.index_select(0, order)
            self._buffers = None

    @property
    def keys(self) -> torch.Tensor | None:  # type: ignore[override]
        self._apply_pending()
        return self._keys

    @keys.setter
    def keys(self, value: torch.Tensor | None) -> None:
        self._apply_pending()
        self._keys, self._buffers = value, None  # a caller's tensor: never written into

    @property
    def values(self) -> torch.Tensor | None:  # type: ignore[override]
        self._apply_pending()
        return self._values

    @values.setter
    def values(self, value: torch.Tensor | None) -> None:
        self._apply_pending()
        self._values, self._buffers = value, None

    def get_seq_length(self) -> int:
        if not self.is_initialized or self._keys is None or self._keys.numel() == 0:
            return 0
        return self._keys.shape[-2]

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.get_seq_length() == 0:
            return
        beam_idx = beam_idx.to(self._keys.device)
        self._pending = beam_idx if self._pending is None else self._pending.index_select(0, beam_idx)

    def _move_rows(self, order: torch.Tensor, length: int) -> bool:
        """Apply a beam order inside the buffers by copying only the rows whose beam changed (most keep theirs: 83-85%
        in the bench's beam searches), when those are under half; False where a full gather is cheaper. CPU only:
        counting the rows reads the order on the host, a synchronisation on an accelerator."""
        if order.device.type != "cpu":
            return False
        moved = (order != torch.arange(order.shape[0], device=order.device)).nonzero().flatten()  # (n,)
        if 2 * moved.numel() >= order.shape[0]:
            return False
        if moved.numel():
            sources = order.index_select(0, moved)
            for past, buffer in zip((self._keys, self._values), self._buffers):
                taken = past.index_select(0, sources)  # copied out first: a source row may itself be overwritten
                buffer.narrow(2, 0, length).index_copy_(0, moved, taken)
        return True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = (key_states, value_states)
        length, added = self.get_seq_length(), key_states.shape[-2]
        order, self._pending = (self._pending if length else None), None
        buffers = self._buffers
        # shapes, dtype and device change only through the setters, which drop the buffers: room and batch suffice
        fits = buffers is not None and buffers[0].shape[-2] >= length + added and buffers[0].shape[0] == key_states.shape[0]
        if fits and order is not None:
            fits = self._move_rows(order, length)
        if not fits:
            capacity = length + added + max(length + added, MIN_SPARE_TOKENS)
            buffers = tuple(state.new_empty((*state.shape[:2], capacity, state.shape[-1])) for state in new)
            if length:
                for past, buffer in zip((self._keys, self._values), buffers):
                    if order is None:
                        buffer.narrow(2, 0, length).copy_(past)
                    else:
                        torch.index_select(past, 0, order, out=buffer.narrow(2, 0, length))
            self._buffers = buffers
        for state, buffer in zip(new, buffers):
            buffer.narrow(2, length, added).copy_(state)
        self._keys, self._values = (buffer.narrow(2, 0, length + added) for buffer in buffers)
        return self._keys, self._values


class SourceSharedCache(EncoderDecoderCache):
    """`EncoderDecoderCache` whose beam reordering leaves the cross-attention half alone: its rows are the same for
    every beam of a source (generate repeats each source once per beam, and never moves a beam to another source)."""

    def __init__(self, *caches: Cache) -> None:
        super().__init__(*caches)
        self.cross_mask: tuple[torch.Tensor, tuple, object] | None = None  # see `kept_cross_mask`

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)

    def reset(self) -> None:
        super().reset()
        self.cross_mask = None


def kept_cross_mask(
    cache: Cache | None,
    encoder_attention_mask: torch.Tensor | None,
    key: tuple,
    build: Callable[[], object],
) -> object:
    """The cross-attention mask of a decoding step, `build()`, made once per generation: a `SourceSharedCache` keeps
    it next to the encoder keys/values it was built with, and hands it back while those keys/values are reused, the
    step passes the same `encoder_attention_mask` object and the same `key` (query length, dtype). A step that
    projects the encoder keys/values again (the first, or the first after `reset()`) builds it again, as does every
    other cache at every call."""
    if not _enabled or not isinstance(cache, SourceSharedCache) or encoder_attention_mask is None:
        return build()
    held = cache.cross_mask
    reused = cache.is_updated.get(0, False)  # the encoder keys/values of this generation are already projected
    if not reused or held is None or held[0] is not encoder_attention_mask or held[1] != key:
        held = cache.cross_mask = (encoder_attention_mask, key, build())
    return held[2]


def prepare_beam_cache(cache: Cache) -> Cache:
    """The fast-path version of a cache `generate` has just built (still empty): growing layers for the
    self-attention, and a `SourceSharedCache` around an encoder-decoder pair. Other kinds are returned unchanged."""
    if not _enabled:
        return cache
    if type(cache) is EncoderDecoderCache and cache.get_seq_length() == 0:
        cache = SourceSharedCache(cache.self_attention_cache, cache.cross_attention_cache)
    use_growing_layers(cache)
    return cache


def use_growing_layers(cache: Cache | None) -> None:
    """Give a freshly built `DynamicCache` (or the self-attention half of an `EncoderDecoderCache`) growing layers.

    Only plain, still empty `DynamicLayer`s are swapped; caches of other kinds (static, quantized, sliding, offloaded)
    and layers already holding states are left as they are."""
    if isinstance(cache, EncoderDecoderCache):
        cache = cache.self_attention_cache
    if type(cache) is not DynamicCache or cache.offloading:
        return
    if cache.layer_class_to_replicate is DynamicLayer:
        cache.layer_class_to_replicate = GrowingLayer
    cache.layers = [
        GrowingLayer() if type(layer) is DynamicLayer and not layer.is_initialized else layer for layer in cache.layers
    ]


def recurrent_step(
    rnn: nn.RNNBase, inputs: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One time step of a batch-first, unidirectional recurrent stack: (B, 1, I) inputs and the (L, B, H) states
    -> (B, 1, H) top-layer outputs and the new (L, B, H) hidden and cell (None for GRU/RNN), as `rnn` computes them
    (dropout between layers included). On CPU a one-step call of the fused kernel spends most of its time setting up;
    the cell functions per layer do the same arithmetic without it. Longer inputs, bidirectional stacks and the plain
    path call `rnn` itself."""
    if not _enabled or inputs.shape[1] != 1 or rnn.bidirectional or rnn.proj_size or inputs.device.type != "cpu":
        if cell is None:
            outputs, hidden = rnn(inputs, hidden)
            return outputs, hidden, None
        outputs, (hidden, cell) = rnn(inputs, (hidden, cell))
        return outputs, hidden, cell
    if isinstance(rnn, nn.LSTM):
        function = torch.lstm_cell
    elif isinstance(rnn, nn.GRU):
        function = torch.gru_cell
    else:
        function = torch.rnn_tanh_cell if rnn.nonlinearity == "tanh" else torch.rnn_relu_cell
    x = inputs[:, 0]  # (B, I)
    hiddens, cells = [], []
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout > 0 and rnn.training:
            x = F.dropout(x, rnn.dropout, training=True)
        weights = [getattr(rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh")]
        biases = [getattr(rnn, f"{name}_l{layer}") for name in ("bias_ih", "bias_hh")] if rnn.bias else [None, None]
        if cell is not None:
            x, c = function(x, (hidden[layer], cell[layer]), *weights, *biases)
            cells.append(c)
        else:
            x = function(x, hidden[layer], *weights, *biases)
        hiddens.append(x)
    return x[:, None], torch.stack(hiddens), (torch.stack(cells) if cell is not None else None)
