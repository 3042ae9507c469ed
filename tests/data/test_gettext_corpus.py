"""The .mo reader and the gettext corpus builder, on catalogs compiled in the test and on the machine's own."""

from __future__ import annotations

import gettext
import hashlib
import io
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from hf_encdec.data.gettext_corpus import (
    GettextCatalogNotFoundError,
    MoFormatError,
    MoMessage,
    available_gettext_languages,
    build_gettext_corpus,
    find_catalogs,
    gettext_corpus_summary,
    normalize_whitespace,
    parse_mo,
    read_mo_file,
)

SYSTEM_GERMAN = Path("/usr/share/locale/de/LC_MESSAGES")

ENTRIES = [
    ("Open file", "Datei öffnen"),
    ("menu\x04Open", "Öffnen"),
    ("%d file\x00%d files", "%d Datei\x00%d Dateien"),
    ("Untranslated", ""),
]


def small_split(**overrides: object) -> dict[str, object]:
    """Split options that fit the 9-package fake tree: 2 test, 2 validation, 5 train packages."""
    return {"num_test_packages": 2, "num_validation_packages": 2, **overrides}


def rows(corpus: object) -> dict[str, list[tuple[str, str, str, str]]]:
    """Every split as a list of (source, target, package, context) rows."""
    return {
        split: list(zip(data["source"], data["target"], data["package"], data["context"]))
        for split, data in corpus.items()  # type: ignore[attr-defined]
    }


# --- the .mo reader ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("byte_order", "charset"), [("<", "UTF-8"), (">", "UTF-8"), (">", "ISO-8859-1")])
def test_parse_mo_reads_contexts_plurals_and_charsets(
    mo_compiler: Callable[..., bytes], byte_order: str, charset: str
) -> None:
    messages, undecodable = parse_mo(mo_compiler(ENTRIES, byte_order=byte_order, charset=charset))
    assert undecodable == 0
    assert sorted(messages, key=lambda message: message.msgid) == sorted(
        [
            MoMessage(msgid="Open file", msgstr=("Datei öffnen",)),
            MoMessage(msgid="Open", msgstr=("Öffnen",), context="menu"),
            MoMessage(msgid="%d file", msgstr=("%d Datei", "%d Dateien"), msgid_plural="%d files"),
            MoMessage(msgid="Untranslated", msgstr=("",)),
        ],
        key=lambda message: message.msgid,
    )


def test_parse_mo_agrees_with_the_standard_library(mo_compiler: Callable[..., bytes]) -> None:
    data = mo_compiler(ENTRIES, byte_order=">", charset="ISO-8859-1")
    reference = gettext.GNUTranslations(io.BytesIO(data))
    by_id = {message.msgid: message for message in parse_mo(data)[0]}
    assert by_id["Open file"].msgstr[0] == reference.gettext("Open file")
    assert by_id["Open"].msgstr[0] == reference.pgettext("menu", "Open")
    assert by_id["%d file"].msgstr[0] == reference.ngettext("%d file", "%d files", 1)
    assert by_id["%d file"].msgstr[1] == reference.ngettext("%d file", "%d files", 5)


def test_pairs_emit_singular_and_plural_and_skip_untranslated() -> None:
    plural = MoMessage(msgid="%d file", msgstr=("%d Datei", "%d Dateien"), msgid_plural="%d files")
    assert plural.pairs() == [("%d file", "%d Datei"), ("%d files", "%d Dateien")]
    single_form = MoMessage(msgid="%d file", msgstr=("%d 個のファイル",), msgid_plural="%d files")
    assert single_form.pairs() == [("%d file", "%d 個のファイル")]
    half_translated = MoMessage(msgid="%d file", msgstr=("%d Datei", ""), msgid_plural="%d files")
    assert half_translated.pairs() == [("%d file", "%d Datei")]
    assert MoMessage(msgid="Untranslated", msgstr=("",)).pairs() == []


