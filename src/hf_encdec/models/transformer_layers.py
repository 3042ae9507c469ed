"""The Transformer layer and the stack of layers shared by the encoder-decoder, encoder-only and decoder-only models.

Shapes: B batch, T length of this stack's input, S source (encoder) length, D hidden, H heads.

A layer is two or three residual branches (Vaswani et al. 2017, arXiv 1706.03762, section 3.1):

    post-LN (paper):        x = Norm(x + Dropout(Sublayer(x)))
    pre-LN (Xiong 2020):    x = x + Dropout(Sublayer(Norm(x)))        (2002.04745; add a final Norm to the stack)

with Sublayer = self-attention, cross-attention over the encoder output (decoder layers only), feed-forward. The
stack embeds tokens (the embedding module scales them by sqrt(D) when `scale_embedding`, as in the paper), adds
positions once (sinusoidal or learned) or hands them to every self-attention (RoPE angles, ALiBi bias), applies
dropout, and runs the layers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

from .attention import MultiHeadAttention
from .feed_forward import build_feed_forward
from .modeling_common import config_output_flags
from .norms import build_norm
from .positions import POSITIONS, AlibiBias, RotaryEmbedding
from .transformers_contract import cache_field, resolve_cache


class TransformerLayer(GradientCheckpointingLayer):
    """Self-attention, optional cross-attention, feed-forward; each branch wrapped by its norm (pre or post)."""

    def __init__(
        self,
        *,
        self_attn: MultiHeadAttention,
        feed_forward: nn.Module,
        self_attn_norm: nn.Module,
        feed_forward_norm: nn.Module,
        cross_attn: MultiHeadAttention | None = None,
        cross_attn_norm: nn.Module | None = None,
        dropout: float,
        pre_norm: bool,
    ) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.self_attn_norm = self_attn_norm
        self.cross_attn = cross_attn
        self.cross_attn_norm = cross_attn_norm
        self.feed_forward = feed_forward
        self.feed_forward_norm = feed_forward_norm
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def _residual(
        self, hidden_states: torch.Tensor, norm: nn.Module, sublayer: Callable[[torch.Tensor], object]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One residual branch: x + Dropout(Sublayer(Norm(x))) (pre-LN) or Norm(x + Dropout(Sublayer(x)))
        (post-LN). Returns the new states and the attention weights an attention sublayer hands back (else None)."""
        output = sublayer(norm(hidden_states) if self.pre_norm else hidden_states)
        output, weights = output if isinstance(output, tuple) else (output, None)
        hidden_states = hidden_states + self.dropout(output)
        return (hidden_states if self.pre_norm else norm(hidden_states)), weights

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        position_bias: torch.Tensor | None = None,
        output_attentions: bool = False,
        **kwargs: object,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        hidden_states, self_weights = self._residual(
            hidden_states,
            self.self_attn_norm,
            partial(
                self.self_attn,
                attention_mask=attention_mask,
                cache=cache,
                position_embeddings=position_embeddings,
                position_bias=position_bias,
                output_attentions=output_attentions,
                **kwargs,
            ),
        )
        cross_weights = None
        if self.cross_attn is not None:
            hidden_states, cross_weights = self._residual(
                hidden_states,
                self.cross_attn_norm,
                partial(
                    self.cross_attn,
                    attention_mask=encoder_attention_mask,
                    key_value_states=encoder_hidden_states,
                    cache=cache,
                    output_attentions=output_attentions,
                    **kwargs,
                ),
            )
        hidden_states, _ = self._residual(hidden_states, self.feed_forward_norm, self.feed_forward)
        return hidden_states, self_weights, cross_weights


def build_transformer_layer(config: object, *, layer_idx: int, causal: bool, cross_attention: bool) -> TransformerLayer:
    """One layer with the config's switches (norm type and position, activation, heads, biases, dropouts)."""

    def attention(is_cross: bool) -> MultiHeadAttention:
        return MultiHeadAttention(
            config,
            hidden_size=config.hidden_size,
            num_heads=config.num_attention_heads,
            num_key_value_heads=config.num_key_value_heads,
            head_dim=config.head_dim,
            bias=config.attention_bias,
            dropout=config.attention_dropout,
            layer_idx=layer_idx,
            is_cross_attention=is_cross,
            is_causal=causal and not is_cross,
        )

    def norm() -> nn.Module:
        return build_norm(config.norm_type, config.hidden_size, config.layer_norm_eps)

    return TransformerLayer(
        self_attn=attention(is_cross=False),
        self_attn_norm=norm(),
        cross_attn=attention(is_cross=True) if cross_attention else None,
        cross_attn_norm=norm() if cross_attention else None,
        feed_forward=build_feed_forward(
            config.hidden_act,
            config.hidden_size,
            config.intermediate_size,
            dropout=config.activation_dropout,
            bias=config.mlp_bias,
        ),
        feed_forward_norm=norm(),
        dropout=config.dropout,
        pre_norm=config.norm_position == "pre",
    )


