"""The strict catalog parser refuses what GNU gettext refuses (and says where), reads what gettext reads as gettext
does, and the writer changes nothing but the msgstrs, fuzzy flags and header fields it is given."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from pathlib import Path

import polib
import pytest

from hf_encdec.localization.catalog import msgfmt_input_problems
from hf_encdec.localization.pofile import (
    CatalogError,
    catalog_changes,
    header_fields,
    parse_catalog,
    read_catalog,
    render_catalog,
)
from machine_catalogs import assert_read_as_compiled, every_kind_of_catalog, have_gettext_tools, msgunfmt, smallest_catalogs

FIXTURES = Path(__file__).parent.parent / "fixtures" / "po"
needs_msgfmt = pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext-tools (msgfmt) is not installed")
needs_gettext_tools = pytest.mark.skipif(not have_gettext_tools(), reason="gettext-tools (msgfmt, msgunfmt, msgfilter) is not installed")

HEADER = (b'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
          b'"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n')


def _line_of(data: bytes, marker: bytes) -> int:
    """The line (from 1) of the last occurrence of `marker`."""
    return data[:data.rindex(marker)].count(b"\n") + 1


# (case, catalog bytes, a text on the line that must be named, a fragment of the problem)
MALFORMED = [
    ("the issue's catalog: an unterminated msgid", (FIXTURES / "unterminated.de.po").read_bytes(),
     b'msgid "unterminated', "end-of-line within string"),
    ("end of file within a string", HEADER + b'msgid "a"\nmsgstr "b', b'msgstr "b', "end-of-file within string"),
    ("unknown escape", HEADER + b'msgid "a\\q"\nmsgstr ""\n', b"a\\q", "invalid control sequence \\q"),
    ("C's \\' is no gettext escape", HEADER + b'msgid "don\\\'t"\nmsgstr ""\n', b"don", "invalid control sequence \\'"),
    ("hex escape without digits", HEADER + b'msgid "a\\xg"\nmsgstr ""\n', b"a\\xg", "invalid control sequence \\x"),
    ("duplicate msgid", HEADER + b'msgid "dup"\nmsgstr ""\n\nmsgid "dup"\nmsgstr "x"\n', b'msgid "dup"', "duplicate"),
    ("duplicate msgid and msgctxt", HEADER + b'msgctxt "m"\nmsgid "d"\nmsgstr ""\n\nmsgctxt "m"\nmsgid "d"\nmsgstr ""\n',
     b'msgid "d"', "in context 'm'"),
    ("an obsolete entry duplicating a live one", HEADER + b'msgid "d"\nmsgstr ""\n\n#~ msgid "d"\n#~ msgstr "x"\n',
     b'#~ msgid "d"', "duplicate"),
    ("a second header", HEADER + b'msgid ""\nmsgstr "Language: de\\n"\n', b'msgid ""', "the header"),
    ("UTF-8 declared, Latin-1 written", HEADER + b'msgid "Caf\xe9 closed"\nmsgstr ""\n', b"Caf\xe9", "not valid UTF-8"),
    ("ASCII declared, UTF-8 written",
     b'msgid ""\nmsgstr "Content-Type: text/plain; charset=ASCII\\n"\n\nmsgid "Caf\xc3\xa9"\nmsgstr ""\n',
     b"Caf\xc3", "not valid ASCII"),
    ("a msgid without msgstr", HEADER + b'msgid "a"\n\nmsgid "b"\nmsgstr ""\n', b'msgid "a"', "missing 'msgstr' section"),
    ("a comment inside an entry", HEADER + b'msgid "a"\n# note\nmsgstr ""\n', b'msgid "a"', "missing 'msgstr' section"),
    ("plural forms from 1", HEADER + b'msgid "a"\nmsgid_plural "as"\nmsgstr[1] ""\nmsgstr[0] ""\n', b"msgstr[1]",
     "first plural form has nonzero index"),
    ("a plural form left out", HEADER + b'msgid "a"\nmsgid_plural "as"\nmsgstr[0] ""\nmsgstr[2] ""\n', b"msgstr[2]",
     "plural form has wrong index"),
    ("msgstr[0] without msgid_plural", HEADER + b'msgid "a"\nmsgstr[0] ""\n', b"msgstr[0]", "missing 'msgid_plural'"),
    ("msgid_plural with a plain msgstr", HEADER + b'msgid "a"\nmsgid_plural "as"\nmsgstr ""\n', b'msgstr ""\n', "not msgstr"),
    ("msgctxt without msgid", HEADER + b'msgctxt "c"\nmsgstr ""\n', b'msgctxt "c"', "msgctxt must be followed by msgid"),
    ("#~ on some lines of an entry", HEADER + b'#~ msgid "a"\nmsgstr "b"\n', b'msgstr "b"', "inconsistent use of #~"),
    ("an unknown keyword", HEADER + b'msgid "a"\nmsgstr ""\nmsgstring "b"\n', b"msgstring", "keyword 'msgstring' unknown"),
    ("a comment after a string", HEADER + b'msgid "a" # note\nmsgstr ""\n', b"# note", "a comment must start its own line"),
    ("lines counted over a newline inside msgstr[N]",
     HEADER + b'msgid "a"\nmsgid_plural "as"\nmsgstr\n[0] "x"\nmsgstr[1] "y"\n\nmsgid "c\nmsgstr ""\n', b'msgid "c',
     "end-of-line within string"),
    ("a byte-order mark", b"\xef\xbb\xbf" + HEADER + b'msgid "a"\nmsgstr ""\n', b"\xef\xbb\xbf", "byte-order mark"),
]


@pytest.mark.parametrize(("data", "marker", "fragment"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_a_malformed_catalog_is_refused_with_its_line(data: bytes, marker: bytes, fragment: str, tmp_path: Path) -> None:
    line = _line_of(data, marker)
    with pytest.raises(CatalogError) as error:
        parse_catalog(data, path="case.po")
    assert any(problem.line == line and fragment in problem.message for problem in error.value.problems), error.value
    assert f"case.po:{line}: " in str(error.value)
    (tmp_path / "case.po").write_bytes(data)
    with pytest.raises(CatalogError):
        read_catalog(tmp_path / "case.po")
    if shutil.which("msgfmt"):  # GNU gettext refuses every one of them too: the strict parser adds no refusal of its own
        assert msgfmt_input_problems(tmp_path / "case.po"), "msgfmt --check-format accepts it"


# Where the strict parser is stricter than msgfmt (the module docstring says so): each gives a catalog that does not
# decode or that hf_encdec cannot write back as it was.
STRICTER = [
    ("\\0 ends the string in a compiled catalog", HEADER + b'msgid "a\\0b"\nmsgstr ""\n', "is not a byte of text"),
    ("a lone escaped UTF-8 lead byte", HEADER + b'msgid "a"\nmsgstr "x\\303y"\n', "not valid utf-8 bytes"),
    ("a charset Python cannot decode",
     b'msgid ""\nmsgstr "Content-Type: text/plain; charset=FOO-42\\n"\n\nmsgid "a"\nmsgstr ""\n', "unknown to Python"),
    ("a domain directive", HEADER + b'domain "other"\nmsgid "a"\nmsgstr ""\n', "'domain' directives are not supported"),
]


@pytest.mark.parametrize(("data", "fragment"), [case[1:] for case in STRICTER], ids=[case[0] for case in STRICTER])
def test_where_the_strict_parser_is_stricter_than_msgfmt(data: bytes, fragment: str, tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=re.escape(fragment)):
        parse_catalog(data, path="case.po")
    if shutil.which("msgfmt"):
        (tmp_path / "case.po").write_bytes(data)
        assert msgfmt_input_problems(tmp_path / "case.po") == []


# Layouts gettext reads that a line-by-line reader may not: each is read as msgfmt compiles it.
ACCEPTED = [
    ("a whole entry on one line", HEADER + b'msgid "a" msgstr "b"\n'),
    ("indented keywords and comments", HEADER + b'  # note\n  msgid "a"\n     msgstr "b"\n'),
    ("CRLF line ends", HEADER.replace(b"\n", b"\r\n") + b'msgid "a"\r\nmsgstr "b"\r\n'),
    ("a string continued after a blank line", HEADER + b'msgid "a"\nmsgstr "b"\n\n"c"\n'),
    ("msgstr[0] with blanks and a newline", HEADER + b'msgid "a"\nmsgid_plural "as"\nmsgstr\n[ 0 ] "x"\nmsgstr[1] "y"\n'),
    ("escapes", HEADER + b'msgid "tab\\there \\"q\\" back\\\\slash\\a\\b\\f\\v\\r"\nmsgstr "\\101\\x42"\n'),
    ("an escaped UTF-8 character split over two strings", HEADER + b'msgid "caf"\nmsgstr "caf\\303" "\\251"\n'),
    ("Shift_JIS: a second byte 0x5C is no backslash",
     b'msgid ""\nmsgstr "Content-Type: text/plain; charset=SHIFT_JIS\\n"\n\nmsgid "so"\nmsgstr "\x83\x5c"\n'),
    ("a template's charset=CHARSET over UTF-8 text",
     b'msgid ""\nmsgstr "Content-Type: text/plain; charset=CHARSET\\n"\n\nmsgid "Caf\xc3\xa9"\nmsgstr "Kaffee"\n'),
    ("previous fields and an obsolete entry's comment",
     HEADER + b'#| msgctxt "old"\n#| msgid "before"\nmsgid "a"\nmsgstr "b"\n\n#~ #, fuzzy\n#~ msgid "o"\n#~ msgstr "p"\n'),
    ("a header with the fuzzy flag, entries after it", b"#, fuzzy\n" + HEADER + b'msgctxt "c"\nmsgid ""\nmsgstr "x"\n'),
]


@pytest.mark.parametrize("data", [case[1] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED])
def test_gettexts_layouts_are_read_as_msgfmt_compiles_them(data: bytes, tmp_path: Path) -> None:
    catalog = parse_catalog(data, path="case.po")
    assert catalog.entries and all(entry.msgid is not None for entry in catalog.entries)
    if shutil.which("msgfmt") is None:
        pytest.skip("gettext-tools (msgfmt) is not installed: the parse above ran, the comparison needs msgfmt")
    (tmp_path / "case.po").write_bytes(data)
    subprocess.run(["msgfmt", "--use-fuzzy", "-o", str(tmp_path / "case.mo"), str(tmp_path / "case.po")], check=True,
                   capture_output=True)
    compiled = {(entry.msgctxt, entry.msgid): entry for entry in polib.mofile(str(tmp_path / "case.mo"))}
    # msgfmt compiles the translated entries that are not obsolete
    live = [entry for entry in catalog.messages if entry.translated]
    assert len(compiled) == len(live)
    for entry in live:
        reference = compiled[(entry.msgctxt, entry.msgid)]
        if entry.msgid_plural is not None:
            assert entry.msgid_plural == reference.msgid_plural
            assert entry.msgstr_plural == {int(form): text for form, text in reference.msgstr_plural.items()}
        else:
            assert entry.msgstr == reference.msgstr


def test_the_previous_fields_comments_and_references_are_read() -> None:
    catalog = read_catalog(FIXTURES / "latin1.de.po")
    assert catalog.charset == "ISO-8859-1" and catalog.metadata("Language") == "de"
    entries = {(entry.msgctxt, entry.msgid): entry for entry in catalog.entries}
    cafe = entries[(None, "Café closed")]
    assert cafe.extracted_comments == ["TRANSLATORS: the sign on the café's door"]
    assert cafe.references == ["src/sign.c:12", "src/sign.c:40"]
    files = entries[(None, "%d file in «%s»")]
    assert files.translator_comments == ["Reviewed by Jörg."] and files.flags == ["c-format"]
    assert files.msgid_plural == "%d files in «%s»" and files.msgstr_plural == {0: "", 1: ""}
    cannot = entries[(None, "Cannot read «%s»")]
    assert cannot.fuzzy and cannot.previous == {"msgid": "Cannot read %s"} and cannot.msgstr == "Kann %s nicht lesen"
    assert entries[(None, "Old café")].obsolete and entries[(None, "Old café")].msgstr == "Altes Café"
    assert entries[("button", "Open")].msgstr == "Öffnen" and entries[("menu", "Open")].msgstr == ""
    assert entries[(None, "A long message about the café\nthat goes on over two lines.\n")].references == ["src/long.c:5"]


@needs_gettext_tools
def test_the_machines_catalogs_read_as_they_were_compiled(tmp_path: Path) -> None:
    catalogs = smallest_catalogs()
    if not catalogs:
        pytest.skip("no compiled gettext catalog (.mo) with plurals, contexts or non-ASCII msgids on this machine")
    for mo in catalogs.values():
        assert_read_as_compiled(read_catalog(msgunfmt(mo, tmp_path / f"{mo.stem}.po")).messages, mo)


def _filled(catalog_path: Path) -> tuple[str, str, dict[str, str]]:
    """The latin-1 fixture's text (decoded), the text rendered with two entries filled and the header fields set."""
    catalog = read_catalog(catalog_path)
    by_msgid = {entry.msgid: entry for entry in catalog.messages}
    header = {"Language": "de", "Content-Type": "text/plain; charset=UTF-8", "X-New-Field": "added"}
    fills = {by_msgid["Café closed"].index: "Café geschlossen",
             by_msgid["%d file in «%s»"].index: {0: "%d Datei in «%s»", 1: "%d Dateien in «%s»"},
             by_msgid["A long message about the café\nthat goes on over two lines.\n"].index: "Eine lange\nNachricht.\n"}
    return catalog.text, render_catalog(catalog, fills, fuzzy=fills, header=header), header


