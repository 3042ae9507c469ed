"""Configuration of the pointer-generator family (`model_type="hf_encdec_pointer_generator"`).

A Transformer encoder-decoder (every switch of `TransformerConfig`) whose output mixes generating from the vocabulary
with copying source tokens (See et al. 2017, arXiv 1704.04368; copy_mechanism.py). Copying a source id as a target id
needs one vocabulary for both sides, so `decoder_vocab_size` must equal `vocab_size`. The loss has its own sparse
form (`copy_mechanism.copy_cross_entropy`, which never builds the mixture), so the plain Transformer's chunked
output-layer loss (`fused_loss`) does not apply and is off.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from .configuration_transformer import TransformerConfig


@strict
class PointerGeneratorConfig(TransformerConfig):
    """The Transformer pointer-generator. `unk_token_id` is the id fed back to the decoder for a source word outside
    the vocabulary (an extended id >= vocab_size); only needed when such ids are used.

    >>> from hf_encdec import PointerGeneratorConfig
    >>> config = PointerGeneratorConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37)
    >>> (config.model_type, config.fused_loss, config.decoder_vocab_size)
    ('hf_encdec_pointer_generator', False, 99)
    """

    model_type = "hf_encdec_pointer_generator"

    fused_loss: bool = False
    unk_token_id: int | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.decoder_vocab_size != self.vocab_size:
            raise ValueError(
                f"the pointer-generator copies source ids into the output, so source and target share one vocabulary: "
                f"decoder_vocab_size={self.decoder_vocab_size} must equal vocab_size={self.vocab_size}"
            )
        if self.fused_loss:
            raise ValueError(
                "fused_loss=True is not available for the pointer-generator: its loss is taken on the mixed "
                "vocabulary/copy distribution, not on the output layer's logits; use fused_loss=False"
            )
        if self.unk_token_id is not None and not 0 <= self.unk_token_id < self.vocab_size:
            raise ValueError(f"unk_token_id={self.unk_token_id} is outside the vocabulary [0, {self.vocab_size})")
