"""`translate()` and the `seq2seq-generation` pipeline it wraps: same outputs as `generate()`, input order kept,
every returned sequence of every input, truncation warnings and the progress bar."""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path

import pytest
import sacrebleu
from transformers import LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast, pipeline

import hf_encdec  # noqa: F401 - registers the seq2seq-generation task
from copying import LoneLeadByte, copying_model
from helpers import build, word_level_tokenizer
from hf_encdec.inference import (
    load_translator,
    trained_on_software_messages,
    translate,
    translate_messages,
    translate_nbest,
    translate_unprotected,
    undecodable_characters,
)
from hf_encdec.localization.placeholders import keeps_placeholders
from hf_encdec.models.configuration_nat import NATConfig
from hf_encdec.models.modeling_nat import NATForConditionalGeneration
from variants import TINY_TRANSFORMER

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
@pytest.mark.parametrize("penalty", [{}, {"coverage_penalty": 0.5}], ids=["plain", "coverage-penalty"])
def test_translate_equals_generate_in_input_order(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: list[str], batch_size: int, penalty: dict
) -> None:
    """Also with Wu et al.'s coverage penalty, whose re-ranking must ignore the padding of batched sources."""
    expected = [_generate_one(model, tokenizer, text, num_beams=2, max_new_tokens=6, **penalty) for text in texts]
    assert len(set(expected)) > 3, "the model should tell the sources apart"
    got = translate(model, tokenizer, texts, num_beams=2, max_new_tokens=6, batch_size=batch_size, progress=False,
                    **penalty)
    assert got == expected


def test_coverage_penalty_on_a_model_without_copy_attention_is_refused(
    tokenizer: PreTrainedTokenizerFast, texts: list[str]
) -> None:
    with pytest.raises(ValueError, match="coverage_penalty re-ranks hypotheses by their copy attention"):
        translate(build("seq2seq"), tokenizer, texts, num_beams=2, coverage_penalty=0.5, progress=False)


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



PROTECTED_WORDS = [f"w{i}" for i in range(88)] + ["%s", "%d", "_w1", "Ö_w2"]  # no `%lu`: it cannot be written


@pytest.fixture(scope="module")
def copier() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    tokenizer = word_level_tokenizer(PROTECTED_WORDS)
    return copying_model(tokenizer), tokenizer


def test_software_messages_keep_layout_and_directives_or_come_back_as_the_source(
    copier: tuple[PreTrainedModel, PreTrainedTokenizerFast], caplog: pytest.LogCaptureFixture
) -> None:
    model, tokenizer = copier
    messages = ["w5 %s w6\n", "\n  -a, --all     w7 w8 w9\n", "w10 %lu", "w11 %d w12 %s"]
    plain = translate(model, tokenizer, messages, protect=False, progress=False)
    assert not plain[0].endswith("\n") and not plain[1].startswith("\n")  # the plain path loses the layout
    counts: Counter[str] = Counter()
    results = translate_messages(model, tokenizer, messages, progress=False, counts=counts)
    assert results[2] is None  # no hypothesis can write %lu
    for message, result in zip(messages, results):
        assert result is None or keeps_placeholders(message, result)
    assert results[0] is not None and results[0].endswith("\n") and "%s" in results[0]
    assert results[1] is not None and results[1].startswith("\n  -a, --all     ") and results[1].endswith("\n")
    assert sum(counts.values()) == 4 and counts["none"] == 1  # four distinct texts (the option cell is kept), one unsolvable
    with caplog.at_level(logging.WARNING, logger="hf_encdec.inference"):
        protected = translate(model, tokenizer, messages, protect=True, progress=False)
    assert "1 of 4 text(s) kept as the source" in caplog.text
    assert protected == [message if result is None else result for message, result in zip(messages, results)]


def test_the_first_hypothesis_that_keeps_the_directives_is_taken(copier: tuple[PreTrainedModel, PreTrainedTokenizerFast]) -> None:
    model, tokenizer = copier
    texts = ["w13 %s w14 %d", "w15 w16 %d", "w17 w18"]
    nbest = translate_nbest(model, tokenizer, texts, num_beams=2, num_return_sequences=2, progress=False)
    got = translate_messages(model, tokenizer, texts, num_beams=2, progress=False)
    for text, hypotheses, result in zip(texts, nbest, got):
        passing = [h for h in hypotheses if h.strip() and keeps_placeholders(text, h)]
        if passing:
            assert result == passing[0]
        else:  # settled by the wider or the constrained search
            assert result is None or keeps_placeholders(text, result)


def test_protection_is_the_default_for_models_trained_on_gettext(copier: tuple[PreTrainedModel, PreTrainedTokenizerFast]) -> None:
    model, tokenizer = copier
    messages = ["w10 %lu\n"]
    assert translate(model, tokenizer, messages, progress=False) == translate(model, tokenizer, messages, protect=False, progress=False)
    model.config.training_data = "gettext:de"
    try:
        assert trained_on_software_messages(model)
        assert translate(model, tokenizer, messages, progress=False) == messages  # kept as the source
    finally:
        del model.config.training_data


