"""Scheduled sampling (Bengio et al. 2015): the schedules' formulas, p = 0 is exactly teacher forcing, p = 1 with
argmax is free-running greedy decoding, intermediate p mixes per token, and the TrainerCallback drives the model's
probability along the schedule and restores it after training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainerState, TrainingArguments

from helpers import build
from hf_encdec import DecoderConfig, EncoderConfig, TransformerConfig
from hf_encdec.models.configuration_nat import NATConfig
from hf_encdec.models.modeling_common import draw_tokens
from hf_encdec.training import SamplingSchedule, ScheduledSamplingCallback
from hf_encdec.models.rnn_layers import DecoderSteps
from rnn_helpers import build_rnn, padded_sources, token_ids
from variants import TARGET_LEN, TINY_TRANSFORMER


def test_schedules_follow_the_paper() -> None:
    linear = SamplingSchedule("linear", k=1.0, c=0.01, epsilon=0.2)
    assert [linear.teacher_forcing_probability(i) for i in (0, 30, 80, 500)] == pytest.approx([1.0, 0.7, 0.2, 0.2])
    exponential = SamplingSchedule("exponential", k=0.99)
    assert exponential.teacher_forcing_probability(100) == pytest.approx(0.99**100)
    inverse_sigmoid = SamplingSchedule("inverse_sigmoid", k=50.0)
    assert inverse_sigmoid.teacher_forcing_probability(200) == pytest.approx(50 / (50 + math.exp(4)))
    assert inverse_sigmoid.sampling_probability(10**6) == 1.0  # no overflow far out
    for schedule in (linear, exponential, inverse_sigmoid):
        probabilities = [schedule.sampling_probability(i) for i in range(0, 2000, 50)]
        assert probabilities == sorted(probabilities) and 0.0 <= probabilities[0] < 0.05
    capped = SamplingSchedule("exponential", k=0.9, max_probability=0.25)
    assert capped.sampling_probability(1000) == 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "cosine"}, "kind='cosine' is not supported"),
        ({"kind": "exponential", "k": 1.5}, "needs 0 < k < 1"),
        ({"kind": "inverse_sigmoid", "k": 0.5}, "needs k >= 1"),
        ({"kind": "linear", "epsilon": 1.0}, "0 <= epsilon < 1"),
    ],
)
def test_bad_schedules_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamplingSchedule(**kwargs)


def _training_loss(model: torch.nn.Module, probability: float, seed: int = 3) -> torch.Tensor:
    """The training loss on one fixed batch, with the coin flips and samples seeded."""
    model.config.scheduled_sampling_probability = probability
    torch.manual_seed(0)
    ids, mask = padded_sources()
    labels = token_ids(length=TARGET_LEN)
    labels[1, 4:] = -100
    torch.manual_seed(seed)
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss


@pytest.mark.parametrize("attention_type", ["none", "luong_general"])
def test_probability_zero_is_exactly_teacher_forcing(attention_type: str) -> None:
    model = build_rnn({"attention_type": attention_type, "input_feeding": False}, uniform_init_range=0.3).train()
    teacher_forced = _training_loss(model, 0.0)
    stepped = _training_loss(model, 1e-9)  # steps one token at a time, but (almost surely) feeds the gold tokens
    assert torch.equal(_training_loss(model, 0.0), teacher_forced)
    torch.testing.assert_close(stepped, teacher_forced, atol=1e-6, rtol=1e-6)
    assert abs(_training_loss(model, 1.0) - teacher_forced) > 1e-4  # feeding predictions changes the loss (noise: 1e-6)


@pytest.mark.contract
@pytest.mark.parametrize(
    ("attention_type", "copy"),
    [("bahdanau", False), ("luong_dot", False), ("none", False), ("bahdanau", True), ("luong_general", True)],
    ids=["bahdanau", "luong_dot", "none", "bahdanau-copy-coverage", "luong_general-copy-coverage"],
)
def test_probability_one_with_argmax_is_free_running_greedy_decoding(attention_type: str, copy: bool) -> None:
    """The pointer-generator's predictions come from its mixture (with coverage), as in generate()."""
    feeding = attention_type.startswith("luong")
    switches = {"copy_mechanism": True, "coverage": True} if copy else {}
    model = build_rnn(
        {"attention_type": attention_type, "input_feeding": feeding, **switches}, fused_loss=False,
        uniform_init_range=0.3, scheduled_sampling_mode="argmax", scheduled_sampling_probability=1.0,
    ).train()  # dropout is 0, so training mode changes nothing but the feeding
    ids, mask = padded_sources()
    labels = token_ids(length=TARGET_LEN)  # only its length matters: every fed token is the model's own
    logits = model(input_ids=ids, attention_mask=mask, labels=labels, skip_logits=False).logits
    model.eval()
    greedy = model.generate(
        ids, attention_mask=mask, max_new_tokens=TARGET_LEN, min_new_tokens=TARGET_LEN, do_sample=False,
        output_logits=True, return_dict_in_generate=True,
    )
    torch.testing.assert_close(logits, torch.stack(greedy.logits, dim=1), atol=1e-5, rtol=1e-5)
    assert not torch.equal(greedy.sequences[:, 1:], labels)


