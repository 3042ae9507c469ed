"""The decoding cache of `generate()`: appends written in place into spare room, beam reordering folded into the
next append, the cross-attention half never reordered, and the cross-attention mask kept with it for the whole
generation. `faster_generation_cache` is the model's `generation_cache_factory` after `apply_speed_paths`, and
decoder stacks become `KeptMaskStack`s.

Shapes: B batch (times beams), K key/value heads, L cached length, d head dim.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache

from ..models.transformer_layers import TransformerStack

# Every decoding step appends one token to each layer's keys and values, and beam search then reorders them
# (`reorder_cache`: gather the rows of the surviving beams). transformers' `DynamicLayer` concatenates, a full copy of
# the cache for each append and another for each reorder: two (B, K, L, d) copies per layer and step, whose cost grows
# with L. `GrowingLayer` keeps the states in buffers with spare room and writes an appended token in place, handing
# attention a view of the filled part (no copy: greedy decoding and sampling); a beam reorder is only recorded, and
# applied in the next append: on CPU, where under half of the rows changed beam, by copying those rows inside the
# buffers (the rest stay where they are), else by gathering all rows straight into new buffers (one copy). Reading `keys`/`values` in between
# applies a pending order first, so every reader sees what a `DynamicLayer` would hold. `SourceSharedCache` never
# reorders the cross-attention half: beam search moves beams only among those of one source, whose encoder
# keys/values are identical rows. Both reach `generate` through transformers' public interface, a `Cache` whose
# `reorder_cache` does the work.

MIN_SPARE_TOKENS = 32  # a new buffer holds at least this many more tokens than it is given (then twice the length)


class GrowingLayer(DynamicLayer):
    """`DynamicLayer` that appends in place into spare room, and applies beam reordering lazily, inside the next
    append. `keys`/`values` are (B, K, L, d) views of the front part of (B, K, capacity, d) buffers."""

    def __init__(self, **kwargs: object) -> None:
        self._pending: torch.Tensor | None = None  # (B,) rows to gather before the cached states are used
        self._keys: torch.Tensor | None = None  # the cached states, (B, K, L, d)
        self._values: torch.Tensor | None = None
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None  # what _keys/_values are the front part of
        super().__init__(**kwargs)

    def _apply_pending(self) -> None:
        if self._pending is not None:
            order, self._pending = self._pending, None
            self._keys = self._keys.index_select(0, order)
            self._values = self._values.index_select(0, order)
            self._buffers = None

    @property
    def keys(self) -> torch.Tensor | None:  # type: ignore[override]
        self._apply_pending()
        return self._keys

    @keys.setter
    def keys(self, value: torch.Tensor | None) -> None:
        self._apply_pending()
        self._keys, self._buffers = value, None  # a caller's tensor: never written into

    @property
    def values(self) -> torch.Tensor | None:  # type: ignore[override]
        self._apply_pending()
        return self._values

    @values.setter
    def values(self, value: torch.Tensor | None) -> None:
        self._apply_pending()
        self._values, self._buffers = value, None

    def get_seq_length(self) -> int:
        if not self.is_initialized or self._keys is None or self._keys.numel() == 0:
            return 0
        return self._keys.shape[-2]

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.get_seq_length() == 0:
            return
        beam_idx = beam_idx.to(self._keys.device)
        self._pending = beam_idx if self._pending is None else self._pending.index_select(0, beam_idx)

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last `-tokens_to_remove` tokens (assisted decoding, after a rejected draft), keeping the buffers:
        the next append writes over the dropped tokens in place instead of allocating new buffers."""
        if self._keys is not None:
            self._apply_pending()  # a pending beam order drops the buffers
        if tokens_to_remove >= 0 or self._buffers is None or self.get_seq_length() == 0:
            super().crop(tokens_to_remove)  # transformers' checks and its cases (nothing to crop, a caller's tensors)
            return
        keep = max(self._keys.shape[-2] + tokens_to_remove, 0)
        self._keys, self._values = (buffer.narrow(2, 0, keep) for buffer in self._buffers)

    def _move_rows(self, order: torch.Tensor, length: int) -> bool:
        """Apply a beam order inside the buffers by copying only the rows whose beam changed (most keep theirs: 83-85%
        in the bench's beam searches), when those are under half; False where a full gather is cheaper. CPU only:
        counting the rows reads the order on the host, a synchronisation on an accelerator."""
        if order.device.type != "cpu":
            return False
        moved = (order != torch.arange(order.shape[0], device=order.device)).nonzero().flatten()  # (n,)
        if 2 * moved.numel() >= order.shape[0]:
            return False
        if moved.numel():
            sources = order.index_select(0, moved)
            for past, buffer in zip((self._keys, self._values), self._buffers):
                taken = past.index_select(0, sources)  # copied out first: a source row may itself be overwritten
                buffer.narrow(2, 0, length).index_copy_(0, moved, taken)
        return True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = (key_states, value_states)
        length, added = self.get_seq_length(), key_states.shape[-2]
        order, self._pending = (self._pending if length else None), None
        buffers = self._buffers
        # shapes, dtype and device change only through the setters, which drop the buffers: room and batch suffice
        fits = buffers is not None and buffers[0].shape[-2] >= length + added and buffers[0].shape[0] == key_states.shape[0]
        if fits and order is not None:
            fits = self._move_rows(order, length)
        if not fits:
            capacity = length + added + max(length + added, MIN_SPARE_TOKENS)
            buffers = tuple(state.new_empty((*state.shape[:2], capacity, state.shape[-1])) for state in new)
            if length:
                for past, buffer in zip((self._keys, self._values), buffers):
                    if order is None:
                        buffer.narrow(2, 0, length).copy_(past)
                    else:
                        torch.index_select(past, 0, order, out=buffer.narrow(2, 0, length))
            self._buffers = buffers
        for state, buffer in zip(new, buffers):
            buffer.narrow(2, length, added).copy_(state)
        self._keys, self._values = (buffer.narrow(2, 0, length + added) for buffer in buffers)
        return self._keys, self._values


