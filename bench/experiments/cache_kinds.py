"""Same-run decoding with the growing cache (transformers' DynamicCache: each step concatenates the new key/value
onto the old ones, and beam search index-selects the whole cache) against the preallocated one
(`cache_implementation="static"`: a (rows, heads, max length, head dim) buffer written in place, attention over the
whole buffer with a mask), for the library's Transformer and MarianMTModel of the same size.

Per batch size and beam: tokens/s as a ratio over Marian's default (growing) cache, and the per-token cost growth
(late/early: median step time of the last eighth of the NEW tokens over the first eighth). One generation length
NEW (default 160, as issue 15 asks), alternating calls, medians.

    python bench/experiments/cache_kinds.py small 1,8,32 3          # SIZE BATCHES REPS [NEW]
"""
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import StepClock, generate_call, generation_config, generation_inputs, per_token_costs  # noqa: E402
from pairs import PAIRS, SIZES  # noqa: E402
from run import build  # noqa: E402

size = SIZES[sys.argv[1]]
batches = [int(b) for b in sys.argv[2].split(",")]
reps = int(sys.argv[3])
new = int(sys.argv[4]) if len(sys.argv) > 4 else 160
pair = PAIRS["marian"]
ours, marian = build(pair, size, 0, torch.device("cpu"), torch.float32)
ours.eval()
marian.eval()
print(f"{size.name}, {new} new tokens, threads {torch.get_num_threads()}, {reps} alternating calls a side, medians; "
      "x = tokens/s over Marian with its default cache; growth = late/early per-token step time")
for batch in batches:
    inputs = generation_inputs(pair.kind, replace(size, generate_batch=batch), 0)
    for beams in (1, size.beams) if batch <= 8 else (1,):
        calls, clocks = {}, {}
        for side, model in (("marian", marian), ("ours", ours)):
            for kind in ("dynamic", "static"):
                config = generation_config(new, beams)
                if kind == "static":
                    config.cache_implementation = "static"
                clocks[side, kind] = StepClock()
                calls[side, kind] = generate_call(model, inputs, config, clocks[side, kind])
        times = {key: [] for key in calls}
        growth = {key: [] for key in calls}
        for call in calls.values():
            call()  # untimed: first use of every cache length
        for rep in range(reps):
            for key in list(calls) if rep % 2 == 0 else list(calls)[::-1]:
                started = time.perf_counter()
                calls[key]()
                times[key].append(time.perf_counter() - started)
                growth[key].append(per_token_costs(clocks[key].times, max(4, new // 8))["growth"])
        med = {key: statistics.median(value) for key, value in times.items()}
        reference = med["marian", "dynamic"]
        print(f"batch {batch:2d} beams {beams}: marian {reference * 1e3:.0f} ms; " + ", ".join(
            f"{side} {kind} {reference / med[side, kind]:.2f}x growth {statistics.median(growth[side, kind]):.2f}"
            for side, kind in calls), flush=True)