def test_the_writer_changes_only_the_msgstrs_flags_and_header_fields_it_is_given() -> None:
    before, after, header = _filled(FIXTURES / "latin1.de.po")
    changed = [line[2:] for line in difflib.ndiff(before.split("\n"), after.split("\n")) if line[:2] in ("- ", "+ ")]
    allowed = re.compile(r'(msgstr(\[\d\])? ".*"|".*\\n"|#, fuzzy(, [\w-]+)*|#, c-format)$')
    assert changed and all(allowed.match(line) for line in changed), changed
    removed = [line[2:] for line in difflib.ndiff(before.split("\n"), after.split("\n")) if line.startswith("- ")]
    # what is removed: the old msgstrs, the old flags line and the old Content-Type, nothing else
    assert all(line.startswith(("msgstr", "#, c-format", '"Content-Type')) for line in removed), removed
    assert "#, fuzzy, c-format\nmsgid \"%d file in «%s»\"" in after
    assert 'msgstr ""\n"Eine lange\\n"\n"Nachricht.\\n"' in after  # inner newlines start a new string, as gettext writes
    rendered = parse_catalog(after.encode("utf-8"), path="after.po")
    assert rendered.metadata("X-New-Field") == "added" and rendered.metadata("Content-Type") == "text/plain; charset=UTF-8"
    kept = [(name, value) for name, value in header_fields(rendered.header.msgstr) if name not in header]  # type: ignore[union-attr]
    assert kept == [(name, value) for name, value in read_catalog(FIXTURES / "latin1.de.po").header_fields() if name not in header]


