"""What every configuration of the library shares: training settings that are never saved, the summary a config
gives of itself for a model card, and the checks of special-token ids.

Training settings (`training_settings`: label smoothing, scheduled sampling) shape the loss while a model trains; they
are config fields so that `model.config.label_smoothing = 0.1` and the scheduled-sampling callback work as they
always did, but they are not part of the model: `to_dict` leaves them out, so no `config.json` (and no Hub
checkpoint) carries them, and a config read from a file that does (saved by an older version) loads with them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import PreTrainedConfig


class EncDecConfig(PreTrainedConfig):
    """Base of the library's configurations (not registered on its own)."""

    #: fields read only while training; never written to config.json
    training_settings: ClassVar[tuple[str, ...]] = ()
    #: fields a model card lists to say what the model is (in this order)
    card_fields: ClassVar[tuple[str, ...]] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        # one shared vocabulary: the target side follows a new vocab_size (resize_token_embeddings sets only that),
        # so a resized model saves a config that loads again
        if name == "vocab_size" and getattr(self, "share_encoder_decoder_embeddings", False) and (
            self.__dict__.get("decoder_vocab_size") is not None
        ):
            super().__setattr__("decoder_vocab_size", value)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for name in self.training_settings:
            output.pop(name, None)
        return output

    def describe(self) -> dict[str, Any]:
        """The settings a model card shows, as {field: value}.

        >>> from hf_encdec import TransformerConfig
        >>> TransformerConfig(hidden_size=64, num_attention_heads=4, encoder_layers=2)\\
        ...     .describe()["encoder_layers"]
        2
        """
        return {name: getattr(self, name) for name in self.card_fields if getattr(self, name, None) is not None}

    def check_token_ids(self, vocab_size: int, names: tuple[str, ...] = ("pad_token_id", "bos_token_id")) -> None:
        """Raise if one of the special-token ids `names` lies outside [0, vocab_size)."""
        for name in names:
            value = getattr(self, name, None)
            if isinstance(value, int) and not 0 <= value < vocab_size:
                raise ValueError(f"{name}={value} is outside the vocabulary [0, {vocab_size})")
