"""See et al.'s pointer-generator on the RNN family and coverage on both copy families (copy_mechanism.py,
rnn_attention.py): the RNN copy distribution against a loop over the paper's formulas, the coverage loss by hand,
the coverage carried by the caches, the copy outputs of generate(), transition scores over the extended vocabulary,
and clear errors (learning to copy words outside the vocabulary: test_pointer_generator.py, both families)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers.generation.utils import GenerationMixin

from helpers import build
from hf_encdec import PointerGeneratorConfig, RNNSeq2SeqConfig
from hf_encdec.evaluation import plot_copy_attention
from hf_encdec.models.copy_mechanism import attend_with_coverage, coverage_loss
from hf_encdec.models.transformers_contract import output_cache
from hf_encdec.speed import apply_speed_paths
from rnn_helpers import build_rnn, padded_sources, token_ids
from variants import TARGET_LEN, TINY_RNN, TINY_TRANSFORMER, VOCAB

ATTENTION_TYPES = ["bahdanau", "luong_dot", "luong_general", "luong_concat"]
SEE = {"rnn_type": "lstm", "attention_type": "bahdanau", "input_feeding": False, "copy_mechanism": True}


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_rnn_copy_distribution_follows_the_papers_formulas(attention_type: str) -> None:
    """P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: x_i = w} a_ti, p_gen = sigmoid(w_c.c_t + w_s.s_t + w_x.x_t + b),
    c_t = sum_i a_ti h_i, one (b, t) at a time; the copy attention is the decoder's own attention."""
    model = build_rnn({"attention_type": attention_type, "copy_mechanism": True}, uniform_init_range=0.3)
    ids, mask = padded_sources()
    ids[0, 1] = ids[0, 3]  # one word twice: its copy probabilities add up
    decoder_ids = token_ids(batch=ids.shape[0], length=TARGET_LEN)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, output_attentions=True)
        parts = model.model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids)
        hidden, embedding = TINY_RNN["hidden_size"], TINY_RNN["embedding_size"]
        w_c, w_s, w_x = model.copy_gate.weight[0].split([hidden, hidden, embedding])
        for b in range(ids.shape[0]):
            for t in range(TARGET_LEN):
                attention = out.copy_attentions[b, t]  # (S,)
                torch.testing.assert_close(attention, out.cross_attentions[0][b, 0, t])
                context = sum(attention[i] * parts.encoder_last_hidden_state[b, i] for i in range(ids.shape[1]))
                x_t = model.model.decoder.embed_tokens.weight[decoder_ids[b, t]]
                s_t = parts.decoder_states[b, t]
                p_gen = torch.sigmoid(w_c @ context + w_s @ s_t + w_x @ x_t + model.copy_gate.bias[0])
                expected = p_gen * torch.softmax(model.lm_head(parts.last_hidden_state[b, t]), dim=0)
                for i in range(ids.shape[1]):
                    expected[ids[b, i]] += (1 - p_gen) * attention[i]
                torch.testing.assert_close(out.p_gen[b, t, 0], p_gen, atol=1e-6, rtol=1e-5)
                torch.testing.assert_close(out.logits[b, t].exp(), expected, atol=1e-6, rtol=1e-5)
                assert torch.all(attention[~mask[b].bool()] == 0)  # padding is never copied