def test_a_new_fuzzy_flag_goes_before_previous_fields_and_keywords_on_a_line_of_its_own() -> None:
    data = HEADER + b'#| msgid "old"\nmsgid "a"\nmsgstr ""\n\nmsgid "b"\nmsgstr "" msgid "c" msgstr ""\n'
    catalog = parse_catalog(data)
    indexes = {entry.msgid: entry.index for entry in catalog.messages}
    text = render_catalog(catalog, {indexes["a"]: "A", indexes["c"]: "C"}, fuzzy=[indexes["a"], indexes["c"]])
    assert '#, fuzzy\n#| msgid "old"\nmsgid "a"\nmsgstr "A"' in text
    assert 'msgstr "" \n#, fuzzy\nmsgid "c" msgstr "C"' in text
    after = parse_catalog(text.encode("utf-8"))
    assert catalog_changes(catalog, after, translated=[indexes["a"], indexes["c"]]) == []
    assert [entry.fuzzy for entry in after.messages] == [True, False, True]


def test_a_catalog_without_a_header_gets_one_and_crlf_stays() -> None:
    catalog = parse_catalog(b'msgid "a"\r\nmsgstr ""\r\n')
    text = render_catalog(catalog, {0: "A"}, fuzzy=[0], header={"Language": "de"})
    assert text == 'msgid ""\r\nmsgstr ""\r\n"Language: de\\n"\r\n\r\n#, fuzzy\r\nmsgid "a"\r\nmsgstr "A"\r\n'