# ------------------------------------------------------------------------------------ U+FFFD (issue 34)


@pytest.fixture(scope="module")
def byte_model(byte_level_copier: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The copying model with the library's byte-level BPE: it can write a byte no character begins with."""
    return load_translator(byte_level_copier, device="cpu")


SOURCES = ["Open the file", "Close the window", "Save the document as", "Print the page", "Quit the program",
           "Show the settings"]


def test_a_best_hypothesis_with_u_fffd_gives_way_to_the_next_one(
    byte_model: tuple[PreTrainedModel, PreTrainedTokenizerBase]
) -> None:
    """The lead byte 0xC3 scores a little above the best first token: best hypotheses start with a byte no character
    begins with, and behind them in the n-best list are hypotheses that start otherwise."""
    model, tokenizer = byte_model
    damage = {"logits_processor": LogitsProcessorList([LoneLeadByte(tokenizer, every_step=False, margin=0.2)]),
              "max_new_tokens": 12}
    nbest = translate_nbest(model, tokenizer, SOURCES, num_beams=4, num_return_sequences=4, progress=False, **damage)
    first_clean = [next((h for h in hypotheses if not undecodable_characters(h, source)), None)
                   for source, hypotheses in zip(SOURCES, nbest)]
    given_way = [i for i, (source, hypotheses) in enumerate(zip(SOURCES, nbest))
                 if undecodable_characters(hypotheses[0], source) and first_clean[i] is not None]
    assert given_way, nbest  # premise: some best hypotheses hold U+FFFD where a later one of the list does not
    unprotected = translate_unprotected(model, tokenizer, SOURCES, num_beams=4, progress=False, **damage)
    for i, (source, text) in enumerate(zip(SOURCES, unprotected)):
        if first_clean[i] is not None:
            assert text == first_clean[i]  # the model's own next hypothesis, as it is
        else:  # settled by the wider search, or by none
            assert text is None or not undecodable_characters(text, source)
    got = translate(model, tokenizer, SOURCES, num_beams=4, protect=False, progress=False, **damage)
    assert got == [source if text is None else text for source, text in zip(SOURCES, unprotected)]
    messages = translate_messages(model, tokenizer, SOURCES, num_beams=4, progress=False, **damage)
    for i in given_way:  # no directives here: the first clean, non-empty hypothesis passes
        assert messages[i] == next(h for h in nbest[i] if h.strip() and not undecodable_characters(h, SOURCES[i]))
    protected = translate(model, tokenizer, SOURCES, num_beams=4, protect=True, progress=False, **damage)
    assert not any(undecodable_characters(text, source) for source, text in zip(SOURCES, protected))
    # without the damage nothing changes: the best hypotheses as they are
    plain = translate_nbest(model, tokenizer, SOURCES, num_beams=4, max_new_tokens=12, progress=False)
    assert not any(undecodable_characters(h[0], source) for source, h in zip(SOURCES, plain))
    assert translate(model, tokenizer, SOURCES, num_beams=4, max_new_tokens=12, progress=False) == [h[0] for h in plain]


def test_when_no_hypothesis_decodes_the_source_comes_back_with_a_warning(
    byte_model: tuple[PreTrainedModel, PreTrainedTokenizerBase], caplog: pytest.LogCaptureFixture
) -> None:
    """The lead byte wins every step: every hypothesis of every search holds U+FFFD (or nothing)."""
    model, tokenizer = byte_model
    damage = {"logits_processor": LogitsProcessorList([LoneLeadByte(tokenizer, every_step=True)]), "max_new_tokens": 4}
    assert translate_messages(model, tokenizer, SOURCES, num_beams=2, progress=False, **damage) == [None] * len(SOURCES)
    with caplog.at_level(logging.WARNING, logger="hf_encdec.inference"):
        assert translate(model, tokenizer, SOURCES, num_beams=2, protect=True, progress=False, **damage) == SOURCES
    assert f"{len(SOURCES)} of {len(SOURCES)} text(s) kept as the source" in caplog.text
    assert "decoded to valid text" in caplog.text
    unprotected = translate_unprotected(model, tokenizer, SOURCES, num_beams=2, progress=False, **damage)
    assert all(text is None or not undecodable_characters(text, source) for source, text in zip(SOURCES, unprotected))


def test_a_hypothesis_cut_mid_character_is_not_taken(byte_model: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> None:
    """`max_new_tokens` can end a hypothesis inside a three-byte CJK character: no such hypothesis comes back."""
    model, tokenizer = byte_model
    sources = ["文件不存在", "日本語のテキスト"]
    raw = [h[0] for h in translate_nbest(model, tokenizer, sources, num_beams=2, max_new_tokens=5, progress=False)]
    assert any("\ufffd" in text for text in raw)  # premise: the copy is cut inside a character
    for protect in (False, True):
        got = translate(model, tokenizer, sources, num_beams=2, max_new_tokens=5, protect=protect, progress=False)
        assert not any(undecodable_characters(text, source) for source, text in zip(sources, got))


def test_undecodable_characters_count_beyond_the_sources() -> None:
    assert undecodable_characters("a\ufffdb\ufffd", "x\ufffd") == ["\ufffd"]
    assert undecodable_characters("a\udc80b") == ["\udc80"] and undecodable_characters("a\x00b") == ["\x00"]
    assert undecodable_characters("Café „geschlossen“ 日本") == []


def test_mbr_takes_the_hypothesis_with_the_highest_expected_chrf_against_the_others(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: list[str]
) -> None:
    settings = dict(num_beams=4, max_new_tokens=6, progress=False, protect=False)
    nbest = translate_nbest(model, tokenizer, texts, num_beams=4, num_return_sequences=4, max_new_tokens=6,
                            progress=False)
    chrf = sacrebleu.CHRF()

    def consensus(hypotheses: list[str]) -> str:  # the oracle, written from the definition
        utility = [sum(chrf.sentence_score(h, [o]).score for o in hypotheses) - chrf.sentence_score(h, [h]).score
                   for h in hypotheses]
        return hypotheses[max(range(len(hypotheses)), key=lambda i: (utility[i], -i))]

    expected = [consensus(hypotheses) for hypotheses in nbest]
    assert expected != [hypotheses[0] for hypotheses in nbest], "MBR should change some choice on these texts"
    assert translate(model, tokenizer, texts, mbr=4, **settings) == expected
    # a pool wider than the beam widens the beam to hold it
    assert translate(model, tokenizer, texts, mbr=4, **{**settings, "num_beams": 2}) == expected


def test_mbr_is_refused_where_there_is_nothing_to_choose_among(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: list[str]
) -> None:
    with pytest.raises(ValueError, match="an integer of at least 2"):
        translate(model, tokenizer, texts, mbr=1, progress=False)
    nat = NATForConditionalGeneration(NATConfig(**TINY_TRANSFORMER, mask_token_id=4)).eval()
    with pytest.raises(ValueError, match="writes one output a text"):
        translate(nat, tokenizer, texts, mbr=4, progress=False, protect=False)


def _nat_drafter_folder(tokenizer: PreTrainedTokenizerBase, folder: Path) -> Path:
    """A saved (untrained) NAT drafter with `tokenizer`'s vocabulary and special ids."""
    import torch

    from hf_encdec.models.configuration_nat import NATConfig
    from hf_encdec.models.modeling_nat import NATForConditionalGeneration
    from variants import TINY_TRANSFORMER

    torch.manual_seed(5)
    config = NATConfig(**{**TINY_TRANSFORMER, "vocab_size": len(tokenizer), "encoder_layers": 1, "decoder_layers": 1,
                          "mask_token_id": tokenizer.mask_token_id, "max_position_embeddings": 40})
    NATForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_translate_with_a_draft_equals_greedy_translate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: list[str], tmp_path: Path
) -> None:
    greedy = translate(model, tokenizer, texts, num_beams=1, max_new_tokens=9, progress=False, protect=False)
    assert len(set(greedy)) > 3
    for draft in ("source", _nat_drafter_folder(tokenizer, tmp_path / "nat")):
        got = translate(model, tokenizer, texts, num_beams=1, max_new_tokens=9, progress=False, protect=False,
                        draft=draft)
        assert got == greedy


def test_protected_translate_with_source_lookup_equals_protected_greedy(
    copier: tuple[PreTrainedModel, PreTrainedTokenizerFast]
) -> None:
    """Software messages: the retry at a wider beam runs without the drafter, and the output is unchanged."""
    model, tokenizer = copier
    messages = ["w5 %s w6\n", "\n  -a, --all     w7 w8 w9\n", "w10 %lu", "w11 %d w12 %s"]
    expected = translate(model, tokenizer, messages, protect=True, num_beams=1, progress=False)
    assert translate(model, tokenizer, messages, protect=True, num_beams=1, progress=False, draft="source") == expected


def test_a_drafter_of_another_tokenizer_or_with_beams_is_refused(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    other = word_level_tokenizer([f"v{i}" for i in range(94)])
    folder = _nat_drafter_folder(other, tmp_path / "other")
    with pytest.raises(ValueError, match=r"another tokenizer than the target PointerGeneratorForConditionalGeneration"):
        translate(model, tokenizer, ["w5 w6"], num_beams=1, progress=False, protect=False, draft=folder)
    with pytest.raises(ValueError, match="num_beams=3"):
        translate(model, tokenizer, ["w5 w6"], num_beams=3, progress=False, protect=False, draft="source")
