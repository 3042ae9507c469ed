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
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import StepClock, alternate, generate_call, generation_config, generation_inputs, per_token_costs  # noqa: E402
from pairs import PAIRS, SIZES  # noqa: E402
from run import build  # noqa: E402

from hf_encdec.models import speed_paths as sp  # noqa: E402
from transformers.cache_utils import DynamicLayer  # noqa: E402


class FreshTensorLayer(sp.GrowingLayer):
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


GROWING = sp.GrowingLayer
LAYERS = {"old-cache": FreshTensorLayer, "full-gather": FullGatherLayer, "token-major": TokenMajorLayer, "": GROWING}
TRIAL_WAYS = sp.trial_ways
CHOICES: dict[str, dict] = {}
TRIALS: dict[str, dict] = {}


def set_mode(mode: str) -> None:
    products, _, cache = mode.partition("+")
    sp._few_row_product = "measured"
    sp._product_choices = CHOICES.setdefault(products, {})
    sp._product_trials = TRIALS.setdefault(products, {})
    ways = {"two-way": ("plain", "swapped"), "three-way": ("plain", "swapped", "blocked")}.get(products)
    # the trial's ways cut down to the mode's (four-way: the library's own)
    sp.trial_ways = (lambda rows, blocks: tuple(w for w in TRIAL_WAYS(rows, blocks) if w in ways)) if ways else TRIAL_WAYS
    sp.GrowingLayer = LAYERS[cache]  # read by use_growing_layers


size = SIZES[sys.argv[1]]
batches = [int(b) for b in sys.argv[2].split(",")]
reps = int(sys.argv[3])
new = int(sys.argv[4]) if len(sys.argv) > 4 else 160
modes = sys.argv[5].split(",") if len(sys.argv) > 5 else [
    "two-way+old-cache", "three-way+old-cache", "two-way", "three-way", "four-way"]
pair = PAIRS["marian"]
ours, marian = build(pair, size, 0, torch.device("cpu"), torch.float32)
ours.eval()
marian.eval()
print(f"{size.name}, {new} new tokens, threads {torch.get_num_threads()}, {reps} alternating calls a side, medians; "
      "x = tokens/s over Marian; g = late/early per-token step time")
for batch in batches:
    inputs = generation_inputs(pair.kind, replace(size, generate_batch=batch), 0)
    for beams in (1, size.beams) if batch <= 8 else (1,):
        keys = ["marian", *modes]
        clocks = {key: StepClock() for key in keys}
        growth = {key: [] for key in keys}

        def moded(key: str):
            call = generate_call(marian if key == "marian" else ours, inputs, generation_config(new, beams), clocks[key])

            def run() -> None:
                set_mode("three-way" if key == "marian" else key)
                call()
                growth[key].append(per_token_costs(clocks[key].times, max(4, new // 8))["growth"])

            return run

        calls = {key: moded(key) for key in keys}
        for key in keys:  # untimed: first use of every shape (the product trials run here)
            calls[key]()
            growth[key].clear()
        times = alternate(calls, reps, torch.device("cpu"))
        reference = statistics.median(times["marian"])
        print(f"batch {batch:2d} beams {beams}: marian {reference * 1e3:.0f} ms g{statistics.median(growth['marian']):.2f}; "
              + ", ".join(f"{mode} {reference / statistics.median(times[mode]):.2f}x g{statistics.median(growth[mode]):.2f}"
                          for mode in modes), flush=True)
for mode in modes:
    products = mode.partition("+")[0]
    print(mode, "chose:", sorted((key[0], key[1], key[2], way) for key, way in CHOICES.get(products, {}).items()))
