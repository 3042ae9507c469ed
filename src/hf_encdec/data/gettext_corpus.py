"""A parallel corpus from the gettext catalogs every Debian/Ubuntu machine already carries.

Each installed program ships ``/usr/share/locale/<lang>/LC_MESSAGES/<domain>.mo``: a compiled table that maps an
English message (``msgid``) to its translation (``msgstr``). Read together, the catalogs of one language form a small
but real English -> <lang> translation corpus of user-interface strings (``"No such file or directory"`` ->
``"Datei oder Verzeichnis nicht gefunden"``), and the machine needs no network to get it.

The module has three layers:

* :func:`read_mo_file` / :func:`parse_mo` - the GNU ``.mo`` format read by ``polib`` (both byte orders, message
  contexts, plural forms), each entry decoded in the header's charset.
* :func:`build_gettext_corpus` - finds the catalogs of a language, cleans and deduplicates the pairs and splits them
  **by package** (catalog domain) into ``train`` / ``validation`` / ``test``, so that test messages come from
  software the model never saw during training.
* :func:`gettext_corpus_summary` - per-split statistics for a model card.

Format reference: GNU gettext manual, section "The Format of GNU MO Files". The standard library's
``gettext.GNUTranslations`` is no substitute here: it keeps only the singular msgid of a plural entry (the English
plural form is lost) and decodes the header as UTF-8, which fails on Latin-1 catalogs such as net-tools'.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from ..localization.mo import MoFormatError, MoMessage, parse_mo, read_mo_file
from ..localization.placeholders import has_words

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LOCALE_DIRS",
    "GettextCatalogNotFoundError",
    "MoFormatError",
    "MoMessage",
    "available_gettext_languages",
    "build_gettext_corpus",
    "find_catalogs",
    "gettext_corpus_summary",
    "has_words",
    "normalize_whitespace",
    "parse_mo",
    "read_mo_file",
]

DEFAULT_LOCALE_DIRS: tuple[str, ...] = ("/usr/share/locale",)
#: where vim keeps its own catalogs, outside share/locale: ``<root>/<lang>/LC_MESSAGES/vim.mo``, a root per version
VIM_LOCALE_GLOB = "/usr/share/vim/vim*/lang"
"""Where Debian and its derivatives install compiled message catalogs."""

# ASCII whitespace only: str.split() and \s would also eat no-break spaces.
_WHITESPACE_RE = re.compile(r"[ \t\n\r\f\v]+")
#: Catalog domains with this prefix come from the iso-codes package: names of languages, countries, currencies and
#: scripts (``iso_639``, ``iso_3166-2``, ``iso_4217``, ...). They are lists of proper names, not sentences, and they
#: would dominate the corpus, so :func:`build_gettext_corpus` skips them.
ISO_CODES_PREFIX = "iso_"


class GettextCatalogNotFoundError(FileNotFoundError):
    """Raised when no ``.mo`` catalog exists for the requested language.

    The message names the language and the directories searched, lists the languages that do have catalogs and
    points at the built-in synthetic tasks that need no corpus at all.
    """


def normalize_whitespace(text: str) -> str:
    """Collapse every run of ASCII whitespace (spaces, tabs, newlines) to one space and strip both ends.

    Catalog strings carry terminal layout - trailing ``"\\n"``, column padding in ``--help`` text, tab indents - that
    says nothing about the translation and differs between the two sides. Only ASCII whitespace is touched: format
    directives (``%s``, ``%-10s``, ``%1$s``, ``{name}``), paths, option names and typographic no-break spaces
    (U+00A0, U+202F, used by French punctuation) are kept as they are.

    Args:
        text: A catalog string.

    Returns:
        The string with single spaces.
    """
    return _WHITESPACE_RE.sub(" ", text).strip(" ")


def _is_locale_name(lang: str) -> bool:
    """Return whether ``lang`` looks like a locale directory name (``de``, ``pt_BR``, ``sr@latin``)."""
    return bool(re.fullmatch(r"[A-Za-z]{2,3}(_[A-Za-z0-9]+)?(@[A-Za-z0-9]+)?", lang))


def _matching_language_dirs(locale_dir: Path, lang: str, include_variants: bool) -> list[Path]:
    """Return the ``<locale_dir>/<name>/LC_MESSAGES`` folders that belong to ``lang``."""
    found: list[Path] = []
    exact = locale_dir / lang / "LC_MESSAGES"
    if exact.is_dir():
        found.append(exact)
    if include_variants and locale_dir.is_dir():
        for child in sorted(locale_dir.iterdir()):
            # `de_CH`, `de_AT`, `sr@latin` - but not `frp` (Arpitan) for `fr`.
            if child.name.startswith((f"{lang}_", f"{lang}@")) and (child / "LC_MESSAGES").is_dir():
                found.append(child / "LC_MESSAGES")
    return found


def find_catalogs(
    lang: str,
    locale_dirs: Sequence[str | os.PathLike[str]] = DEFAULT_LOCALE_DIRS,
    *,
    include_variants: bool = False,
) -> dict[str, list[Path]]:
    """Find the ``.mo`` catalogs of a language, grouped by domain (package).

    Args:
        lang: The locale directory name (``"de"``, ``"pt_BR"``).
        locale_dirs: Roots to search, each laid out as ``<root>/<lang>/LC_MESSAGES/<domain>.mo``.
        include_variants: Also read regional and script variants ``<lang>_*`` and ``<lang>@*`` (``de_CH``,
            ``sr@latin``). Off by default so that ``"de"`` does not silently mix in Swiss spelling.

    Returns:
        ``{domain: [paths]}`` sorted by domain; a domain found under several roots or variants lists every file.
    """
    catalogs: dict[str, list[Path]] = {}
    for root in locale_dirs:
        for messages_dir in _matching_language_dirs(Path(root), lang, include_variants):
            for path in sorted(messages_dir.glob("*.mo")):
                if path.is_file():
                    catalogs.setdefault(path.stem, []).append(path)
    return dict(sorted(catalogs.items()))


def available_gettext_languages(
    locale_dirs: Sequence[str | os.PathLike[str]] = DEFAULT_LOCALE_DIRS,
) -> dict[str, int]:
    """Count the usable catalogs (``.mo`` files outside iso-codes) of every language directory.

    Args:
        locale_dirs: Roots to search.

    Returns:
        ``{lang: number of catalogs}`` for languages with at least one, most catalogs first, then by name.
    """
    counts: Counter[str] = Counter()
    for root in locale_dirs:
        root_path = Path(root)
        if not root_path.is_dir():
            continue
        for messages_dir in root_path.glob("*/LC_MESSAGES"):
            usable = sum(1 for path in messages_dir.glob("*.mo") if not path.stem.startswith(ISO_CODES_PREFIX))
            if usable:
                counts[messages_dir.parent.name] += usable
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _missing_language_message(lang: str, locale_dirs: Sequence[str | os.PathLike[str]], reason: str) -> str:
    """Build the explanation for a language without usable catalogs."""
    available = available_gettext_languages(locale_dirs)
    searched = ", ".join(str(Path(root)) for root in locale_dirs) or "(none)"
    if available:
        shown = ", ".join(f"{name} ({count})" for name, count in list(available.items())[:40])
        more = f" and {len(available) - 40} more" if len(available) > 40 else ""
        languages = f"Languages with catalogs here (number of catalogs): {shown}{more}."
    else:
        languages = "No language has .mo catalogs in these directories."
    return (
        f"No usable gettext catalogs for language {lang!r}: {reason}. Searched: {searched} "
        f"(layout <dir>/<lang>/LC_MESSAGES/<package>.mo). {languages} "
        "Pick one of those (e.g. 'gettext:fr'), install translated packages, or use a built-in task that needs no "
        "corpus: 'synthetic:reverse', 'synthetic:sort', 'synthetic:copy', 'synthetic:shift', 'synthetic:duplicate'."
    )


def _stable_rank(name: str, salt: str) -> str:
    """Order key for a package: a SHA-256 digest, identical on every machine and Python run (unlike ``hash()``)."""
    return hashlib.sha256(f"{salt}\x00{name}".encode()).hexdigest()


def _shuffled(columns: dict[str, list[str]], salt: str) -> dict[str, list[str]]:
    """One split's rows in a fixed shuffled order: by SHA-256 of the salt and the row (the same on every machine and
    run; a row's place relative to another does not depend on which other rows exist)."""
    keys = [
        _stable_rank("\x00".join(row), f"{salt}\x00order")
        for row in zip(columns["source"], columns["target"], columns["package"], columns["context"])
    ]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return {name: [values[index] for index in order] for name, values in columns.items()}