def test_parse_mo_skips_entries_that_do_not_decode(mo_compiler: Callable[..., bytes]) -> None:
    data = mo_compiler([("Good", "Gut"), ("Bad", "Schlecht")], charset="UTF-8")
    # Corrupt the translation "Schlecht" into invalid UTF-8 without changing any length or offset.
    data = data.replace(b"Schlecht", b"Schl\xffcht")
    messages, undecodable = parse_mo(data)
    assert undecodable == 1
    assert [message.msgid for message in messages] == ["Good"]


def test_parse_mo_rejects_non_catalogs(mo_compiler: Callable[..., bytes]) -> None:
    with pytest.raises(MoFormatError, match="magic"):
        parse_mo(b"\x00" * 64, name="junk.mo")
    truncated = mo_compiler(ENTRIES)[:40]
    with pytest.raises(MoFormatError, match="past the end"):
        parse_mo(truncated, name="truncated.mo")
    # A major revision other than 0 or 1 means a layout the reader does not know: refuse rather than misread.
    future = bytearray(mo_compiler(ENTRIES))
    future[4:8] = (2 << 16).to_bytes(4, "little")
    with pytest.raises(MoFormatError, match="revision"):
        parse_mo(bytes(future), name="future.mo")


def test_normalize_whitespace_keeps_format_strings_and_no_break_spaces() -> None:
    assert normalize_whitespace("  -a, --all\t\t do not ignore %-10s\n") == "-a, --all do not ignore %-10s"
    assert normalize_whitespace("Fichier\u00a0: %s\n") == "Fichier\u00a0: %s"
    assert normalize_whitespace("/etc/foo.conf") == "/etc/foo.conf"


# --- finding catalogs ---------------------------------------------------------------------------------------------


def test_find_catalogs_keeps_language_variants_apart_unless_asked(locale_tree: Path) -> None:
    plain = find_catalogs("de", [locale_tree])
    assert plain["alpha"] == [locale_tree / "de" / "LC_MESSAGES" / "alpha.mo"]
    with_variants = find_catalogs("de", [locale_tree], include_variants=True)
    assert with_variants["alpha"] == [
        locale_tree / "de" / "LC_MESSAGES" / "alpha.mo",
        locale_tree / "de_CH" / "LC_MESSAGES" / "alpha.mo",
    ]
    assert "alpha" not in find_catalogs("d", [locale_tree], include_variants=True)  # `d` is no prefix of `de_CH`


def test_available_languages_count_catalogs_without_iso_codes(locale_tree: Path) -> None:
    assert available_gettext_languages([locale_tree]) == {"de": 9, "de_CH": 1, "fr": 1}


# --- the corpus builder -----------------------------------------------------------------------------------------


def test_build_extracts_exactly_the_cleaned_pairs(
    locale_tree: Path, expected_pairs: set[tuple[str, str, str, str]]
) -> None:
    corpus = build_gettext_corpus("de", [locale_tree], **small_split(exclude_overlap=False))
    assert set(corpus) == {"train", "validation", "test"}
    got = [row for split_rows in rows(corpus).values() for row in split_rows]
    assert len(got) == len(set(got)), "a row appears twice"
    # Each package's rows are in the corpus except the shared pair, which survives once.
    shared = ("Memory exhausted", "Speicher erschöpft")
    assert {row for row in got if row[:2] != shared} == {row for row in expected_pairs if row[:2] != shared}
    assert sum(row[:2] == shared for row in got) == 1
    sources = {row[0] for row in got}
    assert "Untranslated message" not in sources
    assert "%s: %s" not in sources
    assert "x" * 300 not in sources
    assert not {"German", "French", "Bavaria", "Street"} & sources  # iso-codes and de_CH stay out
    assert ("Open", "Öffnen", "alpha", "menu") in got


def test_max_length_chars_none_keeps_long_pairs(locale_tree: Path) -> None:
    corpus = build_gettext_corpus("de", [locale_tree], **small_split(max_length_chars=None))
    sources = {source for data in corpus.values() for source in data["source"]}
    assert "x" * 300 in sources


