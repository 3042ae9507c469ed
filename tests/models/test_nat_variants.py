"""The NAT family's variants (issue 31): the CTC decoder over the upsampled source, glancing training, de-duplication
and noisy parallel decoding with an autoregressive re-scorer."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from hf_encdec.data import train_tokenizer
from hf_encdec.models.configuration_nat import NATConfig
from hf_encdec.models.configuration_transformer import TransformerConfig
from hf_encdec.models.modeling_nat import NATForConditionalGeneration
from hf_encdec.models.modeling_transformer import TransformerForConditionalGeneration
from hf_encdec.models.nat_decoding import ctc_collapse, ctc_shown_positions, drop_repeats
from hf_encdec.models.nat_training import ctc_best_alignment, ctc_loss, ctc_needed_positions, draw_glimpses
from variants import TINY_TRANSFORMER

MASK, PAD, START, EOS = 4, 0, 1, 2
CTC = {"decoder_input_type": "upsampled_source"}


def _model(**overrides: Any) -> NATForConditionalGeneration:
    torch.manual_seed(0)
    config = NATConfig(**{**TINY_TRANSFORMER, "encoder_layers": 2, "decoder_layers": 2, "mask_token_id": MASK,
                          "max_position_embeddings": 32, **overrides})
    return NATForConditionalGeneration(config).eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sources of 7, 7 and 3 tokens and targets of 5, 3 and 5 tokens (each + EOS, then -100)."""
    generator = torch.Generator().manual_seed(3)
    source = torch.randint(5, 99, (3, 7), generator=generator)
    mask = torch.ones_like(source)
    mask[2, 3:] = 0
    labels = torch.randint(5, 99, (3, 6), generator=generator)
    labels[:, 5] = EOS
    labels[1, 3], labels[1, 4:] = EOS, -100
    return source, mask, labels


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"upsample_factor": 3}, "read by decoder_input_type='upsampled_source' \\(CTC\\) only"),
        ({**CTC, "upsample_factor": 0}, "upsample_factor must be an integer >= 1, got 0"),
        ({"glancing_ratio": 1.5}, "glancing_ratio must lie in \\[0, 1\\]"),
    ],
)
def test_bad_variant_configs_raise_naming_the_value(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _model(**overrides)


def _brute_force_alignment(log_probs: torch.Tensor, target: list[int], symbols: list[int]) -> list[int]:
    """The most likely path over `symbols` of (U, V) log-probabilities that merges to `target`, by trying them all."""
    best: tuple[float, list[int]] = (float("-inf"), [])
    for path in itertools.product(symbols, repeat=log_probs.shape[0]):
        merged = [token for i, token in enumerate(path) if token != MASK and (i == 0 or token != path[i - 1])]
        if merged == target:
            best = max(best, (sum(float(log_probs[u, token]) for u, token in enumerate(path)), list(path)))
    return best[1]


def test_the_best_ctc_alignment_is_the_most_likely_path_that_merges_to_the_target() -> None:
    symbols = [MASK, 5, 6]  # blank and two tokens; every other token is left impossible
    log_probs = torch.full((3, 6, 7), float("-inf"))
    log_probs[..., symbols] = torch.randn(3, 6, 3, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    targets = torch.tensor([[5, 6, 0], [5, 5, 6], [6, 6, 6]])
    lengths, positions = torch.tensor([2, 3, 3]), torch.tensor([6, 6, 5])
    # row 1 repeats a token (a blank must part the two), row 2 needs all 5 of its positions
    assert ctc_needed_positions(targets, lengths).tolist() == [2, 4, 5]
    paths = ctc_best_alignment(log_probs, positions, targets, lengths, blank=MASK)
    for row in range(3):
        width = int(positions[row])
        expected = _brute_force_alignment(log_probs[row, :width], targets[row, : lengths[row]].tolist(), symbols)
        assert paths[row, :width].tolist() == expected, row
        assert (paths[row, width:] == MASK).all()


def test_the_ctc_loss_is_torchs_per_target_token_and_leaves_out_rows_without_an_alignment() -> None:
    log_probs = torch.randn(6, 3, 9, generator=torch.Generator().manual_seed(1)).log_softmax(-1)  # (U, B, V)
    targets = torch.tensor([[5, 6, 7], [5, 5, 5], [8, 8, 0]])
    lengths, positions = torch.tensor([3, 3, 2]), torch.tensor([6, 4, 6])  # row 1 needs 5 positions, has 4
    loss, feasible = ctc_loss(log_probs, positions, targets, lengths, blank=MASK)
    assert feasible.tolist() == [True, False, True]
    expected = torch.stack([
        F.ctc_loss(log_probs[:, [row]], targets[[row]], positions[[row]], lengths[[row]], blank=MASK) for row in (0, 2)
    ]).mean()  # reduction "mean" divides each row by its target length
    torch.testing.assert_close(loss, expected)
    none, feasible = ctc_loss(log_probs[:, [1]], positions[[1]], targets[[1]], lengths[[1]], blank=MASK)
    assert not feasible.any() and float(none) == 0.0


def test_ctc_training_skips_and_counts_pairs_the_upsampled_source_is_too_short_for() -> None:
    source, mask, labels = _batch()  # the third source has 3 tokens, 6 positions at factor 2, for 5 target tokens
    model = _model(**CTC).train()
    loss = model(input_ids=source, attention_mask=mask, labels=labels).loss
    assert torch.isfinite(loss) and model.ctc_skipped_pairs == 0
    model = _model(**CTC, upsample_factor=1).train()
    loss = model(input_ids=source, attention_mask=mask, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss) and model.ctc_skipped_pairs == 1


def test_the_ctc_decoder_reads_each_source_embedding_factor_times() -> None:
    source, mask, _ = _batch()
    model = _model(**CTC, upsample_factor=3)
    inputs = model.upsampled_source(source, mask)
    assert inputs.embeds.shape[:2] == (3, 21) and inputs.mask.sum(1).tolist() == [21, 21, 9]
    embeddings = model.model.encoder.embed_tokens(source)
    torch.testing.assert_close(inputs.embeds[0, 6:9], embeddings[0, 2].expand(3, -1))
    assert (inputs.embeds[2, 9:] == 0).all()


def test_ctc_decoding_takes_the_best_token_of_each_position_merges_repeats_and_drops_blanks() -> None:
    tokens = torch.tensor([[MASK, 5, 5, MASK, 5, 6, MASK, MASK], [7, 7, 7, MASK, MASK, 8, 9, 9]])
    real = torch.tensor([[True] * 8, [True] * 5 + [False] * 3])
    out = ctc_collapse(tokens, real, blank=MASK, eos_token_id=EOS, pad_token_id=PAD, longest=10)
    assert out[:, :4].tolist() == [[5, 5, 6, EOS], [7, EOS, PAD, PAD]]
    short = ctc_collapse(tokens, torch.ones_like(real), blank=MASK, eos_token_id=EOS, pad_token_id=PAD, longest=3)
    assert short.tolist() == [[5, 5, EOS], [7, 8, EOS]]  # cut to longest - 1 tokens, then EOS
    source, mask, _ = _batch()
    model = _model(**CTC)
    generated = model.generate(source, attention_mask=mask)
    inputs = model.upsampled_source(source, mask)
    logits = model.lm_head(model._decode(inputs, model._encode(source, mask), mask).last_hidden_state)
    logits[..., [PAD, START, EOS]] = float("-inf")
    expected = ctc_collapse(logits.argmax(-1), inputs.mask, blank=MASK, eos_token_id=EOS, pad_token_id=PAD, longest=32)
    assert generated[:, 0].eq(START).all()
    assert generated[:, 1:].tolist() == expected[:, : generated.shape[1] - 1].tolist()


def test_a_ctc_refinement_round_keeps_what_was_shown_and_adds_the_most_confident_real_positions() -> None:
    confidence = torch.tensor([[-0.1, -3.0, -0.5, -2.0, -0.2, -9.0], [-0.3, -0.1, -4.0, -0.2, -0.0, -0.0]])
    real = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    shown = torch.tensor([[False, True, False, False, False, False], [False] * 6])
    chosen = ctc_shown_positions(confidence, real, shown, torch.tensor([3, 2]))
    # row 0: position 1 stays shown although unsure, then the two most confident; row 1: never the padding
    assert chosen.tolist() == [[True, True, False, False, True, False], [False, True, False, True, False, False]]


def test_a_glancing_trained_ctc_model_refines_its_own_most_confident_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    source, mask, _ = _batch()
    # untied: a random model with a tied output layer predicts the token it reads, and shows nothing new
    model = _model(**CTC, glancing_ratio=0.5, tie_word_embeddings=False, share_encoder_decoder_embeddings=False)
    one_pass = model.generate(source, attention_mask=mask)
    assert torch.equal(model.generate(source, attention_mask=mask, num_iterations=1), one_pass)
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    decoder = model.model.forward

    def recording(**kwargs: Any) -> Any:
        out = decoder(**kwargs)
        logits = model.lm_head(out.last_hidden_state).float()
        logits[..., [PAD, START, EOS]] = float("-inf")
        calls.append((kwargs["decoder_inputs_embeds"], logits.log_softmax(-1)))
        return out

    monkeypatch.setattr(model.model, "forward", recording)
    refined = model.generate(source, attention_mask=mask, num_iterations=3)
    assert len(calls) == 3
    inputs = model.upsampled_source(source, mask)
    confidence, tokens = calls[0][1].max(-1)
    torch.testing.assert_close(calls[0][0], inputs.embeds)
    real = inputs.mask
    shown = torch.zeros_like(real)
    for round_, (embeds, log_probs) in enumerate(calls[1:], start=1):
        count = real.sum(1) * round_ // 3  # 21 positions: 7 then 14 shown; the 3-token row: 2 then 4
        shown = ctc_shown_positions(confidence, real, shown, count)
        assert shown.sum(1).tolist() == count.tolist()
        torch.testing.assert_close(embeds[shown], model.model.decoder.embed_tokens(tokens)[shown])
        torch.testing.assert_close(embeds[~shown], inputs.embeds[~shown])
        new_confidence, new_tokens = log_probs.max(-1)
        tokens, confidence = torch.where(shown, tokens, new_tokens), torch.where(shown, confidence, new_confidence)
    expected = ctc_collapse(tokens, real, blank=MASK, eos_token_id=EOS, pad_token_id=PAD, longest=32)
    assert refined[:, 1:].tolist() == expected[:, : refined.shape[1] - 1].tolist()
    with pytest.raises(ValueError, match="never saw in training"):
        model.generate(source, attention_mask=mask, decoder_input_ids=torch.tensor([[START, 5]] * 3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_iterations": 4}, "never saw in training.*glancing_ratio > 0 to refine"),
        ({"length_beam_size": 2}, "finds the length itself in one pass"),
        ({"target_length": 4}, "finds the length itself in one pass"),
        ({"deduplicate": True}, "merges repeats itself"),
        ({"decoder_input_ids": torch.tensor([[START, 5]] * 3)}, "never saw in training"),
    ],
)
def test_ctc_decoding_refuses_the_length_and_iteration_settings(kwargs: dict, message: str) -> None:
    source, mask, _ = _batch()
    with pytest.raises(ValueError, match=message):
        _model(**CTC).generate(source, attention_mask=mask, **kwargs)


def test_glimpses_reveal_the_ratio_of_the_wrong_tokens_at_random_real_positions() -> None:
    torch.manual_seed(0)
    wrong = torch.tensor([[True, True, True, True, False, False], [True, False, False, False, False, False]])
    real = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    shown = draw_glimpses(wrong, real, 0.5)
    assert shown.sum(1).tolist() == [2, 0] and not (shown & ~real).any()  # round(0.5 x 4), round(0.5 x 1)
    counts = torch.stack([draw_glimpses(wrong, real, 0.5)[0] for _ in range(600)]).float().mean(0)
    assert ((counts - 2 / 6).abs() < 0.07).all()  # uniform over the row's positions, wrong or right


@pytest.mark.parametrize("overrides", [{}, {"decoder_input_type": "copy_source"}, CTC])
def test_glancing_shows_the_reference_at_the_drawn_positions_and_takes_the_loss_on_the_others(
    overrides: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hf_encdec.models.modeling_nat as modeling_nat

    source, mask, labels = _batch()
    model = _model(**overrides, glancing_ratio=1.0).train()
    model.config.dropout = 0.0
    drawn: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording(wrong: torch.Tensor, real: torch.Tensor, ratio: float) -> torch.Tensor:
        shown = draw_glimpses(wrong, real, ratio)
        drawn.append((wrong & real, shown))
        return shown

    monkeypatch.setattr(modeling_nat, "draw_glimpses", recording)
    encoded = model._encode(source, mask)
    inputs = model._training_inputs(source, mask, labels, encoded)
    (wrong, shown), = drawn
    assert shown.sum(1).tolist() == wrong.sum(1).tolist()  # ratio 1: as many shown as the first pass got wrong
    assert inputs.predicted.tolist() == (inputs.mask & ~shown).tolist()
    gold = labels.masked_fill(labels == -100, PAD)
    if inputs.ids is not None:  # the CMLM decoder reads the reference where shown, the mask elsewhere
        assert torch.equal(inputs.ids[shown], gold[shown]) and (inputs.ids[inputs.mask & ~shown] == MASK).all()
    elif not model.config.is_ctc:
        torch.testing.assert_close(inputs.embeds[shown], model.model.decoder.embed_tokens(gold)[shown])


def test_without_glancing_the_cmlm_masking_is_unchanged() -> None:
    source, mask, labels = _batch()
    model = _model().train()
    inputs = model._training_inputs(source, mask, labels, model._encode(source, mask))
    assert inputs.ids is not None and (inputs.ids == MASK).sum() >= 3  # one masked position a row at least


def test_deduplication_merges_repeated_ids_and_keeps_directives_and_repeats_the_source_has() -> None:
    tokens = torch.tensor([[5, 5, 6, 7, 7, 7, EOS, PAD], [8, 9, 8, 8, EOS, PAD, PAD, PAD]])
    assert drop_repeats(tokens, PAD).tolist() == [[5, 6, 7, EOS, 0, 0, 0, 0], [8, 9, 8, EOS, 0, 0, 0, 0]]
    source = torch.tensor([[7, 7, 9], [5, 5, 9]])  # the first source repeats 7, so the first output keeps its 7s
    assert drop_repeats(tokens, PAD, source).tolist() == [[5, 6, 7, 7, 7, EOS, 0, 0], [8, 9, 8, EOS, 0, 0, 0, 0]]
    texts = ["Datei %s nach %s kopiert", "%s %s", "Zeile %d von %d: %s %s", "-- -- --"] * 20
    tokenizer = train_tokenizer(iter(texts), vocab_size=300)
    encoded = [torch.tensor([tokenizer(text)["input_ids"]]) for text in texts[:4]]
    for text, ids in zip(texts, encoded):
        assert tokenizer.decode(drop_repeats(ids, tokenizer.pad_token_id, ids)[0], skip_special_tokens=True) == text
    # without the source, the %s directives stay (their ids differ), a repeated ` --` is merged
    kept = [tokenizer.decode(drop_repeats(ids, tokenizer.pad_token_id)[0], skip_special_tokens=True) for ids in encoded]
    assert kept == texts[:3] + ["-- --"]


def test_deduplicate_is_a_generation_setting_of_the_length_predicting_variants() -> None:
    source, mask, _ = _batch()
    model = _model()
    plain = model.generate(source, attention_mask=mask, num_iterations=1, target_length=6)
    merged = model.generate(source, attention_mask=mask, num_iterations=1, target_length=6, deduplicate=True)
    expected = drop_repeats(plain[:, 1:], PAD)
    assert merged[:, 1:].tolist() == expected[:, : merged.shape[1] - 1].tolist()
    model.generation_config.deduplicate = True
    assert torch.equal(model.generate(source, attention_mask=mask, num_iterations=1, target_length=6), merged)


def _teacher(vocab_size: int = TINY_TRANSFORMER["vocab_size"]) -> TransformerForConditionalGeneration:
    torch.manual_seed(2)  # a teacher whose choice differs from the NAT's own (checked in the test)
    config = TransformerConfig(**{**TINY_TRANSFORMER, "vocab_size": vocab_size, "encoder_layers": 1, "decoder_layers": 1})
    return TransformerForConditionalGeneration(config).eval()


def test_noisy_parallel_decoding_keeps_the_candidate_the_teacher_scores_best() -> None:
    source, mask, _ = _batch()
    model, teacher = _model(), _teacher()
    candidates = [model.generate(source, attention_mask=mask, num_iterations=1, target_length=n) for n in (3, 5, 7)]
    scores = []
    for tokens in candidates:
        labels = tokens[:, 1:].masked_fill(tokens[:, 1:] == PAD, -100)
        logits = teacher(input_ids=source, attention_mask=mask, labels=labels).logits.log_softmax(-1)
        chosen = logits.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1) * (labels != -100)
        scores.append(chosen.sum(1) / (labels != -100).sum(1))
    best = torch.stack(scores).argmax(0)
    model.length_logits = lambda *args: torch.zeros(3, 33).index_fill_(1, torch.tensor([3, 5, 7]), 1.0)
    own = model.generate(source, attention_mask=mask, num_iterations=1, length_beam_size=3)
    assert [(own[row] != PAD).sum() - 1 for row in range(3)] != [(3, 5, 7)[int(i)] for i in best]  # the test can tell
    rescored = model.generate(source, attention_mask=mask, num_iterations=1, length_beam_size=3, rescorer=teacher)
    for row in range(3):
        expected = candidates[int(best[row])][row]
        expected = expected[expected != PAD]
        assert rescored[row][rescored[row] != PAD].tolist() == expected.tolist(), row


def test_a_rescorer_must_be_autoregressive_with_the_nats_vocabulary() -> None:
    source, mask, _ = _batch()
    model = _model()
    with pytest.raises(ValueError, match="target vocabulary of 120 tokens and this NAT 99"):
        model.generate(source, attention_mask=mask, length_beam_size=2, rescorer=_teacher(120))
    with pytest.raises(ValueError, match="must be an autoregressive encoder-decoder model"):
        model.generate(source, attention_mask=mask, length_beam_size=2, rescorer=_model())
