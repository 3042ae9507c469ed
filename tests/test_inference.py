"""`translate()` and the `seq2seq-generation` pipeline it wraps: same outputs as `generate()`, input order kept,
every returned sequence of every input, truncation warnings and the progress bar."""

from __future__ import annotations

import logging
import random

import pytest
from transformers import PreTrainedModel, PreTrainedTokenizerFast, pipeline

import hf_encdec  # noqa: F401 - registers the seq2seq-generation task
from helpers import build, word_level_tokenizer
from hf_encdec.inference import translate

WORDS = [f"w{i}" for i in range(94)]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return word_level_tokenizer(WORDS)


@pytest.fixture(scope="module")
def model() -> PreTrainedModel:
    """A tiny copy model: untrained, it still gives different outputs for different sources."""
    return build("pointer_generator")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(0)
    return [" ".join(f"w{rng.randrange(5, 94)}" for _ in range(rng.randrange(1, 12))) for _ in range(9)]


def _generate_one(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, text: str, **kwargs: object) -> str:
    output = model.generate(**tokenizer(text, return_tensors="pt"), do_sample=False, **kwargs)
    return tokenizer.decode(output[0], skip_special_tokens=True).strip()


@pytest.mark.parametrize("batch_size", [1, 4])
def test_translate_equals_generate_in_input_order(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: list[str], batch_size: int
) -> None:
    expected = [_generate_one(model, tokenizer, text, num_beams=2, max_new_tokens=6) for text in texts]
    assert len(set(expected)) > 3, "the model should tell the sources apart"
    got = translate(model, tokenizer, texts, num_beams=2, max_new_tokens=6, batch_size=batch_size, progress=False)
    assert got == expected


def test_pipeline_keeps_all_returned_sequences_with_their_input_when_batched(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: list[str]
) -> None:
    generate = pipeline("seq2seq-generation", model=model, tokenizer=tokenizer)
    settings = {"num_beams": 3, "num_return_sequences": 2, "max_new_tokens": 4}
    one_by_one = [generate(text, **settings) for text in texts[:3]]
    batched = generate(texts[:3], batch_size=2, **settings)
    assert [len(sequences) for sequences in batched] == [2, 2, 2]
    assert batched == one_by_one
    best = _generate_one(model, tokenizer, texts[0], num_beams=3, max_new_tokens=4)
    assert one_by_one[0][0]["generated_text"] == best


def test_translate_cuts_sources_to_max_source_length_with_a_warning(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    long_sources = [text for text in texts if len(text.split()) >= 4]
    with caplog.at_level(logging.WARNING, logger="hf_encdec.inference"):
        got = translate(model, tokenizer, long_sources, max_source_length=3, max_new_tokens=5, progress=False)
    assert f"{len(long_sources)} source(s) were cut to 3 tokens" in caplog.text
    # Three tokens: the first two words and </s>, as the tokenizer truncates.
    expected = [_generate_one(model, tokenizer, " ".join(text.split()[:2]), max_new_tokens=5) for text in long_sources]
    assert got == expected


def test_translate_shows_a_progress_bar_and_rejects_a_single_string(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    translate(model, tokenizer, texts[:5], max_new_tokens=2, batch_size=2, progress=True)
    bar = capsys.readouterr().err
    assert "translating" in bar and "5/5" in bar
    with pytest.raises(TypeError, match="list of strings"):
        translate(model, tokenizer, "w5 w6")  # type: ignore[arg-type]
    assert translate(model, tokenizer, [], progress=False) == []

