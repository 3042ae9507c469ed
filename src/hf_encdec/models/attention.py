"""Multi-head attention for self- and cross-attention, with MHA / MQA / GQA and a KV cache.

Shapes: B batch, T query length, S key length, D hidden, H query heads, K key/value heads, d head dim (D = H * d
unless `head_dim` says otherwise).

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + bias) V                      (Vaswani et al. 2017, 1706.03762)
    MultiHead(x) = Concat(head_1 .. head_H) W_O,  head_h = Attention(x W_Q^h, y W_K^g(h), y W_V^g(h))

With K = H this is multi-head attention; K = 1 is multi-query attention (Shazeer 2019, 1911.02150); 1 < K < H is
grouped-query attention (Ainslie et al. 2023, 2305.13245), head h reading key/value group g(h) = h // (H / K).

The kernel comes from transformers' attention interface (`config._attn_implementation`: `sdpa` by default, `eager`,
`flex_attention`, `flash_attention_2`). Asking for attention weights runs the eager kernel for that call, since the
fused kernels do not return them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from transformers.cache_utils import Cache, EncoderDecoderCache
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .positions import apply_rotary


def repeat_kv(hidden_states: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, K, S, d) -> (B, K * groups, S, d), each key/value head repeated for the query heads of its group."""
    if groups == 1:
        return hidden_states
    batch, kv_heads, length, head_dim = hidden_states.shape
    expanded = hidden_states[:, :, None].expand(batch, kv_heads, groups, length, head_dim)
    return expanded.reshape(batch, kv_heads * groups, length, head_dim)


def attention_weights(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    position_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(Q K^T * scaling + bias) (B, H, T, S) from (B, H, T, d) queries and (B, K, S, d) keys. Accepts bool
    (True = keep) or additive masks."""
    key = repeat_kv(key, module.num_key_value_groups)  # (B, H, S, d)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, T, S)
    if position_bias is not None:
        scores = scores + position_bias
    min_value = torch.finfo(scores.dtype).min
    if attention_mask is None and module.is_causal and query.shape[2] > 1:
        # the sdpa mask builder leaves causality to the kernel's is_causal flag; make it explicit here
        query_length, key_length = query.shape[2], key.shape[2]
        rows = torch.arange(key_length - query_length, key_length, device=query.device)
        attention_mask = rows[:, None] >= torch.arange(key_length, device=query.device)[None, :]  # (T, S)
    if attention_mask is not None:
        attention_mask = attention_mask[..., : key.shape[2]]
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, min_value)
        else:
            scores = scores + attention_mask
    return nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    position_bias: torch.Tensor | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference kernel: explicit scores, so weights can be returned."""
    weights = attention_weights(module, query, key, attention_mask, scaling, position_bias)  # (B, H, T, S)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, repeat_kv(value, module.num_key_value_groups))  # (B, H, T, d)
    return output.transpose(1, 2).contiguous(), weights  # (B, T, H, d)


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention (BART/Llama parameter names: q_proj, k_proj, v_proj, o_proj).

    Keeps `config` because transformers' kernels read `config._attn_implementation` from it; everything else comes
    from the arguments.
    """

    def __init__(
        self,
        config: object,
        *,
        hidden_size: int,
        num_heads: int,
        num_key_value_heads: int,
        head_dim: int,
        bias: bool,
        dropout: float,
        layer_idx: int,
        is_cross_attention: bool = False,
        is_causal: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.num_key_value_heads = num_key_value_heads
        self.num_key_value_groups = num_heads // num_key_value_heads  # read by the sdpa kernel for GQA
        self.head_dim = head_dim
        self.scaling = head_dim**-0.5
        self.dropout = dropout
        self.layer_idx = layer_idx
        self.is_cross_attention = is_cross_attention
        self.is_causal = is_causal  # read by sdpa/flash when no mask is given
        self.q_proj = nn.Linear(hidden_size, num_heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden_size, num_key_value_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden_size, num_key_value_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(num_heads * head_dim, hidden_size, bias=bias)
        self.o_proj.residual_output = True  # the branch's last map (config.scale_residual_init)

    def attention_interface(self, output_attentions: bool) -> Callable:
        """The kernel of a call: the config's (`sdpa` by default), or eager, the only one that returns the weights."""
        implementation = "eager" if output_attentions else (self.config._attn_implementation or "sdpa")
        # "eager" is not in the interface's table: it returns the default, this module's eager kernel
        return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)

    def _project(self, projection: nn.Linear, states: torch.Tensor) -> torch.Tensor:
        batch, length, _ = states.shape
        return projection(states).view(batch, length, -1, self.head_dim).transpose(1, 2)  # (B, heads, L, d)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        key_value_states: torch.Tensor | None = None,
        cache: Cache | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        position_bias: torch.Tensor | None = None,
        output_attentions: bool = False,
        **kwargs: object,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        query = self._project(self.q_proj, hidden_states)  # (B, H, T, d)

        pair = cache if isinstance(cache, EncoderDecoderCache) else None
        if pair is not None:
            cache = pair.cross_attention_cache if self.is_cross_attention else pair.self_attention_cache
        reuse_cross = self.is_cross_attention and pair is not None and pair.is_updated.get(self.layer_idx, False)
        if reuse_cross:
            # encoder keys/values were projected at the first decoding step
            key, value = cache.layers[self.layer_idx].keys, cache.layers[self.layer_idx].values
        else:
            source = key_value_states if self.is_cross_attention else hidden_states
            key = self._project(self.k_proj, source)  # (B, K, S, d)
            value = self._project(self.v_proj, source)
            if position_embeddings is not None:
                query, key = apply_rotary(query, key, *position_embeddings)
            # a cache holds what later calls reuse: causal self-attention's past and the encoder's keys/values; a
            # bidirectional self-attention (a parallel decoder) reads its whole input again at every call
            if cache is not None and (self.is_causal or self.is_cross_attention):
                key, value = cache.update(key, value, self.layer_idx)
                if self.is_cross_attention:
                    pair.is_updated[self.layer_idx] = True

        attention = self.attention_interface(output_attentions)
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout if self.training else 0.0,
            scaling=self.scaling,
            position_bias=position_bias,
            **kwargs,
        )
        output = output.reshape(batch, length, -1)  # (B, T, H * d)
        return self.o_proj(output), (weights if output_attentions else None)