class TransformerStack(nn.Module):
    """Embeddings, positions and N layers: the encoder (bidirectional), the decoder (causal, with cross-attention)
    or a decoder-only stack (causal). Accepts what `generate` sends an encoder and returns a `ModelOutput`."""

    main_input_name = "input_ids"

    def __init__(
        self,
        config: object,
        *,
        embed_tokens: nn.Embedding,
        num_layers: int,
        causal: bool,
        cross_attention: bool,
        type_vocab_size: int = 0,
    ) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = embed_tokens
        self.is_causal = causal
        self.position_type = config.position_type
        self.max_positions = config.max_position_embeddings
        self.embed_positions: nn.Module | None = None
        self.rotary: RotaryEmbedding | None = None
        self.alibi: AlibiBias | None = None
        where, build = POSITIONS[config.position_type]  # the one place the positions act
        setattr(self, where, build(config))
        self.token_type_embeddings = nn.Embedding(type_vocab_size, config.hidden_size) if type_vocab_size else None
        self.embedding_norm = (
            build_norm(config.norm_type, config.hidden_size, config.layer_norm_eps) if config.embedding_norm else None
        )
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            build_transformer_layer(config, layer_idx=i, causal=causal, cross_attention=cross_attention)
            for i in range(num_layers)
        )
        self.final_norm = (
            build_norm(config.norm_type, config.hidden_size, config.layer_norm_eps) if config.final_norm else None
        )

    def _position_ids(
        self, attention_mask: torch.Tensor | None, batch: int, length: int, past_length: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of the queries (B, T) and of all keys (B, past + T). Counting only attended tokens makes a
        left-padded sequence see the same positions as the unpadded one."""
        if attention_mask is not None and attention_mask.dim() == 2 and attention_mask.shape[-1] == past_length + length:
            key_positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        else:
            key_positions = torch.arange(past_length + length, device=device).unsqueeze(0).expand(batch, -1)
        return key_positions[:, past_length:], key_positions

    def _check_length(self, position_ids: torch.Tensor, upper_bound: int) -> None:
        if self.position_type != "learned" or upper_bound <= self.max_positions:
            return
        longest = int(position_ids.max()) + 1
        if longest > self.max_positions:
            raise ValueError(
                f"the input reaches position {longest}, but learned positions exist only for "
                f"max_position_embeddings={self.max_positions}; truncate inputs to {self.max_positions} tokens "
                "(tokenizer truncation=True, max_length=...) or use position_type 'sinusoidal', 'rope' or 'alibi'"
            )

    def cross_attention_mask(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        cache: Cache | None,
    ) -> object:
        """The mask of the cross-attention from the (B, T, D) states over the (B, S, D) encoder states, in the form
        the attention kernel takes, from the (B, S) `encoder_attention_mask`. Built at every call here; `cache` is the
        decoding cache of the call, where a subclass may keep the mask for the steps of one generation."""
        return create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )

    @config_output_flags
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: object,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """`cache` (`past_key_values` before transformers 5.24; either name works) holds the keys and values of
        earlier steps; with `use_cache` a causal stack builds one when none is given."""
        cache = resolve_cache(cache, past_key_values)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, D), scaled by the embedding module
        batch, length = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        has_cross = encoder_hidden_states is not None

        if use_cache and self.training and torch.is_grad_enabled() and self.layers[0].gradient_checkpointing:
            use_cache, cache = False, None  # a checkpointed layer runs twice, and would append its keys twice
        if has_cross and cache is not None and not isinstance(cache, EncoderDecoderCache):
            raise ValueError(
                f"a decoder with cross-attention keeps two caches: pass an EncoderDecoderCache (self-attention, "
                f"cross-attention), not a {type(cache).__name__}"
            )
        if use_cache and cache is None and self.is_causal:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache()) if has_cross else DynamicCache()
        if not use_cache and not self.is_causal:
            cache = None  # a bidirectional stack keeps a given cache only to reuse cross-attention keys/values
        past_length = cache.get_seq_length() if cache is not None else 0

        query_positions, key_positions = self._position_ids(attention_mask, batch, length, past_length, device)
        if position_ids is None:
            position_ids = query_positions
        self._check_length(position_ids, past_length + length)

        hidden_states = inputs_embeds
        if self.embed_positions is not None:
            hidden_states = hidden_states + self.embed_positions(position_ids).to(hidden_states.dtype)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(position_ids)
            hidden_states = hidden_states + self.token_type_embeddings(token_type_ids)
        if self.embedding_norm is not None:
            hidden_states = self.embedding_norm(hidden_states)
        hidden_states = self.dropout(hidden_states)

        position_embeddings = self.rotary(position_ids, hidden_states.dtype) if self.rotary is not None else None
        position_bias = None
        if self.alibi is not None:
            position_bias = self.alibi(position_ids, key_positions, hidden_states.dtype)  # (B, H, T, past + T)

        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        if self.is_causal:
            # the cache goes by position: its keyword is `cache` from transformers 5.24 on, `past_key_values` before
            self_mask = create_causal_mask(self.config, hidden_states, attention_mask, self_cache)
        else:
            self_mask = create_bidirectional_mask(
                config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
            )
        cross_mask = None
        if has_cross:
            cross_mask = self.cross_attention_mask(hidden_states, encoder_hidden_states, encoder_attention_mask, cache)

        all_hidden_states = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        all_cross_attentions = [] if output_attentions and has_cross else None
        for layer in self.layers:
            hidden_states, self_weights, cross_weights = layer(
                hidden_states,
                self_mask,
                encoder_hidden_states,
                encoder_attention_mask=cross_mask,
                cache=cache,
                position_embeddings=position_embeddings,
                position_bias=position_bias,
                output_attentions=bool(output_attentions),
                **kwargs,
            )
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if output_attentions:
                all_attentions.append(self_weights)
                if has_cross:
                    all_cross_attentions.append(cross_weights)
        if self.final_norm is not None:
            hidden_states = self.final_norm(hidden_states)
            if output_hidden_states:
                all_hidden_states[-1] = hidden_states

        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            **cache_field(cache if use_cache else None),
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
            cross_attentions=tuple(all_cross_attentions) if all_cross_attentions is not None else None,
        )
