"""A denoising corpus from the machine's own text, for pre-training an encoder-decoder before it translates.

BART (Lewis et al. 2020) pre-trains by *text infilling*: spans of a sentence, their lengths drawn from a Poisson
distribution (mean 3), are each replaced by one ``<mask>`` until about 30% of the words are hidden, and the model
writes the whole sentence back. The encoder learns to read the language, the decoder to write it; the translation
fine-tuning that follows starts from both.

:func:`infill` hides the spans of one text (whole words here, so a German compound is hidden whole);
:func:`text_segments` cuts a manual page into sentence-sized pieces of at most ``max_words`` words, the length of
software messages; :func:`build_denoising_corpus` gathers, for a gettext language pair:

* the target language: the translations (msgstrs) of the **training** packages of the translation corpus (never a
  validation or test package) and the manual pages in that language (``<man root>/<lang>``, training pages only);
* the source language (English): the messages (msgids) of the training packages and the English manual pages
  (training pages only), capped at as many segments as the target language has, so each language has about half.

>>> import numpy as np
>>> infill("open the file in read only mode", np.random.default_rng(0))
'<mask> file in read only mode'
>>> text_segments("NAME\\n\\nls - list directory contents. It lists files.", max_words=6)
['ls - list directory contents.', 'It lists files.']
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from .gettext_corpus import build_gettext_corpus
from .manpages import ManPagesNotFoundError, build_manpages_corpus, default_man_dirs
from .tokenizer import MASK_TOKEN

logger = logging.getLogger(__name__)

SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+")
MIN_WORDS = 3


def infill(text: str, rng: np.random.Generator, *, mask_ratio: float = 0.3, mean_span: float = 3.0) -> str:
    """Hide about `mask_ratio` of the words of `text` in spans of Poisson(`mean_span`) words (at least one), each span
    replaced by one ``<mask>`` (BART's text infilling, on words). The space before a span goes with it, so the text
    after a span keeps its leading space and tokenizes as it would unmasked. A text of one word is returned as it is.

    Raises:
        ValueError: `mask_ratio` is not in (0, 1) or `mean_span` is not positive.
    """
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    if mean_span <= 0:
        raise ValueError(f"mean_span must be positive, got {mean_span}")
    words = text.split()
    if len(words) < 2:
        return text
    goal = max(1, round(mask_ratio * len(words)))
    hidden = np.zeros(len(words), dtype=bool)
    while hidden.sum() < goal:
        length = int(min(max(1, rng.poisson(mean_span)), goal - hidden.sum()))
        start = int(rng.integers(0, len(words) - length + 1))
        hidden[start : start + length] = True
    pieces: list[str] = []
    for index, word in enumerate(words):
        if not hidden[index]:
            pieces.append(word if index == 0 else " " + word)
        elif index == 0 or not hidden[index - 1]:
            pieces.append(MASK_TOKEN)
    return "".join(pieces)


def text_segments(text: str, *, max_words: int = 32) -> list[str]:
    """Cut a page of text into segments of at most `max_words` words: paragraphs (blank-line separated) into
    sentences, consecutive sentences packed together while they fit, an over-long sentence cut into pieces.
    Segments of fewer than 3 words (headings such as ``NAME``) are dropped."""
    segments: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        words_so_far: list[str] = []
        for sentence in SENTENCE_END.split(" ".join(paragraph.split())):
            words = sentence.split()
            if words_so_far and len(words_so_far) + len(words) > max_words:
                segments.append(" ".join(words_so_far))
                words_so_far = []
            while len(words) > max_words:
                segments.append(" ".join(words[:max_words]))
                words = words[max_words:]
            words_so_far += words
        if words_so_far:
            segments.append(" ".join(words_so_far))
    return [segment for segment in segments if len(segment.split()) >= MIN_WORDS]


def _page_segments(pages: datasets.Dataset, max_words: int) -> list[str]:
    return [segment for text in pages["text"] for segment in text_segments(text, max_words=max_words)]


def _manual_pages(man_dirs: Sequence[Path], max_words: int, cache_dir: str | None) -> dict[str, list[str]]:
    """The segments of the pages of each split, or none where the directories hold no page (logged)."""
    existing = [path for path in man_dirs if path.is_dir()]
    try:
        if not existing:
            raise ManPagesNotFoundError
        pages = build_manpages_corpus(man_dirs=existing, cache_dir=cache_dir)
    except ManPagesNotFoundError:
        logger.warning("no manual pages in %s; the denoising corpus goes without them", ", ".join(map(str, man_dirs)))
        return {"train": [], "validation": [], "test": []}
    return {split: _page_segments(pages[split], max_words) for split in pages}


def _unique(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(text for text in texts if len(text.split()) >= MIN_WORDS))


def _noised_rows(texts: list[str], language: str, seed: int, mask_ratio: float) -> list[dict[str, str]]:
    rows = []
    for index, text in enumerate(texts):
        rng = np.random.default_rng([seed, index, sum(map(ord, language))])
        rows.append({"source": infill(text, rng, mask_ratio=mask_ratio), "target": text, "language": language})
    return rows


def build_denoising_corpus(
    lang: str = "de",
    *,
    translation: datasets.DatasetDict | None = None,
    man_dirs: Sequence[str | os.PathLike[str]] | None = None,
    max_words: int = 32,
    mask_ratio: float = 0.3,
    english_share: float = 1.0,
    eval_size: int = 300,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[datasets.DatasetDict, dict[str, Any]]:
    """The denoising pairs (``source``: the text with spans hidden, ``target``: the text, ``language``) for
    pre-training an English -> `lang` model, and a report of what went in.

    Args:
        lang: The target language: its gettext catalogs (the training packages of ``gettext:<lang>``, split as
            `hf-encdec train` splits them) and its manual pages under ``<man root>/<lang>``.
        translation: The translation corpus whose training packages give the messages (default: ``gettext:<lang>``
            as `hf-encdec train` builds it); only its train and validation splits are read.
        man_dirs: Manual page roots (default: the machine's ``manpath``); the English pages are read from them, the
            `lang` pages from their ``<lang>`` subfolders. Roots without pages are skipped with a warning.
        max_words: The longest segment cut from a manual page, in words.
        mask_ratio: The share of words hidden.
        english_share: English texts per `lang` text (the training packages' msgids first, then English manual
            pages): 1.0 as many, 0.0 none (the model then learns to write only `lang` back). The evaluation splits
            keep the same share.
        eval_size: Segments per language in the validation and test splits (from the validation and test pages and
            the validation packages; never a test package of the translation corpus).
        seed: The noise; the same seed gives the same corpus.
        cache_dir: Passed to :func:`build_manpages_corpus` (rendered pages reused while nothing changed).

    Raises:
        GettextCatalogNotFoundError: No catalogs for `lang`.
        ValueError: Nothing to pre-train on in the target language, or `english_share` is negative.
    """
    if not english_share >= 0:
        raise ValueError(f"english_share must be 0 or more (English texts per {lang!r} text), not {english_share!r}")
    if translation is None:
        translation = build_gettext_corpus(lang=lang)
    roots = [Path(path) for path in (man_dirs if man_dirs is not None else default_man_dirs())]
    cache = os.fspath(cache_dir) if cache_dir is not None else None
    pages = {lang: _manual_pages([root / lang for root in roots], max_words, cache),
             "en": _manual_pages(roots, max_words, cache)}
    splits: dict[str, list[dict[str, str]]] = {}
    report: dict[str, Any] = {"lang": lang, "mask_ratio": mask_ratio, "english_share": english_share,
                              "max_words": max_words, "seed": seed}
    for split, messages_split in (("train", "train"), ("validation", "validation"), ("test", "validation")):
        target_messages = _unique(translation[messages_split]["target"])
        source_messages = _unique(translation[messages_split]["source"])
        target_pages, source_pages = pages[lang][split], pages["en"][split]
        if split != "train":  # the validation packages serve both evaluation splits, in halves
            half = len(target_messages) // 2
            target_messages = target_messages[:half] if split == "validation" else target_messages[half:]
            source_messages = source_messages[:half] if split == "validation" else source_messages[half:]
        target_texts = _unique(target_messages + target_pages)
        if split != "train":
            target_texts = target_texts[:eval_size]
        source_texts = _unique(source_messages + source_pages)[: round(english_share * len(target_texts))]
        if not target_texts:
            raise ValueError(f"no {lang!r} text of 3 words or more for the {split} split of the denoising corpus")
        report[split] = {
            f"{lang}_messages": len(target_messages), f"{lang}_page_segments": len(target_pages),
            "en_messages": len(source_messages), "en_page_segments": len(source_pages),
            lang: len(target_texts), "en": len(source_texts),
        }
        rows = _noised_rows(target_texts, lang, seed, mask_ratio) + _noised_rows(source_texts, "en", seed, mask_ratio)
        order = np.random.default_rng([seed, len(split)]).permutation(len(rows))
        splits[split] = [rows[index] for index in order]
    logger.info("denoising corpus: %s", report)
    corpus = datasets.DatasetDict({split: datasets.Dataset.from_list(rows) for split, rows in splits.items()})
    return corpus, report
