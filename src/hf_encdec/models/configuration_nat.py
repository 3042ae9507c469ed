"""Configuration of the non-autoregressive family (`model_type="hf_encdec_nat"`).

A Transformer encoder-decoder (every switch of `TransformerConfig`) whose decoder writes all target positions at once:

| field | values | paper |
|---|---|---|
| `decoder_input_type` | mask (CMLM, the default), copy_source, upsampled_source (CTC) | Ghazvininejad et al. 2019 (1904.09324); Gu et al. 2018 (1711.02281); Libovický & Helcl 2018 (1811.04719) |
| `mask_token_id` | required: the placeholder of masked target positions, and the CTC blank | Ghazvininejad et al. 2019 |
| `length_loss_weight` | weight of the target-length classifier's loss (default 0.1; CTC has no classifier) | both papers |
| `max_position_embeddings` | also the largest target length the length classifier can predict | |
| `upsample_factor` | upsampled_source only: decoder positions per source token (default 2) | Libovický & Helcl 2018 |
| `glancing_ratio` | glancing training: the share of the first pass's errors revealed (0 = off; 0.5 in the paper) | Qian et al. 2021, GLAT (2008.07905) |
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from .configuration_transformer import TransformerConfig

DECODER_INPUT_TYPES = ("mask", "copy_source", "upsampled_source")
DEFAULT_UPSAMPLE_FACTOR = 2


@strict
class NATConfig(TransformerConfig):
    """The non-autoregressive Transformer.

    `decoder_input_type="mask"` feeds the decoder `mask_token_id` at every position to predict (the conditional masked
    LM of Mask-Predict, which `generate` refines over several iterations); `"copy_source"` feeds it the source
    embeddings copied uniformly to the target length (Gu et al. 2018), decoded in one pass. The target length (target
    tokens plus EOS) comes from a classifier over the mean of the encoder states, trained with weight
    `length_loss_weight`, up to `max_position_embeddings`.

    `"upsampled_source"` is the CTC variant: the decoder reads each source embedding `upsample_factor` times in a
    row, writes a token or the blank (`mask_token_id`) at every position, and is trained with the CTC loss over all
    alignments; decoding takes the most likely token at each position, merges repeats and drops blanks. It needs no
    length classifier.

    `glancing_ratio` > 0 turns on glancing training for any input type: a first pass without gradient, then
    `glancing_ratio` x (its number of wrong tokens) reference tokens shown to the decoder at random positions (for
    CTC, the tokens of the best alignment), and the loss on the rest.

    >>> from hf_encdec.models.configuration_nat import NATConfig
    >>> config = NATConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37, mask_token_id=4)
    >>> (config.model_type, config.decoder_input_type, config.length_loss_weight)
    ('hf_encdec_nat', 'mask', 0.1)
    """

    model_type = "hf_encdec_nat"
    card_fields = TransformerConfig.card_fields + (
        "decoder_input_type", "max_position_embeddings", "upsample_factor", "glancing_ratio"
    )

    mask_token_id: int | None = None
    length_loss_weight: float = 0.1
    decoder_input_type: str = "mask"
    max_position_embeddings: int = 256
    upsample_factor: int | None = None
    glancing_ratio: float = 0.0

    @property
    def is_ctc(self) -> bool:
        """The CTC variant: upsampled source in, tokens and blanks out, no length classifier."""
        return self.decoder_input_type == "upsampled_source"

    @property
    def ctc_upsample_factor(self) -> int:
        """Decoder positions per source token of the CTC variant."""
        return DEFAULT_UPSAMPLE_FACTOR if self.upsample_factor is None else self.upsample_factor

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.decoder_input_type not in DECODER_INPUT_TYPES:
            raise ValueError(
                f"decoder_input_type={self.decoder_input_type!r} is not supported; valid values: {DECODER_INPUT_TYPES}"
            )
        if self.mask_token_id is None:
            raise ValueError(
                "NATConfig needs mask_token_id, the id of the placeholder the decoder reads at positions it predicts "
                "(hf_encdec tokenizers have <mask> = 4: pass mask_token_id=tokenizer.mask_token_id)"
            )
        if not 0 <= self.mask_token_id < self.decoder_vocab_size:
            raise ValueError(
                f"mask_token_id={self.mask_token_id} is outside the target vocabulary [0, {self.decoder_vocab_size})"
            )
        clashes = [
            name
            for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")
            if getattr(self, name) == self.mask_token_id
        ]
        if clashes:
            raise ValueError(
                f"mask_token_id={self.mask_token_id} is also {', '.join(clashes)}; the mask placeholder needs an id "
                "of its own"
            )
        if self.length_loss_weight < 0:
            raise ValueError(f"length_loss_weight must be >= 0, got {self.length_loss_weight}")
        if self.upsample_factor is not None and self.decoder_input_type != "upsampled_source":
            raise ValueError(
                f"upsample_factor={self.upsample_factor} is read by decoder_input_type='upsampled_source' (CTC) only; "
                f"this model has decoder_input_type={self.decoder_input_type!r}: leave upsample_factor unset"
            )
        if self.decoder_input_type == "upsampled_source" and self.ctc_upsample_factor < 1:
            raise ValueError(f"upsample_factor must be an integer >= 1, got {self.upsample_factor}")
        if not 0.0 <= self.glancing_ratio <= 1.0:
            raise ValueError(f"glancing_ratio must lie in [0, 1] (0 = off, 0.5 in the GLAT paper), got {self.glancing_ratio}")
        if self.scheduled_sampling_probability > 0:
            raise ValueError(
                f"scheduled_sampling_probability={self.scheduled_sampling_probability} has no effect on the "
                "non-autoregressive model, whose decoder never reads its own earlier predictions; leave it at 0"
            )