def test_intermediate_probability_mixes_gold_and_predicted_tokens_per_token() -> None:
    model = build_rnn(scheduled_sampling_mode="argmax")
    features = torch.randn(4000, model.lm_head.in_features)
    predicted = model.lm_head(features).argmax(-1)
    gold = (predicted + 1) % model.config.decoder_vocab_size  # always differs from the prediction
    torch.manual_seed(0)
    previous = DecoderSteps(features[:, None], None, None, None, None, None, None)  # only the features are read
    fed = model.scheduled_sampler(0.3)(gold, previous)
    assert torch.all((fed == gold) | (fed == predicted))
    assert (fed == predicted).float().mean().item() == pytest.approx(0.3, abs=0.03)
    sampled = build_rnn(scheduled_sampling_mode="sample").scheduled_sampler(1.0)(gold, previous)
    assert 0 < (sampled != predicted).sum() < len(gold)  # draws from the distribution, not its argmax


def test_sampled_tokens_follow_the_softmax_of_the_scores() -> None:
    """`draw_tokens` in sample mode is a categorical draw from softmax(scores): frequencies over 40,000 rows match
    the probabilities (a zero-probability token, -inf, is never drawn), per row as well as overall."""
    torch.manual_seed(0)
    scores = torch.tensor([[0.0, 1.0, float("-inf"), 2.0, -1.0], [3.0, float("-inf"), 0.0, 0.0, 0.0]])
    rows = scores.repeat(20000, 1).view(20000, 2, 5)  # (N, 2, V): two distributions, batched like (B, T, V)
    drawn = draw_tokens(rows, "sample")
    assert drawn.shape == (20000, 2)
    for row in range(2):
        frequencies = torch.bincount(drawn[:, row], minlength=5).float() / 20000
        probabilities = torch.softmax(scores[row], dim=-1)
        assert frequencies[torch.isinf(scores[row])].sum() == 0
        torch.testing.assert_close(frequencies, probabilities, atol=0.01, rtol=0)
    assert torch.equal(draw_tokens(rows, "argmax"), torch.tensor([3, 0]).expand(20000, 2))


def test_gradients_do_not_flow_through_the_sampled_inputs() -> None:
    model = build_rnn({"attention_type": "bahdanau", "input_feeding": False}).train()
    loss = _training_loss(model, 0.5)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


