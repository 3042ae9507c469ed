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

SCHEDULED_SAMPLING_MODES = ("sample", "argmax")
#: settings of some families that another family would store as an unknown attribute and ignore, with the value that
#: does nothing: any other value raises there (the inert value passes, so a pointer-generator's saved config, which
#: holds coverage=False, still loads into the plain Transformer)
FAMILY_SETTINGS: dict[str, Any] = {
    "scheduled_sampling_probability": 0.0, "scheduled_sampling_mode": "sample", "scheduled_sampling_passes": 2,
    "copy_mechanism": False, "coverage": False, "coverage_loss_weight": None,
}


def check_scheduled_sampling(config: Any) -> None:
    """Raise a ValueError for a scheduled-sampling probability outside [0, 1], an unknown mode or (where the config
    has it) fewer than 2 decoding passes."""
    if not 0.0 <= config.scheduled_sampling_probability <= 1.0:
        raise ValueError(
            f"scheduled_sampling_probability must be in [0, 1], got {config.scheduled_sampling_probability}"
        )
    if config.scheduled_sampling_mode not in SCHEDULED_SAMPLING_MODES:
        raise ValueError(
            f"scheduled_sampling_mode={config.scheduled_sampling_mode!r} is not supported; valid values: "
            f"{SCHEDULED_SAMPLING_MODES}"
        )
    passes = getattr(config, "scheduled_sampling_passes", None)
    if passes is not None and passes < 2:
        raise ValueError(
            f"scheduled_sampling_passes must be >= 2 (a first pass whose predictions feed the last one), got {passes}"
        )


class EncDecConfig(PreTrainedConfig):
    """Base of the library's configurations (not registered on its own).

    A setting that belongs to other families (`FAMILY_SETTINGS`: scheduled sampling, the copy mechanism, coverage)
    raises here instead of being stored and ignored.
    """

    def __post_init__(self, **kwargs: Any) -> None:
        foreign = sorted(
            f"{name}={kwargs[name]!r}" for name, inert in FAMILY_SETTINGS.items() if name in kwargs and kwargs[name] != inert
        )
        if foreign:
            raise ValueError(
                f"{', '.join(foreign)}: not a setting of {type(self).__name__}, which would store and ignore it"
            )
        super().__post_init__(**kwargs)

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
