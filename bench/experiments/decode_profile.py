"""Where `generate()` spends its time, for the library's Transformer and MarianMTModel of the same size: one profiled
call a side (after an untimed one) per batch size and beam, torch.profiler's self CPU time grouped into what the
operators do. Shares are of the profiled call's total self time; "python" is the part of the wall time no operator
accounts for (generate()'s own loop, logits processors, stopping criteria, module call overhead).

    python bench/experiments/decode_profile.py small 1,8,32 64      # SIZE BATCHES NEW_TOKENS
"""
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import generate_call, generation_config, generation_inputs  # noqa: E402
from pairs import PAIRS, SIZES  # noqa: E402
from run import build  # noqa: E402

GROUPS = {  # operator name fragments -> group; the first that matches wins
    "products (linear/matmul)": ("addmm", "aten::mm", "matmul", "linear", "bmm", "aten::baddbmm"),
    "attention (sdpa)": ("scaled_dot_product", "_flash_attention", "sdpa"),
    "cache copies (cat/index_select/copy)": ("aten::cat", "index_select", "aten::copy_", "aten::clone", "index_copy"),
    "norms": ("layer_norm", "rms_norm"),
    "softmax / log-softmax": ("softmax",),
    "search (topk/argmax/sort/gather)": ("topk", "argmax", "sort", "gather", "max"),
    "elementwise": ("aten::add", "aten::mul", "aten::relu", "aten::gelu", "aten::div", "aten::sub", "aten::where",
                    "aten::masked_fill", "aten::eq", "aten::ne", "aten::lt", "aten::ge", "aten::isin", "aten::any",
                    "aten::all", "aten::cumsum"),
    "allocation / views": ("aten::empty", "aten::zeros", "aten::ones", "aten::full", "aten::arange", "aten::view",
                           "aten::reshape", "aten::transpose", "aten::expand", "aten::slice", "aten::select",
                           "aten::unsqueeze", "aten::contiguous", "aten::as_strided", "aten::_to_copy", "aten::to"),
}


def group_of(name: str) -> str:
    for group, fragments in GROUPS.items():
        if any(fragment in name for fragment in fragments):
            return group
    return "other operators"


size = SIZES[sys.argv[1]]
batches = [int(b) for b in sys.argv[2].split(",")]
new = int(sys.argv[3]) if len(sys.argv) > 3 else 64
pair = PAIRS["marian"]
ours, marian = build(pair, size, 0, torch.device("cpu"), torch.float32)
ours.eval()
marian.eval()
print(f"{size.name}, {new} new tokens, threads {torch.get_num_threads()}")
for batch in batches:
    inputs = generation_inputs(pair.kind, replace(size, generate_batch=batch), 0)
    for beams in (1, size.beams) if batch <= 8 else (1,):
        rows = {}
        for side, model in (("ours", ours), ("marian", marian)):
            call = generate_call(model, inputs, generation_config(new, beams))
            call()
            started = time.perf_counter()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                call()
            wall = (time.perf_counter() - started) * 1e6
            groups: dict[str, float] = defaultdict(float)
            for event in prof.key_averages():
                groups[group_of(event.key)] += event.self_cpu_time_total
            groups["python"] = max(0.0, wall - sum(groups.values()))
            rows[side] = (wall, groups)
        print(f"\nbatch {batch} beams {beams}: wall ms (profiled) ours {rows['ours'][0] / 1e3:.0f}, marian {rows['marian'][0] / 1e3:.0f}")
        names = sorted(set(rows["ours"][1]) | set(rows["marian"][1]), key=lambda g: -rows["marian"][1].get(g, 0))
        for name in names:
            cells = [f"{rows[side][1].get(name, 0) / 1e3:7.1f} ms {100 * rows[side][1].get(name, 0) / rows[side][0]:4.1f}%"
                     for side in ("ours", "marian")]
            print(f"  {name:38s} ours {cells[0]}   marian {cells[1]}")
