"""Same-run decoding speed against MarianMTModel of the same size, for the per-step work of a decoding step taken
one piece at a time: the library as its entry points run it, with the speed paths ("now"), forward's signature
computed at every step again as generate() does for remote-code models ("signature-per-step"), the self-attention's
q/k/v projections fused into one product over a concatenated weight ("fused-qkv", a prototype: made once, never
invalidated, so measurement only), the plain model without the speed paths ("plain"), and `torch.compile` of each
decoder layer of the plain model (dynamic shapes, inductor; "compiled-plain"; with the speed paths, inductor failed on
the growing cache's in-place append, "compiled" reports the error). (Issue 15 also measured "mask-per-step", the
cross-attention mask built at every step instead of once per generation; the kept mask was left out in issue 30.)

Per batch size and beam: tokens/s as a ratio over Marian, and the per-token cost growth (late/early: median step time
of the last eighth of the new tokens over the first eighth). Alternating calls, medians.

    python bench/experiments/step_work.py small 1,8,32 7 160     # SIZE BATCHES REPS NEW [MODES]
"""
import copy
import inspect

import same_run
import torch
import torch.nn.functional as F

from hf_encdec.models import attention

SEPARATE_PROJECT = attention.MultiHeadAttention._project


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
    attention.MultiHeadAttention._project = _fused_project if mode == "fused-qkv" else SEPARATE_PROJECT
    inner = inspect.unwrap(forward)
    if mode == "signature-per-step":
        inner.__dict__.pop("__signature__", None)
    else:
        inner.__signature__ = inspect.signature(inner)


size, batches, reps, new, modes = same_run.arguments(
    ["now", "signature-per-step", "fused-qkv", "plain", "compiled-plain"])
ours, marian = same_run.models(size)  # ours with the speed paths
plain = same_run.plain_model(size)
models = {mode: plain if mode.endswith("plain") else ours for mode in modes}
for mode in modes:
    if mode.startswith("compiled"):
        models[mode] = copy.deepcopy(models[mode])
        for layer in models[mode].model.decoder.layers:
            layer.compile(dynamic=True)
forward = type(ours).__dict__["forward"]
same_run.compare(size, batches, reps, new, models, marian, lambda mode: set_mode(mode, forward), "now")