def test_split_is_by_package_and_deterministic(locale_tree: Path) -> None:
    first = build_gettext_corpus("de", [locale_tree], **small_split())
    second = build_gettext_corpus("de", [locale_tree], **small_split())
    assert rows(first) == rows(second)
    packages = {split: set(data["package"]) for split, data in first.items()}
    assert len(packages["test"]) == 2 and len(packages["validation"]) == 2 and len(packages["train"]) == 5
    assert not packages["test"] & packages["train"]
    assert not packages["validation"] & packages["train"]
    assert not packages["test"] & packages["validation"]


def test_split_order_is_a_stable_sha256_not_python_hash(locale_tree: Path) -> None:
    corpus = build_gettext_corpus("de", [locale_tree], **small_split(split_salt="pinned"))
    names = ["alpha", *[f"pkg{index:02d}" for index in range(1, 9)]]
    ranked = sorted(names, key=lambda name: hashlib.sha256(f"pinned\x00{name}".encode()).hexdigest())
    assert set(corpus["test"]["package"]) == set(ranked[:2])
    assert set(corpus["validation"]["package"]) == set(ranked[2:4])


def test_splits_are_shuffled_without_changing_which_pairs_they_hold(locale_tree: Path) -> None:
    shuffled = rows(build_gettext_corpus("de", [locale_tree], **small_split()))
    ordered = rows(build_gettext_corpus("de", [locale_tree], **small_split(shuffle=False)))
    for split in ("train", "validation", "test"):
        assert sorted(shuffled[split]) == sorted(ordered[split])  # the same pairs ...
        assert shuffled[split] != ordered[split]  # ... in another order

    def blocks(split_rows: list[tuple[str, str, str, str]]) -> int:
        """Runs of consecutive rows from one package."""
        packages = [package for _, _, package, _ in split_rows]
        return 1 + sum(before != after for before, after in zip(packages, packages[1:]))

    # without shuffling a split is one block per package, so its first rows all come from one package
    assert blocks(ordered["train"]) == len({row[2] for row in ordered["train"]})
    assert blocks(shuffled["train"]) > 2 * len({row[2] for row in ordered["train"]})
    assert len({row[2] for row in shuffled["validation"][:4]}) == 2  # both validation packages in the first rows


def test_split_salt_changes_the_held_out_packages(locale_tree: Path) -> None:
    held_out = {
        frozenset(build_gettext_corpus("de", [locale_tree], **small_split(split_salt=salt))["test"]["package"])
        for salt in ("a", "b", "c", "d")
    }
    assert len(held_out) > 1


def test_exclude_overlap_drops_evaluation_sources_seen_in_train(locale_tree: Path) -> None:
    kept = build_gettext_corpus("de", [locale_tree], **small_split(exclude_overlap=False))
    cleaned = build_gettext_corpus("de", [locale_tree], **small_split(exclude_overlap=True))
    # Every package translates "Cancel" differently, so the pair differs but the English source is shared.
    for split in ("validation", "test"):
        assert "Cancel" in kept[split]["source"]
        assert "Cancel" not in cleaned[split]["source"]
        train_sources = set(cleaned["train"]["source"])
        assert not train_sources & set(cleaned[split]["source"])
    assert rows(kept)["train"] == rows(cleaned)["train"]


def test_include_variants_merges_de_ch_into_the_same_package(locale_tree: Path) -> None:
    corpus = build_gettext_corpus("de", [locale_tree], **small_split(include_variants=True))
    found = [row for split_rows in rows(corpus).values() for row in split_rows if row[0] == "Street"]
    assert found == [("Street", "Strasse", "alpha", "")]


def test_build_logs_counts_per_split_and_drop_reasons(
    locale_tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="hf_encdec.data.gettext_corpus"):
        corpus = build_gettext_corpus("de", [locale_tree], **small_split())
    text = caplog.text
    assert f"train={corpus['train'].num_rows} " in text
    assert "2 iso-codes catalogs skipped" in text
    for reason in ("untranslated=1", "no_letters=1", "empty=1", "too_long=1", "duplicate="):
        assert reason in text