class _RecordProbability(TrainerCallback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.seen.append((state.global_step - 1, model.config.scheduled_sampling_probability))


def test_callback_moves_the_probability_along_the_schedule_and_restores_it(tmp_path: Path) -> None:
    model = build_rnn({"attention_type": "luong_dot"}).train()
    ids = token_ids(batch=24, length=6)
    dataset = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.flip(-1).tolist()})
    callback = ScheduledSamplingCallback("linear", k=1.0, c=0.1, epsilon=0.3)
    recorder = _RecordProbability()
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=9, learning_rate=1e-3, report_to=[],
        use_cpu=True, save_strategy="no", disable_tqdm=True, logging_steps=3,
    )
    Trainer(model=model, args=args, train_dataset=dataset, callbacks=[callback, recorder]).train()
    assert [step for step, _ in recorder.seen] == list(range(9))
    for step, probability in recorder.seen:
        assert probability == pytest.approx(min(0.7, 0.1 * step))
    assert model.config.scheduled_sampling_probability == 0.0  # restored: a saved model decodes as before


def test_callback_refuses_models_without_scheduled_sampling() -> None:
    callback = ScheduledSamplingCallback()
    with pytest.raises(ValueError, match="scheduled_sampling_probability"):
        callback.on_step_begin(None, None, None, model=torch.nn.Linear(2, 2))  # type: ignore[arg-type]