@dataclass
class _BuildReport:
    """Counts collected while building the corpus, for the log and the dataset description."""

    catalogs: int = 0
    iso_catalogs_skipped: int = 0
    messages: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def dropped_text(self) -> str:
        """Return the drop counts as ``reason=count`` pairs."""
        counts = sorted((reason, count) for reason, count in self.dropped.items() if count)
        return ", ".join(f"{reason}={count}" for reason, count in counts) or "none"


def _package_rows(
    paths: Iterable[Path],
    *,
    max_length_chars: int | None,
    require_letters: bool,
    report: _BuildReport,
) -> Iterator[tuple[str, str, str]]:
    """Yield the cleaned ``(source, target, context)`` rows of one package's catalogs."""
    for path in paths:
        try:
            messages, undecodable = parse_mo(path.read_bytes(), name=str(path))
        except MoFormatError as error:
            logger.warning("skipping %s: %s", path, error)
            report.dropped["invalid_catalog"] += 1
            continue
        report.catalogs += 1
        report.messages += len(messages)
        report.dropped["undecodable"] += undecodable
        for message in messages:
            produced = message.pairs()
            # Each English form (singular, plural) without a translation counts as one untranslated pair; a
            # language with a single plural form (msgstr[0] only) has no plural pair to miss.
            english_forms = 2 if message.msgid_plural is not None and len(message.msgstr) > 1 else 1
            report.dropped["untranslated"] += english_forms - len(produced)
            for raw_source, raw_target in produced:
                source = normalize_whitespace(raw_source)
                target = normalize_whitespace(raw_target)
                if not source or not target:
                    report.dropped["empty"] += 1
                elif require_letters and not has_words(source):
                    report.dropped["no_letters"] += 1
                elif max_length_chars is not None and max(len(source), len(target)) > max_length_chars:
                    report.dropped["too_long"] += 1
                else:
                    yield source, target, message.context