def test_coverage_loss_value_and_gradient_by_hand() -> None:
    """a_1 = (0.9, 0.1), a_2 = (0.7, 0.3), a_3 = (0.4, 0.6); c^t = sum_{t' < t} a_t', so c^2 = (0.9, 0.1) and
    c^3 = (1.6, 0.4). The loss sums min(a_t, c^t): 0 + (0.7 + 0.1) + (0.4 + 0.4) = 1.6, over 3 labelled steps. Each
    min passes its gradient to the smaller side, and a coverage entry passes it on to every earlier attention."""
    attention = torch.tensor([[[0.9, 0.1], [0.7, 0.3], [0.4, 0.6]]], requires_grad=True)
    coverage = attention.cumsum(dim=1) - attention  # exclusive running sum
    loss = coverage_loss(attention, coverage, torch.tensor([[5, 6, 7]]))
    torch.testing.assert_close(loss, torch.tensor(1.6 / 3))
    loss.backward()
    # a_2,0 and a_3,0 are the smaller sides; c^2_1 = a_1,1 and c^3_1 = a_1,1 + a_2,1 are the others
    expected = torch.tensor([[[0.0, 2.0], [1.0, 1.0], [1.0, 0.0]]]) / 3
    torch.testing.assert_close(attention.grad, expected)
    # an unlabelled step does not count, and the Trainer's count normalises instead of the labelled steps
    masked = coverage_loss(attention, coverage, torch.tensor([[5, 6, -100]]), num_items_in_batch=4)
    torch.testing.assert_close(masked, torch.tensor(0.8 / 4))


def test_attention_with_coverage_sums_the_earlier_steps_and_reads_them() -> None:
    scores = torch.randn(3, 5, 7)
    weight = torch.full((3, 5, 1), -4.0)  # a strong coverage weight: attending twice is discouraged
    attention, before = attend_with_coverage(scores, weight)
    torch.testing.assert_close(before, attention.cumsum(dim=1) - attention)
    for t in range(5):
        torch.testing.assert_close(attention[:, t], torch.softmax(scores[:, t] - 4.0 * before[:, t], dim=-1))
    plain = scores.softmax(dim=-1)
    assert not torch.allclose(attention[:, 1:], plain[:, 1:], atol=1e-3)


