"""The machine's own compiled catalogs, chosen by what they hold, and written back as ``.po`` by GNU gettext-tools.

The catalogs are found under the library's locale directories (:data:`hf_encdec.data.gettext_corpus.DEFAULT_LOCALE_DIRS`)
and chosen by content, never by name: the smallest one with plural entries, with message contexts and with non-ASCII
msgids, so that tests on real catalogs take seconds wherever they run.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import polib

from hf_encdec.data.gettext_corpus import DEFAULT_LOCALE_DIRS, read_mo_file

#: What a chosen catalog holds: a property name and the test of one entry.
PROPERTIES = {
    "plural forms": lambda message: message.msgid_plural is not None,
    "message contexts": lambda message: bool(message.context),
    "non-ASCII msgids": lambda message: not message.msgid.isascii(),
}


@functools.cache
def smallest_catalogs(*, max_entries: int = 60, scan: int = 4000, plural_forms: bool = False) -> dict[str, Path]:
    """``{property: .mo file}``: the smallest catalog (in bytes) with each of :data:`PROPERTIES` and at most
    `max_entries` entries, of the `scan` smallest on the machine; a property no catalog has is missing. With
    `plural_forms`, only catalogs whose header has a Plural-Forms line (which filling one needs)."""
    files = sorted((path for root in DEFAULT_LOCALE_DIRS for path in Path(root).glob("*/LC_MESSAGES/*.mo")),
                   key=lambda path: (path.stat().st_size, str(path)))
    chosen: dict[str, Path] = {}
    for path in files[:scan]:
        try:
            messages = read_mo_file(path)
        except ValueError:
            continue
        if len(messages) > max_entries:
            continue
        if plural_forms and "nplurals" not in polib.mofile(str(path)).metadata.get("Plural-Forms", ""):
            continue
        for name, has in PROPERTIES.items():
            if name not in chosen and any(has(message) for message in messages):
                chosen[name] = path
        if len(chosen) == len(PROPERTIES):
            break
    return chosen


def every_kind_of_catalog() -> list[Path]:
    """The machine's catalogs that differ in what wrote them and in what their language needs: the largest of each
    text domain (one program's conventions, the most entries) and the smallest of each language (its charset and
    plural rule), about 280 of the ~3,700 on a desktop. ``HF_ENCDEC_ALL_CATALOGS=1`` gives every catalog instead."""
    files = sorted(path for root in DEFAULT_LOCALE_DIRS for path in Path(root).glob("*/LC_MESSAGES/*.mo"))
    if os.environ.get("HF_ENCDEC_ALL_CATALOGS") == "1":
        return files
    by_domain: dict[str, Path] = {}
    by_language: dict[str, Path] = {}
    for path in files:
        size = path.stat().st_size
        domain, language = path.stem, path.parent.parent.name
        if domain not in by_domain or size > by_domain[domain].stat().st_size:
            by_domain[domain] = path
        if language not in by_language or size < by_language[language].stat().st_size:
            by_language[language] = path
    return sorted({*by_domain.values(), *by_language.values()})


def msgunfmt(mo_path: Path, output: Path, *, untranslated: bool = False) -> Path:
    """The ``.po`` GNU ``msgunfmt`` writes for `mo_path`; with `untranslated`, every msgstr emptied by ``msgfilter``
    (header kept)."""
    subprocess.run(["msgunfmt", str(mo_path), "-o", str(output)], check=True, capture_output=True)
    if untranslated:
        subprocess.run(["msgfilter", "--keep-header", "-i", str(output), "-o", str(output), "sed", "-e", "d"],
                       check=True, capture_output=True)
    return output


def have_gettext_tools() -> bool:
    return all(shutil.which(tool) for tool in ("msgfmt", "msgunfmt", "msgfilter"))


# A .mo keeps its "system-dependent" strings (a printf directive with glibc's I flag, `%Id`, or an inttypes macro,
# `%<PRIu64>`) in a table of their own, which polib does not read; msgunfmt does.
SYSTEM_DEPENDENT = re.compile(r"%[-+ #0'I\d.*$]*I|<PRI")


def compiled_entries(mo_path: Path) -> dict[tuple[str | None, str], polib.MOEntry]:
    """The entries polib reads from a compiled catalog (the header excluded), by ``(msgctxt, msgid)``."""
    return {(entry.msgctxt, entry.msgid): entry for entry in polib.mofile(str(mo_path)) if entry.msgid}


def assert_read_as_compiled(messages: list, mo_path: Path) -> None:  # noqa: ANN001 - CatalogEntry list
    """`messages` (parsed from msgunfmt's output of `mo_path`) hold what the .mo holds: every entry polib reads,
    with its msgid_plural and msgstrs, and beyond those only system-dependent ones."""
    compiled = compiled_entries(mo_path)
    matched = 0
    for entry in messages:
        if not entry.msgid:  # msgctxt with an empty msgid: polib takes it for a header
            continue
        reference = compiled.get((entry.msgctxt, entry.msgid))
        if reference is None:
            strings = [entry.msgid, entry.msgid_plural or "", entry.msgstr, *entry.msgstr_plural.values()]
            assert SYSTEM_DEPENDENT.search("\n".join(strings)), (mo_path, entry.msgid)
            continue
        matched += 1
        if reference.msgid_plural:
            assert entry.msgid_plural == reference.msgid_plural, (mo_path, entry.msgid)
            assert entry.msgstr_plural == {int(form): text for form, text in reference.msgstr_plural.items()}, (mo_path, entry.msgid)
        else:
            assert entry.msgid_plural is None and entry.msgstr == reference.msgstr, (mo_path, entry.msgid)
    assert matched == len(compiled), mo_path