class SourceSharedCache(EncoderDecoderCache):
    """`EncoderDecoderCache` whose beam reordering leaves the cross-attention half alone: its rows are the same for
    every beam of a source (generate repeats each source once per beam, and never moves a beam to another source).
    It also holds the cross-attention mask of the generation (`KeptMaskStack`), built with the encoder keys/values."""

    def __init__(self, *caches: Cache) -> None:
        super().__init__(*caches)
        self.cross_mask: tuple[torch.Tensor, tuple, object] | None = None  # (source mask, key, the mask it gave)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)

    def reset(self) -> None:
        super().reset()
        self.cross_mask = None


class KeptMaskStack(TransformerStack):
    """`TransformerStack` whose cross-attention mask is built once per generation: a `SourceSharedCache` keeps it
    next to the encoder keys/values it was built with, and hands it back while those keys/values are reused, the step
    passes the same `encoder_attention_mask` object and the query length and dtype are the same. A step that projects
    the encoder keys/values again (the first, or the first after `reset()`) builds it again, as does every call with
    another cache. (Building it at every step took 26 ms of a 1.26 s generation at batch 8, beam 4, on a 2-core
    AVX-512 AMD EPYC on 2026-11-28: bench/README.md.)"""

    def cross_attention_mask(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        cache: Cache | None,
    ) -> object:
        build = super().cross_attention_mask
        if not isinstance(cache, SourceSharedCache) or encoder_attention_mask is None:
            return build(hidden_states, encoder_hidden_states, encoder_attention_mask, cache)
        key = (hidden_states.shape[1], encoder_hidden_states.dtype)
        held = cache.cross_mask
        reused = cache.is_updated.get(0, False)  # the encoder keys/values of this generation are already projected
        if not reused or held is None or held[0] is not encoder_attention_mask or held[1] != key:
            mask = build(hidden_states, encoder_hidden_states, encoder_attention_mask, cache)
            held = cache.cross_mask = (encoder_attention_mask, key, mask)
        return held[2]


def faster_generation_cache(cache: Cache) -> Cache:
    """The faster version of a cache `generate` has just built (still empty): growing layers for the
    self-attention, and a `SourceSharedCache` around an encoder-decoder pair. Other kinds are returned unchanged."""
    if type(cache) is EncoderDecoderCache and cache.get_seq_length() == 0:
        cache = SourceSharedCache(cache.self_attention_cache, cache.cross_attention_cache)
    use_growing_layers(cache)
    return cache


def use_growing_layers(cache: Cache | None) -> None:
    """Give a freshly built `DynamicCache` (or the self-attention half of an `EncoderDecoderCache`) growing layers.

    Only plain, still empty `DynamicLayer`s are swapped; caches of other kinds (static, quantized, sliding, offloaded)
    and layers already holding states are left as they are."""
    if isinstance(cache, EncoderDecoderCache):
        cache = cache.self_attention_cache
    if type(cache) is not DynamicCache or cache.offloading:
        return
    if cache.layer_class_to_replicate is DynamicLayer:
        cache.layer_class_to_replicate = GrowingLayer
    cache.layers = [
        GrowingLayer() if type(layer) is DynamicLayer and not layer.is_initialized else layer for layer in cache.layers
    ]