def build_gettext_corpus(
    lang: str = "de",
    locale_dirs: Sequence[str | os.PathLike[str]] = DEFAULT_LOCALE_DIRS,
    *,
    num_test_packages: int = 10,
    num_validation_packages: int = 5,
    split_salt: str = "hf_encdec",
    max_length_chars: int | None = 256,
    require_letters: bool = True,
    exclude_overlap: bool = True,
    include_variants: bool = False,
    shuffle: bool = True,
) -> datasets.DatasetDict:
    """Build an English -> ``lang`` translation corpus from the machine's gettext catalogs.

    Rules, in order:

    1. Catalogs: every ``<dir>/<lang>/LC_MESSAGES/<package>.mo`` under ``locale_dirs``; with ``include_variants``
       also ``<lang>_*`` and ``<lang>@*`` directories (``de_CH``), whose catalogs join the package of the same name.
       Domains starting with ``iso_`` (iso-codes: ``iso_639``, ``iso_3166-2``, ``iso_4217``, ...) are skipped: they
       are tens of thousands of country, language and currency names, not software messages.
    2. Pairs: ``(msgid, msgstr)``, and for plural entries ``(msgid, msgstr[0])`` and ``(msgid_plural, msgstr[1])``.
       Whitespace is normalised with :func:`normalize_whitespace`. Dropped: untranslated forms (empty msgstr),
       pairs that are empty after normalisation, pairs whose English side has no letter outside format placeholders
       (``"%s: %s"``) when ``require_letters``, and pairs with a side longer than ``max_length_chars``.
    3. Split by package: packages that kept at least one pair are ordered by SHA-256 of ``split_salt`` + name (the
       same on every machine and run); the first ``num_test_packages`` form ``test``, the next
       ``num_validation_packages`` form ``validation``, the rest ``train``. Test messages thus come from programs
       the model never saw.
    4. Deduplication: an identical ``(source, target)`` pair is kept once, in the first split of train ->
       validation -> test (so within a split, and a validation/test pair that also occurs in train is removed).
    5. Overlap (``exclude_overlap=True``): a validation or test pair whose English ``source`` also occurs in train
       (with any translation) is dropped, so evaluation measures translation of unseen messages rather than recall
       of shared strings such as ``"Memory exhausted"`` that many GNU programs carry.
    6. Order (``shuffle=True``): each split is shuffled by SHA-256 of ``split_salt`` + pair + package, so that its
       first rows (what ``--max_eval_samples`` takes) are a sample of all its packages rather than the first
       package's messages. ``shuffle=False`` keeps package order, each package's messages in catalog order. Only
       the order changes: which pairs a split holds is decided by rules 1-5 either way.

    Args:
        lang: Locale directory name: ``"de"``, ``"fr"``, ``"pt_BR"``.
        locale_dirs: Roots to search (default: ``/usr/share/locale``).
        num_test_packages: Packages held out for ``test``.
        num_validation_packages: Packages held out for ``validation``.
        split_salt: Changes which packages are held out, deterministically.
        max_length_chars: Drop pairs with a side longer than this many characters (``None``: keep all).
        require_letters: Drop pairs whose English side has no letter outside format placeholders
            (:func:`has_words`).
        exclude_overlap: Drop validation/test pairs whose English source occurs in train (rule 5).
        include_variants: Also read ``<lang>_*`` / ``<lang>@*`` locale directories.
        shuffle: Put each split in its fixed shuffled order (rule 6); ``False`` for package order.

    Returns:
        A ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and string columns ``source``
        (English), ``target``, ``package`` (catalog domain) and ``context`` (``msgctxt`` or ``""``).

    Raises:
        GettextCatalogNotFoundError: If ``lang`` has no catalogs outside iso-codes under ``locale_dirs``.
        ValueError: If ``lang`` is not a locale name, a count is negative, there are not enough packages for the
            requested split, or no pair survives the filters.
    """
    if not _is_locale_name(lang):
        raise ValueError(f"lang must be a locale directory name such as 'de' or 'pt_BR', got {lang!r}")
    if num_test_packages < 0 or num_validation_packages < 0:
        raise ValueError(
            f"num_test_packages and num_validation_packages must be >= 0, got {num_test_packages} and "
            f"{num_validation_packages}"
        )
    if max_length_chars is not None and max_length_chars < 1:
        raise ValueError(f"max_length_chars must be positive or None, got {max_length_chars}")

    catalogs = find_catalogs(lang, locale_dirs, include_variants=include_variants)
    report = _BuildReport()
    iso_domains = [domain for domain in catalogs if domain.startswith(ISO_CODES_PREFIX)]
    report.iso_catalogs_skipped = sum(len(catalogs[domain]) for domain in iso_domains)
    for domain in iso_domains:
        del catalogs[domain]
    if not catalogs:
        reason = "only iso-codes catalogs were found" if iso_domains else "no .mo files were found"
        raise GettextCatalogNotFoundError(_missing_language_message(lang, locale_dirs, reason))

    rows_by_package: dict[str, list[tuple[str, str, str]]] = {}
    for package, paths in catalogs.items():
        rows = list(
            _package_rows(paths, max_length_chars=max_length_chars, require_letters=require_letters, report=report)
        )
        if rows:
            rows_by_package[package] = rows
        else:
            logger.info("package %s has no usable pairs after filtering", package)
    if not rows_by_package:
        raise ValueError(
            f"No usable pairs in the {report.catalogs} gettext catalogs for {lang!r} "
            f"(dropped: {report.dropped_text()})"
        )

    needed = num_test_packages + num_validation_packages + 1
    if len(rows_by_package) < needed:
        raise ValueError(
            f"{len(rows_by_package)} packages with usable pairs for {lang!r}, but the split needs at least "
            f"{needed} (num_test_packages={num_test_packages} + num_validation_packages={num_validation_packages} "
            "+ 1 for train); lower those numbers"
        )
    ordered = sorted(rows_by_package, key=lambda name: _stable_rank(name, split_salt))
    split_packages = {
        "test": ordered[:num_test_packages],
        "validation": ordered[num_test_packages : num_test_packages + num_validation_packages],
        "train": ordered[num_test_packages + num_validation_packages :],
    }

    seen_pairs: set[tuple[str, str]] = set()
    train_sources: set[str] = set()
    columns_by_split: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "validation", "test"):  # train first: duplicates stay in the earliest split
        columns: dict[str, list[str]] = {"source": [], "target": [], "package": [], "context": []}
        for package in split_packages[split]:
            for source, target, context in rows_by_package[package]:
                if (source, target) in seen_pairs:
                    report.dropped["duplicate"] += 1
                    continue
                seen_pairs.add((source, target))
                if split != "train" and exclude_overlap and source in train_sources:
                    report.dropped[f"{split}_source_in_train"] += 1
                    continue
                if split == "train":
                    train_sources.add(source)
                columns["source"].append(source)
                columns["target"].append(target)
                columns["package"].append(package)
                columns["context"].append(context)
        columns_by_split[split] = _shuffled(columns, split_salt) if shuffle else columns

    for split, columns in columns_by_split.items():
        if not columns["source"] and split_packages[split]:
            raise ValueError(
                f"The {split} split of the {lang!r} gettext corpus is empty after deduplication and overlap "
                f"removal (packages: {', '.join(split_packages[split])}); try another split_salt"
            )

    description = (
        f"English -> {lang} pairs from {report.catalogs} gettext catalogs ({len(rows_by_package)} packages) under "
        f"{', '.join(str(root) for root in locale_dirs)}; split by package (salt {split_salt!r}); "
        f"exclude_overlap={exclude_overlap}; max_length_chars={max_length_chars}; shuffle={shuffle}; "
        f"iso-codes catalogs skipped: {report.iso_catalogs_skipped}; dropped: {report.dropped_text()}."
    )
    column_names = ("source", "target", "package", "context")
    features = datasets.Features({name: datasets.Value("string") for name in column_names})
    corpus = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                columns, features=features, info=datasets.DatasetInfo(description=description, features=features)
            )
            for split, columns in columns_by_split.items()
        }
    )
    logger.info(
        "gettext corpus %s: %d catalogs read (%d iso-codes catalogs skipped), %d messages, %d packages kept; "
        "pairs train=%d (%d packages), validation=%d (%d packages), test=%d (%d packages); dropped: %s",
        lang,
        report.catalogs,
        report.iso_catalogs_skipped,
        report.messages,
        len(rows_by_package),
        corpus["train"].num_rows,
        len(split_packages["train"]),
        corpus["validation"].num_rows,
        len(split_packages["validation"]),
        corpus["test"].num_rows,
        len(split_packages["test"]),
        report.dropped_text(),
    )
    logger.info("gettext corpus %s: test packages %s", lang, ", ".join(split_packages["test"]))
    return corpus


