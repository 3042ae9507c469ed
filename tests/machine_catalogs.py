"""The machine's own compiled catalogs, chosen by what they hold, and written back as ``.po`` by GNU gettext-tools.

The catalogs are found under the library's locale directories (:data:`hf_encdec.data.gettext_corpus.DEFAULT_LOCALE_DIRS`)
and chosen by content, never by name: the smallest one with plural entries, with message contexts and with non-ASCII
msgids, so that tests on real catalogs take seconds wherever they run.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=None)
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
