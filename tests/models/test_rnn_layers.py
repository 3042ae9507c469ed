"""The RNN family's blocks against their definitions: the encoder against torch's own RNNs with copied weights, the
attention scores against their formulas, the bridge, the maxout readout, the decoder state, and config errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hf_encdec import RNNSeq2SeqConfig
from hf_encdec.models.rnn_attention import AdditiveScorer, DotScorer, GeneralScorer, masked_softmax
from hf_encdec.models.rnn_layers import Bridge, MaxoutReadout, RNNDecoderState
from rnn_helpers import SOURCE_LENGTHS, build_rnn, padded_sources
from variants import TINY_RNN

TORCH_RNNS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional", "unidirectional"])
@pytest.mark.parametrize("rnn_type", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_encoder_equals_torch_rnn_with_copied_weights(rnn_type: str, bidirectional: bool, side: str) -> None:
    model = build_rnn({"rnn_type": rnn_type, "bidirectional_encoder": bidirectional})
    encoder, config = model.get_encoder(), model.config
    directions = 2 if bidirectional else 1
    reference = TORCH_RNNS[rnn_type](24, 32 // directions, 2, batch_first=True, bidirectional=bidirectional)
    reference.load_state_dict(encoder.rnn.state_dict())  # same parameter names and layout
    for parameter in encoder.rnn.parameters():  # make sure the copy is not of default-initialised weights
        assert parameter.abs().max() <= config.uniform_init_range
    ids, mask = padded_sources(side=side)
    out = encoder(input_ids=ids, attention_mask=mask, return_dict=True)
    for row, length in enumerate(SOURCE_LENGTHS):
        real = mask[row].bool()
        expected, state = reference(encoder.embed_tokens(ids[row : row + 1, real]))
        torch.testing.assert_close(out.last_hidden_state[row, real], expected[0], atol=1e-6, rtol=1e-5)
        assert torch.all(out.last_hidden_state[row, ~real] == 0)
        hidden = state[0] if rnn_type == "lstm" else state  # (layers * directions, 1, H / directions)
        expected_final = hidden.view(2, directions, -1).flatten(1)  # (layers, H): [forward ; backward]
        torch.testing.assert_close(out.final_hidden_state[row], expected_final, atol=1e-6, rtol=1e-5)
        if rnn_type == "lstm":
            torch.testing.assert_close(out.final_cell_state[row], state[1].view(2, directions, -1).flatten(1), atol=1e-6, rtol=1e-5)
        else:
            assert out.final_cell_state is None
        if bidirectional:  # the backward direction's final state is its state at the first token
            torch.testing.assert_close(out.final_hidden_state[row, -1, 16:], expected[0, 0, 16:])
            torch.testing.assert_close(out.final_hidden_state[row, -1, :16], expected[0, length - 1, :16])


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional", "unidirectional"])
@pytest.mark.parametrize("rnn_type", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_every_encoder_layer_equals_a_one_layer_torch_rnn_over_the_layer_below(
    rnn_type: str, bidirectional: bool, side: str
) -> None:
    """h^l = RNN_l(h^(l-1)), h^0 the embeddings: each returned layer against torch's one-layer module holding that
    layer's weights, run on each row's real tokens alone."""
    model = build_rnn({"rnn_type": rnn_type, "bidirectional_encoder": bidirectional})
    encoder = model.get_encoder()
    directions = 2 if bidirectional else 1
    ids, mask = padded_sources(side=side)
    out = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
    assert len(out.hidden_states) == encoder.rnn.num_layers + 1 and out.hidden_states[-1] is out.last_hidden_state
    assert torch.equal(out.hidden_states[0], encoder.embed_tokens(ids))
    for layer in range(encoder.rnn.num_layers):
        reference = TORCH_RNNS[rnn_type](out.hidden_states[layer].shape[-1], 32 // directions, 1, batch_first=True,
                                         bidirectional=bidirectional)
        reference.load_state_dict({name.replace(f"_l{layer}", "_l0"): value
                                   for name, value in encoder.rnn.state_dict().items() if f"_l{layer}" in name})
        for row in range(ids.shape[0]):
            real = mask[row].bool()
            expected, _ = reference(out.hidden_states[layer][row : row + 1, real])
            torch.testing.assert_close(out.hidden_states[layer + 1][row, real], expected[0], atol=1e-6, rtol=1e-5)
            assert torch.all(out.hidden_states[layer + 1][row, ~real] == 0)


def test_encoder_rejects_an_all_padding_source() -> None:
    model = build_rnn()
    ids, mask = padded_sources()
    mask[1] = 0
    with pytest.raises(ValueError, match="all-padding row"):
        model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :2])


def test_masked_softmax_is_exactly_zero_on_padding_and_sums_to_one() -> None:
    scores = torch.randn(3, 5, 7) * 10
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [0, 0, 1, 1, 0, 1, 0]]).bool()
    weights = masked_softmax(scores, mask)
    assert torch.all(weights.masked_select(~mask[:, None, :].expand_as(weights)) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    torch.testing.assert_close(weights[1, :, :3], torch.softmax(scores[1, :, :3], -1))
    assert torch.all(masked_softmax(scores, torch.zeros(3, 7, dtype=torch.bool)) == 0)  # no real key: no NaN


def test_scores_follow_their_formulas() -> None:
    query, keys = torch.randn(3, 5, 8), torch.randn(3, 7, 6)
    additive = AdditiveScorer(8, 6, 11)
    w, u, v = additive.query_proj.weight, additive.key_proj.weight, additive.v.weight[0]
    b, t, j = 2, 3, 4
    expected = v @ torch.tanh(w @ query[b, t] + u @ keys[b, j])  # Bahdanau eq. 6: v^T tanh(W s + U h)
    torch.testing.assert_close(additive.score(query, additive.project_keys(keys))[b, t, j], expected)

    general = GeneralScorer(8, 6)
    w_a = general.linear.weight.T  # (8, 6): s^T W_a h
    torch.testing.assert_close(general.score(query, keys)[b, t, j], query[b, t] @ w_a @ keys[b, j])

    dot_keys = torch.randn(3, 7, 8)
    torch.testing.assert_close(DotScorer().score(query, dot_keys)[b, t, j], query[b, t] @ dot_keys[b, j])

    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, 5:] = False
    context, weights = additive(query, keys, mask)
    torch.testing.assert_close(context, weights @ keys)
    assert torch.all(weights[0, :, 5:] == 0)


def test_bridges() -> None:
    final_hidden, final_cell = torch.randn(3, 2, 32), torch.randn(3, 2, 32)
    zero = Bridge("zero", encoder_state_size=128, decoder_layers=3, hidden_size=32, with_cell=True)
    hidden, cell = zero(final_hidden, final_cell)
    assert hidden.shape == cell.shape == (3, 3, 32) and not hidden.any() and not cell.any()

    last = Bridge("last", encoder_state_size=128, decoder_layers=2, hidden_size=32, with_cell=True)
    hidden, cell = last(final_hidden, final_cell)
    assert torch.equal(hidden, final_hidden) and torch.equal(cell, final_cell)

    linear = Bridge("linear", encoder_state_size=128, decoder_layers=3, hidden_size=32, with_cell=True)
    hidden, cell = linear(final_hidden, final_cell)
    both = torch.tanh(linear.linear(torch.cat([final_hidden.flatten(1), final_cell.flatten(1)], -1)))  # (B, 2 * 3 * 32)
    torch.testing.assert_close(hidden, both[:, :96].view(3, 3, 32))
    torch.testing.assert_close(cell, both[:, 96:].view(3, 3, 32))
    gru = Bridge("linear", encoder_state_size=64, decoder_layers=1, hidden_size=32, with_cell=False)
    hidden, cell = gru(final_hidden, None)
    assert cell is None and hidden.shape == (3, 1, 32)
    with pytest.raises(ValueError, match="bridge='copy'"):
        Bridge("copy", encoder_state_size=1, decoder_layers=1, hidden_size=1, with_cell=False)


def test_maxout_readout_takes_the_larger_of_each_pair() -> None:
    readout = MaxoutReadout(state_size=5, embedding_size=3, context_size=4, output_size=6)
    state, embedded, context = torch.randn(2, 7, 5), torch.randn(2, 7, 3), torch.randn(2, 7, 4)
    pre = readout.linear(torch.cat([state, embedded, context], -1))
    torch.testing.assert_close(readout(state, embedded, context), torch.maximum(pre[..., 0::2], pre[..., 1::2]))


def test_decoder_state_reorders_every_tensor_on_the_batch_axis() -> None:
    state = RNNDecoderState(hidden=torch.randn(4, 2, 3), cell=torch.randn(4, 2, 3), attentional=torch.randn(4, 3))
    index = torch.tensor([2, 2, 0, 1])
    reordered = state.index_select(index)
    assert torch.equal(reordered.hidden, state.hidden[index]) and torch.equal(reordered.cell, state.cell[index])
    assert torch.equal(reordered.attentional, state.attentional[index]) and reordered.projected_keys is None
    state.reorder_cache(index)
    assert torch.equal(state.hidden, reordered.hidden)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rnn_type": "transformer"}, "rnn_type='transformer' is not supported"),
        ({"attention_type": "luong_location"}, "attention_type='luong_location' is not supported"),
        ({"bridge": "copy"}, "bridge='copy' is not supported"),
        ({"encoder_type": "cnn"}, "encoder_type='cnn' is not supported"),
        ({"scheduled_sampling_mode": "beam"}, "scheduled_sampling_mode='beam' is not supported"),
        ({"attention_type": "none", "input_feeding": True}, "input_feeding=True .* needs a luong_"),
        ({"attention_type": "bahdanau", "input_feeding": True}, "input_feeding=True .* attention_type='bahdanau'"),
        ({"hidden_size": 33}, "even hidden_size, got 33"),
        ({"bridge": "last"}, "encoder_layers == decoder_layers, got 2 and 3"),
        ({"bridge": "last", "encoder_type": "transformer", "decoder_layers": 2}, "Transformer encoder does not have"),
        ({"encoder_config": {"num_attention_heads": 4}}, "encoder_type='rnn'"),
        ({"encoder_type": "transformer", "encoder_config": {"num_attention_heads": 4}, "transformer_hidden_act": "gelu"},
         "set twice"),
        ({"share_encoder_decoder_embeddings": True, "decoder_vocab_size": 50}, "needs one vocabulary"),
        ({"share_encoder_decoder_embeddings": True, "encoder_type": "transformer"}, "embedding_size == hidden_size"),
        ({"encoder_type": "transformer", "encoder_config": {"num_attention_heads": 5}}, "not divisible by num_attention_heads=5"),
        ({"encoder_type": "transformer", "encoder_config": {"position_type": "spiral"}}, "position_type='spiral'"),
        ({"encoder_type": "transformer", "transformer_position_type": "spiral"}, "position_type='spiral'"),  # old spelling
        ({"dropout": 1.0}, "dropout must be in"),
        ({"scheduled_sampling_probability": 1.5}, "scheduled_sampling_probability must be in"),
        ({"decoder_layers": 0}, "decoder_layers must be a positive integer"),
        ({"pad_token_id": 120}, "outside the vocabulary"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_impossible_configs_raise_clear_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RNNSeq2SeqConfig(**{**TINY_RNN, **overrides})


def test_a_transformer_encoder_ignores_an_odd_width_check_meant_for_bidirectional_rnns() -> None:
    config = RNNSeq2SeqConfig(
        **{**TINY_RNN, "encoder_type": "transformer", "hidden_size": 33,
           "encoder_config": {"num_attention_heads": 3, "position_type": "learned"}}
    )
    assert config.encoder_config.head_dim == 11


def test_the_flat_fields_of_older_configs_become_the_encoder_config() -> None:
    old = RNNSeq2SeqConfig(**{**TINY_RNN, "encoder_type": "transformer", "transformer_attention_heads": 2,
                              "transformer_hidden_act": "gelu", "transformer_scale_embedding": False})
    new = RNNSeq2SeqConfig(**{**TINY_RNN, "encoder_type": "transformer",
                              "encoder_config": {"num_attention_heads": 2, "hidden_act": "gelu", "scale_embedding": False}})
    assert old.encoder_config.to_dict() == new.encoder_config.to_dict()
    assert old.encoder_config.hidden_size == 32 and old.encoder_config.intermediate_size == 4 * 32
    assert not any(key.startswith("transformer_") for key in old.to_dict())


@pytest.mark.parametrize("attention_type", ["none", "bahdanau", "luong_dot", "luong_general", "luong_concat"])
def test_input_feeding_defaults_follow_the_attention_type(attention_type: str) -> None:
    config = RNNSeq2SeqConfig(**TINY_RNN, attention_type=attention_type)
    assert config.input_feeding == attention_type.startswith("luong")
    assert RNNSeq2SeqConfig.from_dict(config.to_dict()).input_feeding == config.input_feeding
