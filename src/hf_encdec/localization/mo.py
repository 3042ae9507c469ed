"""The GNU ``.mo`` format: compiled gettext catalogs read by ``polib`` (both byte orders, message contexts, plural
forms), each entry decoded in the header's charset. The gettext corpus (:mod:`hf_encdec.data.gettext_corpus`) and
the catalog tools (:mod:`hf_encdec.localization.catalog`) both read catalogs through it."""

from __future__ import annotations

import logging
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import polib

logger = logging.getLogger(__name__)

__all__ = ["MoFormatError", "MoMessage", "parse_mo", "read_mo_file"]

_CHARSET_RE = re.compile(r"charset\s*=\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)

class MoFormatError(ValueError):
    """Raised when a file is not a valid GNU ``.mo`` catalog."""


@dataclass(frozen=True)
class MoMessage:
    """One entry of a ``.mo`` catalog, decoded.

    Attributes:
        msgid: The English singular message.
        msgstr: The translations: one element for an ordinary entry, one per plural form for a plural entry
            (``msgstr[0]``, ``msgstr[1]``, ...).
        context: The ``msgctxt`` that disambiguates identical msgids (``""`` when absent).
        msgid_plural: The English plural message of a plural entry (``None`` otherwise).
    """

    msgid: str
    msgstr: tuple[str, ...]
    context: str = ""
    msgid_plural: str | None = None

    def pairs(self) -> list[tuple[str, str]]:
        """Return the (English, translation) pairs this entry contributes.

        An ordinary entry gives ``(msgid, msgstr)``. A plural entry gives the singular pair ``(msgid, msgstr[0])``
        and the plural pair ``(msgid_plural, msgstr[1])`` where a second form exists (languages with a single plural
        form, such as Japanese, only give the singular pair). Untranslated forms (empty strings) are left out.
        """
        result: list[tuple[str, str]] = []
        if self.msgstr and self.msgstr[0]:
            result.append((self.msgid, self.msgstr[0]))
        if self.msgid_plural is not None and len(self.msgstr) > 1 and self.msgstr[1]:
            result.append((self.msgid_plural, self.msgstr[1]))
        return result


def _header_charset(content_type: str) -> str:
    """Return the charset named in a catalog's ``Content-Type`` (``text/plain; charset=...``), default UTF-8."""
    match = _CHARSET_RE.search(content_type)
    if match is None:
        return "utf-8"
    charset = match.group(1)
    if charset.upper() == "CHARSET":  # the unfilled template value written by xgettext
        return "utf-8"
    try:
        "".encode(charset)
    except LookupError:
        logger.warning("unknown charset %r in .mo header; decoding as UTF-8", charset)
        return "utf-8"
    return charset


def _decode_entry(entry: polib.MOEntry, charset: str) -> MoMessage:
    """Turn a polib entry read as Latin-1 into a :class:`MoMessage` decoded in ``charset``.

    Raises:
        UnicodeDecodeError: If a string of the entry is not valid in ``charset``.
    """

    def decode(text: str) -> str:
        # Latin-1 maps each byte to the code point of the same value, so this gives back the file's bytes.
        return text.encode("latin-1").decode(charset)

    # polib fills msgstr_plural (form index -> translation) only for plural entries.
    if entry.msgstr_plural:
        return MoMessage(
            msgid=decode(entry.msgid),
            msgstr=tuple(decode(entry.msgstr_plural[form]) for form in sorted(entry.msgstr_plural)),
            context=decode(entry.msgctxt or ""),
            msgid_plural=decode(entry.msgid_plural),
        )
    return MoMessage(msgid=decode(entry.msgid), msgstr=(decode(entry.msgstr),), context=decode(entry.msgctxt or ""))


def parse_mo(data: bytes, *, name: str = "<bytes>") -> tuple[list[MoMessage], int]:
    """Parse the bytes of a GNU ``.mo`` catalog with ``polib``.

    The header entry (empty msgid) is read for its charset and not returned. Entries whose bytes do not decode in
    the header's charset are skipped and counted, never replaced with U+FFFD.

    Args:
        data: The whole file content.
        name: A name for error messages.

    Returns:
        ``(messages, undecodable)``: the decoded entries in file order and the number of entries skipped because
        they could not be decoded.

    Raises:
        MoFormatError: If the magic number or the revision is invalid, or a string table runs past the end.
    """
    try:
        # polib decodes a whole catalog in one charset and stops at the first bad byte. Latin-1 never fails and
        # keeps every byte, so each entry can then be decoded in the real charset on its own and a bad one skipped.
        catalog = polib.mofile(data, encoding="latin-1")
    except struct.error as error:  # polib's unpacking of a table that the file is too short for
        raise MoFormatError(f"{name}: a string table runs past the end of the file ({error})") from error
    except OSError as error:  # polib's wrong magic number or major revision
        raise MoFormatError(f"{name}: {error}") from error
    content_type = next((value for key, value in catalog.metadata.items() if key.lower() == "content-type"), "")
    charset = _header_charset(content_type)
    messages: list[MoMessage] = []
    undecodable = 0
    for entry in catalog:
        try:
            messages.append(_decode_entry(entry, charset))
        except UnicodeDecodeError:
            undecodable += 1
    return messages, undecodable


def read_mo_file(path: str | os.PathLike[str]) -> list[MoMessage]:
    """Read a ``.mo`` catalog from disk and return its entries (header excluded).

    Args:
        path: The ``.mo`` file.

    Returns:
        The decoded entries in file order; entries that do not decode in the header's charset are skipped (a
        warning is logged).

    Raises:
        MoFormatError: If the file is not a valid ``.mo`` catalog.
    """
    messages, undecodable = parse_mo(Path(path).read_bytes(), name=str(path))
    if undecodable:
        logger.warning("%s: skipped %d entries that do not decode in the header's charset", path, undecodable)
    return messages