def test_byte_escapes_of_a_latin1_catalog_are_written_again_for_utf8() -> None:
    data = (b'msgid ""\nmsgstr "Content-Type: text/plain; charset=ISO-8859-1\\n"\n\n'
            b'msgid "Caf\\351"\nmsgstr ""\n\n#~ msgid "Th\\351"\n#~ msgstr ""\n#~ "T\\344e"\n')
    catalog = parse_catalog(data)
    header = {"Content-Type": "text/plain; charset=UTF-8"}
    text = render_catalog(catalog, {}, header=header)
    after = parse_catalog(text.encode("utf-8"))
    assert [entry.msgid for entry in after.entries] == ["", "Café", "Thé"] and after.entries[2].msgstr == "Täe"
    assert catalog_changes(catalog, after, header=header) == []
    assert '#~ msgid "Thé"' in text


def test_catalog_changes_names_every_kind_of_damage() -> None:
    data = (FIXTURES / "latin1.de.po").read_bytes().decode("latin-1")
    before = parse_catalog(data.encode("latin-1"))
    damages = {
        "msgid": data.replace('msgid "Café closed"', 'msgid "Café close"'),
        "references": data.replace("src/sign.c:40", "src/sign.c:41"),
        "extracted_comments": data.replace("#. TRANSLATORS:", "#. TRANSLATOR:"),
        "translator_comments": data.replace("# Reviewed by Jörg.", "# Reviewed."),
        "flags": data.replace("#, fuzzy, c-format", "#, fuzzy"),
        "previous": data.replace('#| msgid "Cannot read %s"', '#| msgid "Cannot read"'),
        "msgctxt": data.replace('msgctxt "button"', 'msgctxt "knob"'),
        "entries": data.replace('#~ msgid "Old café"\n#~ msgstr "Altes Café"\n', ""),
        "msgstr of an entry not filled": data.replace('msgstr "Öffnen"', 'msgstr "Offen"'),
        "fuzzy": data.replace('#: src/menu.c:3\n', '#: src/menu.c:3\n#, fuzzy\n'),
        "header fields": data.replace("X-Generator: a text editor", "X-Generator: hf_encdec"),
    }
    for kind, damaged in damages.items():
        assert damaged != data, kind
        changes = catalog_changes(before, parse_catalog(damaged.encode("latin-1")), header=["Language"])
        assert len(changes) == 1 and kind in changes[0], (kind, changes)
    assert catalog_changes(before, before) == []


@pytest.mark.slow
@needs_gettext_tools
def test_every_catalog_of_the_machine_reads_as_compiled_and_survives_a_rewrite() -> None:
    """Every kind of .mo of the machine (each text domain's largest, each language's smallest; all of them with
    ``HF_ENCDEC_ALL_CATALOGS=1``) written back by msgunfmt: read with the values msgfmt compiled, and every entry
    filled, flagged fuzzy and the header changed by the writer, with nothing else changed."""
    files = every_kind_of_catalog()
    if not files:
        pytest.skip("no compiled gettext catalog (.mo) on this machine")
    header = {"Language": "xx", "Content-Type": "text/plain; charset=UTF-8"}
    for mo in files:
        catalog = parse_catalog(subprocess.run(["msgunfmt", str(mo)], check=True, capture_output=True).stdout, path=str(mo))
        messages = catalog.messages
        assert_read_as_compiled(messages, mo)
        fills = {entry.index: {form: "X" for form in entry.msgstr_plural} if entry.msgid_plural is not None else "X"
                 for entry in messages}
        rendered = parse_catalog(render_catalog(catalog, fills, fuzzy=fills, header=header).encode("utf-8"))
        assert catalog_changes(catalog, rendered, translated=fills, header=header) == [], mo
