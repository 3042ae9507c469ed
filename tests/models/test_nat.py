"""The non-autoregressive family (models/modeling_nat.py): config checks, the non-causal decoder, CMLM masking in
training, length prediction, mask-predict on the paper's linear schedule, the decoding interface, and learning to
copy and to reverse from scratch."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from hf_encdec.models.configuration_nat import NATConfig
from hf_encdec.models.modeling_nat import NATForConditionalGeneration, draw_cmlm_masks
from hf_encdec.models.nat_decoding import lowest_confidence
from nat_learning import learn_from_scratch
from variants import TINY_TRANSFORMER

MASK, PAD, START, EOS = 4, 0, 1, 2


def _config(**overrides: Any) -> NATConfig:
    values = {**TINY_TRANSFORMER, "encoder_layers": 2, "decoder_layers": 2, "mask_token_id": MASK,
              "max_position_embeddings": 32, "dropout": 0.0, **overrides}
    return NATConfig(**values)


def _model(**overrides: Any) -> NATForConditionalGeneration:
    torch.manual_seed(0)
    return NATForConditionalGeneration(_config(**overrides)).eval()


def _labels() -> torch.Tensor:
    """Three targets of 6, 4 and 2 positions (tokens, EOS, then -100)."""
    labels = torch.randint(5, 99, (3, 6))
    labels[0, 5], labels[1, 3], labels[2, 1] = EOS, EOS, EOS
    labels[1, 4:], labels[2, 2:] = -100, -100
    return labels


SOURCE = torch.randint(5, 99, (3, 7))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mask_token_id": None}, "needs mask_token_id"),
        ({"mask_token_id": 99}, "mask_token_id=99 is outside"),
        ({"mask_token_id": EOS}, "also eos_token_id"),
        ({"mask_token_id": PAD}, "also pad_token_id"),
        ({"decoder_input_type": "fertility"}, "decoder_input_type='fertility'"),
        ({"length_loss_weight": -1.0}, "length_loss_weight must be >= 0"),
    ],
)
def test_bad_configs_raise_naming_the_value(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


def test_the_decoder_has_no_causal_mask() -> None:
    model = _model()
    decoder_ids = torch.full((3, 6), MASK)
    changed = decoder_ids.clone()
    changed[:, 5] = 17  # a later position
    first = model(input_ids=SOURCE, decoder_input_ids=decoder_ids).logits
    second = model(input_ids=SOURCE, decoder_input_ids=changed).logits
    assert not model.model.decoder.is_causal
    assert not torch.allclose(first[:, :5], second[:, :5])  # earlier positions see the later one


def test_padding_of_the_target_changes_nothing() -> None:
    model = _model()
    labels = _labels()
    batch = model(input_ids=SOURCE, labels=labels).logits
    alone = model(input_ids=SOURCE[1:2], labels=labels[1:2, :4]).logits
    torch.testing.assert_close(batch[1:2, :4], alone, atol=1e-5, rtol=1e-4)


def test_training_masks_between_one_and_all_positions_and_takes_the_loss_on_them() -> None:
    model = _model().train()
    labels = _labels()
    seen: list[torch.Tensor] = []
    handle = model.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["decoder_input_ids"]), with_kwargs=True
    )
    try:
        torch.manual_seed(3)
        out = model(input_ids=SOURCE, labels=labels, skip_logits=False)
    finally:
        handle.remove()
    inputs = seen[0]
    target = labels != -100
    masked = inputs == MASK
    counts, lengths = masked.sum(1), target.sum(1)
    assert bool(((counts >= 1) & (counts <= lengths)).all()) and not bool((masked & ~target).any())
    assert torch.equal(inputs[target & ~masked], labels[target & ~masked])  # the rest shows the gold tokens
    token_loss = F.cross_entropy(out.logits[masked], labels[masked])
    length_loss = F.cross_entropy(out.length_logits, lengths)
    torch.testing.assert_close(out.loss, token_loss + 0.1 * length_loss, atol=1e-5, rtol=1e-5)


def test_cmlm_mask_counts_are_uniform_over_one_to_the_length() -> None:
    torch.manual_seed(0)
    target = torch.ones(4000, 5, dtype=torch.bool)
    counts = draw_cmlm_masks(target).sum(1)
    frequencies = torch.bincount(counts, minlength=6)[1:].float() / 4000
    assert counts.min() == 1 and counts.max() == 5
    torch.testing.assert_close(frequencies, torch.full((5,), 0.2), atol=0.03, rtol=0)


def test_evaluation_masks_every_position_so_its_loss_is_deterministic() -> None:
    model, labels = _model(), _labels()
    first, second = model(input_ids=SOURCE, labels=labels), model(input_ids=SOURCE, labels=labels)
    assert torch.equal(first.loss, second.loss)


def test_generate_writes_the_chosen_lengths_and_ends_each_output_with_eos() -> None:
    model = _model()
    lengths = torch.tensor([3, 6, 1])
    out = model.generate(SOURCE, target_length=lengths, num_iterations=3)
    assert out.shape == (3, 1 + 6) and bool((out[:, 0] == START).all())
    for row, length in zip(out, lengths.tolist()):
        body = row[1:]
        assert int((body != PAD).sum()) == length and body[length - 1] == EOS
        assert not bool((body[: length - 1] == EOS).any()) and not bool((body[: length - 1] == MASK).any())
    assert torch.equal(model.generate(SOURCE, target_length=4)[:, 1:5] != PAD, torch.ones(3, 4, dtype=torch.bool))


def test_generate_follows_the_length_classifier_and_is_deterministic() -> None:
    model = _model()
    with torch.no_grad():
        predicted = model(input_ids=SOURCE, decoder_input_ids=torch.full((3, 2), MASK)).length_logits
    predicted[:, 0] = float("-inf")
    expected = predicted.argmax(-1)
    out = model.generate(SOURCE)
    assert torch.equal((out[:, 1:] != PAD).sum(1), expected)
    assert torch.equal(out, model.generate(SOURCE))


def _recording_predictions(model: NATForConditionalGeneration) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record every (tokens, log_probs) that a decoder pass of `model.generate` returns from now on."""
    original, records = model._predictor, []

    def recording_predictor(*args: Any, **kwargs: Any) -> Any:
        predict = original(*args, **kwargs)

        def recording(*inner: Any) -> Any:
            choices = predict(*inner)
            records.append((choices.tokens, choices.log_probs))
            return choices

        return recording

    model._predictor = recording_predictor
    return records