def test_missing_language_error_lists_available_languages(locale_tree: Path) -> None:
    with pytest.raises(GettextCatalogNotFoundError) as caught:
        build_gettext_corpus("xx", [locale_tree])
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert "'xx'" in message
    assert str(locale_tree) in message
    assert "de (9)" in message and "fr (1)" in message and "de_CH (1)" in message
    assert "nl" not in message.split("Languages with catalogs here")[1].split(".")[0]
    assert "synthetic:reverse" in message


def test_language_with_only_iso_codes_is_missing(locale_tree: Path) -> None:
    with pytest.raises(GettextCatalogNotFoundError, match="only iso-codes"):
        build_gettext_corpus("nl", [locale_tree])


def test_too_few_packages_for_the_split_is_an_error(locale_tree: Path) -> None:
    with pytest.raises(ValueError, match=r"9 packages .* at least 16"):
        build_gettext_corpus("de", [locale_tree])  # default: 10 test + 5 validation + 1 train


def test_summary_reports_pairs_packages_and_test_package_names(locale_tree: Path) -> None:
    corpus = build_gettext_corpus("de", [locale_tree], **small_split())
    summary = gettext_corpus_summary(corpus)
    for split, data in corpus.items():
        assert summary["splits"][split]["pairs"] == data.num_rows
        assert summary["splits"][split]["packages"] == len(set(data["package"]))
    assert summary["test_packages"] == sorted(set(corpus["test"]["package"]))
    assert "split by package" in summary["description"]


# --- the machine's real catalogs --------------------------------------------------------------------------------


def _system_german_catalogs() -> list[Path]:
    return sorted(SYSTEM_GERMAN.glob("*.mo")) if SYSTEM_GERMAN.is_dir() else []


@pytest.mark.skipif(not _system_german_catalogs(), reason=f"no .mo files in {SYSTEM_GERMAN} on this machine")
def test_reader_agrees_with_the_standard_library_on_real_catalogs() -> None:
    checked = 0
    for path in _system_german_catalogs():
        messages = read_mo_file(path)
        try:
            with path.open("rb") as handle:
                reference = gettext.GNUTranslations(handle)
        except UnicodeDecodeError:
            # The standard library decodes header lines as UTF-8 and fails on Latin-1 catalogs (net-tools);
            # the reader decodes them with the header's charset instead.
            assert messages and all("\ufffd" not in message.msgstr[0] for message in messages)
            continue
        for message in messages:
            if message.msgid_plural is None and not message.context and message.msgstr[0]:
                assert reference.gettext(message.msgid) == message.msgstr[0], (path, message.msgid)
                checked += 1
            elif message.context and message.msgid_plural is None and message.msgstr[0]:
                assert reference.pgettext(message.context, message.msgid) == message.msgstr[0], (path, message)
                checked += 1
    assert checked > 1000


@pytest.mark.skipif(not _system_german_catalogs(), reason=f"no .mo files in {SYSTEM_GERMAN} on this machine")
def test_real_german_corpus_is_package_disjoint_and_clean() -> None:
    corpus = build_gettext_corpus("de")
    packages = {split: set(data["package"]) for split, data in corpus.items()}
    assert len(packages["test"]) == 10 and len(packages["validation"]) == 5
    assert not packages["test"] & packages["train"] and not packages["validation"] & packages["train"]
    assert not any(name.startswith("iso_") for names in packages.values() for name in names)
    train_sources = set(corpus["train"]["source"])
    for split in ("validation", "test"):
        assert corpus[split].num_rows > 0
        assert not train_sources & set(corpus[split]["source"])
    assert corpus["train"].num_rows > 1000
    assert len(set(list(corpus["validation"]["package"])[:100])) >= 3  # shuffled: the first rows span packages
    pairs = set(zip(corpus["train"]["source"], corpus["train"]["target"]))
    assert len(pairs) == corpus["train"].num_rows  # deduplicated
    assert all(source == source.strip() and "\n" not in source for source in corpus["train"]["source"])
