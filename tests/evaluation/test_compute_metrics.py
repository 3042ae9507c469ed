"""build_compute_metrics on a real tokenizer, shaped like Seq2SeqTrainer(predict_with_generate=True) output."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from tokenizers import Tokenizer, models
from transformers import EvalPrediction, PreTrainedTokenizerFast

from hf_encdec.evaluation import build_compute_metrics, corpus_scores

REFERENCES = ["the cat sat on the mat", "a dog ran in the park", "my friend reads the book"]
HYPOTHESES = ["the cat sat on a mat", "a dog ran in the park", "my friend the book"]


def _pad(rows: list[list[int]], value: int) -> np.ndarray:
    width = max(len(row) for row in rows)
    return np.array([row + [value] * (width - len(row)) for row in rows], dtype=np.int64)


def _labels(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> np.ndarray:
    """Target ids + `</s>`, padded with -100 as DataCollatorForSeq2Seq does."""
    rows = [tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id] for text in texts]
    return _pad(rows, -100)


def _generated(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> np.ndarray:
    """What generate returns: decoder start `<s>`, tokens, `</s>`, then pad after finished sequences."""
    rows = [
        [tokenizer.bos_token_id] + tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
        for text in texts
    ]
    return _pad(rows, tokenizer.pad_token_id)


def test_scores_match_corpus_scores_on_decoded_text(word_tokenizer: PreTrainedTokenizerFast) -> None:
    compute_metrics = build_compute_metrics(word_tokenizer)
    predictions = _generated(word_tokenizer, HYPOTHESES)
    result = compute_metrics(EvalPrediction(predictions=predictions, label_ids=_labels(word_tokenizer, REFERENCES)))

    expected = corpus_scores(HYPOTHESES, REFERENCES)
    assert 0.0 < expected["bleu"] < 100.0
    assert set(result) == {"bleu", "chrf", "gen_len"}
    assert result["bleu"] == pytest.approx(expected["bleu"])
    assert result["chrf"] == pytest.approx(expected["chrf"])
    # gen_len counts every non-pad token of a generated row, <s> and </s> included.
    expected_len = np.mean([len(text.split()) + 2 for text in HYPOTHESES])
    assert result["gen_len"] == pytest.approx(expected_len)


def test_perfect_predictions_score_100(word_tokenizer: PreTrainedTokenizerFast) -> None:
    compute_metrics = build_compute_metrics(word_tokenizer)
    prediction = EvalPrediction(
        predictions=_generated(word_tokenizer, REFERENCES), label_ids=_labels(word_tokenizer, REFERENCES)
    )
    result = compute_metrics(prediction)
    assert result["bleu"] == pytest.approx(100.0)
    assert result["chrf"] == pytest.approx(100.0)


def test_minus_100_in_predictions_is_treated_as_padding(word_tokenizer: PreTrainedTokenizerFast) -> None:
    # The Trainer pads predictions of different batches to one width with -100.
    compute_metrics = build_compute_metrics(word_tokenizer)
    labels = _labels(word_tokenizer, REFERENCES)
    predictions = _generated(word_tokenizer, HYPOTHESES)
    padded = np.concatenate([predictions, np.full((predictions.shape[0], 4), -100)], axis=1)
    plain = compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels))
    with_minus_100 = compute_metrics(EvalPrediction(predictions=padded, label_ids=labels))
    assert with_minus_100 == pytest.approx(plain)


def test_tuple_predictions_use_the_generated_ids(word_tokenizer: PreTrainedTokenizerFast) -> None:
    compute_metrics = build_compute_metrics(word_tokenizer)
    labels = _labels(word_tokenizer, REFERENCES)
    predictions = _generated(word_tokenizer, HYPOTHESES)
    extra = np.zeros((3, 2, 5), dtype=np.float32)  # e.g. another model output the Trainer gathered
    from_tuple = compute_metrics(EvalPrediction(predictions=(predictions, extra), label_ids=labels))
    from_array = compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels))
    assert from_tuple == pytest.approx(from_array)


def test_ids_outside_the_vocabulary_do_not_crash(
    word_tokenizer: PreTrainedTokenizerFast, caplog: pytest.LogCaptureFixture
) -> None:
    # A pointer-generator emits extended-vocabulary ids >= len(tokenizer) for copied source words.
    compute_metrics = build_compute_metrics(word_tokenizer)
    labels = _labels(word_tokenizer, REFERENCES)
    predictions = _generated(word_tokenizer, REFERENCES)
    predictions[0, 2] = len(word_tokenizer) + 5
    predictions[1, 1] = -7
    with caplog.at_level(logging.WARNING, logger="hf_encdec.evaluation.metrics"):
        result = compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels))
    # The replaced tokens count as missing words: lower than perfect, but still well above zero.
    assert 50.0 < result["bleu"] < 100.0
    assert "2 predicted id(s) outside the tokenizer vocabulary" in caplog.text


def test_logits_instead_of_ids_raise(word_tokenizer: PreTrainedTokenizerFast) -> None:
    compute_metrics = build_compute_metrics(word_tokenizer)
    logits = np.zeros((3, 4, len(word_tokenizer)), dtype=np.float32)
    with pytest.raises(ValueError, match="predict_with_generate"):
        compute_metrics(EvalPrediction(predictions=logits, label_ids=_labels(word_tokenizer, REFERENCES)))


def test_missing_labels_raise(word_tokenizer: PreTrainedTokenizerFast) -> None:
    compute_metrics = build_compute_metrics(word_tokenizer)
    with pytest.raises(ValueError, match="labels"):
        compute_metrics(EvalPrediction(predictions=_generated(word_tokenizer, HYPOTHESES), label_ids=None))


def test_tokenizer_without_pad_token_is_rejected() -> None:
    bare = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bare, unk_token="<unk>")
    with pytest.raises(ValueError, match="pad token"):
        build_compute_metrics(tokenizer)