def _strong_coverage(model: torch.nn.Module) -> torch.nn.Module:
    """Scale every coverage weight up so that a lost or stale coverage vector changes the output visibly."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "coverage" in name:
                parameter.mul_(20.0)
    return model


def _coverage_models() -> dict[str, torch.nn.Module]:
    return {
        "pointer-generator": _strong_coverage(build("pointer_generator", coverage=True, num_key_value_heads=4)),
        "rnn-see": _strong_coverage(build_rnn({**SEE, "coverage": True}, uniform_init_range=0.3)),
        "rnn-general": _strong_coverage(build_rnn({"copy_mechanism": True, "coverage": True}, uniform_init_range=0.3)),
    }


@pytest.mark.contract
@pytest.mark.parametrize("name", ["pointer-generator", "rnn-see", "rnn-general"])
def test_incremental_decoding_carries_the_coverage(name: str) -> None:
    model = _coverage_models()[name]
    ids, mask = padded_sources()
    decoder_ids = token_ids(batch=ids.shape[0], length=TARGET_LEN)
    full = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, use_cache=False)
    cache, steps = None, []
    for t in range(TARGET_LEN):
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids[:, t : t + 1], cache=cache,
                    use_cache=True)
        cache = output_cache(out)
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full.logits, atol=1e-5, rtol=1e-5)
    # the coverage matters: the same model with the coverage weights zeroed gives other outputs
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():
            if "coverage" in parameter_name:
                parameter.zero_()
    without = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, use_cache=False)
    assert not torch.allclose(without.logits[:, 1:], full.logits[:, 1:], atol=1e-3)


@pytest.mark.contract
@pytest.mark.parametrize("name", ["pointer-generator", "rnn-see", "rnn-general"])
def test_generate_with_coverage_is_the_same_with_and_without_cache(name: str) -> None:
    model = _coverage_models()[name]
    ids, mask = padded_sources()
    modes = [{}, {"num_beams": 3, "num_return_sequences": 2}, {"do_sample": True, "top_k": 0}, {"num_beams": 2, "do_sample": True}]
    for mode in modes:
        results = []
        for use_cache in (True, False):
            torch.manual_seed(3)
            results.append(model.generate(ids, attention_mask=mask, max_new_tokens=7, use_cache=use_cache, **mode))
        assert torch.equal(*results), mode


@pytest.mark.parametrize("family", ["rnn", "pointer_generator"])
def test_training_adds_the_weighted_coverage_loss(family: str) -> None:
    def model_with(weight: float | None) -> torch.nn.Module:
        if family == "rnn":
            return build_rnn({**SEE, "coverage": True, "coverage_loss_weight": weight})
        return build("pointer_generator", coverage=True, coverage_loss_weight=weight)

    ids, mask = padded_sources()
    labels = token_ids(batch=ids.shape[0], length=TARGET_LEN)
    labels[1, 3:] = -100
    losses = {w: model_with(w).train()(input_ids=ids, attention_mask=mask, labels=labels).loss for w in (0.0, 1.0, 2.5)}
    coverage_part = losses[1.0] - losses[0.0]
    assert coverage_part > 0
    torch.testing.assert_close(losses[2.5] - losses[0.0], 2.5 * coverage_part)
    out = model_with(None).eval()(input_ids=ids, attention_mask=mask, labels=labels, skip_logits=False)
    assert model_with(None).config.coverage_loss_weight == 1.0  # See et al.'s lambda
    torch.testing.assert_close(out.loss, losses[1.0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["pointer-generator", "rnn-see"])
def test_generate_returns_p_gen_and_the_copy_attention_it_decoded_with(name: str, tmp_path: Path) -> None:
    model = _coverage_models()[name]
    ids, mask = padded_sources()
    result = model.generate(ids, attention_mask=mask, max_new_tokens=5, min_new_tokens=5, num_beams=2,
                            output_attentions=True, return_dict_in_generate=True, output_scores=True)
    steps = result.sequences.shape[1] - 1
    assert result.p_gen.shape == (ids.shape[0], steps, 1)
    assert result.copy_attentions.shape == (ids.shape[0], steps, ids.shape[1])
    torch.testing.assert_close(result.copy_attentions.sum(-1), torch.ones(ids.shape[0], steps))
    assert torch.all(result.copy_attentions[~mask.bool()[:, None, :].expand_as(result.copy_attentions)] == 0)
    # the log-probability generate() scored each chosen token with is the mixture at the returned p_gen
    scores = model.compute_transition_scores(result.sequences, result.scores, result.beam_indices)
    with torch.no_grad():
        forced = model(input_ids=ids, attention_mask=mask, decoder_input_ids=result.sequences[:, :-1])
    chosen = forced.logits.gather(2, result.sequences[:, 1:, None])[..., 0]
    torch.testing.assert_close(scores, chosen, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(forced.p_gen, result.p_gen)
    path = plot_copy_attention(result.copy_attentions[0], result.p_gen[0], [str(i) for i in ids[0].tolist()],
                               [str(i) for i in result.sequences[0, 1:].tolist()], tmp_path / "copy.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _wu_coverage_by_hand(attention: torch.Tensor, source_mask: torch.Tensor, steps: int) -> float:
    """sum_s log(min(sum_{t < steps} a_t,s, 1)) over the real source positions, one position at a time."""
    total = 0.0
    for s in range(attention.shape[1]):
        if source_mask[s]:
            received = sum(float(attention[t, s]) for t in range(steps))
            total += math.log(max(min(received, 1.0), 1e-9))
    return total


@pytest.mark.parametrize("name", ["pointer-generator", "rnn-see"])
def test_coverage_penalty_reranks_the_beams_by_wu_et_al_score(name: str) -> None:
    """Every returned hypothesis is one of beam search's, scored log P / |Y|^lp (beam search's own score, to 1e-4)
    plus beta times Wu et al.'s coverage term computed by hand from its copy attention up to its end token, and the
    hypotheses come best first."""
    model = _coverage_models()[name]
    ids, mask = padded_sources()
    beams, beta = 4, 0.7
    settings = {"attention_mask": mask, "max_new_tokens": 8, "num_beams": beams, "length_penalty": 0.6,
                "return_dict_in_generate": True}
    plain = model.generate(ids, num_return_sequences=beams, output_scores=True, **settings)
    # end tokens the model does emit (the 4th token of the first input's hypotheses; none before the 4th), so that
    # hypotheses of several lengths are scored
    eos = settings["eos_token_id"] = sorted(set(plain.sequences[:beams, 4].tolist()))
    settings["min_new_tokens"] = 3
    plain = model.generate(ids, num_return_sequences=beams, output_scores=True, **settings)
    ranked = model.generate(ids, coverage_penalty=beta, num_return_sequences=beams, output_attentions=True, **settings)
    assert ranked.sequences.shape[0] == ids.shape[0] * beams
    lengths = set()
    for b in range(ids.shape[0]):
        candidates = {tuple(plain.sequences[b * beams + k].tolist()): float(plain.sequences_scores[b * beams + k])
                      for k in range(beams)}
        scores = ranked.sequences_scores[b * beams : (b + 1) * beams].tolist()
        assert scores == sorted(scores, reverse=True)
        for k in range(beams):
            row = b * beams + k
            generated = ranked.sequences[row, 1:].tolist()
            ends = [t for t, token in enumerate(generated) if token in eos]
            steps = ends[0] + 1 if ends else len(generated)
            lengths.add(steps)
            coverage = _wu_coverage_by_hand(ranked.copy_attentions[row], mask[b], steps)
            expected = candidates[tuple(ranked.sequences[row].tolist())] + beta * coverage
            assert ranked.sequences_scores[row].item() == pytest.approx(expected, abs=1e-4)
    assert len(lengths) > 1
    best = model.generate(ids, coverage_penalty=beta, attention_mask=mask, max_new_tokens=8, min_new_tokens=3,
                          num_beams=beams, length_penalty=0.6, eos_token_id=eos)
    torch.testing.assert_close(best, ranked.sequences[::beams, : best.shape[1]])


def test_coverage_penalty_needs_beam_search_and_a_copy_model() -> None:
    model = _coverage_models()["pointer-generator"]
    ids, mask = padded_sources()
    for settings in ({"num_beams": 1}, {"num_beams": 3, "do_sample": True}, {"num_beams": 2, "num_return_sequences": 3}):
        with pytest.raises(ValueError, match="re-ranks the finished hypotheses of beam search"):
            model.generate(ids, attention_mask=mask, max_new_tokens=3, coverage_penalty=0.5, **settings)
    with pytest.raises(ValueError, match="coverage_penalty=-1.0"):
        model.generate(ids, attention_mask=mask, max_new_tokens=3, num_beams=3, coverage_penalty=-1.0)
    without_copy = build_rnn({"copy_mechanism": False})
    with pytest.raises(ValueError, match="copy_mechanism=False"):
        without_copy.generate(ids, attention_mask=mask, max_new_tokens=3, num_beams=3, coverage_penalty=0.5)


def test_rnn_copy_outputs_match_the_attention_generate_collected() -> None:
    """For the RNN the copy attention is the decoder's attention, which generate() also collects step by step."""
    model = build_rnn(SEE, uniform_init_range=0.3)
    ids, mask = padded_sources()
    result = model.generate(ids, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                            output_attentions=True, return_dict_in_generate=True)
    collected = torch.cat([step[0][:, 0] for step in result.cross_attentions], dim=1)  # (B, T, S)
    torch.testing.assert_close(result.copy_attentions, collected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["pointer-generator", "rnn-see"])
