"""Configurations of the Transformer family: the switches shared by every stack, and the encoder-decoder.

`TransformerConfig()` with no arguments is Transformer-base of Vaswani et al. 2017 (arXiv 1706.03762): d_model 512,
8 heads, 6 + 6 layers, feed-forward 2048, post-LN, sinusoidal positions, ReLU, dropout 0.1, one embedding matrix
shared by encoder, decoder and output layer and scaled by sqrt(d_model).

Each variant is one field (see `SWITCHES`):

| field | values | paper |
|---|---|---|
| `norm_type` | layernorm, rmsnorm | Ba et al. 2016; Zhang & Sennrich 2019 (1910.07467) |
| `norm_position` | post, pre | Vaswani 2017; Xiong et al. 2020 (2002.04745) |
| `position_type` | sinusoidal, learned, rope, alibi | Vaswani; BERT/GPT-2; Su et al. 2021; Press et al. 2021 |
| `hidden_act` | relu, gelu, silu, swiglu, geglu | Vaswani; BERT; Shazeer 2020 (2002.05202) |
| `num_key_value_heads` | = heads (MHA), 1 (MQA), divisor (GQA) | Shazeer 2019; Ainslie et al. 2023 |
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from .configuration_common import EncDecConfig, check_scheduled_sampling
from .feed_forward import HIDDEN_ACTS
from .norms import NORM_TYPES
from .positions import POSITION_TYPES

NORM_POSITIONS = ("post", "pre")
SWITCHES: dict[str, tuple[str, ...]] = {
    "norm_type": NORM_TYPES,
    "norm_position": NORM_POSITIONS,
    "position_type": POSITION_TYPES,
    "hidden_act": HIDDEN_ACTS,
}
FLASH_IMPLEMENTATIONS = ("flash_attention_2", "flash_attention_3")


def check_attention_implementation(position_type: str, attn_implementation: str | None) -> None:
    """Flash kernels take no score bias, so ALiBi cannot run on them."""
    if position_type == "alibi" and attn_implementation in FLASH_IMPLEMENTATIONS:
        raise ValueError(
            f"position_type='alibi' adds a bias to the attention scores, which attn_implementation="
            f"{attn_implementation!r} cannot take; use 'sdpa' (default), 'eager' or 'flex_attention', "
            "or position_type='rope'"
        )


@strict
class TransformerBlockConfig(EncDecConfig):
    """Fields shared by the encoder-decoder, encoder-only and decoder-only stacks (not registered on its own).

    Derived defaults: `num_key_value_heads` = heads (MHA), `head_dim` = hidden_size / heads, `final_norm` = True
    for pre-LN (the residual stream is otherwise never normalised) and False for post-LN.

    `label_smoothing` (Szegedy et al. 2016, 1512.00567) is a training setting: read by the loss, never saved.

    `fused_loss` does not change the loss: the model takes it from its logits. It says whether the library's speed
    paths (`hf_encdec.speed`) take it fused with the output layer in training, without the
    (tokens x vocabulary) logits (which such a model then leaves out of its training output).

    `scale_residual_init` is GPT-2's initialisation (Radford et al. 2019, section 2.3): the last projection of every
    residual branch (attention `o_proj`, feed-forward `fc2`/`down_proj`) is drawn with std
    `initializer_range / sqrt(2 * num_hidden_layers)`, so the residual stream's variance does not grow with depth.
    """

    training_settings = ("label_smoothing",)
    card_fields = (
        "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size", "num_hidden_layers",
        "encoder_layers", "decoder_layers", "norm_type", "norm_position", "position_type", "hidden_act", "vocab_size",
    )

    vocab_size: int = 37000
    hidden_size: int = 512
    num_attention_heads: int = 8
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int = 2048
    max_position_embeddings: int = 1024
    hidden_act: str = "relu"
    norm_type: str = "layernorm"
    norm_position: str = "post"
    position_type: str = "sinusoidal"
    layer_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    attention_bias: bool = True
    mlp_bias: bool = True
    scale_embedding: bool = True
    embedding_norm: bool = False
    final_norm: bool | None = None
    initializer_range: float = 0.02
    scale_residual_init: bool = False
    label_smoothing: float = 0.0
    fused_loss: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = True
    use_cache: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and self.num_attention_heads > 0:
            if self.hidden_size % self.num_attention_heads != 0:
                raise ValueError(
                    f"hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                    f"{self.num_attention_heads}; choose a hidden size that is a multiple of the heads "
                    "(or set head_dim explicitly)"
                )
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.final_norm is None:
            self.final_norm = self.norm_position == "pre"
        check_attention_implementation(self.position_type, kwargs.get("attn_implementation"))
        super().__post_init__(**kwargs)
        self.check_switches()

    def check_switches(self) -> None:
        """Raise a ValueError naming every impossible value or combination."""
        for field, valid in SWITCHES.items():
            if getattr(self, field) not in valid:
                raise ValueError(f"{field}={getattr(self, field)!r} is not supported; valid values: {valid}")
        for field in ("vocab_size", "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be a positive integer, got {getattr(self, field)}")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not divisible by num_key_value_heads="
                f"{self.num_key_value_heads}; use a divisor of the heads (1 = MQA, = heads for MHA)"
            )
        if self.position_type == "rope" and self.head_dim % 2 != 0:
            raise ValueError(f"position_type='rope' rotates pairs of dimensions and needs an even head_dim, got {self.head_dim}")
        if self.position_type == "sinusoidal" and self.hidden_size % 2 != 0:
            raise ValueError(f"position_type='sinusoidal' needs an even hidden_size, got {self.hidden_size}")
        for field in ("dropout", "attention_dropout", "activation_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, field) < 1.0:
                raise ValueError(f"{field} must be in [0, 1), got {getattr(self, field)}")
        if self.max_position_embeddings < 1:
            raise ValueError(f"max_position_embeddings must be positive, got {self.max_position_embeddings}")
        self.check_token_ids(self.vocab_size, ("pad_token_id", "bos_token_id", "decoder_start_token_id"))

    @classmethod
    def llama_kwargs(cls) -> dict[str, Any]:
        """The Llama-3 block (arXiv 2407.21783): pre-RMSNorm, RoPE (theta 500000), SwiGLU, GQA, no biases, untied head,
        no dropout anywhere (also not the attention dropout that `DecoderConfig`/`EncoderConfig` default to)."""
        return {
            "norm_type": "rmsnorm",
            "norm_position": "pre",
            "position_type": "rope",
            "hidden_act": "swiglu",
            "rope_theta": 500000.0,
            "layer_norm_eps": 1e-5,
            "attention_bias": False,
            "mlp_bias": False,
            "scale_embedding": False,
            "scale_residual_init": False,
            "tie_word_embeddings": False,
            "dropout": 0.0,
            "attention_dropout": 0.0,
            "activation_dropout": 0.0,
        }

    @classmethod
    def llama(cls, *, hidden_size: int = 512, num_attention_heads: int = 8, **kwargs: Any) -> TransformerBlockConfig:
        """A Llama-3 style config at any size: GQA with a quarter of the heads as key/value heads (at least 1) and the
        SwiGLU width 8/3 * hidden rounded up to a multiple of 64, unless given.

        >>> from hf_encdec import DecoderConfig
        >>> config = DecoderConfig.llama(hidden_size=256, num_attention_heads=8, num_hidden_layers=2, vocab_size=1000)
        >>> (config.norm_type, config.position_type, config.hidden_act, config.num_key_value_heads)
        ('rmsnorm', 'rope', 'swiglu', 2)
        """
        intermediate = -(-int(8 * hidden_size / 3) // 64) * 64
        defaults = {
            **cls.llama_kwargs(),
            "num_key_value_heads": max(1, num_attention_heads // 4),
            "intermediate_size": intermediate,
        }
        return cls(hidden_size=hidden_size, num_attention_heads=num_attention_heads, **{**defaults, **kwargs})


@strict
class TransformerConfig(TransformerBlockConfig):
    """The encoder-decoder Transformer (`model_type="hf_encdec_transformer"`).

    Scheduled sampling for a Transformer decoder (Mihaylova & Martins 2019, arXiv 1906.07651; Bengio et al. 2015,
    1506.03099), training settings never saved: in training with labels and `scheduled_sampling_probability` p > 0,
    `scheduled_sampling_passes` - 1 passes without gradient predict every position (argmax or a sample from the
    predicted distribution, `scheduled_sampling_mode`); each decoder input then becomes the previous pass's prediction
    for the position before it with probability p (per token, drawn once), and the last pass, which carries the loss,
    reads the mix. Two passes is the paper's; with p = 1, argmax and as many passes as target tokens the last pass
    reads exactly greedy decoding's tokens. `hf_encdec.training.ScheduledSamplingCallback` moves p along a schedule.

    `share_encoder_decoder_embeddings` uses one token embedding for both sides (a joint vocabulary);
    `tie_word_embeddings` also ties the output layer to the decoder's input embedding. `decoder_vocab_size` gives the
    target side its own vocabulary (only without shared embeddings).

    >>> from hf_encdec import TransformerConfig
    >>> config = TransformerConfig()
    >>> (config.hidden_size, config.num_attention_heads, config.encoder_layers, config.intermediate_size)
    (512, 8, 6, 2048)
    """

    model_type = "hf_encdec_transformer"
    training_settings = TransformerBlockConfig.training_settings + (
        "scheduled_sampling_probability", "scheduled_sampling_mode", "scheduled_sampling_passes",
    )
    keys_to_ignore_at_inference = ["cache", "past_key_values"]  # the cache by its 5.24 name and its older one
    # num_hidden_layers as BART and Marian map it (generic code reads it: caches, Trainer integrations, PEFT)
    attribute_map = {"d_model": "hidden_size", "num_heads": "num_attention_heads", "num_hidden_layers": "encoder_layers"}

    encoder_layers: int = 6
    decoder_layers: int = 6
    decoder_vocab_size: int | None = None
    share_encoder_decoder_embeddings: bool = True
    decoder_start_token_id: int | None = 1
    is_encoder_decoder: bool = True
    scheduled_sampling_probability: float = 0.0
    scheduled_sampling_mode: str = "sample"
    scheduled_sampling_passes: int = 2

    def __post_init__(self, **kwargs: Any) -> None:
        if self.decoder_vocab_size is None:
            self.decoder_vocab_size = self.vocab_size
        super().__post_init__(**kwargs)
        check_scheduled_sampling(self)
        if self.share_encoder_decoder_embeddings and self.decoder_vocab_size != self.vocab_size:
            raise ValueError(
                f"decoder_vocab_size={self.decoder_vocab_size} differs from vocab_size={self.vocab_size}, which "
                "needs share_encoder_decoder_embeddings=False"
            )
        for field in ("encoder_layers", "decoder_layers"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be at least 1, got {getattr(self, field)}")

