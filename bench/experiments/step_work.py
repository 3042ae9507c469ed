"""Same-run decoding speed against MarianMTModel of the same size, for the per-step work of a decoding step taken
one piece at a time: the library as it is ("now"), the cross-attention mask built at every step again
("mask-per-step"), forward's signature computed at every step again as generate() does for remote-code models
("signature-per-step"), the self-attention's q/k/v projections fused into one product over a concatenated weight
("fused-qkv", a prototype: made once, never invalidated, so measurement only), every speed path off ("plain"), and
`torch.compile` of each decoder layer (dynamic shapes, inductor) with the speed paths off ("compiled-plain"; with
them on, inductor fails on the growing cache's in-place append, "compiled" reports the error).

Per batch size and beam: tokens/s as a ratio over Marian, and the per-token cost growth (late/early: median step time
of the last eighth of the new tokens over the first eighth). Alternating calls, medians.

    python bench/experiments/step_work.py small 1,8,32 7 160     # SIZE BATCHES REPS NEW [MODES]
"""
import copy
import inspect
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import StepClock, alternate, generate_call, generation_config, generation_inputs, per_token_costs  # noqa: E402
from pairs import PAIRS, SIZES  # noqa: E402
from run import build  # noqa: E402

from hf_encdec.models import attention, speed_paths, transformer_layers  # noqa: E402

KEPT_MASK = transformer_layers.source_mask
SEPARATE_PROJECT = attention.MultiHeadAttention._project


def _mask_per_step(cache, encoder_attention_mask, key, build_mask):
    return build_mask()


def _fused_project(self, projection, states):
    """q/k/v of a no-grad self-attention as one product; k and v are handed out from the q call's result."""
    if self.is_cross_attention or torch.is_grad_enabled():
        return SEPARATE_PROJECT(self, projection, states)
    if projection is self.q_proj:
        if not hasattr(self, "_fused_weight"):
            parts = (self.q_proj, self.k_proj, self.v_proj)
            self._fused_weight = torch.cat([p.weight for p in parts])
            self._fused_bias = torch.cat([p.bias for p in parts]) if self.q_proj.bias is not None else None
        batch, length, _ = states.shape
        fused = F.linear(states, self._fused_weight, self._fused_bias)  # (B, L, (H + 2K) d)
        query, key, value = fused.split([self.q_proj.out_features, self.k_proj.out_features, self.v_proj.out_features], -1)
        self._fused_kv = tuple(t.reshape(batch, length, -1, self.head_dim).transpose(1, 2) for t in (key, value))
        return query.reshape(batch, length, -1, self.head_dim).transpose(1, 2)
    return self._fused_kv[0] if projection is self.k_proj else self._fused_kv[1]


def set_mode(mode: str, forward) -> None:
    transformer_layers.source_mask = _mask_per_step if mode == "mask-per-step" else KEPT_MASK
    attention.MultiHeadAttention._project = _fused_project if mode == "fused-qkv" else SEPARATE_PROJECT
    speed_paths._enabled = mode not in ("plain", "compiled-plain", "compiled")
    if mode == "signature-per-step":
        forward.__dict__.pop("__signature__", None)
    else:
        forward.__signature__ = inspect.signature(forward)


size = SIZES[sys.argv[1]]
batches = [int(b) for b in sys.argv[2].split(",")]
reps = int(sys.argv[3])
new = int(sys.argv[4]) if len(sys.argv) > 4 else 160
modes = sys.argv[5].split(",") if len(sys.argv) > 5 else [
    "now", "mask-per-step", "signature-per-step", "fused-qkv", "plain", "compiled-plain"]
pair = PAIRS["marian"]
ours, marian = build(pair, size, 0, torch.device("cpu"), torch.float32)
ours.eval()
marian.eval()
models = {mode: ours for mode in modes}
for mode in modes:
    if mode.startswith("compiled"):
        models[mode] = copy.deepcopy(ours)
        for layer in models[mode].model.decoder.layers:
            layer.compile(dynamic=True)
forward = type(ours).__dict__["forward"]
print(f"{size.name}, {new} new tokens, threads {torch.get_num_threads()}, {reps} alternating calls a side, medians; "
      "x = tokens/s over Marian; g = late/early per-token step time")
for batch in batches:
    inputs = generation_inputs(pair.kind, replace(size, generate_batch=batch), 0)
    for beams in (1, size.beams) if batch <= 8 else (1,):
        keys = ["marian", *modes]
        clocks = {key: StepClock() for key in keys}
        growth = {key: [] for key in keys}

        def moded(key: str):
            call = generate_call(marian if key == "marian" else models[key], inputs, generation_config(new, beams), clocks[key])

            def run() -> None:
                set_mode("now" if key == "marian" else key, forward)
                try:
                    call()
                finally:
                    set_mode("now", forward)
                growth[key].append(per_token_costs(clocks[key].times, max(4, new // 8))["growth"])

            return run

        calls = {key: moded(key) for key in keys}
        notes = []
        for key in list(keys):  # untimed: first use of every shape (product trials, compilation)
            started = time.perf_counter()
            try:
                calls[key]()
            except Exception as error:  # a mode that cannot run here is reported, not timed
                notes.append(f"{key} failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}")
                del calls[key]
                keys.remove(key)
                continue
            if key.startswith("compiled"):
                notes.append(f"{key} first call {time.perf_counter() - started:.1f} s")
            growth[key].clear()
        times = alternate(calls, reps, torch.device("cpu"))
        reference = statistics.median(times["marian"])
        print(f"batch {batch:2d} beams {beams}: marian {reference * 1e3:.0f} ms g{statistics.median(growth['marian']):.2f}; "
              + ", ".join(f"{mode} {reference / statistics.median(times[mode]):.2f}x g{statistics.median(growth[mode]):.2f}"
                          for mode in keys[1:]) + "".join(f"\n    {note}" for note in notes), flush=True)
