"""Configuration of the encoder-only (BERT-like) member of the family (`model_type="hf_encdec_encoder"`)."""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from .configuration_transformer import TransformerBlockConfig


@strict
class EncoderConfig(TransformerBlockConfig):
    """A bidirectional Transformer stack; the defaults are BERT-base (Devlin et al. 2018, arXiv 1810.04805):
    768 hidden, 12 heads, 12 layers, GELU, post-LN with an embedding LayerNorm, learned positions up to 512,
    token-type embeddings, unscaled embeddings tied to the masked-LM output layer.

    >>> from hf_encdec import EncoderConfig
    >>> config = EncoderConfig()
    >>> (config.hidden_size, config.num_hidden_layers, config.position_type, config.norm_position)
    (768, 12, 'learned', 'post')
    """

    model_type = "hf_encdec_encoder"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    max_position_embeddings: int = 512
    hidden_act: str = "gelu"
    position_type: str = "learned"
    layer_norm_eps: float = 1e-12
    attention_dropout: float = 0.1
    scale_embedding: bool = False
    embedding_norm: bool = True
    type_vocab_size: int = 2
    classifier_dropout: float | None = None
    mask_token_id: int | None = 4

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be at least 1, got {self.num_hidden_layers}")
        if self.type_vocab_size < 0:
            raise ValueError(f"type_vocab_size must be >= 0 (0 = no token types), got {self.type_vocab_size}")
