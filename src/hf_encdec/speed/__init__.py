"""The speed paths: faster or leaner ways to compute what the plain models of `hf_encdec.models` compute, applied to
a built model by one call, `apply_speed_paths(model)`, and kept out of the models themselves (`models/` is the
remote-code payload every checkpoint carries, so `trust_remote_code` users load the plain model).

| speed path | what it saves | the plain model's way |
|---|---|---|
| `projections`: a decoding step's few-row CPU product as (W x^T)^T, or for one row as one batched product over row blocks of W or as a broadcast multiply summed over W's rows, where its first real calls measured it faster (projections.py) | the kernel streams the weight faster | `nn.Linear` |
| `dropout`: a bool mask on CPU, also for the attention weights (eager kernel when training with attention dropout) (training.py) | 1 byte per element kept for backward, not 4 | `nn.Dropout`; sdpa |
| `gated_product`: act(gate) * up recomputed in backward (training.py) | one (B, T, F) tensor per gated layer | autograd |
| `recurrent_step`: one step of a recurrent stack as torch's cell functions (recurrent.py) | the per-call set-up of the fused CPU kernel | `nn.LSTM`/`nn.GRU`/`nn.RNN` |
| `fused_loss`: the loss fused with the output layer, in chunks; the pointer-generator's without the mixture (losses.py, copy_losses.py) | the (tokens x V) logits kept for backward | logits, then cross-entropy |
| `generation_cache`: appends written in place into spare room, reordering folded into the next append, cross-attention never reordered, its mask built once per generation (cache.py) | a cache copy per step and a second per beam step; a (B, 1, T, S) mask per step | `DynamicCache`; the mask built per step |

The library's entry points (the CLI, `inference.load_translator`, the training recipe, `training.scripts`, bench)
call `speed_up(model)`, which applies them unless `HF_ENCDEC_SPEED_PATHS=0`. tests/speed/ checks, for every family,
that a sped-up model gives the plain model's outputs, losses, gradients and generated tokens.
"""

from .apply import SPEED_PATHS, apply_speed_paths, speed_paths_wanted, speed_up
from .projections import product_choices

__all__ = ["SPEED_PATHS", "apply_speed_paths", "product_choices", "speed_paths_wanted", "speed_up"]
