"""Where one generate() call spends its operator time, by operator and input shape, for the library's Transformer and
MarianMTModel of the same size (torch.profiler self CPU time of one call after two untimed ones). Shows which
products dominate a decoding step and how long each takes inside generate(), where the weights are not hot in cache.

    python bench/experiments/decode_shapes.py small 1 1 160      # SIZE BATCH BEAMS NEW
"""
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import StepClock, generate_call, generation_config, generation_inputs  # noqa: E402
from pairs import PAIRS, SIZES  # noqa: E402
from run import build  # noqa: E402

size = SIZES[sys.argv[1]]
batch, beams = int(sys.argv[2]), int(sys.argv[3])
new = int(sys.argv[4]) if len(sys.argv) > 4 else 160
pair = PAIRS["marian"]
ours, marian = build(pair, size, 0, torch.device("cpu"), torch.float32)
inputs = generation_inputs(pair.kind, replace(size, generate_batch=batch), 0)
for side, model in (("ours", ours.eval()), ("marian", marian.eval())):
    call = generate_call(model, inputs, generation_config(new, beams), StepClock())
    call()
    call()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        call()
    print(f"===== {side}: batch {batch}, beams {beams}, {new} new tokens")
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=30, max_shapes_column_width=60))
