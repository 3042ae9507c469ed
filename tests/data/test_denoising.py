"""The denoising corpus for pre-training: BART's text infilling on words, manual pages cut into segments, and the
mix of the target language's training-package messages and pages with as much English, never a held-out package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hf_encdec.data import load_corpus
from hf_encdec.data.denoising import build_denoising_corpus, infill, text_segments
from hf_encdec.data.roff import find_groff
from hf_encdec.data.tokenizer import MASK_TOKEN, train_tokenizer

WORDS = [f"w{index}" for index in range(100)]


def _hidden_and_spans(noised: str) -> tuple[set[str], int]:
    visible = set(noised.replace(MASK_TOKEN, " ").split())
    return set(WORDS) - visible, noised.count(MASK_TOKEN)


@pytest.mark.parametrize("seed", range(5))
def test_infilling_hides_the_ratio_of_words_in_spans_each_one_mask(seed: int) -> None:
    noised = infill(" ".join(WORDS), np.random.default_rng(seed), mask_ratio=0.3)
    hidden, masks = _hidden_and_spans(noised)
    assert len(hidden) == 30
    runs = sum(1 for index, word in enumerate(WORDS) if word in hidden and (index == 0 or WORDS[index - 1] not in hidden))
    assert masks == runs < 30  # one mask per span, and spans longer than a word (Poisson mean 3)
    kept = noised.replace(MASK_TOKEN, " ").split()
    assert kept == [word for word in WORDS if word not in hidden]  # the rest in order


def test_infilling_is_deterministic_in_its_generator_and_keeps_the_space_after_a_span() -> None:
    text = "open the file in read only mode and close it afterwards"
    first = infill(text, np.random.default_rng(7))
    assert first == infill(text, np.random.default_rng(7)) != infill(text, np.random.default_rng(8))
    after_masks = first.split(MASK_TOKEN)[1:]
    assert after_masks and f" {MASK_TOKEN}" not in first and all(piece.startswith(" ") for piece in after_masks if piece)
    assert infill("alone", np.random.default_rng(0)) == "alone"
    with pytest.raises(ValueError, match="mask_ratio must be in \\(0, 1\\), got 1.0"):
        infill(text, np.random.default_rng(0), mask_ratio=1.0)


def test_a_mask_is_one_token_of_the_corpus_tokenizer() -> None:
    tokenizer = train_tokenizer(["open the file in read only mode"] * 20, vocab_size=300)
    noised = f"open the file{MASK_TOKEN} only mode"
    ids = tokenizer(noised)["input_ids"]
    assert ids.count(tokenizer.mask_token_id) == 1
    unmasked_tail = tokenizer(" only mode", add_special_tokens=False)["input_ids"]
    assert ids[ids.index(tokenizer.mask_token_id) + 1 : -1] == unmasked_tail


def test_pages_are_cut_into_sentence_sized_segments() -> None:
    page = ("NAME\n\nfrob - frobnicate files\n\nDESCRIPTION\n\nIt reads a file. It writes the result.\n"
            "It never deletes anything at all.\n\n" + " ".join(WORDS[:25]) + ".")
    segments = text_segments(page, max_words=10)
    assert segments == [
        "frob - frobnicate files",
        "It reads a file. It writes the result.",
        "It never deletes anything at all.",
        " ".join(WORDS[:10]), " ".join(WORDS[10:20]), " ".join(WORDS[20:25]) + ".",
    ]


def _man_page(root: Path, name: str, title: str, body: str) -> None:
    folder = root / "man1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.1").write_text(f".TH {name.upper()} 1\n.SH {title}\n{name} \\- {body}\n.SH MORE\n{body} {body}\n")


@pytest.mark.skipif(find_groff() is None, reason="groff is not installed")
def test_the_corpus_mixes_training_packages_and_pages_and_never_reads_a_held_out_package(
    locale_tree: Path, tmp_path: Path
) -> None:
    translation = load_corpus("gettext:de", locale_dirs=[locale_tree], num_test_packages=3, num_validation_packages=2)
    man = tmp_path / "man"
    _man_page(man, "frob", "NAME", "reads every file in the given directory and writes it back.")
    _man_page(man / "de", "frob", "BEZEICHNUNG", "liest jede Datei im angegebenen Verzeichnis und schreibt sie zurück.")
    corpus, report = build_denoising_corpus("de", translation=translation, man_dirs=[man], eval_size=50)
    held_out = set(translation["test"]["package"])
    for split in corpus.values():
        assert not any(package in text for package in held_out for text in split["target"])
        assert all(MASK_TOKEN in source for source in split["source"])
    train = corpus["train"]
    german = [text for text, language in zip(train["target"], train["language"]) if language == "de"]
    english = [text for text, language in zip(train["target"], train["language"]) if language == "en"]
    assert set(german) >= {text for text in translation["train"]["target"] if len(text.split()) >= 3}
    assert any("Verzeichnis" in text for text in german) and any("directory" in text for text in english)
    assert len(english) <= len(german) == report["train"]["de"]
    again, _ = build_denoising_corpus("de", translation=translation, man_dirs=[man], eval_size=50)
    assert again["train"].to_list() == train.to_list()
    german_only, report = build_denoising_corpus("de", translation=translation, man_dirs=[man], eval_size=50,
                                                 english_share=0.0)
    assert set(german_only["train"]["language"]) == {"de"} and report["train"]["en"] == 0
    assert sorted(german_only["train"]["target"]) == sorted(german)
    half, report = build_denoising_corpus("de", translation=translation, man_dirs=[man], eval_size=50, english_share=0.5)
    assert report["train"]["en"] == min(round(len(german) / 2), len(english)) == half["train"]["language"].count("en")
    with pytest.raises(ValueError, match="english_share must be 0 or more"):
        build_denoising_corpus("de", translation=translation, man_dirs=[man], english_share=-1.0)
