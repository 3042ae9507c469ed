"""Configuration of the RNN encoder-decoder family (`model_type="hf_encdec_rnn_seq2seq"`).

`RNNSeq2SeqConfig()` with no arguments is a Luong et al. 2015 (arXiv 1508.04025) / OpenNMT-style model: 2-layer LSTMs
of 512 units, bidirectional encoder, global attention with the `general` score and input feeding, dropout 0.2,
uniform initialisation in [-0.1, 0.1], separate source/target embeddings and output layer.

Each variant is one field (see `FIELD_CHOICES`):

| field | values | paper |
|---|---|---|
| `rnn_type` | rnn, gru, lstm | Elman 1990; Cho et al. 2014 (1406.1078); Hochreiter & Schmidhuber 1997 |
| `attention_type` | none, bahdanau, luong_dot, luong_general, luong_concat | Cho 2014; Bahdanau 2015; Luong 2015 |
| `input_feeding` | True (luong_* only; their default), False (the default otherwise) | Luong et al. 2015, section 3.3 |
| `bridge` | zero, last, linear | zero state; Sutskever et al. 2014 (1409.3215) copy; Cho / Bahdanau tanh(W h) |
| `encoder_type` | rnn, transformer (settings in `encoder_config`) | Vaswani 2017 (1706.03762) encoder + RNN decoder: Chen et al. 2018 (1804.09849) |
| `bidirectional_encoder` | True, False | Schuster & Paliwal 1997; Bahdanau et al. 2015 |
| `copy_mechanism` | False, True (any attention) | See et al. 2017 pointer-generator (1704.04368) |
| `coverage` | False, True (any attention) | Tu et al. 2016 (1601.04811); See et al. 2017, section 2.4 |

Departures from the papers, each named by a field: a bidirectional encoder splits `hidden_size` between its two
directions (OpenNMT's convention; Bahdanau et al. give each direction the full size), so encoder states, decoder
states and attention keys all have size `hidden_size`; `tie_word_embeddings` (off in the papers) ties the output layer
to the decoder's input embedding (Press & Wolf 2017, 1608.05859).
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_common import SCHEDULED_SAMPLING_MODES, EncDecConfig, check_scheduled_sampling
from .configuration_pointer_generator import check_coverage_loss_weight
from .configuration_transformer import TransformerBlockConfig
from .rnn_attention import ATTENTION_TYPES
from .rnn_layers import BRIDGES, RNN_TYPES

ENCODER_TYPES = ("rnn", "transformer")
FIELD_CHOICES: dict[str, tuple[Any, ...]] = {
    "rnn_type": RNN_TYPES,
    "attention_type": ATTENTION_TYPES,
    "bridge": BRIDGES,
    "encoder_type": ENCODER_TYPES,
    "scheduled_sampling_mode": SCHEDULED_SAMPLING_MODES,
}
#: the hybrid encoder's settings as flat fields, as configs saved before `encoder_config` spell them (still read)
LEGACY_ENCODER_FIELDS = {
    "transformer_attention_heads": "num_attention_heads",
    "transformer_intermediate_size": "intermediate_size",
    "transformer_hidden_act": "hidden_act",
    "transformer_norm_position": "norm_position",
    "transformer_position_type": "position_type",
    "transformer_scale_embedding": "scale_embedding",
}
#: fields the Transformer encoder always takes from the RNN config itself, so the two never disagree
SHARED_ENCODER_FIELDS = (
    "vocab_size", "hidden_size", "max_position_embeddings", "dropout", "initializer_range", "pad_token_id",
)


@strict
class RNNSeq2SeqConfig(EncDecConfig):
    """The RNN encoder-decoder: recurrent (or Transformer) encoder, recurrent decoder with optional global attention.

    Sizes: `embedding_size` (token embeddings, and the readout of `none`/`bahdanau`), `hidden_size` (encoder output
    = decoder state = attention key size). `vocab_size` is the source vocabulary, `decoder_vocab_size` (default: the
    same) the target one; `share_encoder_decoder_embeddings` uses one matrix for both (needs equal vocabularies, and
    `embedding_size == hidden_size` with a Transformer encoder, whose embeddings have the model width).

    `encoder_type="transformer"` builds the encoder from the Transformer family's blocks, set by `encoder_config` (a
    `TransformerBlockConfig` or a dict of its fields: heads, feed-forward width and activation, norm placement,
    positions; its width, vocabulary, dropout and padding id are this config's). The RNN switches then shape only the
    decoder, and `bidirectional_encoder` is ignored (self-attention already sees both sides). The flat
    `transformer_*` fields of configs saved by earlier versions (`transformer_attention_heads`, ...) are still read
    into `encoder_config`.

    Training settings (read while training, never saved with the model): `label_smoothing` as in the Transformer
    family, and scheduled sampling (Bengio et al. 2015, 1506.03099): in training mode with labels, each decoder input
    is the model's own previous prediction with probability `scheduled_sampling_probability` (0 = teacher forcing,
    the default), drawn by `scheduled_sampling_mode` (`sample` from the predicted distribution, or `argmax`). A
    `hf_encdec.training.ScheduledSamplingCallback` moves the probability along a schedule during training.
    `fused_loss` (whether the speed paths take the loss fused with the output layer) is as in the Transformer family.

    The pointer-generator of See et al. 2017 (arXiv 1704.04368): `copy_mechanism=True` mixes generating from the
    vocabulary with copying source tokens, the decoder's own attention a_t being the copy distribution and
    p_gen = sigmoid(w_c^T c_t + w_s^T s_t + w_x^T x_t + b) (context, decoder state, decoder input). The mixture, its
    loss and the extended vocabulary are the Transformer pointer-generator's (copy_mechanism.py); source and target
    share one vocabulary, and `unk_token_id` is fed back for extended ids. `coverage=True` feeds the attention paid so
    far into the attention scores and adds the coverage loss, weighted by `coverage_loss_weight` (a training setting,
    1.0 by default). The `see-2017` preset is the paper's model.

    Initialisation: RNN-family weights uniform in [-`uniform_init_range`, +`uniform_init_range`] (Sutskever 2014,
    Luong 2015); the Transformer encoder as in the Transformer family (normal, std `initializer_range`).

    >>> from hf_encdec import RNNSeq2SeqConfig
    >>> config = RNNSeq2SeqConfig()
    >>> (config.rnn_type, config.attention_type, config.input_feeding, config.hidden_size, config.encoder_layers)
    ('lstm', 'luong_general', True, 512, 2)
    >>> hybrid = RNNSeq2SeqConfig(encoder_type="transformer", hidden_size=64, encoder_config={"num_attention_heads": 4})
    >>> (hybrid.encoder_config.num_attention_heads, hybrid.encoder_config.hidden_size)
    (4, 64)
    """

    model_type = "hf_encdec_rnn_seq2seq"
    training_settings = (
        "label_smoothing", "scheduled_sampling_probability", "scheduled_sampling_mode", "coverage_loss_weight",
    )
    card_fields = (
        "rnn_type", "attention_type", "input_feeding", "bridge", "encoder_type", "bidirectional_encoder",
        "copy_mechanism", "coverage",
        "embedding_size", "hidden_size", "encoder_layers", "decoder_layers", "vocab_size",
    )
    keys_to_ignore_at_inference = ["cache", "past_key_values"]  # the cache by its 5.24 name and its older one
    # the common properties that apply: hidden_size and vocab_size are fields, num_hidden_layers is the encoder's
    # depth (as BART and Marian map it); num_attention_heads does not apply (one attention over the encoder states;
    # a Transformer encoder's heads are encoder_config.num_attention_heads)
    attribute_map = {"num_hidden_layers": "encoder_layers"}
    # transformers hands the attention implementation (and dtype) to sub-configs, and so to the hybrid's encoder
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=TransformerBlockConfig, optional=True)}

    vocab_size: int = 32000
    decoder_vocab_size: int | None = None
    share_encoder_decoder_embeddings: bool = False
    rnn_type: str = "lstm"
    embedding_size: int = 512
    hidden_size: int = 512
    encoder_layers: int = 2
    decoder_layers: int = 2
    bidirectional_encoder: bool = True
    attention_type: str = "luong_general"
    input_feeding: bool | None = None  # default: on with Luong attention (the paper's), off otherwise
    bridge: str = "linear"
    dropout: float = 0.2
    encoder_type: str = "rnn"
    encoder_config: dict | PreTrainedConfig | None = None
    max_position_embeddings: int = 1024
    uniform_init_range: float = 0.1
    initializer_range: float = 0.02
    label_smoothing: float = 0.0
    fused_loss: bool = True
    scheduled_sampling_probability: float = 0.0
    scheduled_sampling_mode: str = "sample"
    copy_mechanism: bool = False
    coverage: bool = False
    coverage_loss_weight: float | None = None
    unk_token_id: int | None = None
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 1
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = False
    use_cache: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        if self.decoder_vocab_size is None:
            self.decoder_vocab_size = self.vocab_size
        if self.input_feeding is None:
            self.input_feeding = self.attention_type.startswith("luong")
        legacy = {LEGACY_ENCODER_FIELDS[key]: kwargs.pop(key) for key in list(kwargs) if key in LEGACY_ENCODER_FIELDS}
        if self.encoder_type == "transformer":
            self.encoder_config = self._encoder_config(legacy)
        elif self.encoder_config is not None:
            raise ValueError(
                f"encoder_config sets up a Transformer encoder, but encoder_type={self.encoder_type!r}; "
                "use encoder_type='transformer' or drop encoder_config"
            )
        super().__post_init__(**kwargs)
        self.check_switches()
        self.coverage_loss_weight = check_coverage_loss_weight(self.coverage, self.coverage_loss_weight)

    def _encoder_config(self, legacy: dict[str, Any]) -> TransformerBlockConfig:
        """The Transformer encoder's config: `encoder_config` (or the legacy flat fields) plus the shared fields."""
        given = self.encoder_config
        if isinstance(given, PreTrainedConfig):
            given = given.to_dict()
        given = {key: value for key, value in (given or {}).items() if key not in ("model_type", "transformers_version")}
        if legacy and given:
            raise ValueError(
                f"the Transformer encoder is set twice: by encoder_config and by the flat fields "
                f"{sorted(k for k, v in LEGACY_ENCODER_FIELDS.items() if v in legacy)}; use encoder_config alone"
            )
        # the shared fields always follow this config (a resized vocabulary, say, reaches the encoder too)
        values = {"num_attention_heads": 8, "hidden_act": "relu", **legacy, **given}
        values.update({name: getattr(self, name) for name in SHARED_ENCODER_FIELDS})
        if values.get("intermediate_size") is None:
            values["intermediate_size"] = 4 * self.hidden_size
        return TransformerBlockConfig(**values)

    def check_switches(self) -> None:
        """Raise a ValueError naming every unknown value or impossible combination."""
        for field, valid in FIELD_CHOICES.items():
            if getattr(self, field) not in valid:
                raise ValueError(f"{field}={getattr(self, field)!r} is not supported; valid values: {valid}")
        for field in (
            "vocab_size",
            "decoder_vocab_size",
            "embedding_size",
            "hidden_size",
            "encoder_layers",
            "decoder_layers",
        ):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be a positive integer, got {getattr(self, field)}")
        for field in ("dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, field) < 1.0:
                raise ValueError(f"{field} must be in [0, 1), got {getattr(self, field)}")
        check_scheduled_sampling(self)
        if self.input_feeding and not self.attention_type.startswith("luong"):
            raise ValueError(
                f"input_feeding=True feeds Luong's attentional vector back into the decoder and needs a luong_* "
                f"attention_type, got attention_type={self.attention_type!r}; set input_feeding=False"
            )
        if self.encoder_type == "rnn" and self.bidirectional_encoder and self.hidden_size % 2 != 0:
            raise ValueError(
                f"a bidirectional encoder gives each direction hidden_size / 2 units and needs an even hidden_size, "
                f"got {self.hidden_size}"
            )
        if self.bridge == "last":
            if self.encoder_type != "rnn":
                raise ValueError(
                    "bridge='last' copies the encoder's final recurrent states, which a Transformer encoder does not "
                    "have; use bridge='linear' or 'zero' with encoder_type='transformer'"
                )
            if self.encoder_layers != self.decoder_layers:
                raise ValueError(
                    f"bridge='last' copies the encoder's final state layer by layer and needs encoder_layers == "
                    f"decoder_layers, got {self.encoder_layers} and {self.decoder_layers}; use bridge='linear'"
                )
        if self.share_encoder_decoder_embeddings:
            if self.decoder_vocab_size != self.vocab_size:
                raise ValueError(
                    f"share_encoder_decoder_embeddings=True needs one vocabulary, got vocab_size={self.vocab_size} and "
                    f"decoder_vocab_size={self.decoder_vocab_size}"
                )
            if self.encoder_type == "transformer" and self.embedding_size != self.hidden_size:
                raise ValueError(
                    f"a Transformer encoder embeds tokens at hidden_size={self.hidden_size}, so sharing its embeddings "
                    f"with the decoder needs embedding_size == hidden_size, got embedding_size={self.embedding_size}"
                )
        for switch in ("copy_mechanism", "coverage"):
            if getattr(self, switch) and self.attention_type == "none":
                raise ValueError(
                    f"{switch}=True reads the decoder's attention over the source, which attention_type='none' (Cho et "
                    f"al.'s fixed context) does not have; use one of {ATTENTION_TYPES[1:]}"
                )
        if self.copy_mechanism and self.decoder_vocab_size != self.vocab_size:
            raise ValueError(
                f"the copy mechanism copies source ids into the output, so source and target share one vocabulary: "
                f"decoder_vocab_size={self.decoder_vocab_size} must equal vocab_size={self.vocab_size}"
            )
        self.check_token_ids(
            min(self.vocab_size, self.decoder_vocab_size),
            ("pad_token_id", "bos_token_id", "decoder_start_token_id", "unk_token_id"),
        )
