"""Same-run decoding speed against MarianMTModel of the same size, for the decoding changes of issue 15 taken one at
a time: the few-row products chosen from two ways (plain, swapped), three (+ blocked: one batched product over row
blocks of the weight) or four (+ rowsum: a broadcast multiply summed over the weight's rows; the library's own), and
the decoding cache before this change (a fresh tensor per append), with appends written in place but every beam
reorder gathered into new buffers (full-gather), or now (a beam step copies only the rows whose beam changed). Every
mode keeps its own product choices, made on its first real calls.

Per batch size and beam: tokens/s as a ratio over Marian, and the per-token cost growth (late/early: median step
time of the last eighth of the new tokens over the first eighth). Alternating calls, medians.

    python bench/experiments/decode_ways.py small 1,8,32 5 160     # SIZE BATCHES REPS NEW [MODES]

MODES (comma-separated; default the five below): PRODUCTS[+CACHE], PRODUCTS two-way, three-way or four-way, CACHE
old-cache, full-gather or token-major (the growing cache's buffers as (capacity, B, K, d), tried and not kept; none:
the library's cache), e.g. two-way+old-cache, three-way+full-gather, four-way+token-major, four-way.
"""
import same_run
import torch
from transformers.cache_utils import DynamicLayer

from hf_encdec.speed import cache as sc
from hf_encdec.speed import projections as sp


class FreshTensorLayer(sc.GrowingLayer):
    """The cache layer before this change: every append makes a new tensor of the exact size (concatenation, or the
    gather of a pending beam order straight into it); no room is kept."""

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            DynamicLayer.lazy_initialization(self, key_states, value_states)
        length = self.get_seq_length()
        order, self._pending = (self._pending if length else None), None
        merged = []
        for past, new in ((self._keys, key_states), (self._values, value_states)):
            if order is None:
                merged.append(torch.cat([past, new], dim=-2) if length else new)
                continue
            out = new.new_empty((*new.shape[:2], length + new.shape[-2], new.shape[-1]))
            torch.index_select(past, 0, order, out=out[:, :, :length])
            out[:, :, length:] = new
            merged.append(out)
        self._keys, self._values = merged
        self._buffers = None
        return self._keys, self._values


class FullGatherLayer(sp.GrowingLayer):
    """The growing cache with every beam reorder gathered into new buffers (no rows moved inside the buffers)."""

    def _move_rows(self, order, length):
        return False


class TokenMajorLayer(sp.GrowingLayer):
    """The growing cache with token-major buffers, (capacity, B, K, d) (tried, not kept): the filled part is one
    contiguous block and attention gets a permuted view of it."""

    def _move_rows(self, order, length):
        moved = (order != torch.arange(order.shape[0])).nonzero().flatten()
        if 2 * moved.numel() >= order.shape[0]:
            return False
        if moved.numel():
            sources = order.index_select(0, moved)
            for buffer in self._buffers:
                filled = buffer.narrow(0, 0, length)
                filled.index_copy_(1, moved, filled.index_select(1, sources))
        return True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = (key_states, value_states)
        length, added = self.get_seq_length(), key_states.shape[-2]
        order, self._pending = (self._pending if length else None), None
        buffers = self._buffers
        fits = buffers is not None and buffers[0].shape[0] >= length + added and buffers[0].shape[1] == key_states.shape[0]
        if fits and order is not None:
            fits = self._move_rows(order, length)
        if not fits:
            capacity = length + added + max(length + added, sp.MIN_SPARE_TOKENS)
            buffers = tuple(state.new_empty((capacity, *state.shape[:2], state.shape[-1])) for state in new)
            for past, buffer in zip((self._keys, self._values), buffers if length else ()):
                past = past.permute(2, 0, 1, 3)
                if order is None:
                    buffer.narrow(0, 0, length).copy_(past)
                else:
                    torch.index_select(past, 1, order, out=buffer.narrow(0, 0, length))
            self._buffers = buffers
        for state, buffer in zip(new, buffers):
            buffer.narrow(0, length, added).copy_(state.permute(2, 0, 1, 3))
        self._keys, self._values = (buffer.narrow(0, 0, length + added).permute(1, 2, 0, 3) for buffer in buffers)
        return self._keys, self._values


GROWING = sc.GrowingLayer
LAYERS = {"old-cache": FreshTensorLayer, "full-gather": FullGatherLayer, "token-major": TokenMajorLayer, "": GROWING}
TRIAL_WAYS = sp.trial_ways
CHOICES: dict[str, dict] = {}
TRIALS: dict[str, dict] = {}


def set_mode(mode: str) -> None:
    products, _, cache = mode.partition("+")
    sp._product_choices = CHOICES.setdefault(products, {})
    sp._product_trials = TRIALS.setdefault(products, {})
    ways = {"two-way": ("plain", "swapped"), "three-way": ("plain", "swapped", "blocked")}.get(products)
    # the trial's ways cut down to the mode's (four-way: the library's own)
    sp.trial_ways = (lambda rows, blocks: tuple(w for w in TRIAL_WAYS(rows, blocks) if w in ways)) if ways else TRIAL_WAYS
    sc.GrowingLayer = LAYERS[cache]  # read by use_growing_layers


size, batches, reps, new, modes = same_run.arguments(
    ["two-way+old-cache", "three-way+old-cache", "two-way", "three-way", "four-way"])
ours, marian = same_run.models(size)
same_run.compare(size, batches, reps, new, {mode: ours for mode in modes}, marian, set_mode, "four-way")
for mode in modes:
    products = mode.partition("+")[0]
    print(mode, "chose:", sorted((key[0], key[1], key[2], way) for key, way in CHOICES.get(products, {}).items()))
