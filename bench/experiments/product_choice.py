"""Same-run comparison of ways to choose `ProjectionLinear`'s few-row product, against MarianMTModel of the same size:
plain products (nn.Linear), the old row table (rows 2-8, 16, 32; 2-10 for the output layer; measured on one AMD EPYC),
an isolated micro-benchmark at first use (both ways on random rows, fastest of 5 rounds; no longer in the library)
and the library's choice from its first real calls ("inplace"). Each way keeps its own choices.

    python bench/experiments/product_choice.py small 1,8,32 7      # SIZE BATCHES REPS [MODES]
"""
import statistics
import sys
import time
from pathlib import Path

from dataclasses import replace

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import generate_call, generation_config, generation_inputs  # noqa: E402
from pairs import PAIRS, SIZES  # noqa: E402
from run import build  # noqa: E402

from hf_encdec.speed import projections as sp  # noqa: E402

FEW = frozenset(range(2, 9)) | frozenset({16, 32})  # the old table's rows
WIDE = FEW | frozenset(range(2, 11))  # ... for an output layer (D_out >= 8 D_in)


def isolated_wins(rows, weight, bias):
    """Both ways on random rows of the layer's shape, fastest of 5 alternating rounds of 3 calls; 10% margin."""
    key = (rows, weight.shape[1], weight.shape[0], bias is not None, torch.get_num_threads())
    if key not in sp._product_choices:
        x = torch.randn(rows, weight.shape[1])
        ways = {False: lambda: F.linear(x, weight, bias), True: lambda: sp._swapped_product(x, weight, bias)}
        best = {False: float("inf"), True: float("inf")}
        for way in ways.values():
            way()
        for round_ in range(5):
            for swapped in ((False, True) if round_ % 2 == 0 else (True, False)):
                started = time.perf_counter()
                for _ in range(3):
                    ways[swapped]()
                best[swapped] = min(best[swapped], time.perf_counter() - started)
        sp._product_choices[key] = best[True] < 0.9 * best[False]
    return sp._product_choices[key]


def patched_forward(self, input, _original=sp.ProjectionLinear.forward):
    """ProjectionLinear with the current mode's rule; "inplace" is the library's own forward."""
    rows = input.numel() // self.in_features
    rule = RULES.get(MODE[0])
    if rule is None or not 0 < rows <= 64 or torch.is_grad_enabled():
        return _original(self, input)
    if rule(rows, self.weight, self.bias):
        return sp._swapped_product(input.reshape(rows, self.in_features), self.weight, self.bias).view(
            *input.shape[:-1], self.out_features)
    return F.linear(input, self.weight, self.bias)


MODE = ["inplace"]
RULES = {
    "plain": lambda rows, weight, bias: False,
    "table": lambda rows, weight, bias: rows in (WIDE if weight.shape[0] >= 8 * weight.shape[1] else FEW),
    "isolated": isolated_wins,
}
sp.ProjectionLinear.forward = patched_forward
CHOICES: dict[str, dict] = {}
TRIALS: dict[str, dict] = {}


def set_mode(mode: str) -> None:
    sp._product_choices = CHOICES.setdefault(mode, {})
    sp._product_trials = TRIALS.setdefault(mode, {})
    MODE[0] = mode


size = SIZES[sys.argv[1]]
batches = [int(b) for b in sys.argv[2].split(",")]
reps = int(sys.argv[3])
modes = sys.argv[4].split(",") if len(sys.argv) > 4 else ["plain", "table", "isolated", "inplace"]
pair = PAIRS["marian"]
ours, marian = build(pair, size, 0, torch.device("cpu"), torch.float32)
ours.eval()
marian.eval()
print(f"{size.name}: threads {torch.get_num_threads()}; tokens/s ratio over Marian (same run, {reps} alternating calls, medians)")
for batch in batches:
    inputs = generation_inputs(pair.kind, replace(size, generate_batch=batch), 0)
    for beams in (1, size.beams):
        cfg = generation_config(32, beams)
        calls = {"marian": generate_call(marian, inputs, cfg)}
        for mode in modes:
            inner = generate_call(ours, inputs, cfg)
            calls[mode] = (lambda inner=inner, mode=mode: (set_mode(mode), inner())[1])
        times = {k: [] for k in calls}
        for call in calls.values():
            call()
        for r in range(reps):
            for k in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
                t = time.perf_counter()
                calls[k]()
                times[k].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"batch {batch:2d} beams {beams}: marian {med['marian']*1e3:.0f} ms; " + ", ".join(f"{m} {med['marian']/med[m]:.2f}x" for m in modes), flush=True)
for mode in ("isolated", "inplace"):
    print(mode, "swapped for:", sorted(k[:3] for k, v in CHOICES.get(mode, {}).items() if v))
