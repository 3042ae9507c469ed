"""corpus_scores / copy_baseline_scores / reference_streams against sacreBLEU called directly."""

from __future__ import annotations

import pytest
import sacrebleu

from hf_encdec.evaluation import bleu_score, chrf_score, copy_baseline_scores, corpus_scores, reference_streams

HYPOTHESES = ["the cat sat on the mat", "a dog runs in a park", "the bird sings"]
REFERENCES = ["the cat sat on a mat", "a dog ran in the park", "the bird sang a song"]
OTHER_REFERENCES = ["a cat sat on the mat", "the dog ran in a park", "a bird sings a song"]
SOURCES = ["die Katze sass auf der Matte", "ein Hund rannte im Park", "der Vogel sang ein Lied"]


def test_scores_equal_sacrebleu_corpus_scores() -> None:
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    expected_bleu = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    expected_chrf = sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score
    assert 0.0 < expected_bleu < 100.0 and 0.0 < expected_chrf < 100.0  # a corpus that can tell scores apart
    assert scores["bleu"] == pytest.approx(expected_bleu, abs=1e-12)
    assert scores["chrf"] == pytest.approx(expected_chrf, abs=1e-12)
    assert scores["bleu"] != pytest.approx(scores["chrf"])
    assert scores["num_segments"] == 3


def test_signatures_describe_sacrebleu_defaults() -> None:
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    assert "tok:13a" in scores["bleu_signature"] and "smooth:exp" in scores["bleu_signature"]
    assert "nc:6" in scores["chrf_signature"] and "nw:0" in scores["chrf_signature"]
    for key in ("bleu_signature", "chrf_signature"):
        assert "nrefs:1" in scores[key]
        assert f"version:{sacrebleu.__version__}" in scores[key]


def test_perfect_and_disjoint_hypotheses_bound_the_scale() -> None:
    assert corpus_scores(REFERENCES, REFERENCES)["bleu"] == pytest.approx(100.0)
    assert corpus_scores(REFERENCES, REFERENCES)["chrf"] == pytest.approx(100.0)
    disjoint = corpus_scores(["xyz qqq"] * 3, REFERENCES)
    assert disjoint["bleu"] == pytest.approx(0.0)


def test_order_of_segments_matters() -> None:
    # Scores are corpus level but segment-aligned: shuffling hypotheses against references must lower BLEU.
    aligned = corpus_scores(REFERENCES, REFERENCES)["bleu"]
    shifted = corpus_scores(REFERENCES[1:] + REFERENCES[:1], REFERENCES)["bleu"]
    assert shifted < aligned


def test_length_mismatch_raises_with_both_counts() -> None:
    with pytest.raises(ValueError, match=r"3 hypotheses and 2 references"):
        corpus_scores(HYPOTHESES, REFERENCES[:2])


def test_empty_input_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        corpus_scores([], [])


def test_single_string_or_non_string_items_raise() -> None:
    with pytest.raises(TypeError, match="single string"):
        corpus_scores("the cat", "the cat")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="item 1"):
        corpus_scores(["a", 3], ["a", "b"])  # type: ignore[list-item]


def test_copy_baseline_scores_the_sources_as_hypotheses() -> None:
    baseline = copy_baseline_scores(SOURCES, REFERENCES)
    direct = sacrebleu.corpus_bleu(SOURCES, [REFERENCES]).score
    assert baseline["bleu"] == pytest.approx(direct, abs=1e-12)
    assert baseline["chrf"] == pytest.approx(sacrebleu.corpus_chrf(SOURCES, [REFERENCES]).score, abs=1e-12)
    assert baseline["bleu"] < corpus_scores(HYPOTHESES, REFERENCES)["bleu"]
    # On a copy task the baseline is perfect.
    assert copy_baseline_scores(REFERENCES, REFERENCES)["bleu"] == pytest.approx(100.0)


def test_copy_baseline_mismatch_names_sources() -> None:
    with pytest.raises(ValueError, match="sources"):
        copy_baseline_scores(SOURCES[:1], REFERENCES)


def test_reference_streams_transposes_per_segment_references() -> None:
    assert reference_streams(["r1", "r2"]) == [["r1", "r2"]]
    assert reference_streams([["a1", "b1"], ["a2", "b2"]]) == [["a1", "a2"], ["b1", "b2"]]
    with pytest.raises(ValueError, match=r"\[1, 2\]"):
        reference_streams([["a1"], ["a2", "b2"]])


def test_bleu_and_chrf_score_report_sacrebleu_results_with_several_references() -> None:
    two_each = [[first, second] for first, second in zip(REFERENCES, OTHER_REFERENCES)]
    bleu = bleu_score(HYPOTHESES, two_each)
    direct_bleu = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES, OTHER_REFERENCES])
    assert bleu["score"] == pytest.approx(direct_bleu.score, abs=1e-12)
    assert bleu["score"] != pytest.approx(corpus_scores(HYPOTHESES, REFERENCES)["bleu"])  # the second stream counts
    assert (bleu["counts"], bleu["totals"], bleu["sys_len"], bleu["ref_len"]) == (
        direct_bleu.counts,
        direct_bleu.totals,
        direct_bleu.sys_len,
        direct_bleu.ref_len,
    )
    assert "nrefs:2" in bleu["signature"]
    chrf = chrf_score(HYPOTHESES, two_each)
    assert chrf["score"] == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES, OTHER_REFERENCES]).score)
    assert (chrf["char_order"], chrf["word_order"], chrf["beta"]) == (6, 0, 2)
    for score in (bleu_score, chrf_score):
        with pytest.raises(ValueError, match="empty"):
            score([], [])


def test_repetition_rate_counts_repeated_bigrams_per_sentence_and_rejects_bad_input() -> None:
    from hf_encdec.evaluation import repetition_rate

    assert repetition_rate(["the cat the cat the cat", "no repeats here", "x"]) == 3 / 3
    assert repetition_rate(["a a a a"], n=1) == 3.0
    with pytest.raises(TypeError):
        repetition_rate("a string")
    with pytest.raises(ValueError, match="empty"):
        repetition_rate([])
    with pytest.raises(ValueError, match="n must be"):
        repetition_rate(["a"], n=0)
