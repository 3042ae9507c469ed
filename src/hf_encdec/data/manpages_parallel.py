"""Parallel text from the machine's translated manual pages: more English -> ``<lang>`` training pairs, offline.

Packages that translate their manual pages (dpkg, apt, procps, shadow, man-db, xz ... with po4a or by hand) install
them under ``<root>/<lang>/man<N>/``, beside the English original under ``<root>/man<N>/`` with the same file name.
Both are rendered with groff (:func:`~hf_encdec.data.roff.roff_to_text`) and cut into lines (a heading, an option's
tag, a paragraph); a translation keeps the original's structure, so the lines are aligned by dynamic programming
over the two sequences (:func:`align_lines`):

    cost(e, t) = |log(len(t) + 1) - log(len(e) + 1) - log(1.1)| + 2 * (1 - overlap of their anchors)

where the anchors are what a translation leaves as it is (option names like ``--force``, numbers, paths, format
directives; not words in capitals, which name placeholders that translators translate: ``NUM`` -> ``ANZAHL``), a German line runs about 1.1x the English one, and leaving a line unpaired costs
:data:`SKIP_COST` (a translator's credits, a paragraph the versions do not share). Pairs that cost more than
:data:`MAX_PAIR_COST`, lines left untranslated (equal to the original) and lines without letters are dropped; a
paired paragraph is cut into sentence pairs when both sides have the same number of sentences.

:func:`build_manpages_parallel` returns the pairs as rows like the gettext corpus's (``source``, ``target``,
``package`` = ``man:<page>(<section>)``, ``context`` = ``""``); ``load_corpus("gettext+man:de")`` adds them to the
training split of ``gettext:de``, leaving out the pages of its validation and test packages.

>>> align_lines(["OPTIONS", "-k, --symlink", "Create a symlink, instead of moving."],
...             ["OPTIONEN", "-k, --symlink", "Legt einen Symlink an, anstatt zu verschieben.", "ÜBERSETZUNG"])
[(0, 0), (1, 1), (2, 2)]
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets

from .manpages import ManPagesNotFoundError, default_man_dirs
from .roff import GroffNotFoundError, find_groff, is_alias, read_page, roff_to_text

logger = logging.getLogger(__name__)

__all__ = ["MAX_PAIR_COST", "SKIP_COST", "align_lines", "build_manpages_parallel", "find_translated_pages"]

SKIP_COST = 1.5
"""The cost of leaving one line of either page unpaired."""
MAX_PAIR_COST = 1.2
"""Aligned lines that cost more than this are not kept as a pair."""
BAND = 20
"""Lines are compared with those at most this many lines (plus the difference in length of the pages) away from
where the page lengths say they should be."""
LENGTH_RATIO = 1.1
"""How much longer a translated line runs than its English original, on average (characters)."""

_ANCHOR = re.compile(r"-{1,2}[A-Za-z0-9][\w-]*|\d+|%[-+ #0-9.]*[a-zA-Z]|\S*/\S*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ\"'„»(])")
_LETTER = re.compile(r"[^\W\d_]")


def _anchors(line: str) -> set[str]:
    return set(_ANCHOR.findall(line))


def _features(lines: Sequence[str]) -> list[tuple[float, set[str]]]:
    return [(math.log(len(line) + 1), _anchors(line)) for line in lines]


def _pair_cost(english: tuple[float, set[str]], translated: tuple[float, set[str]]) -> float:
    (our_length, ours), (their_length, theirs) = english, translated
    overlap = len(ours & theirs) / len(ours | theirs) if ours or theirs else 1.0
    return abs(their_length - our_length - math.log(LENGTH_RATIO)) + 2.0 * (1.0 - overlap)


def align_lines(english: Sequence[str], translated: Sequence[str]) -> list[tuple[int, int]]:
    """The pairs (i, j) of the cheapest alignment of `english` with `translated` that keeps their order, each line
    paired once or left out (at :data:`SKIP_COST`), and only the pairs that cost at most :data:`MAX_PAIR_COST`.
    A line is paired only with one near where the page lengths put it (:data:`BAND`)."""
    n, m = len(english), len(translated)
    ours, theirs = _features(english), _features(translated)
    cost = [[0.0] * (m + 1) for _ in range(n + 1)]
    move = [[0] * (m + 1) for _ in range(n + 1)]  # 0 pair, 1 skip an English line, 2 skip a translated one
    for i in range(1, n + 1):
        cost[i][0], move[i][0] = i * SKIP_COST, 1
    for j in range(1, m + 1):
        cost[0][j], move[0][j] = j * SKIP_COST, 2
    pair_costs: dict[tuple[int, int], float] = {}
    # a translation keeps the original's order, so only lines near the diagonal are compared
    band = BAND + abs(n - m)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if abs(i * m / n - j) > band:
                cost[i][j], move[i][j] = math.inf, 0
                continue
            pair_costs[i, j] = _pair_cost(ours[i - 1], theirs[j - 1])
            options = (cost[i - 1][j - 1] + pair_costs[i, j], cost[i - 1][j] + SKIP_COST, cost[i][j - 1] + SKIP_COST)
            best = min(range(3), key=options.__getitem__)
            cost[i][j], move[i][j] = options[best], best
    pairs: list[tuple[int, int]] = []
    i, j = n, m
    while i > 0 or j > 0:
        step = move[i][j]
        if step == 0:
            if pair_costs[i, j] <= MAX_PAIR_COST:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def _sentence_pairs(english: str, translated: str) -> list[tuple[str, str]]:
    ours, theirs = _SENTENCE_END.split(english), _SENTENCE_END.split(translated)
    return list(zip(ours, theirs)) if len(ours) == len(theirs) else [(english, translated)]


def find_translated_pages(lang: str, man_dirs: Sequence[str | os.PathLike[str]] | None = None) -> list[tuple[str, Path, Path]]:
    """The pages translated into `lang` that have their English original: (``name(section)``, original,
    translation), the first root that has a page winning, each file once (a name that links to a page already found
    is left out).

    Raises:
        ManPagesNotFoundError: no root has ``<lang>/man<N>/`` pages with an English original beside them.
    """
    roots = [Path(root) for root in (man_dirs if man_dirs is not None else default_man_dirs())]
    found: dict[str, tuple[str, Path, Path]] = {}
    files: set[tuple[Path, Path]] = set()
    for root in roots:
        # the files themselves before the links to them, so that a page is known by its own name
        for translation in sorted((root / lang).glob("man*/*"), key=lambda path: (path.is_symlink(), path)):
            original = root / translation.relative_to(root / lang)
            name, _, _ = translation.name.partition(".")
            key = f"{name}({translation.parent.name.removeprefix('man')})"
            # another name of a page already found (xzcat and unxz are links to xz) is read once
            real = (original.resolve(), translation.resolve())
            if original.is_file() and key not in found and real not in files:
                found[key] = (key, original, translation)
                files.add(real)
    if not found:
        searched = ", ".join(str(root / lang / "man<N>") for root in roots) or "no manual page directory"
        raise ManPagesNotFoundError(
            f"no manual pages translated into {lang!r} with their English original were found (searched {searched}); "
            f"install the translated pages (on Debian: the packages' '-l10n' or 'manpages-{lang}' packages) or train "
            f"on 'gettext:{lang}' alone"
        )
    return sorted(found.values())


def _lines(path: Path, root: Path, groff: str) -> list[str] | None:
    try:
        source = read_page(path, root=root)
        if is_alias(source):
            return None
        text = roff_to_text(source, groff=groff)
    except GroffNotFoundError:
        raise
    except (OSError, EOFError, ValueError, RuntimeError) as error:  # one odd page must not stop the corpus
        logger.debug("skipping %s: %s", path, error)
        return None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _page_pairs(original: Path, translation: Path, groff: str) -> list[tuple[str, str]]:
    english = _lines(original, original.parent.parent, groff)
    translated = _lines(translation, translation.parent.parent, groff)
    if not english or not translated:
        return []
    pairs = []
    for i, j in align_lines(english, translated):
        pairs.extend(_sentence_pairs(english[i], translated[j]))
    return [(source, target) for source, target in pairs if source != target and _LETTER.search(source)]


def build_manpages_parallel(
    lang: str = "de",
    *,
    man_dirs: Sequence[str | os.PathLike[str]] | None = None,
    exclude: Iterable[str] = (),
    num_proc: int | None = None,
) -> datasets.Dataset:
    """English -> `lang` pairs from the machine's translated manual pages, in page order, each pair once.

    Args:
        lang: The language directory of the translations (``<root>/<lang>/man<N>/``).
        man_dirs: Roots holding ``man<N>/`` and ``<lang>/man<N>/`` (default: ``manpath``'s).
        exclude: Names whose pages are left out, also as the part before the first ``-``, ``_`` or ``.`` of a page
            name (``git`` leaves out ``git-commit``): the packages held out for validation and test.
        num_proc: groff processes run at once (default: one a CPU core).

    Raises:
        ManPagesNotFoundError: no translated page with its original (the message says what to install).
        GroffNotFoundError: groff is not installed.
    """
    excluded = set(exclude)
    found = find_translated_pages(lang, man_dirs)
    pages = [page for page in found
             if page[0].partition("(")[0] not in excluded
             and re.split(r"[-_.]", page[0].partition("(")[0])[0] not in excluded]
    groff = find_groff()
    workers = max(1, min(len(pages), num_proc or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:  # each thread waits on its own groff
        per_page = list(pool.map(lambda page: _page_pairs(page[1], page[2], groff), pages))
    rows: dict[str, list[str]] = {"source": [], "target": [], "package": [], "context": []}
    seen: set[tuple[str, str]] = set()
    for (key, _, _), pairs in zip(pages, per_page):
        for pair in pairs:
            if pair in seen:
                continue
            seen.add(pair)
            rows["source"].append(pair[0])
            rows["target"].append(pair[1])
            rows["package"].append(f"man:{key}")
            rows["context"].append("")
    logger.info("translated manual pages (%s): %d pairs from %d of %d pages (%d left out as held-out packages)",
                lang, len(rows["source"]), sum(bool(p) for p in per_page), len(pages),
                len(found) - len(pages))
    return datasets.Dataset.from_dict(rows)
