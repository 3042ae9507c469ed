"""The reordering key/value cache layer against transformers' DynamicLayer, and its use by generate."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicCache, DynamicLayer, EncoderDecoderCache

from helpers import build, token_ids
from hf_encdec.models.speed_paths import ReorderingLayer, SourceSharedCache, use_reordering_layers
from hf_encdec.models.transformers_contract import CACHE_FIELD, output_cache

pytestmark = pytest.mark.contract


def _states(batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(batch, 2, length, 3), torch.randn(batch, 2, length, 3)


def test_reordering_layer_holds_what_a_dynamic_layer_holds() -> None:
    ours, plain = ReorderingLayer(), DynamicLayer()
    generator = torch.Generator().manual_seed(0)
    for layer in (ours, plain):
        torch.manual_seed(1)
        layer.update(*_states(5, 3))  # a prefill
    for step in range(12):
        beams = torch.randint(0, 5, (5,), generator=generator)
        for layer in (ours, plain):
            layer.reorder_cache(beams)
        if step % 3 == 0:  # a second reordering before the next append composes with the first
            beams = torch.randint(0, 5, (5,), generator=generator)
            for layer in (ours, plain):
                layer.reorder_cache(beams)
        assert ours.get_seq_length() == plain.get_seq_length()
        new = _states(5, 1)
        got, expected = ours.update(*new), plain.update(*new)
        for left, right in zip(got, expected):
            assert torch.equal(left, right)
        if step % 4 == 1:  # reading in between applies a pending order
            ours.reorder_cache(beams)
            plain.reorder_cache(beams)
            assert torch.equal(ours.keys, plain.keys) and torch.equal(ours.values, plain.values)
    ours.crop(-2)
    plain.crop(-2)
    assert torch.equal(ours.keys, plain.keys) and ours.get_seq_length() == plain.get_seq_length()


def test_only_fresh_dynamic_self_attention_layers_are_swapped() -> None:
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    use_reordering_layers(cache)
    cache.self_attention_cache.update(*_states(2, 1), 0)
    assert isinstance(cache.self_attention_cache.layers[0], ReorderingLayer)
    cache.cross_attention_cache.update(*_states(2, 4), 0)
    assert type(cache.cross_attention_cache.layers[0]) is DynamicLayer


def test_source_shared_cache_reorders_only_the_self_attention_half() -> None:
    cache = SourceSharedCache(DynamicCache(), DynamicCache())
    self_keys, cross_keys = _states(4, 2), _states(4, 5)
    cache.self_attention_cache.update(*self_keys, 0)
    cache.cross_attention_cache.update(*cross_keys, 0)
    order = torch.tensor([1, 1, 0, 3])
    cache.reorder_cache(order)
    assert torch.equal(cache.self_attention_cache.layers[0].keys, self_keys[0][order])
    assert torch.equal(cache.cross_attention_cache.layers[0].keys, cross_keys[0])


def test_generate_uses_reordering_layers_and_keeps_a_cache_it_is_given() -> None:
    model = build("seq2seq")
    source = token_ids()
    out = model.generate(source, num_beams=3, max_new_tokens=4, return_dict_in_generate=True)
    assert isinstance(output_cache(out), SourceSharedCache)
    assert isinstance(output_cache(out).self_attention_cache.layers[0], ReorderingLayer)
    given = EncoderDecoderCache(DynamicCache(), DynamicCache())
    model.generate(source, num_beams=3, max_new_tokens=4, **{CACHE_FIELD: given})
    assert type(given.self_attention_cache.layers[0]) is DynamicLayer