def gettext_corpus_summary(corpus: datasets.DatasetDict) -> dict[str, Any]:
    """Per-split statistics of a corpus from :func:`build_gettext_corpus`, for a model card.

    Args:
        corpus: A ``datasets.DatasetDict`` with ``source``, ``target`` and ``package`` columns.

    Returns:
        ``{"splits": {split: {"pairs", "packages", "package_names", "mean_source_chars", "mean_target_chars"}},
        "test_packages": [...], "validation_packages": [...], "description": str}``; package names are sorted.
    """
    splits: dict[str, dict[str, Any]] = {}
    description = ""
    for split, dataset in corpus.items():
        sources: list[str] = list(dataset["source"])
        targets: list[str] = list(dataset["target"])
        packages = sorted(set(dataset["package"])) if "package" in dataset.column_names else []
        pairs = len(sources)
        splits[split] = {
            "pairs": pairs,
            "packages": len(packages),
            "package_names": packages,
            "mean_source_chars": round(sum(map(len, sources)) / pairs, 1) if pairs else 0.0,
            "mean_target_chars": round(sum(map(len, targets)) / pairs, 1) if pairs else 0.0,
        }
        description = description or (dataset.info.description or "")
    return {
        "splits": splits,
        "test_packages": splits.get("test", {}).get("package_names", []),
        "validation_packages": splits.get("validation", {}).get("package_names", []),
        "description": description,
    }


