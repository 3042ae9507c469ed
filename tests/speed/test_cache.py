"""The faster decoding cache (speed/cache.py) against transformers' own: `GrowingLayer` holds what a `DynamicLayer`
holds through appends, beam reorders, reads and crops; `SourceSharedCache` reorders only the self-attention half
and keeps the cross-attention mask of a generation; `generate()` of a sped-up model decodes with them, padded sources
included, builds the cross-attention mask once, and keeps a cache it is given."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers.cache_utils import DynamicCache, DynamicLayer, EncoderDecoderCache

from helpers import build, token_ids
from hf_encdec.models import transformer_layers
from hf_encdec.models.transformers_contract import CACHE_FIELD, output_cache
from hf_encdec.speed import apply_speed_paths
from hf_encdec.speed.cache import MIN_SPARE_TOKENS, GrowingLayer, KeptMaskStack, SourceSharedCache, use_growing_layers
from rnn_helpers import padded_sources


def _states(batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(batch, 2, length, 3), torch.randn(batch, 2, length, 3)


def test_growing_layer_holds_what_a_dynamic_layer_holds() -> None:
    """Appends with and without beam reordering in between, past the buffers' spare room (in place, into a new
    buffer, gathered into a new tensor), reads in between, a crop and appends after it."""
    ours, plain = GrowingLayer(), DynamicLayer()
    generator = torch.Generator().manual_seed(0)
    for layer in (ours, plain):
        torch.manual_seed(1)
        layer.update(*_states(5, 3))  # a prefill
    for step in range(3 * MIN_SPARE_TOKENS):
        beams = torch.randint(0, 5, (5,), generator=generator)
        if step % 2:  # most beams keep their row, one takes another's (copied inside the buffers)
            beams = torch.arange(5)
            beams[step % 5] = (step + 2) % 5
        if step % 3 != 2:  # every third step appends without reordering (greedy's case)
            for layer in (ours, plain):
                layer.reorder_cache(beams)
        if step % 5 == 0:  # a second reordering before the next append composes with the first
            beams = torch.randint(0, 5, (5,), generator=generator)
            for layer in (ours, plain):
                layer.reorder_cache(beams)
        assert ours.get_seq_length() == plain.get_seq_length()
        new = _states(5, 1 if step % 7 else 2)
        got, expected = ours.update(*new), plain.update(*new)
        for left, right in zip(got, expected):
            assert torch.equal(left, right)
        if step % 4 == 1:  # reading in between applies a pending order
            ours.reorder_cache(beams)
            plain.reorder_cache(beams)
            assert torch.equal(ours.keys, plain.keys) and torch.equal(ours.values, plain.values)
    new = _states(5, 1)  # an append without reordering moves the states into a buffer with room left
    for left, right in zip(ours.update(*new), plain.update(*new)):
        assert torch.equal(left, right)
    assert ours._buffers[0].shape[-2] > ours.get_seq_length()
    ours.crop(-2)
    plain.crop(-2)
    assert torch.equal(ours.keys, plain.keys) and ours.get_seq_length() == plain.get_seq_length()
    for _ in range(3):
        new = _states(5, 1)
        for left, right in zip(ours.update(*new), plain.update(*new)):
            assert torch.equal(left, right)


def test_a_beam_step_that_moves_few_rows_copies_only_those_inside_the_buffers() -> None:
    ours, plain = GrowingLayer(), DynamicLayer()
    for layer in (ours, plain):
        torch.manual_seed(0)
        layer.update(*_states(6, 3))
        layer.update(*_states(6, 1))  # an append without reordering: the states move into buffers with room
    buffer = ours._buffers[0]
    for order in ([0, 0, 2, 3, 4, 5], [1, 0, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], [5, 1, 2, 3, 4, 5]):
        for layer in (ours, plain):
            layer.reorder_cache(torch.tensor(order))
        new = _states(6, 1)
        for left, right in zip(ours.update(*new), plain.update(*new)):
            assert torch.equal(left, right)
        assert ours._buffers[0].data_ptr() == buffer.data_ptr()  # rows moved in place, no new buffer
    for layer in (ours, plain):  # half the rows change beam: all gathered into new buffers
        layer.reorder_cache(torch.tensor([1, 0, 3, 2, 5, 4]))
    new = _states(6, 1)
    for left, right in zip(ours.update(*new), plain.update(*new)):
        assert torch.equal(left, right)
    assert ours._buffers[0].data_ptr() != buffer.data_ptr()


def test_a_greedy_append_writes_in_place() -> None:
    layer = GrowingLayer()
    layer.update(*_states(2, 4))
    buffer = layer._buffers[0]
    for _ in range(MIN_SPARE_TOKENS):
        keys, _ = layer.update(*_states(2, 1))
        assert keys.data_ptr() == buffer.data_ptr()  # a view of the same buffer, not a copy
    assert layer.get_seq_length() == 4 + MIN_SPARE_TOKENS


def test_a_crop_keeps_the_buffers_and_the_next_append_writes_over_the_dropped_tokens() -> None:
    """Speculative decoding crops after every rejected draft: in place, and right after a pending beam order too."""
    ours, plain = GrowingLayer(), DynamicLayer()
    for layer in (ours, plain):
        torch.manual_seed(2)
        layer.update(*_states(3, 4))
        layer.update(*_states(3, 5))  # into buffers with room
    buffer = ours._buffers[0]
    for layer in (ours, plain):
        layer.crop(-3)
    assert ours._buffers[0].data_ptr() == buffer.data_ptr() and ours.get_seq_length() == plain.get_seq_length() == 6
    new = _states(3, 2)
    for left, right in zip(ours.update(*new), plain.update(*new)):
        assert torch.equal(left, right)
    assert ours.keys.data_ptr() == buffer.data_ptr()  # written where the dropped tokens were
    for layer in (ours, plain):
        layer.reorder_cache(torch.tensor([2, 0, 1]))
        layer.crop(-1)
    assert torch.equal(ours.keys, plain.keys) and torch.equal(ours.values, plain.values)


def test_only_fresh_dynamic_self_attention_layers_are_swapped() -> None:
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    use_growing_layers(cache)
    cache.self_attention_cache.update(*_states(2, 1), 0)
    assert isinstance(cache.self_attention_cache.layers[0], GrowingLayer)
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


@pytest.mark.contract
def test_generate_uses_growing_layers_and_keeps_a_cache_it_is_given() -> None:
    model = apply_speed_paths(build("seq2seq"), paths=["generation_cache"])
    source = token_ids()
    out = model.generate(source, num_beams=3, max_new_tokens=4, return_dict_in_generate=True)
    assert isinstance(output_cache(out), SourceSharedCache)
    assert isinstance(output_cache(out).self_attention_cache.layers[0], GrowingLayer)
    given = EncoderDecoderCache(DynamicCache(), DynamicCache())
    model.generate(source, num_beams=3, max_new_tokens=4, **{CACHE_FIELD: given})
    assert type(given.self_attention_cache.layers[0]) is DynamicLayer


@pytest.mark.contract
@pytest.mark.parametrize("beams", [1, 3])
def test_padded_sources_decode_the_same_with_the_faster_cache(beams: int) -> None:
    plain = build("seq2seq")
    ids, mask = padded_sources((6, 2, 4))
    settings = {"attention_mask": mask, "num_beams": beams, "max_new_tokens": 6, "min_new_tokens": 6,
                "output_scores": True, "return_dict_in_generate": True}
    expected = plain.generate(ids, **settings)
    got = apply_speed_paths(plain, paths=["generation_cache"]).generate(ids, **settings)
    assert torch.equal(got.sequences, expected.sequences)
    for fast, reference in zip(got.scores, expected.scores):
        torch.testing.assert_close(fast, reference)
    assert isinstance(output_cache(got), SourceSharedCache) and not isinstance(output_cache(expected), SourceSharedCache)


def _counted_cross_masks(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each mask transformers builds in transformer_layers: True for a cross-attention mask."""
    builds: list[bool] = []
    original = transformer_layers.create_bidirectional_mask

    def counted(**kwargs: object) -> object:
        builds.append(kwargs.get("encoder_hidden_states") is not None)
        return original(**kwargs)

    monkeypatch.setattr(transformer_layers, "create_bidirectional_mask", counted)
    return builds


