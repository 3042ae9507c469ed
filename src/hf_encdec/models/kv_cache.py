"""A key/value cache layer for decoder self-attention that folds beam reordering into the next append.

Shapes: B batch (times beams), K key/value heads, L cached length, d head dim.

Beam search reorders the cache after every step (`reorder_cache`: gather the rows of the surviving beams) and the next
step appends one token to it (`update`: concatenate). transformers' `DynamicLayer` makes a full copy of the cache for
each: two (B, K, L, d) copies per layer and step, the part of a beam-search step that grows with the length.
`ReorderingLayer` only records the beam order and applies it in the next update, gathering the rows straight into
the concatenated tensor: one copy. Reading `keys`/`values` in between applies the pending order first, so every
reader sees what a `DynamicLayer` would hold.

`SourceSharedCache` is the encoder-decoder half of the fast path: beam search only ever reorders the beams of one
source among themselves, and the cross-attention keys/values of those beams are identical rows, so it reorders the
self-attention cache alone. Both reach `generate` through transformers' public interface: a `Cache` whose
`reorder_cache` does the work.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache


class ReorderingLayer(DynamicLayer):
    """`DynamicLayer` whose beam reordering is applied lazily, inside the next concatenation."""

    def __init__(self, **kwargs: object) -> None:
        self._pending: torch.Tensor | None = None  # (B,) rows to gather before the cached states are used
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None
        super().__init__(**kwargs)

    def _apply_pending(self) -> None:
        if self._pending is not None:
            order, self._pending = self._pending, None
            self._keys = self._keys.index_select(0, order)
            self._values = self._values.index_select(0, order)

    @property
    def keys(self) -> torch.Tensor | None:  # type: ignore[override]
        self._apply_pending()
        return self._keys

    @keys.setter
    def keys(self, value: torch.Tensor | None) -> None:
        self._apply_pending()
        self._keys = value

    @property
    def values(self) -> torch.Tensor | None:  # type: ignore[override]
        self._apply_pending()
        return self._values

    @values.setter
    def values(self, value: torch.Tensor | None) -> None:
        self._apply_pending()
        self._values = value

    def get_seq_length(self) -> int:
        if not self.is_initialized or self._keys is None or self._keys.numel() == 0:
            return 0
        return self._keys.shape[-2]

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.get_seq_length() == 0:
            return
        beam_idx = beam_idx.to(self._keys.device)
        self._pending = beam_idx if self._pending is None else self._pending.index_select(0, beam_idx)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pending is None or self.get_seq_length() == 0:
            return super().update(key_states, value_states, *args, **kwargs)
        order, self._pending = self._pending, None
        length = self._keys.shape[-2]
        merged = []
        for past, new in ((self._keys, key_states), (self._values, value_states)):
            batch, heads, _, head_dim = new.shape
            out = new.new_empty((batch, heads, length + new.shape[-2], head_dim))  # (B, K, L + T, d)
            torch.index_select(past, 0, order, out=out[:, :, :length])
            out[:, :, length:] = new
            merged.append(out)
        self._keys, self._values = merged
        return self._keys, self._values


class SourceSharedCache(EncoderDecoderCache):
    """`EncoderDecoderCache` whose beam reordering leaves the cross-attention half alone: its rows are the same for
    every beam of a source (generate repeats each source once per beam, and never moves a beam to another source)."""

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)


def prepare_beam_cache(cache: Cache) -> Cache:
    """The fast-path version of a cache `generate` has just built (still empty): reordering layers for the
    self-attention, and a `SourceSharedCache` around an encoder-decoder pair. Other kinds are returned unchanged."""
    if type(cache) is EncoderDecoderCache and cache.get_seq_length() == 0:
        cache = SourceSharedCache(cache.self_attention_cache, cache.cross_attention_cache)
    use_reordering_layers(cache)
    return cache


def use_reordering_layers(cache: Cache | None) -> None:
    """Give a freshly built `DynamicCache` (or the self-attention half of an `EncoderDecoderCache`) reordering layers.

    Only plain, still empty `DynamicLayer`s are swapped; caches of other kinds (static, quantized, sliding, offloaded)
    and layers already holding states are left as they are."""
    if isinstance(cache, EncoderDecoderCache):
        cache = cache.self_attention_cache
    if type(cache) is not DynamicCache or cache.offloading:
        return
    if cache.layer_class_to_replicate is DynamicLayer:
        cache.layer_class_to_replicate = ReorderingLayer
    cache.layers = [
        ReorderingLayer() if type(layer) is DynamicLayer and not layer.is_initialized else layer for layer in cache.layers
    ]