def vim_locale_dirs(pattern: str = VIM_LOCALE_GLOB) -> list[Path]:
    """The catalog roots of the installed vim versions (newest name last); empty where vim has none."""
    return sorted(path for path in Path("/").glob(pattern.lstrip("/")) if path.is_dir())


def build_extra_catalog_pairs(
    lang: str,
    locale_dirs: Sequence[str | os.PathLike[str]],
    *,
    max_length_chars: int | None = 256,
    require_letters: bool = True,
) -> datasets.Dataset:
    """The cleaned pairs of the catalogs under `locale_dirs` (e.g. :func:`vim_locale_dirs`) as one training set:
    columns ``source``, ``target``, ``package`` (the catalog domain) and ``context``, each pair once, filtered as
    :func:`build_gettext_corpus` filters (rule 2). A program that keeps its catalogs outside share/locale, as vim
    does, is no package of the gettext corpus: its pairs can join the corpus's training split.

    Raises:
        GettextCatalogNotFoundError: `lang` has no catalog under `locale_dirs`.
    """
    catalogs = find_catalogs(lang, locale_dirs)
    if not catalogs:
        raise GettextCatalogNotFoundError(_missing_language_message(lang, locale_dirs, "no .mo files were found"))
    report = _BuildReport()
    columns: dict[str, list[str]] = {"source": [], "target": [], "package": [], "context": []}
    seen: set[tuple[str, str]] = set()
    for package, paths in catalogs.items():
        for source, target, context in _package_rows(
            paths, max_length_chars=max_length_chars, require_letters=require_letters, report=report
        ):
            if (source, target) not in seen:
                seen.add((source, target))
                for name, value in zip(("source", "target", "package", "context"), (source, target, package, context)):
                    columns[name].append(value)
    logger.info("%d pairs from %d catalogs under %s (dropped: %s)", len(columns["source"]), report.catalogs,
                ", ".join(str(root) for root in locale_dirs), report.dropped_text())
    features = datasets.Features({name: datasets.Value("string") for name in columns})
    return datasets.Dataset.from_dict(columns, features=features)