# ---- Transformer decoders: passes (Mihaylova & Martins 2019) -------------------------------------------------------
NO_DROPOUT = {"dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "fused_loss": False}


def _transformer(family: str, **settings: object) -> torch.nn.Module:
    return build(family, **NO_DROPOUT, **settings).train()  # no dropout: training mode changes only the feeding


@pytest.mark.parametrize("family", ["seq2seq", "pointer_generator"])
def test_transformer_probability_changes_the_loss_and_zero_is_teacher_forcing(family: str) -> None:
    model = _transformer(family)
    teacher_forced = _training_loss(model, 0.0)
    model.config.scheduled_sampling_probability = 0.0
    torch.manual_seed(0)
    ids, mask = padded_sources()
    labels = token_ids(length=TARGET_LEN)
    labels[1, 4:] = -100
    assert torch.equal(model(input_ids=ids, attention_mask=mask, labels=labels).loss, teacher_forced)
    assert abs(_training_loss(model, 1.0) - teacher_forced) > 1e-3
    assert torch.equal(_training_loss(model.eval(), 1.0), teacher_forced)  # only while training


@pytest.mark.contract
@pytest.mark.parametrize("family", ["seq2seq", "pointer_generator"])
def test_transformer_probability_one_argmax_and_a_pass_per_token_is_greedy_decoding(family: str) -> None:
    """Pass k fixes input k: with as many passes as target tokens, the last pass reads greedy decoding's tokens."""
    model = _transformer(family, scheduled_sampling_mode="argmax", scheduled_sampling_probability=1.0,
                         scheduled_sampling_passes=TARGET_LEN)
    ids, mask = padded_sources()
    labels = token_ids(length=TARGET_LEN)  # only its length matters
    logits = model(input_ids=ids, attention_mask=mask, labels=labels, skip_logits=False).logits
    greedy = model.eval().generate(
        ids, attention_mask=mask, max_new_tokens=TARGET_LEN, min_new_tokens=TARGET_LEN, do_sample=False,
        output_logits=True, return_dict_in_generate=True,
    )
    torch.testing.assert_close(logits, torch.stack(greedy.logits, dim=1), atol=1e-5, rtol=1e-5)
    two_passes = _transformer(family, scheduled_sampling_mode="argmax", scheduled_sampling_probability=1.0)
    two = two_passes(input_ids=ids, attention_mask=mask, labels=labels, skip_logits=False).logits
    assert not torch.allclose(two, logits, atol=1e-4)  # two passes fix only the first input: not yet greedy


@pytest.mark.parametrize("family", ["seq2seq", "pointer_generator"])
def test_only_the_last_pass_carries_the_loss_and_its_gradient(family: str) -> None:
    """Two passes with p = 1 and argmax = a teacher-forced forward on the first pass's predictions shifted right."""
    sampled = _transformer(family, scheduled_sampling_mode="argmax", scheduled_sampling_probability=1.0)
    reference = _transformer(family)  # the same weights (built from the same seed)
    ids, mask = padded_sources()
    labels = token_ids(length=TARGET_LEN)
    labels[2, 3:] = -100
    loss = sampled(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    with torch.no_grad():
        first = reference(input_ids=ids, attention_mask=mask, labels=labels, skip_logits=False).logits.argmax(-1)
    gold = reference.prepare_decoder_input_ids_from_labels(labels)
    mixed = torch.cat([gold[:, :1], first[:, :-1]], dim=1)
    keep_gold = torch.cat([torch.zeros_like(labels[:, :1], dtype=torch.bool), labels[:, :-1] == -100], dim=1)
    mixed = torch.where(keep_gold, gold, mixed)
    expected = reference(input_ids=ids, attention_mask=mask, decoder_input_ids=mixed, labels=labels).loss
    expected.backward()
    torch.testing.assert_close(loss, expected)
    for (name, got), want in zip(sampled.named_parameters(), reference.parameters()):
        torch.testing.assert_close(got.grad, want.grad, msg=name)


def test_the_callback_drives_the_transformer_and_refuses_models_that_ignore_it() -> None:
    model = _transformer("seq2seq")
    callback = ScheduledSamplingCallback("linear", k=1.0, c=0.25)
    state = TrainerState()
    state.global_step = 2
    callback.on_step_begin(None, state, None, model=model)  # type: ignore[arg-type]
    assert model.config.scheduled_sampling_probability == pytest.approx(0.5)
    for other in (build("decoder"), build("encoder")):
        with pytest.raises(ValueError, match="would ignore it"):
            callback.on_step_begin(None, state, None, model=other)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TransformerConfig(**TINY_TRANSFORMER, scheduled_sampling_probability=1.5), "must be in \\[0, 1\\]"),
        (lambda: TransformerConfig(**TINY_TRANSFORMER, scheduled_sampling_mode="beam"), "mode='beam' is not supported"),
        (lambda: TransformerConfig(**TINY_TRANSFORMER, scheduled_sampling_passes=1), "passes must be >= 2"),
        (lambda: NATConfig(**TINY_TRANSFORMER, mask_token_id=4, scheduled_sampling_probability=0.5), "no effect on the non-autoregressive"),
        (lambda: DecoderConfig(**TINY_TRANSFORMER, scheduled_sampling_probability=0.5), "not a setting of DecoderConfig"),
        (lambda: EncoderConfig(**TINY_TRANSFORMER, coverage=True), "not a setting of EncoderConfig"),
        (lambda: TransformerConfig(**TINY_TRANSFORMER, copy_mechanism=True), "not a setting of TransformerConfig"),
        (lambda: ScheduledSamplingCallback.from_spec("inverse_sigmoid:q=3"), "NAME=VALUE with NAME one of"),
        (lambda: ScheduledSamplingCallback.from_spec("cosine"), "kind='cosine' is not supported"),
    ],
)
def test_settings_without_effect_or_out_of_range_raise(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_scheduled_sampling_settings_never_reach_config_json(tmp_path: Path) -> None:
    model = _transformer("pointer_generator", scheduled_sampling_probability=0.5, scheduled_sampling_passes=3)
    model.save_pretrained(tmp_path)
    assert "scheduled_sampling" not in (tmp_path / "config.json").read_text()


def test_a_family_setting_at_its_inert_value_loads_elsewhere() -> None:
    """A pointer-generator's saved config holds coverage=False: it still loads into the plain Transformer."""
    config = TransformerConfig(**TINY_TRANSFORMER, coverage=False, copy_mechanism=False)
    assert config.vocab_size == TINY_TRANSFORMER["vocab_size"]