def test_length_beam_keeps_the_candidate_with_the_best_mean_log_probability() -> None:
    model = _model()
    with torch.no_grad():
        scores = model(input_ids=SOURCE, decoder_input_ids=torch.full((3, 2), MASK)).length_logits
    scores[:, 0] = float("-inf")
    top = scores.topk(3, dim=-1).indices  # (B, 3) the lengths the beam decodes
    records = _recording_predictions(model)
    outputs, means = [], []
    for j in range(3):  # each candidate on its own
        outputs.append(model.generate(SOURCE, target_length=top[:, j], num_iterations=1))
        means.append(records[-1][1].sum(1) / top[:, j])
    best = torch.stack(means, 1).argmax(1)  # (B,)
    beam = model.generate(SOURCE, num_iterations=1, length_beam_size=3)
    for row in range(3):
        expected = outputs[int(best[row])][row]
        got = beam[row]
        assert torch.equal(got[got != PAD], expected[expected != PAD])


def test_mask_predict_remasks_the_least_confident_tokens_on_the_linear_schedule() -> None:
    model = _model()
    iterations, length = 4, 9
    inputs: list[torch.Tensor] = []
    predictions = _recording_predictions(model)
    pre = model.model.register_forward_pre_hook(
        lambda module, args, kwargs: inputs.append(kwargs["decoder_input_ids"].clone()), with_kwargs=True
    )
    try:
        model.generate(SOURCE, target_length=length, num_iterations=iterations)
    finally:
        pre.remove()
    assert len(inputs) == iterations and bool((inputs[0] == MASK).all())
    content = torch.ones(3, length, dtype=torch.bool)
    content[:, -1] = False  # the last position is EOS, written, never re-masked
    confidence = predictions[0][1]
    for t in range(1, iterations):
        masked = inputs[t] == MASK
        n = length * (iterations - t) // iterations  # n = T (N - t) / N
        assert bool((masked.sum(1) == n).all())
        assert torch.equal(masked, lowest_confidence(confidence, content, torch.full((3,), n)))
        confidence = torch.where(masked, predictions[t][1], confidence)


