"""Properties of every RNN seq2seq variant (tests/variants.py: RNN_VARIANTS): padding invariance, cache equivalence
(incremental == full forward; generate with cache == without, in every decoding mode), attention weights, beam
search against exhaustive search, and gradients reaching every parameter."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from hf_encdec.models.transformers_contract import output_cache
from rnn_helpers import SOURCE_LENGTHS, build_rnn, padded_sources, token_ids
from variants import RNN_VARIANTS, TARGET_LEN

ATTENTION_VARIANTS = [p for p in RNN_VARIANTS if p.values[0].get("attention_type", "luong_general") != "none"]


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("overrides", RNN_VARIANTS)
def test_padding_does_not_change_results(overrides: dict[str, Any], side: str) -> None:
    model = build_rnn(overrides)
    ids, mask = padded_sources(side=side)
    decoder_ids = token_ids(length=TARGET_LEN)
    batch = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, output_attentions=True)
    for row in range(len(SOURCE_LENGTHS)):
        real = mask[row].bool()
        alone = model(input_ids=ids[row : row + 1, real], decoder_input_ids=decoder_ids[row : row + 1], output_attentions=True)
        torch.testing.assert_close(batch.logits[row], alone.logits[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batch.encoder_last_hidden_state[row, real], alone.encoder_last_hidden_state[0], atol=1e-5, rtol=1e-4)
        if batch.cross_attentions is not None:
            weights = batch.cross_attentions[0][row, 0]  # (T, S)
            assert torch.all(weights[:, ~real] == 0)
            torch.testing.assert_close(weights[:, real], alone.cross_attentions[0][0, 0], atol=1e-5, rtol=1e-4)


@pytest.mark.contract
@pytest.mark.parametrize("overrides", RNN_VARIANTS)
def test_incremental_decoding_equals_the_full_forward(overrides: dict[str, Any]) -> None:
    model = build_rnn(overrides)
    ids, mask = padded_sources()
    decoder_ids = token_ids(length=TARGET_LEN)
    full = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, use_cache=False,
                 output_hidden_states=True)
    assert output_cache(full) is None
    encoder_outputs = model.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=True)
    copy = {"source_ids": ids} if model.config.copy_mechanism else {}  # a pointer-generator copies from the source ids
    state, steps, layer_steps = None, [], []
    for t in range(TARGET_LEN):
        out = model(
            encoder_outputs=encoder_outputs,
            attention_mask=mask,
            decoder_input_ids=decoder_ids[:, t : t + 1],
            cache=state,
            use_cache=True,
            output_hidden_states=True,
            **copy,
        )
        state = output_cache(out)
        steps.append(out.logits)
        layer_steps.append(out.decoder_hidden_states)
    torch.testing.assert_close(torch.cat(steps, dim=1), full.logits, atol=1e-6, rtol=1e-5)
    # the embeddings and every decoder layer's states, step by step as in one pass
    assert len(full.decoder_hidden_states) == model.config.decoder_layers + 1
    for layer, states in enumerate(full.decoder_hidden_states):
        stepped = torch.cat([step[layer] for step in layer_steps], dim=1)
        torch.testing.assert_close(stepped, states, atol=1e-6, rtol=1e-5)
    # a prefix then the rest from its state
    head = model(
        encoder_outputs=encoder_outputs, attention_mask=mask, decoder_input_ids=decoder_ids[:, :2], use_cache=True, **copy
    )
    tail = model(
        encoder_outputs=encoder_outputs, attention_mask=mask, decoder_input_ids=decoder_ids[:, 2:],
        past_key_values=output_cache(head), use_cache=True, **copy,
    )
    torch.testing.assert_close(torch.cat([head.logits, tail.logits], dim=1), full.logits, atol=1e-6, rtol=1e-5)


GENERATION_MODES: dict[str, dict[str, Any]] = {
    "greedy": {"do_sample": False},
    "beam": {"num_beams": 3, "num_return_sequences": 2, "length_penalty": 0.7, "do_sample": False},
    "sampling": {"do_sample": True, "top_k": 0, "temperature": 1.3},
    "beam-sampling": {"do_sample": True, "num_beams": 2},
    "no-repeat-ngram": {"do_sample": False, "no_repeat_ngram_size": 2, "num_beams": 2},
    "repetition-penalty": {"do_sample": False, "repetition_penalty": 1.8},
}


@pytest.mark.contract
@pytest.mark.parametrize("overrides", RNN_VARIANTS)
def test_generate_is_the_same_with_and_without_the_state_cache(overrides: dict[str, Any]) -> None:
    model = build_rnn(overrides, uniform_init_range=0.3)  # peakier distributions than the default init
    ids, mask = padded_sources()
    for name, mode in GENERATION_MODES.items():
        results = []
        for use_cache in (True, False):
            torch.manual_seed(7)
            results.append(
                model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, use_cache=use_cache, **mode)
            )
        assert torch.equal(results[0], results[1]), name
    beams = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, **GENERATION_MODES["beam"])
    assert beams.shape[0] == 2 * len(SOURCE_LENGTHS)


@pytest.mark.parametrize("overrides", ATTENTION_VARIANTS)
def test_attention_weights_sum_to_one_over_real_tokens(overrides: dict[str, Any]) -> None:
    model = build_rnn(overrides, uniform_init_range=0.5)
    ids, mask = padded_sources()
    out = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, output_attentions=True,
        return_dict_in_generate=True,
    )
    assert len(out.cross_attentions) == 4  # one entry per generated token
    for step in out.cross_attentions:
        (weights,) = step  # one attention layer
        assert weights.shape == (len(SOURCE_LENGTHS), 1, 1, ids.shape[1])  # (B, heads=1, T=1, S)
        torch.testing.assert_close(weights.sum(-1), torch.ones(len(SOURCE_LENGTHS), 1, 1))
        assert torch.all(weights.masked_select(~mask.bool()[:, None, None, :]) == 0)
    rows = torch.cat([step[0] for step in out.cross_attentions], dim=2)  # (B, 1, 4, S)
    assert not torch.allclose(rows[:, :, 0], rows[:, :, 1]), "weights should move as the decoder state changes"


def _exhaustive_ranking(model: torch.nn.Module, source: torch.Tensor, vocab: int, length: int, eos: int, penalty: float):
    """Every output a beam search can finish with (EOS at step n < length, or any `length` tokens), scored as
    transformers does: sum of log-probabilities / n ** length_penalty. Best first."""
    candidates = [
        list(tokens) for n in range(1, length + 1) for tokens in itertools.product(range(vocab), repeat=n)
        if (n == length or tokens[-1] == eos) and eos not in tokens[:-1]
    ]
    decoder_ids = torch.full((len(candidates), length), model.config.pad_token_id)
    targets = torch.full((len(candidates), length), -100)
    for row, tokens in enumerate(candidates):
        decoder_ids[row, : len(tokens)] = torch.tensor([model.config.decoder_start_token_id, *tokens[:-1]])
        targets[row, : len(tokens)] = torch.tensor(tokens)
    logits = model(input_ids=source.expand(len(candidates), -1), decoder_input_ids=decoder_ids).logits
    log_probs = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    totals = (log_probs * (targets != -100)).sum(-1)
    scores = [float(total.detach()) / len(tokens) ** penalty for total, tokens in zip(totals, candidates)]
    return sorted(zip(scores, candidates), key=lambda item: -item[0])


@pytest.mark.contract
@pytest.mark.parametrize("length_penalty", [0.0, 1.0, -0.5])
@pytest.mark.parametrize("overrides", RNN_VARIANTS)
def test_beam_search_equals_exhaustive_search_on_a_tiny_vocabulary(overrides: dict[str, Any], length_penalty: float) -> None:
    """With beams enough to keep every prefix (5^2 < 80 = num_beams, early_stopping='never'), beam search with the
    recurrent state reordered between steps must return exactly the best outputs of exhaustive search."""
    vocab, length, eos = 5, 3, 2
    model = build_rnn(overrides, vocab_size=vocab, uniform_init_range=0.5)
    source = token_ids(batch=1, length=6, low=3, vocab=vocab)
    out = model.generate(
        input_ids=source, num_beams=80, num_return_sequences=4, max_new_tokens=length, early_stopping="never",
        length_penalty=length_penalty, do_sample=False, output_scores=True, return_dict_in_generate=True,
    )
    expected = _exhaustive_ranking(model, source, vocab, length, eos, length_penalty)[:4]
    found = []
    for row in out.sequences[:, 1:].tolist():
        found.append(row[: row.index(eos) + 1] if eos in row else row)
    assert found == [tokens for _, tokens in expected]
    torch.testing.assert_close(out.sequences_scores, torch.tensor([score for score, _ in expected]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("overrides", RNN_VARIANTS)
def test_every_parameter_gets_a_gradient(overrides: dict[str, Any]) -> None:
    model = build_rnn(overrides).train()
    ids, mask = padded_sources()
    labels = token_ids(length=TARGET_LEN)
    labels[2, 3:] = -100
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    missing = [name for name, parameter in model.named_parameters() if parameter.grad is None or not parameter.grad.any()]
    assert not missing, missing


def test_variant_table_covers_every_value_of_every_switch_the_source_declares() -> None:
    from hf_encdec.models.configuration_rnn_seq2seq import FIELD_CHOICES, RNNSeq2SeqConfig

    seen = {(k, v) for param in RNN_VARIANTS for k, v in param.values[0].items() if k in FIELD_CHOICES}
    for switch, values in FIELD_CHOICES.items():
        if switch in RNNSeq2SeqConfig.training_settings:
            continue  # scheduled_sampling_mode: tests/training/test_scheduled_sampling.py
        for value in values:
            assert (switch, value) in seen, f"{switch}={value} is not exercised by tests/variants.py"
