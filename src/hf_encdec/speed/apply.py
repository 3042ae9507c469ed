"""`apply_speed_paths`: the library's speed paths put into a built model, in place, in the spirit of Liger's
`apply_liger_kernel_to_*`: modules swapped for subclasses that compute the same thing faster or in less memory,
the loss methods bound to fused versions, and a faster cache handed to `generate()`. Parameters, their names and
their tying stay as they are, so a sped-up model trains, saves and loads as the plain one does, and its checkpoint
holds the plain model (no code from this package)."""

from __future__ import annotations

import os
from collections.abc import Collection
from types import MethodType

from torch import nn
from transformers import PreTrainedModel

from ..models.attention import MultiHeadAttention
from ..models.feed_forward import GatedFeedForward
from ..models.modeling_common import EncDecPreTrainedModel
from ..models.pointer_generator_head import PointerGeneratorMixin
from ..models.transformer_layers import TransformerStack
from ..models.transformers_contract import CheckedGenerationMixin
from .cache import KeptMaskStack, faster_generation_cache
from .copy_losses import fused_copy_logits_and_loss
from .losses import fused_logits_and_loss
from .projections import FEW_ROW_PRODUCTS, ProjectionLinear
from .recurrent import STEP_CLASSES
from .training import BoolDropoutAttention, Dropout, GatedProductFeedForward

#: every speed path by name; `apply_speed_paths(model, paths=...)` takes any of them
SPEED_PATHS = ("projections", "dropout", "gated_product", "recurrent_step", "fused_loss", "generation_cache")

#: the environment variable that turns the speed paths of the library's entry points off ("0")
SWITCH = "HF_ENCDEC_SPEED_PATHS"


def apply_speed_paths(
    model: PreTrainedModel, *, paths: Collection[str] = SPEED_PATHS, product_way: str = "measured"
) -> PreTrainedModel:
    """Put the speed paths named in `paths` (default: all of `SPEED_PATHS`) into `model`, in place, and return it.

    - `projections`: every `nn.Linear` becomes a `ProjectionLinear`, whose few-row decoding products run the way
      measured fastest on this machine (`product_way="measured"`), or the fixed way `product_way` names
      (`FEW_ROW_PRODUCTS`; a fixed way repeats bit for bit from run to run).
    - `dropout`: every `nn.Dropout` keeps a bool mask for backward on CPU, and attention trained with dropout on
      CPU runs the eager kernel with such a mask instead of sdpa's math kernel with a float one.
    - `gated_product`: every gated feed-forward recomputes act(gate) * up in backward.
    - `recurrent_step`: every `nn.LSTM` / `nn.GRU` / `nn.RNN` takes a one-step call by its cell functions.
    - `fused_loss`: the loss is taken fused with the output layer where `config.fused_loss` (the model's
      `logits_and_loss`, and a pointer-generator's `copy_logits_and_loss`).
    - `generation_cache`: `generate()` decodes with a cache that grows in place and never reorders the
      cross-attention half (the model's `generation_cache_factory`), and keeps the cross-attention mask for the
      whole generation (decoder stacks become `KeptMaskStack`s).

    Outputs, losses and gradients equal the plain model's up to float rounding, and `generate()` gives the same
    tokens; a model loaded from a checkpoint is plain again.

    >>> import torch
    >>> from hf_encdec import TransformerConfig, TransformerForConditionalGeneration
    >>> config = TransformerConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
    ...                            encoder_layers=2, decoder_layers=2)
    >>> plain = TransformerForConditionalGeneration(config).eval()
    >>> fast = apply_speed_paths(TransformerForConditionalGeneration(config).eval())
    >>> _ = fast.load_state_dict(plain.state_dict())
    >>> type(fast.lm_head).__name__
    'ProjectionLinear'
    >>> source = torch.tensor([[5, 6, 7, 2]])
    >>> bool((fast.generate(source, max_new_tokens=5) == plain.generate(source, max_new_tokens=5)).all())
    True
    """
    unknown = sorted(set(paths) - set(SPEED_PATHS))
    if unknown:
        raise ValueError(f"unknown speed paths {unknown}; valid names: {SPEED_PATHS}")
    if product_way not in FEW_ROW_PRODUCTS:
        raise ValueError(f"product_way={product_way!r} is not one of {FEW_ROW_PRODUCTS}")
    for module in model.modules():
        kind = type(module)
        if "projections" in paths and (kind is nn.Linear or kind is ProjectionLinear):
            ProjectionLinear.swap_in(module, product_way)
        elif "dropout" in paths and kind is nn.Dropout:
            module.__class__ = Dropout
        elif "dropout" in paths and kind is MultiHeadAttention:
            module.__class__ = BoolDropoutAttention
        elif "gated_product" in paths and kind is GatedFeedForward:
            module.__class__ = GatedProductFeedForward
        elif "recurrent_step" in paths and kind in STEP_CLASSES:
            module.__class__ = STEP_CLASSES[kind]
        elif "generation_cache" in paths and kind is TransformerStack:
            module.__class__ = KeptMaskStack
    if "fused_loss" in paths and isinstance(model, EncDecPreTrainedModel):
        model.logits_and_loss = MethodType(fused_logits_and_loss, model)
        if isinstance(model, PointerGeneratorMixin):
            model.copy_logits_and_loss = MethodType(fused_copy_logits_and_loss, model)
    if "generation_cache" in paths and isinstance(model, CheckedGenerationMixin):
        model.generation_cache_factory = faster_generation_cache
    return model


def speed_paths_wanted() -> bool:
    """Whether the library's entry points apply the speed paths: yes, unless `HF_ENCDEC_SPEED_PATHS=0`."""
    return os.environ.get(SWITCH, "1") != "0"


def speed_up(model: PreTrainedModel) -> PreTrainedModel:
    """What the library's entry points (the CLI, `load_translator`, the training recipe and scripts, bench) call on
    the model they built or loaded: `apply_speed_paths(model)`, unless `HF_ENCDEC_SPEED_PATHS=0` asks for the plain
    model."""
    return apply_speed_paths(model) if speed_paths_wanted() else model