def test_one_iteration_is_a_single_parallel_pass() -> None:
    model = _model()
    calls: list[int] = []
    handle = model.model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(1), with_kwargs=True)
    try:
        model.generate(SOURCE, num_iterations=1, target_length=6)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_a_fixed_length_is_cut_at_the_first_eos() -> None:
    model = _model()
    with torch.no_grad():
        model.lm_head.weight[EOS] += 5.0 * model.lm_head.weight[9]  # make EOS likely somewhere
    out = model.generate(SOURCE, fixed_length=12, num_iterations=1)
    for row in out[:, 1:]:
        eos = (row == EOS).nonzero()
        if len(eos):
            assert bool((row[int(eos[0]) + 1 :] == PAD).all())


def test_copy_source_decodes_in_one_pass_from_the_copied_source() -> None:
    model = _model(decoder_input_type="copy_source")
    out = model.generate(SOURCE, target_length=5, num_iterations=1)
    assert out.shape == (3, 6)
    with pytest.raises(ValueError, match="num_iterations=1"):
        model.generate(SOURCE, num_iterations=2)
    labels = _labels()
    assert torch.isfinite(model.train()(input_ids=SOURCE, labels=labels).loss)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_iterations": 0}, "num_iterations must be an integer >= 1"),
        ({"length_beam_size": 0}, "length_beam_size must be an integer >= 1"),
        ({"target_length": 33}, r"target_length must lie in \[1, 32\]"),
        ({"target_length": torch.tensor([1, 2])}, r"\(3,\) tensor"),
        ({"do_sample": True}, "deterministic"),
        ({"num_beams": 4}, "num_beams=4"),
        ({"target_length": 3, "fixed_length": 5}, "not both"),
    ],
)
def test_bad_generate_arguments_raise_naming_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _model().generate(SOURCE, **kwargs)


def test_generation_settings_with_no_meaning_for_parallel_decoding_raise() -> None:
    with pytest.raises(TypeError, match="repetition_penalty"):
        _model().generate(SOURCE, repetition_penalty=1.2)


def test_an_over_long_source_with_learned_positions_is_a_clear_error() -> None:
    model = _model(position_type="learned")
    with pytest.raises(ValueError, match="max_position_embeddings=32"):
        model.generate(torch.randint(5, 99, (1, 40)))


@pytest.mark.slow
def test_mask_predict_learns_to_copy_four_to_ten_tokens() -> None:
    scores = learn_from_scratch("copy", 500)
    assert scores["exact"] >= 0.95, scores


@pytest.mark.slow
def test_mask_predict_learns_to_reverse_four_to_ten_tokens(record_property: Any) -> None:
    """Reversal should be harder for a parallel decoder (the token at each target position depends on the length);
    issue 12 asks for the number, not a bar. It is recorded in the test report as `reversal` (measured: 98.7% exact,
    99.8% of tokens, every length right, the same budget as copying). The assertion keeps the length and the tokens
    far above chance (1/19). 500 steps: at 350 an Intel Xeon (2026-12-06) reached 26% exact, 94% of lengths, where the
    AMD EPYC had reached 98.7%; at 500 both tasks are 100% exact there, with one thread and with two."""
    scores = learn_from_scratch("reverse", 500)
    record_property("reversal", scores)
    print(f"reversal, T=4: {scores}")
    assert scores["length"] >= 0.95 and scores["tokens"] >= 0.9, scores


def test_the_cross_attention_keys_are_projected_once_and_reused_by_every_iteration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hf_encdec.models.modeling_nat as modeling_nat

    model = _model()
    cross_projections: list[int] = []
    handle = model.model.decoder.layers[0].cross_attn.k_proj.register_forward_hook(
        lambda module, args, output: cross_projections.append(1)
    )
    try:
        reused = model.generate(SOURCE, num_iterations=4, length_beam_size=2)
        calls_with_cache = len(cross_projections)
        monkeypatch.setattr(modeling_nat, "EncoderDecoderCache", lambda *caches: None)  # recompute every pass
        recomputed = model.generate(SOURCE, num_iterations=4, length_beam_size=2)
    finally:
        handle.remove()
    assert calls_with_cache == 1 and len(cross_projections) - calls_with_cache == 4
    assert torch.equal(reused, recomputed)
