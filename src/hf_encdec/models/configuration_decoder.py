"""Configuration of the decoder-only (GPT/Llama-like) member of the family (`model_type="hf_encdec_decoder"`)."""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict

from .configuration_transformer import TransformerBlockConfig


@strict
class DecoderConfig(TransformerBlockConfig):
    """A causal Transformer stack; the defaults are GPT-2 small (Radford et al. 2019): 768 hidden, 12 heads,
    12 layers, GELU, pre-LN with a final LayerNorm, learned positions up to 1024, unscaled embeddings tied to the
    output layer, residual-branch projections initialised with std 0.02 / sqrt(2 * layers).
    `DecoderConfig.llama(...)` builds the Llama-3 block at any size.

    >>> from hf_encdec import DecoderConfig
    >>> config = DecoderConfig()
    >>> (config.hidden_size, config.num_hidden_layers, config.norm_position, config.final_norm)
    (768, 12, 'pre', True)
    """

    model_type = "hf_encdec_decoder"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]  # the cache by its 5.24 name and its older one

    vocab_size: int = 50257
    hidden_size: int = 768
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    max_position_embeddings: int = 1024
    hidden_act: str = "gelu"
    norm_position: str = "pre"
    position_type: str = "learned"
    attention_dropout: float = 0.1
    scale_embedding: bool = False
    scale_residual_init: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be at least 1, got {self.num_hidden_layers}")
