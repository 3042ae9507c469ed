"""Configuration of the pointer-generator family (`model_type="hf_encdec_pointer_generator"`).

A Transformer encoder-decoder (every switch of `TransformerConfig`) whose output mixes generating from the vocabulary
with copying source tokens (See et al. 2017, arXiv 1704.04368; copy_mechanism.py). Copying a source id as a target id
needs one vocabulary for both sides, so `decoder_vocab_size` must equal `vocab_size`. The loss is the mixture's
cross-entropy (`copy_mechanism.mixture_cross_entropy`); with `fused_loss` (default) the library's speed paths take it
without building the mixture, fused with the output layer in chunks (`hf_encdec.speed`), to the same value.

Coverage (See et al. 2017, section 2.4; Tu et al. 2016, arXiv 1601.04811): `coverage=True` feeds the sum of the past
copy attentions into the copy head's scores and adds the coverage loss sum_t sum_s min(a_t,s, c^t_s), weighted by
`coverage_loss_weight` (a training setting, 1.0 by default as in the paper; never saved with the model).
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
    ('hf_encdec_pointer_generator', True, 99)
    """

    model_type = "hf_encdec_pointer_generator"
    training_settings = TransformerConfig.training_settings + ("coverage_loss_weight",)
    card_fields = TransformerConfig.card_fields + ("coverage",)

    fused_loss: bool = True
    unk_token_id: int | None = None
    coverage: bool = False
    coverage_loss_weight: float | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.decoder_vocab_size != self.vocab_size:
            raise ValueError(
                f"the pointer-generator copies source ids into the output, so source and target share one vocabulary: "
                f"decoder_vocab_size={self.decoder_vocab_size} must equal vocab_size={self.vocab_size}"
            )
        if self.unk_token_id is not None and not 0 <= self.unk_token_id < self.vocab_size:
            raise ValueError(f"unk_token_id={self.unk_token_id} is outside the vocabulary [0, {self.vocab_size})")
        self.coverage_loss_weight = check_coverage_loss_weight(self.coverage, self.coverage_loss_weight)


def check_coverage_loss_weight(coverage: bool, weight: float | None) -> float | None:
    """The coverage loss weight of a config: 1.0 (See et al.) when coverage is on and none is given; a weight without
    coverage, or a negative one, raises."""
    if weight is None:
        return 1.0 if coverage else None
    if not coverage:
        raise ValueError(
            f"coverage_loss_weight={weight} has no effect without coverage; set coverage=True or drop the weight"
        )
    if weight < 0:
        raise ValueError(f"coverage_loss_weight must be >= 0, got {weight}")
    return float(weight)