def test_transition_scores_work_on_the_extended_vocabulary(name: str) -> None:
    model = _coverage_models()[name]
    model.config.unk_token_id = 3
    ids, mask = padded_sources()
    extended = ids.clone()
    extended[:, 0] = VOCAB  # one source word outside the vocabulary per row
    kwargs = {"source_ids": extended, "num_source_oovs": 1, "attention_mask": mask, "max_new_tokens": 5,
              "return_dict_in_generate": True, "output_scores": True}
    greedy = model.generate(ids, do_sample=False, **kwargs)
    assert greedy.scores[0].shape[-1] == VOCAB + 1
    scores = model.compute_transition_scores(greedy.sequences, greedy.scores, normalize_logits=True)
    expected = torch.stack(
        [torch.log_softmax(step, dim=-1).gather(1, greedy.sequences[:, t + 1 : t + 2])[:, 0]
         for t, step in enumerate(greedy.scores)], dim=1
    )
    torch.testing.assert_close(scores, expected)
    beams = model.generate(ids, num_beams=3, length_penalty=0.0, **kwargs)
    summed = model.compute_transition_scores(beams.sequences, beams.scores, beams.beam_indices).sum(-1)
    torch.testing.assert_close(summed, beams.sequences_scores, atol=1e-4, rtol=1e-4)
    # the stock method reshapes by config.vocab_size, which is what breaks on the wider scores
    with pytest.raises(RuntimeError):
        GenerationMixin.compute_transition_scores(model, greedy.sequences, greedy.scores, normalize_logits=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attention_type": "none", "input_feeding": False, "copy_mechanism": True}, "copy_mechanism=True reads"),
        ({"attention_type": "none", "input_feeding": False, "coverage": True}, "coverage=True reads"),
        ({"copy_mechanism": True, "decoder_vocab_size": 50}, "decoder_vocab_size=50 must equal"),
        ({"coverage_loss_weight": 0.5}, "has no effect without coverage"),
        ({"coverage": True, "coverage_loss_weight": -1.0}, "must be >= 0"),
        ({"copy_mechanism": True, "unk_token_id": 500}, "unk_token_id=500 is outside"),
    ],
)
def test_invalid_rnn_copy_configs_raise_value_errors_naming_the_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RNNSeq2SeqConfig(**{**TINY_RNN, **kwargs})


