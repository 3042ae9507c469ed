"""Filling a gettext catalog: which entries are filled and how (fuzzy, plurals, context, header), what is left
untranslated, and the checks (GNU msgfmt -c when installed, the pure-Python one always) that catch broken ones."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polib
import pytest
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from copying import copying_model
from helpers import word_level_tokenizer
from hf_encdec.inference import translate_messages
from hf_encdec.localization.catalog import (
    PLURAL_FORMS,
    FillReport,
    directive_problems,
    fill_catalog,
    msgfmt_check,
    template_from_mo,
)
from hf_encdec.localization.placeholders import placeholder_problems

needs_msgfmt = pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext-tools (msgfmt) is not installed")


# `%lu` is no word of the tokenizer: no hypothesis can keep it.
WORDS = [f"w{i}" for i in range(88)] + ["%s", "%d", "_w1", "Ö_w2"]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return word_level_tokenizer(WORDS)


@pytest.fixture(scope="module")
def model(tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    return copying_model(tokenizer)


def _catalog(path: Path, *, language: str | None = "de", plural_forms: bool = True) -> Path:
    catalog = polib.POFile(wrapwidth=0)
    catalog.metadata = {"Project-Id-Version": "demo", "Content-Type": "text/plain; charset=UTF-8"}
    if language:
        catalog.metadata["Language"] = language
    if plural_forms:
        catalog.metadata["Plural-Forms"] = "nplurals=2; plural=(n != 1);"
    catalog.append(polib.POEntry(msgid="w5 w6 w7\n", msgstr=""))
    catalog.append(polib.POEntry(msgid="\nw8 w9\n", msgstr=""))
    catalog.append(polib.POEntry(msgid="w10 %s w11", msgstr="", flags=["c-format"]))
    catalog.append(polib.POEntry(msgid="w12 %lu", msgstr="", flags=["c-format"]))
    catalog.append(polib.POEntry(msgid="w13 w14", msgctxt="menu", msgstr=""))
    catalog.append(polib.POEntry(msgid="w13 w14", msgctxt="button", msgstr=""))
    catalog.append(polib.POEntry(msgid="w15 %d w16", msgid_plural="w17 %d w18", msgstr_plural={0: "", 1: ""},
                                 flags=["c-format"]))
    catalog.append(polib.POEntry(msgid="w19 w20", msgstr="Schon übersetzt"))
    catalog.append(polib.POEntry(msgid="w21 w22", msgstr="Alt", obsolete=True))
    catalog.save(str(path))
    return path


def _entries(path: Path) -> dict[tuple[str | None, str], polib.POEntry]:
    return {(entry.msgctxt, entry.msgid): entry for entry in polib.pofile(str(path)) if entry.msgid and not entry.obsolete}


def test_untranslated_entries_are_filled_fuzzy_and_keep_their_directives_and_layout(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    source = _catalog(tmp_path / "demo.po")
    report = fill_catalog(model, tokenizer, source, tmp_path / "filled.po", progress=False)
    assert isinstance(report, FillReport) and report.entries == 8 and report.kept == 1
    assert report.not_filled == ["w12 %lu"]  # no hypothesis can write %lu
    assert report.filled == 6
    entries = _entries(tmp_path / "filled.po")
    assert entries[(None, "w12 %lu")].msgstr == "" and "fuzzy" not in entries[(None, "w12 %lu")].flags
    assert entries[(None, "w19 w20")].msgstr == "Schon übersetzt" and "fuzzy" not in entries[(None, "w19 w20")].flags
    filled = [entry for key, entry in entries.items() if key[1] not in ("w12 %lu", "w19 w20")]
    assert all("fuzzy" in entry.flags for entry in filled)
    assert entries[(None, "w5 w6 w7\n")].msgstr.endswith("\n") and entries[(None, "\nw8 w9\n")].msgstr.startswith("\n")
    assert "%s" in entries[(None, "w10 %s w11")].msgstr
    # msgctxt is kept and only matches: two contexts of one msgid get the one translation
    assert entries[("menu", "w13 w14")].msgstr == entries[("button", "w13 w14")].msgstr != ""
    plural = entries[(None, "w15 %d w16")]
    assert sorted(plural.msgstr_plural) == [0, 1] and all("%d" in form for form in plural.msgstr_plural.values())
    assert directive_problems(tmp_path / "filled.po") == {}
    obsolete = [entry for entry in polib.pofile(str(tmp_path / "filled.po")) if entry.obsolete]
    assert [(entry.msgid, entry.msgstr) for entry in obsolete] == [("w21 w22", "Alt")]


@needs_msgfmt
def test_msgfmt_accepts_the_filled_catalog_and_rejects_the_unprotected_one(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    source = _catalog(tmp_path / "demo.po")
    fill_catalog(model, tokenizer, source, tmp_path / "protected.po", progress=False)
    fill_catalog(model, tokenizer, source, tmp_path / "plain.po", protect=False, progress=False)
    protected, plain = msgfmt_check(tmp_path / "protected.po"), msgfmt_check(tmp_path / "plain.po")
    assert protected is not None and plain is not None
    assert protected.entries == plain.entries == 8
    assert protected.rejected == 0, protected.errors
    # the plain hypotheses lose the edge newlines of two entries (at least) and %lu, which msgfmt -c rejects
    broken = directive_problems(tmp_path / "plain.po")
    assert plain.rejected >= 3 and len(broken) >= plain.rejected


@needs_msgfmt
def test_msgfmt_check_counts_rejected_entries_not_error_lines(tmp_path: Path) -> None:
    catalog = polib.POFile(wrapwidth=0)
    catalog.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": "de",
                        "Plural-Forms": "nplurals=2; plural=(n != 1);"}
    catalog.append(polib.POEntry(msgid="\nOpen %s and %d\n", msgstr="Öffne %d", flags=["c-format"]))  # three errors
    catalog.append(polib.POEntry(msgid="Fine\n", msgstr="Gut\n"))
    catalog.append(polib.POEntry(msgid="Quit\n", msgstr="Beenden", flags=["fuzzy"]))  # fuzzy entries are checked too
    catalog.save(str(tmp_path / "broken.po"))
    result = msgfmt_check(tmp_path / "broken.po")
    assert result is not None and result.entries == 3 and result.rejected == 2 and len(result.errors) >= 2
    assert sorted(directive_problems(tmp_path / "broken.po")) == ["\nOpen %s and %d\n", "Quit\n"]


def test_a_template_gets_the_language_and_its_plural_rule(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    template = _catalog(tmp_path / "demo.pot", language=None, plural_forms=False)
    with pytest.raises(ValueError, match="--language"):
        fill_catalog(model, tokenizer, template, tmp_path / "out.po", progress=False)
    fill_catalog(model, tokenizer, template, tmp_path / "pl.po", language="pl", progress=False)
    catalog = polib.pofile(str(tmp_path / "pl.po"))
    assert catalog.metadata["Language"] == "pl" and catalog.metadata["Plural-Forms"].startswith("nplurals=3;")
    plural = next(entry for entry in catalog if entry.msgid_plural)
    assert sorted(plural.msgstr_plural) == [0, 1, 2] and plural.msgstr_plural[1] == plural.msgstr_plural[2]
    with pytest.raises(ValueError, match="no plural rule for language 'xx'"):
        fill_catalog(model, tokenizer, template, tmp_path / "xx.po", language="xx", progress=False)


def test_the_catalog_language_must_be_the_models(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    source = _catalog(tmp_path / "demo.po", language="fr")
    model.config.training_data = "gettext:de"
    try:
        with pytest.raises(ValueError, match="translates into 'de'.*'fr'"):
            fill_catalog(model, tokenizer, source, tmp_path / "out.po", progress=False)
        with pytest.raises(ValueError, match="Language 'fr', but --language 'de'"):
            fill_catalog(model, tokenizer, source, tmp_path / "out.po", language="de", progress=False)
    finally:
        del model.config.training_data
    assert not (tmp_path / "out.po").exists()


def test_overwrite_refills_translated_entries_in_place(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    source = _catalog(tmp_path / "demo.po")
    report = fill_catalog(model, tokenizer, source, source, overwrite=True, progress=False)
    assert report.kept == 0 and report.filled == 7
    entry = _entries(source)[(None, "w19 w20")]
    assert entry.msgstr != "Schon übersetzt" and "fuzzy" in entry.flags
    assert [path.name for path in tmp_path.iterdir()] == ["demo.po"]  # no temporary file left behind


def test_a_broken_catalog_is_a_clear_error(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    (tmp_path / "bad.po").write_text('msgid "open"\nmsgstr "offen"\nmsgid\n')
    with pytest.raises(ValueError, match="not a readable gettext catalog"):
        fill_catalog(model, tokenizer, tmp_path / "bad.po", tmp_path / "out.po", progress=False)
    with pytest.raises(FileNotFoundError, match="missing.po does not exist"):
        fill_catalog(model, tokenizer, tmp_path / "missing.po", tmp_path / "out.po", progress=False)


def test_a_template_from_a_compiled_catalog_keeps_its_entries(tmp_path: Path) -> None:
    catalog = polib.POFile()
    catalog.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Plural-Forms": "nplurals=2; plural=(n != 1);"}
    catalog.append(polib.POEntry(msgid="Open %s\n", msgstr="Öffne %s\n"))
    catalog.append(polib.POEntry(msgid="Quit", msgctxt="menu", msgstr="Beenden"))
    catalog.append(polib.POEntry(msgid="%d file", msgid_plural="%d files", msgstr_plural={0: "%d Datei", 1: "%d Dateien"}))
    mo = tmp_path / "de" / "LC_MESSAGES" / "demo.mo"
    mo.parent.mkdir(parents=True)
    catalog.save_as_mofile(str(mo))
    template = polib.pofile(str(template_from_mo(mo, tmp_path / "demo.pot")))
    entries = {entry.msgid: entry for entry in template if entry.msgid}
    assert entries["Open %s\n"].flags == ["c-format"] and entries["Open %s\n"].msgstr == ""
    assert entries["Quit"].msgctxt == "menu" and entries["Quit"].flags == []
    assert entries["%d file"].msgid_plural == "%d files" and set(entries["%d file"].msgstr_plural.values()) == {""}
    reference = polib.pofile(str(template_from_mo(mo, tmp_path / "demo.po", keep_translations=True)))
    assert reference.metadata["Language"] == "de"
    assert {entry.msgid: entry.msgstr or entry.msgstr_plural[1] for entry in reference if entry.msgid} == {
        "Open %s\n": "Öffne %s\n", "Quit": "Beenden", "%d file": "%d Dateien"}
    assert all(not placeholder_problems(e.msgid, e.msgstr) for e in reference if e.msgid and not e.msgid_plural)


def _plural_catalog(path: Path, language: str, plural_forms: str, entries: list[polib.POEntry]) -> Path:
    catalog = polib.POFile(wrapwidth=0)
    catalog.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": language, "Plural-Forms": plural_forms}
    for entry in entries:
        catalog.append(entry)
    catalog.save(str(path))
    return path


@pytest.mark.parametrize(
    ("language", "singular", "plural", "form_zero"),
    [
        # Russian form 0 also serves 21, 31, ...: it needs the number, so it says the plural
        ("ru", "w20 w21", "w22 %d w23", "plural"),
        # German form 0 is n = 1 alone: it may leave the number out, so it says the singular
        ("de", "w20 w21", "w22 %d w23", "singular"),
        # but a singular that reads other arguments than the plural cannot be form 0 (msgfmt: "argument 1")
        ("de", "w24 %s", "w25 %d w26 %s", "plural"),
    ],
)
def test_form_zero_says_what_msgfmt_checks_it_against(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path, language: str, singular: str,
    plural: str, form_zero: str,
) -> None:
    rule = PLURAL_FORMS[language]
    forms = int(rule.split("nplurals=")[1][0])
    entry = polib.POEntry(msgid=singular, msgid_plural=plural, msgstr_plural=dict.fromkeys(range(forms), ""), flags=["c-format"])
    path = _plural_catalog(tmp_path / "p.po", language, rule, [entry])
    report = fill_catalog(model, tokenizer, path, tmp_path / "out.po", progress=False)
    assert report.filled == 1
    (filled,) = [e for e in polib.pofile(str(tmp_path / "out.po")) if e.msgid]
    expected_source = plural if form_zero == "plural" else singular
    assert filled.msgstr_plural[0] == translate_messages(model, tokenizer, [expected_source], progress=False)[0]
    assert directive_problems(tmp_path / "out.po") == {}
    checked = msgfmt_check(tmp_path / "out.po")
    assert checked is None or checked.rejected == 0, checked.errors


def test_only_the_empty_forms_of_a_partly_translated_plural_are_filled(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    entry = polib.POEntry(msgid="w30 %d", msgid_plural="w31 %d", msgstr_plural={0: "Eins %d", 1: ""}, flags=["c-format"])
    path = _plural_catalog(tmp_path / "p.po", "de", PLURAL_FORMS["de"], [entry])
    assert fill_catalog(model, tokenizer, path, tmp_path / "out.po", progress=False).filled == 1
    (filled,) = [e for e in polib.pofile(str(tmp_path / "out.po")) if e.msgid]
    assert filled.msgstr_plural[0] == "Eins %d" and "%d" in filled.msgstr_plural[1]


def test_the_output_gets_ordinary_file_permissions_and_locale_variants_their_language_rule(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    template = _catalog(tmp_path / "demo.pot", language=None, plural_forms=False)
    fill_catalog(model, tokenizer, template, tmp_path / "sr.po", language="sr@latin", progress=False)
    catalog = polib.pofile(str(tmp_path / "sr.po"))
    assert catalog.metadata["Plural-Forms"] == PLURAL_FORMS["sr"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "sr.po").stat().st_mode & 0o777 == 0o666 & ~umask
