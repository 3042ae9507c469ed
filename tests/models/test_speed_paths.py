"""The speed paths (models/speed_paths.py) against the plain torch / transformers path they replace: every family
gives the same outputs, losses, gradients and generated tokens with the switch on and off; the dropout block, the
reordering cache layer against transformers' DynamicLayer and its use by generate."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from transformers import AutoConfig
from transformers.cache_utils import DynamicCache, DynamicLayer, EncoderDecoderCache

from helpers import build, token_ids
from hf_encdec.models import transformer_layers
from rnn_helpers import padded_sources
from hf_encdec.models import speed_paths
from hf_encdec.models.speed_paths import (
    Dropout,
    GrowingLayer,
    SourceSharedCache,
    dropout,
    kept_cross_mask,
    use_growing_layers,
)
from hf_encdec.models.transformers_contract import CACHE_FIELD, output_cache
from hf_encdec.registration import FAMILIES, Family

SOURCE = torch.randint(5, 99, (3, 7))
TARGET = torch.randint(5, 99, (3, 5))


def _model(family: Family) -> torch.nn.Module:
    torch.manual_seed(0)
    # both sides draw the same random numbers only without dropout, so training is compared at p = 0 and the
    # dropout path is tested on its own below
    fields = {f.name for f in dataclasses.fields(family.config_class)}
    no_dropout = {name: 0.0 for name in ("dropout", "attention_dropout", "activation_dropout") if name in fields}
    return family.main_class(AutoConfig.for_model(family.model_type, **family.tiny, **no_dropout))


def _inputs(family: Family) -> dict[str, torch.Tensor]:
    if family.is_seq2seq:
        return {"input_ids": SOURCE, "labels": TARGET}
    return {"input_ids": SOURCE, "labels": SOURCE}


def _run(model: torch.nn.Module, family: Family, enabled: bool) -> dict[str, object]:
    results: dict[str, object] = {}
    with speed_paths.speed_paths_enabled(enabled):
        model.train()
        model.zero_grad()
        torch.manual_seed(0)  # the same random draws on both paths (the NAT family masks targets at random)
        loss = model(**_inputs(family)).loss
        loss.backward()
        results["loss"] = loss.detach()
        results["grads"] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        model.eval()
        with torch.no_grad():
            results["logits"] = model(**{k: v for k, v in _inputs(family).items() if k != "labels"},
                                      **({"decoder_input_ids": TARGET} if family.is_seq2seq else {})).logits
            if hasattr(model, "generate"):
                results["greedy"] = model.generate(SOURCE, max_new_tokens=6, do_sample=False)
                if getattr(model, "generation_cache", "") != "none":  # a parallel decoder has no beam search
                    results["beam"] = model.generate(SOURCE, max_new_tokens=6, num_beams=3, do_sample=False)
    return results


@pytest.mark.contract
@pytest.mark.parametrize("family", FAMILIES, ids=[family.name for family in FAMILIES])
@pytest.mark.parametrize("way", ["swapped", "blocked", "rowsum"])  # the few-row product on the speed path (plain is nn.Linear)
def test_every_family_gives_the_same_results_on_both_paths(
    family: Family, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(speed_paths, "_few_row_product", way)
    model = _model(family)
    fast, plain = _run(model, family, True), _run(model, family, False)
    torch.testing.assert_close(fast["loss"], plain["loss"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast["logits"], plain["logits"], atol=1e-5, rtol=1e-5)
    assert len(fast["grads"]) == len(plain["grads"]) > 0
    for got, expected in zip(fast["grads"], plain["grads"]):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    for mode in ("greedy", "beam"):
        if mode in fast:
            assert torch.equal(fast[mode], plain[mode])


def test_dropout_keeps_a_bool_mask_only_on_the_speed_path() -> None:
    x = torch.randn(4, 6, requires_grad=True)
    saved: dict[bool, list[torch.dtype]] = {}
    for enabled in (True, False):
        dtypes: list[torch.dtype] = []

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            dtypes.append(tensor.dtype)
            return tensor

        with speed_paths.speed_paths_enabled(enabled), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            speed_paths.dropout(x, 0.5, training=True)
        saved[enabled] = dtypes
    assert saved[True] == [torch.bool] and torch.bool not in saved[False]


def test_the_beam_cache_is_swapped_only_on_the_speed_path() -> None:
    with speed_paths.speed_paths_enabled(False):
        plain = speed_paths.prepare_beam_cache(EncoderDecoderCache(DynamicCache(), DynamicCache()))
    fast = speed_paths.prepare_beam_cache(EncoderDecoderCache(DynamicCache(), DynamicCache()))
    assert type(plain) is EncoderDecoderCache and isinstance(fast, speed_paths.SourceSharedCache)


def test_the_environment_switches_the_speed_paths_off() -> None:
    code = "from hf_encdec.models import speed_paths; print(speed_paths.speed_paths_on())"
    for value, expected in (("0", "False"), ("1", "True")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"HF_ENCDEC_SPEED_PATHS": value, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
        assert out.stdout.strip() == expected


# ---- dropout ----


def _saved_dtypes(function) -> list[torch.dtype]:
    dtypes: list[torch.dtype] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        dtypes.append(tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return dtypes


def test_outside_training_or_without_probability_it_is_the_identity() -> None:
    x = torch.randn(3, 5)
    assert dropout(x, 0.3, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    assert Dropout(0.3).eval()(x) is x


def test_kept_entries_are_scaled_and_the_rest_zeroed_at_rate_p() -> None:
    x = torch.rand(200, 500) + 0.5  # no zeros of its own
    y = dropout(x, 0.25, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert abs((~kept).float().mean().item() - 0.25) < 0.01
    # a second draw is a different mask
    assert not torch.equal(kept, dropout(x, 0.25, training=True) != 0)


def test_gradient_is_the_mask_over_keep_probability() -> None:
    x = (torch.rand(7, 9) + 0.5).requires_grad_()
    y = dropout(x, 0.4, training=True)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.6)


def test_backward_keeps_a_bool_mask_not_a_float_one() -> None:
    x = torch.randn(4, 6, requires_grad=True)
    ours = _saved_dtypes(lambda: dropout(x, 0.1, training=True))
    assert ours == [torch.bool]
    # torch's own CPU dropout keeps a mask of the input's dtype: what this block avoids
    assert torch.float32 in _saved_dtypes(lambda: torch.nn.functional.dropout(x, 0.1, training=True))


@pytest.mark.parametrize("p", [1.0])
def test_probability_one_drops_everything(p: float) -> None:
    assert torch.count_nonzero(dropout(torch.randn(3, 4), p, training=True)) == 0


# ---- the decoding cache ----


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
    for step in range(3 * speed_paths.MIN_SPARE_TOKENS):
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
    for step in range(3):
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
    for _ in range(speed_paths.MIN_SPARE_TOKENS):
        keys, _ = layer.update(*_states(2, 1))
        assert keys.data_ptr() == buffer.data_ptr()  # a view of the same buffer, not a copy
    assert layer.get_seq_length() == 4 + speed_paths.MIN_SPARE_TOKENS


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
    model = build("seq2seq")
    source = token_ids()
    out = model.generate(source, num_beams=3, max_new_tokens=4, return_dict_in_generate=True)
    assert isinstance(output_cache(out), SourceSharedCache)
    assert isinstance(output_cache(out).self_attention_cache.layers[0], GrowingLayer)
    given = EncoderDecoderCache(DynamicCache(), DynamicCache())
    model.generate(source, num_beams=3, max_new_tokens=4, **{CACHE_FIELD: given})
    assert type(given.self_attention_cache.layers[0]) is DynamicLayer


def test_the_cross_mask_is_built_once_per_source_mask_and_key() -> None:
    built: list[torch.Tensor] = []

    def build_mask() -> torch.Tensor:
        built.append(torch.zeros(2, 1, 1, 5, dtype=torch.bool))
        return built[-1]

    cache, mask, key = SourceSharedCache(DynamicCache(), DynamicCache()), torch.ones(2, 5, dtype=torch.long), (1, torch.float32)
    first = kept_cross_mask(cache, mask, key, build_mask)
    cache.is_updated[0] = True  # the first step projected the encoder keys/values
    assert kept_cross_mask(cache, mask, key, build_mask) is first and len(built) == 1
    assert kept_cross_mask(cache, mask.clone(), key, build_mask) is built[1]  # another mask object
    assert kept_cross_mask(cache, mask, (2, torch.float32), build_mask) is built[2]  # another query length
    cache.reset()  # a new source: its keys/values are projected again, and so is the mask
    mask.zero_()
    assert cache.cross_mask is None and kept_cross_mask(cache, mask, (2, torch.float32), build_mask) is built[3]
    plain = EncoderDecoderCache(DynamicCache(), DynamicCache())
    kept_cross_mask(plain, mask, key, build_mask)
    kept_cross_mask(plain, mask, key, build_mask)
    with speed_paths.speed_paths_enabled(False):
        kept_cross_mask(cache, mask, (2, torch.float32), build_mask)
    assert len(built) == 7


@pytest.mark.contract
@pytest.mark.parametrize("beams", [1, 3])
def test_generate_builds_the_cross_mask_once(beams: int, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[bool] = []
    original = transformer_layers.create_bidirectional_mask

    def counted(**kwargs: object) -> object:
        builds.append(kwargs.get("encoder_hidden_states") is not None)
        return original(**kwargs)

    monkeypatch.setattr(transformer_layers, "create_bidirectional_mask", counted)
    ids, mask = padded_sources((6, 2, 4))
    model = build("seq2seq")
    model.generate(ids, attention_mask=mask, num_beams=beams, max_new_tokens=6, min_new_tokens=6)
    assert builds.count(True) == 1  # the cross mask, for 6 decoding steps
    with speed_paths.speed_paths_enabled(False):
        builds.clear()
        model.generate(ids, attention_mask=mask, num_beams=beams, max_new_tokens=6, min_new_tokens=6)
    assert builds.count(True) == 6


@pytest.mark.contract
@pytest.mark.parametrize("beams", [1, 3])
def test_padded_sources_decode_the_same_with_the_mask_kept(beams: int) -> None:
    model = build("seq2seq")
    ids, mask = padded_sources((6, 2, 4))
    outputs = {}
    for enabled in (True, False):
        with speed_paths.speed_paths_enabled(enabled):
            outputs[enabled] = model.generate(ids, attention_mask=mask, num_beams=beams, max_new_tokens=6,
                                              min_new_tokens=6, output_scores=True, return_dict_in_generate=True)
    assert torch.equal(outputs[True].sequences, outputs[False].sequences)
    for kept, rebuilt in zip(outputs[True].scores, outputs[False].scores):
        torch.testing.assert_close(kept, rebuilt)


@pytest.mark.parametrize(
    ("module", "kwargs"),
    [
        (torch.nn.LSTM, {}),
        (torch.nn.GRU, {}),
        (torch.nn.RNN, {"nonlinearity": "tanh"}),
        (torch.nn.RNN, {"nonlinearity": "relu", "bias": False}),
    ],
    ids=["lstm", "gru", "rnn-tanh", "rnn-relu-no-bias"],
)
def test_one_recurrent_step_by_cells_equals_the_fused_stack(module: type, kwargs: dict) -> None:
    torch.manual_seed(0)
    rnn = module(11, 13, num_layers=3, batch_first=True, dropout=0.5, **kwargs).eval()
    inputs = torch.randn(5, 1, 11, requires_grad=True)
    hidden = torch.randn(3, 5, 13)
    cell = torch.randn(3, 5, 13) if module is torch.nn.LSTM else None
    results = {}
    for enabled in (True, False):
        with speed_paths.speed_paths_enabled(enabled):
            outputs, new_hidden, new_cell = speed_paths.recurrent_step(rnn, inputs, hidden, cell)
        (gradient,) = torch.autograd.grad(outputs.sum() + new_hidden.sum(), inputs)
        results[enabled] = (outputs, new_hidden, new_cell, gradient)
    for fast, plain in zip(results[True], results[False]):
        if plain is None:
            assert fast is None
        else:
            torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-5)
    assert results[True][0].shape == (5, 1, 13)
    # in training, dropout acts between layers on both paths: the expectation of the top output is the same, and a
    # dropped-out run differs from the eval run
    rnn.train()
    torch.manual_seed(1)
    dropped, _, _ = speed_paths.recurrent_step(rnn, inputs, hidden, cell)
    assert not torch.allclose(dropped, results[True][0])