@pytest.mark.contract
@pytest.mark.parametrize("beams", [1, 3])
def test_generate_builds_the_cross_mask_once(beams: int, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = _counted_cross_masks(monkeypatch)
    ids, mask = padded_sources((6, 2, 4))
    plain = build("seq2seq")
    fast = apply_speed_paths(copy.deepcopy(plain), paths=["generation_cache"])
    assert isinstance(fast.model.decoder, KeptMaskStack)
    settings = {"attention_mask": mask, "num_beams": beams, "max_new_tokens": 6, "min_new_tokens": 6}
    assert torch.equal(fast.generate(ids, **settings), plain.generate(ids, **settings))
    assert builds.count(True) == 1 + 6  # the sped-up model's one, then the plain model's at each of its 6 steps


def test_the_cross_mask_is_kept_per_source_mask_and_query_and_dropped_with_the_encoder_states(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builds = _counted_cross_masks(monkeypatch)
    stack = apply_speed_paths(build("seq2seq"), paths=["generation_cache"]).model.decoder
    states, encoder_states = torch.randn(2, 1, 32), torch.randn(2, 5, 32)
    cache, mask = SourceSharedCache(DynamicCache(), DynamicCache()), torch.tensor([[1, 1, 1, 0, 0], [1] * 5])

    def mask_of(hidden: torch.Tensor, source_mask: torch.Tensor, used: object = cache) -> object:
        return stack.cross_attention_mask(hidden, encoder_states, source_mask, used)

    first = mask_of(states, mask)
    cache.is_updated[0] = True  # the first step projected the encoder keys/values
    assert mask_of(states, mask) is first and builds.count(True) == 1
    mask_of(states, mask.clone())  # another source mask object
    mask_of(torch.randn(2, 2, 32), mask)  # another query length
    assert builds.count(True) == 3
    cache.reset()  # a new source: its keys/values are projected again, and so is the mask
    assert cache.cross_mask is None
    mask_of(states, mask)
    plain_cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    mask_of(states, mask, plain_cache)
    mask_of(states, mask, plain_cache)  # any other cache: built at every call
    assert builds.count(True) == 6