def test_pointer_generator_coverage_weight_without_coverage_raises() -> None:
    with pytest.raises(ValueError, match="has no effect without coverage"):
        PointerGeneratorConfig(**TINY_TRANSFORMER, coverage_loss_weight=1.0)


def test_copy_inputs_on_a_model_without_the_copy_mechanism_are_refused() -> None:
    model = build_rnn({"attention_type": "bahdanau", "input_feeding": False})
    ids, mask = padded_sources()
    with pytest.raises(ValueError, match="copy_mechanism=False"):
        model(input_ids=ids, attention_mask=mask, decoder_input_ids=token_ids(length=3), source_ids=ids)


def test_the_coverage_loss_weight_is_a_training_setting(tmp_path: Path) -> None:
    model = build_rnn({**SEE, "coverage": True, "coverage_loss_weight": 3.0})
    model.save_pretrained(tmp_path)
    saved = (tmp_path / "config.json").read_text()
    assert '"coverage": true' in saved and "coverage_loss_weight" not in saved


@pytest.mark.parametrize("family", ["pointer_generator", "rnn"])
def test_the_speed_paths_take_the_copy_loss_with_coverage_with_the_same_value_and_gradients(family: str) -> None:
    """The plain model takes the loss from the mixture; with the speed paths (`fused_loss=True`) training takes it
    fused with the output layer (`linear_copy_cross_entropy`): the same loss and gradients, coverage loss included."""

    def model() -> torch.nn.Module:
        if family == "rnn":
            return build_rnn({**SEE, "coverage": True, "label_smoothing": 0.1}).train()
        return build("pointer_generator", coverage=True, label_smoothing=0.1, dropout=0.0,
                     attention_dropout=0.0, activation_dropout=0.0).train()

    ids, mask = padded_sources()
    labels = token_ids(batch=ids.shape[0], length=TARGET_LEN)
    labels[0, 4:] = -100
    plain, fused = model(), apply_speed_paths(model())
    assert fused.config.fused_loss
    outputs = [model(input_ids=ids, attention_mask=mask, labels=labels) for model in (fused, plain)]
    assert outputs[0].logits is None and outputs[1].logits is not None  # the fused loss builds no mixture
    for output in outputs:
        output.loss.backward()
    torch.testing.assert_close(outputs[0].loss, outputs[1].loss, atol=1e-5, rtol=1e-5)
    for (name, got), want in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-5, rtol=1e-4, msg=name)
