"""Fixtures for the data tests: a tiny GNU ``.mo`` writer and a fake locale tree built in ``tmp_path``.

The writer follows the layout of CPython's ``Tools/i18n/msgfmt.py``: a 28-byte header, the table of original
strings, the table of translations (each a list of (length, offset) pairs), no hash table, then the NUL-terminated
strings. Keys carry contexts as ``ctxt\\x04msgid`` and plurals as ``msgid\\x00msgid_plural``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

MoEntries = Sequence[tuple[str, str]]


def compile_mo(entries: MoEntries, *, charset: str = "UTF-8", byte_order: str = "<") -> bytes:
    """Compile ``(key, value)`` entries into ``.mo`` bytes, with a header entry naming ``charset``."""
    header = f"Content-Type: text/plain; charset={charset}\nPlural-Forms: nplurals=2; plural=(n != 1);\n"
    encoded = {"".encode(charset): header.encode(charset)}
    for key, value in entries:
        encoded[key.encode(charset)] = value.encode(charset)
    keys = sorted(encoded)  # GNU tools sort by msgid bytes
    strings_start = 7 * 4 + 16 * len(keys)
    ids = b""
    strs = b""
    id_table: list[int] = []
    for key in keys:
        id_table += [len(key), len(ids)]
        ids += key + b"\0"
    str_table: list[int] = []
    for key in keys:
        str_table += [len(encoded[key]), len(strs)]
        strs += encoded[key] + b"\0"
    ids_start = strings_start
    strs_start = ids_start + len(ids)
    id_table = [value + ids_start if index % 2 else value for index, value in enumerate(id_table)]
    str_table = [value + strs_start if index % 2 else value for index, value in enumerate(str_table)]
    count = len(keys)
    output = struct.pack(f"{byte_order}7I", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, strings_start)
    output += struct.pack(f"{byte_order}{2 * count}I", *id_table)
    output += struct.pack(f"{byte_order}{2 * count}I", *str_table)
    return output + ids + strs


def write_catalog(root: Path, lang: str, domain: str, entries: MoEntries, **options: str) -> Path:
    """Write ``<root>/<lang>/LC_MESSAGES/<domain>.mo`` and return its path."""
    folder = root / lang / "LC_MESSAGES"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{domain}.mo"
    path.write_bytes(compile_mo(entries, **options))
    return path


#: Packages of the fake German tree besides ``alpha``; each has its own messages plus shared ones.
FAKE_PACKAGES: tuple[str, ...] = tuple(f"pkg{index:02d}" for index in range(1, 9))

#: Every pair the fake tree should yield after cleaning (before deduplication), by package.
ALPHA_PAIRS: list[tuple[str, str, str]] = [  # (source, target, context)
    ("Open file", "Datei öffnen", ""),
    ("Open", "Öffnen", "menu"),
    ("%d file", "%d Datei", ""),
    ("%d files", "%d Dateien", ""),
    ("Usage: %s [OPTION]... FILE", "Aufruf: %s [OPTION]... DATEI", ""),
    ("--help display this help and exit", "--help diese Hilfe anzeigen und beenden", ""),
    ("Memory exhausted", "Speicher erschöpft", ""),
]


def _package_entries(package: str) -> list[tuple[str, str]]:
    """Messages of one fake package: three own ones, one shared pair, one shared source with its own target."""
    return [
        (f"Cannot read {package} config", f"Kann {package}-Konfiguration nicht lesen"),
        (f"{package}: unknown option", f"{package}: unbekannte Option"),
        (
            f"Saving {package} state to /var/lib/{package}/state",
            f"Speichere {package}-Zustand nach /var/lib/{package}/state",
        ),
        ("Memory exhausted", "Speicher erschöpft"),
        ("Cancel", f"Abbrechen ({package})"),
    ]


@pytest.fixture
def locale_tree(tmp_path: Path) -> Path:
    """A locale root with German catalogs (9 packages + iso-codes), a de_CH variant and one French catalog."""
    root = tmp_path / "locale"
    alpha = [
        ("Open file", "Datei öffnen"),
        ("menu\x04Open", "Öffnen"),
        ("%d file\x00%d files", "%d Datei\x00%d Dateien"),
        ("Untranslated message", ""),
        ("  Usage: %s [OPTION]... FILE\n", "Aufruf: %s\t[OPTION]...  DATEI\n"),
        ("--help     display this help and exit\n", "--help     diese Hilfe anzeigen und beenden\n"),
        ("%s: %s", "%s: %s"),  # no letter in the English side
        ("   \n", "  "),  # whitespace only
        ("x" * 300, "y" * 300),  # too long for max_length_chars=256
        ("Memory exhausted", "Speicher erschöpft"),
    ]
    write_catalog(root, "de", "alpha", alpha)
    for package in FAKE_PACKAGES:
        # Half the catalogs big-endian and in Latin-1, as old tools wrote them.
        options = {"byte_order": ">", "charset": "ISO-8859-1"} if package in ("pkg02", "pkg05") else {}
        write_catalog(root, "de", package, _package_entries(package), **options)
    write_catalog(root, "de", "iso_639", [("German", "Deutsch"), ("French", "Französisch")])
    write_catalog(root, "de", "iso_3166-2", [("Bavaria", "Bayern")])
    write_catalog(root, "de_CH", "alpha", [("Street", "Strasse")])
    write_catalog(root, "fr", "alpha", [("Open file", "Ouvrir le fichier")])
    write_catalog(root, "nl", "iso_639", [("German", "Duits")])  # iso-codes only: not an available language
    return root


@pytest.fixture
def expected_pairs() -> set[tuple[str, str, str, str]]:
    """All ``(source, target, package, context)`` rows the fake German tree yields before deduplication."""
    rows = {(source, target, "alpha", context) for source, target, context in ALPHA_PAIRS}
    for package in FAKE_PACKAGES:
        rows |= {(source, target, package, "") for source, target in _package_entries(package)}
    return rows


@pytest.fixture
def mo_compiler() -> Callable[..., bytes]:
    """The ``.mo`` compiler, for tests that build catalogs by hand."""
    return compile_mo


@pytest.fixture
def catalog_writer() -> Callable[..., Path]:
    """``write_catalog(root, lang, domain, entries, **options)`` for tests that lay out their own tree."""
    return write_catalog
