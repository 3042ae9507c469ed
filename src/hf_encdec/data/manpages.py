"""An English text corpus from the manual pages every Unix machine already carries.

``man`` keeps its pages under the directories ``manpath`` prints (``/usr/share/man`` on Debian and Ubuntu), one
folder per section (``man1`` user commands ... ``man8`` system administration), one gzipped roff file per page
(``ls.1.gz``, ``printf.3.gz``, ``CA.pl.1ssl.gz``, ``Foo::Bar.3pm.gz``). Converted to plain text they form a corpus of
real technical English that needs no network: a language-modelling corpus, and - with the section as the label - a
text-classification task ("is this page about a command, a system call, a C function, a file format ...?").

The module has three layers:

* :func:`roff_to_text` - a small pure-Python roff interpreter for the ``man`` and ``mdoc`` macro packages (the two
  that manual pages are written in): escapes, strings, conditionals, user macros, tables, lists. It keeps the words
  a reader sees and drops the layout. Reference: the groff manual (``groff(7)``, ``groff_man(7)``,
  ``groff_mdoc(7)``) and ``tbl(1)``.
* :func:`build_manpages_corpus` - finds the pages, drops aliases (``.so`` redirects and symlinks), caps generated
  page families (16,631 of the 17,847 pages in ``man1`` of a machine with the Google Cloud SDK are ``gcloud_*``
  pages of near-identical boilerplate), converts, drops short and duplicate pages and splits **by page name**
  into ``train`` / ``validation`` / ``test``, so that ``printf(1)`` and ``printf(3)`` never straddle a split.
* :func:`build_manpage_sections_corpus` - the same pages labelled with their section, and
  :func:`manpages_summary` - per-split statistics with the majority-class baseline, for a model card.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import logging
import lzma
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAN_SECTIONS",
    "SECTION_NAMES",
    "ManPage",
    "ManPagesNotFoundError",
    "build_manpage_sections_corpus",
    "build_manpages_corpus",
    "default_man_dirs",
    "find_man_pages",
    "manpages_summary",
    "roff_to_text",
]

DEFAULT_MAN_SECTIONS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8")
"""The eight traditional sections; ``man9`` (kernel routines), ``mann`` (Tcl) and ``manl`` (local) are left out."""

SECTION_NAMES: dict[str, str] = {
    "1": "user commands",
    "2": "system calls",
    "3": "library functions",
    "4": "special files",
    "5": "file formats",
    "6": "games",
    "7": "overviews and conventions",
    "8": "system administration",
}
"""What each section holds, as ``man(1)`` names them."""

_FALLBACK_MAN_DIR = "/usr/share/man"

#: Drop reasons recorded in the build report, in the order the build applies them.
_DROP_REASONS: tuple[str, ...] = (
    "shadowed",
    "symlink",
    "family_cap",
    "unreadable",
    "redirect",
    "too_short",
    "duplicate",
)

_DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.decompress,
    ".bz2": bz2.decompress,
    ".xz": lzma.decompress,
    ".lzma": lzma.decompress,
}
_CACHE_VERSION = 1  # part of the cache key: bump it when roff_to_text or the build rules change


class ManPagesNotFoundError(FileNotFoundError):
    """Raised when no manual page exists in the searched directories.

    The message names the directories searched, says which layout was expected (``<dir>/man<N>/<page>.<N>.gz``),
    how to install pages or point at other directories, and which corpora need no manual pages.
    """


@dataclass(frozen=True, order=True)
class ManPage:
    """One manual page file.

    Attributes:
        name: The page name: the file name without the compression suffix and the section extension
            (``CA.pl.1ssl.gz`` -> ``CA.pl``, ``Foo::Bar.3pm.gz`` -> ``Foo::Bar``).
        section: The section of the directory the file lies in (``man3`` -> ``"3"``, also for ``.3pm`` files).
        path: The file (may be a symlink).
    """

    name: str
    section: str
    path: Path


# --- roff to text ---------------------------------------------------------------------------------------------

# fmt: off
#: Named glyphs (``\(xx`` and ``\[name]``) that carry meaning in running text; any other glyph name is dropped.
_SPECIAL_CHARS: dict[str, str] = {
    "em": "—", "en": "–", "hy": "-", "mi": "-", "-": "-", "aq": "'", "dq": '"', "bu": "•", "co": "©", "rg": "®",
    "tm": "™", "lq": "“", "rq": "”", "oq": "‘", "cq": "’", "Bq": "„", "bq": "‚", "rs": "\\", "ti": "~", "ha": "^",
    "at": "@", "sh": "#", "Do": "$", "ct": "¢", "Po": "£", "Ye": "¥", "Eu": "€", "eu": "€", "sc": "§", "ps": "¶",
    "de": "°", "pl": "+", "mu": "×", "di": "÷", "+-": "±", "eq": "=", "==": "≡", "!=": "≠", ">=": "≥", "<=": "≤",
    "->": "→", "<-": "←", "<>": "↔", "ua": "↑", "da": "↓", "rA": "⇒", "lA": "⇐", "la": "⟨", "ra": "⟩",
    "lB": "[", "rB": "]", "lC": "{", "rC": "}", "ba": "|", "or": "|", "br": "|", "sl": "/", "ga": "`", "aa": "´",
    "fo": "‹", "fc": "›", "Fo": "«", "Fc": "»", "pc": "·", "md": "⋅", "12": "½", "14": "¼", "34": "¾", "ss": "ß",
    "ff": "ff", "fi": "fi", "fl": "fl", "Fi": "ffi", "Fl": "ffl", "if": "∞", "sr": "√", "es": "∅", "mo": "∈",
    "ca": "∩", "cu": "∪", "ap": "~", "~~": "≈", "tf": "∴", "OK": "✓", "dg": "†", "dd": "‡", "ul": "_", "ru": "_",
    "bv": "|", "rn": "‾", "ci": "○", "sq": "□", "lh": "☜", "rh": "☞", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ",
    "/o": "ø", "/O": "Ø", "-D": "Đ", "Sd": "ð", "TP": "Þ", "Tp": "þ", "r!": "¡", "r?": "¿", "char34": '"',
    "char39": "'", "char92": "\\", "Eq": "=", "nbsp": " ", "space": " ",
}
_GREEK = dict(zip("abgdezyhiklmncoprstufxqw", "αβγδεζηθικλμνξοπρστυφχψω"))
_COMBINING_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", ":": "\u0308", "~": "\u0303", ",": "\u0327",
                      "v": "\u030c", "o": "\u030a"}
#: Strings every page may use without defining them (man, mdoc and the usual pod2man definitions for nroff).
_PREDEFINED_STRINGS: dict[str, str] = {
    "lq": "“", "rq": "”", "R": "®", "Tm": "™", "Lq": "“", "Rq": "”", "Aq": "'", "q": '"', "Ba": "|", "Ge": "≥",
    "Le": "≤", "Gt": ">", "Lt": "<", "Pi": "π", "Ne": "≠", "If": "∞", "Na": "NaN", "Am": "&", "Px": "POSIX",
    "Ai": "ANSI", "C`": '"', "C'": '"', 'L"': '"', 'R"': '"', "--": "--", "PI": "pi", "S": "", "HF": "",
}
#: One-character escapes and what they print.
_SIMPLE_ESCAPES: dict[str, str] = {
    "-": "-", "e": "\\", "E": "\\", "\\": "\\", ".": ".", "'": "'", "`": "`", " ": " ", "~": " ", "0": " ",
    "t": " ", "_": "_", "&": "", "%": "", "|": "", "^": "", ":": "", "/": "", ",": "", ")": "", "{": "", "}": "",
    "d": "", "u": "", "r": "", "p": "", "a": "", "z": "", "!": "", "j": "", "c": "\x00",
}
# fmt: on
_NAME_ESCAPES = frozenset("fFgkmMVY$")  # followed by a name: x, (xx or [name]
_DELIMITED_ESCAPES = frozenset("hvwoXNbDlLRxZABCSH?")  # followed by a delimited argument: '...'
_GLUE = "\x00"  # stands for \c (join with the next input line) inside the converter

_CONTROL_LINE_RE = re.compile(r"[.'][ \t]*([^ \t]*)[ \t]*(.*)", re.DOTALL)
_CONDITIONAL_RE = re.compile(r"[.'][ \t]*(ie|if|el|while)(?![A-Za-z0-9_])(.*)", re.DOTALL)
_ESCAPE_PAIR_RE = re.compile(r"\\(.|$)")
_COPY_MODE_RE = re.compile(r"\\{1,2}\$(?P<arg>\d|\(\d\d|\[\d+\]|\*|@)|\\{1,2}(?P<count>n(?:\(\.\$|\[\.\$\]))|\\\\")
_REGISTER_RE = re.compile(r"\\n[+-]?(\(..|\[[^\]]*\]|.)")
_NUMBER_TOKEN_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+|<=|>=|==|[-+*/%<>=&:()!])")
_UNIT_RE = re.compile(r"(?<=[\d.])[icpPmnvuMsfz]")
_TBL_TAB_RE = re.compile(r"tab\s*\((.)\)")
_MAX_EXPANDED_LINES = 200_000
_MAX_MACRO_DEPTH = 20

_FONT_MACROS_JOINED = frozenset({"BR", "RB", "IR", "RI", "BI", "IB"})
_FONT_MACROS_SPACED = frozenset({"B", "I", "SM", "SB", "R"})
_PARAGRAPH_REQUESTS = frozenset({"PP", "LP", "P", "HP", "sp", "bp", "Sp", "Pp", "Lp", "Rs", "Re"})
_LINE_BREAK_REQUESTS = frozenset({"br", "RS", "RE", "ti", "INDENT", "UNINDENT"})
_NOFILL_REQUESTS = frozenset({"nf", "EX", "Vb"})
_FILL_REQUESTS = frozenset({"fi", "EE", "Ve"})
_IGNORED_BLOCKS = {"EQ": "EN", "PS": "PE", "G1": "G2", "[": "]", "IS": "IE"}
_MACRO_DEFINITIONS = frozenset({"de", "de1", "dei", "am", "am1", "ami", "ig"})

# fmt: off
# mdoc (groff_mdoc(7)): macros that may appear as arguments of other macros ("callable"), and the ones that
# enclose the rest of the line or open/close an enclosure spanning several macros.
_MDOC_ENCLOSE: dict[str, tuple[str, str]] = {
    "Op": ("[", "]"), "Pq": ("(", ")"), "Dq": ("“", "”"), "Sq": ("‘", "’"), "Qq": ('"', '"'), "Bq": ("[", "]"),
    "Brq": ("{", "}"), "Aq": ("<", ">"), "Ql": ("‘", "’"),
}
_MDOC_OPEN: dict[str, str] = {"Oo": "[", "Po": "(", "Do": "“", "So": "‘", "Qo": '"', "Bo": "[", "Bro": "{", "Ao": "<"}
_MDOC_CLOSE: dict[str, str] = {"Oc": "]", "Pc": ")", "Dc": "”", "Sc": "’", "Qc": '"', "Bc": "]", "Brc": "}", "Ac": ">"}
_MDOC_OS_NAMES: dict[str, str] = {
    "Bx": "BSD", "Bsx": "BSD/OS", "Dx": "DragonFly", "Fx": "FreeBSD", "Nx": "NetBSD", "Ox": "OpenBSD",
    "At": "AT&T UNIX", "Ux": "UNIX",
}
_MDOC_STANDARDS: dict[str, str] = {
    "-p1003.1": "IEEE Std 1003.1 (“POSIX.1”)", "-p1003.1-2001": "IEEE Std 1003.1-2001 (“POSIX.1”)",
    "-p1003.1-2008": "IEEE Std 1003.1-2008 (“POSIX.1”)", "-p1003.2": "IEEE Std 1003.2 (“POSIX.2”)",
    "-ansiC": "ANSI X3.159-1989 (“ANSI C89”)", "-isoC": "ISO/IEC 9899:1990 (“ISO C90”)",
    "-isoC-99": "ISO/IEC 9899:1999 (“ISO C99”)", "-isoC-2011": "ISO/IEC 9899:2011 (“ISO C11”)",
    "-xpg4": "X/Open Portability Guide Issue 4 (“XPG4”)", "-susv2": "Version 2 of the Single UNIX Specification",
    "-susv3": "Version 3 of the Single UNIX Specification (“SUSv3”)",
    "-susv4": "Version 4 of the Single UNIX Specification (“SUSv4”)",
}
_MDOC_PLAIN = frozenset({
    "No", "Li", "Em", "Sy", "Cm", "Ic", "Va", "Dv", "Er", "Ev", "Pa", "Ad", "Cd", "Ms", "Tn", "Ot", "Vt", "Lb",
    "Sx", "An", "Mt", "Fa", "Ft", "Fd", "Fr", "Es", "En", "%A", "%B", "%C", "%D", "%I", "%J", "%N", "%O", "%P",
    "%Q", "%R", "%T", "%U", "%V",
})
_MDOC_CALLABLE = frozenset(
    {"Fl", "Ar", "Nm", "Xr", "Fn", "Fo", "Fc", "In", "Ns", "Ap", "Pf", "Ta", "Sm", "Xo", "Xc", "St", "Lk", "Ex",
     "Rv", "Ud", "Bt", "Ek", "Bk", "Bf", "Ef", "Tg", "Db", "Hf", "Dd", "Dt", "Os"}
    | _MDOC_PLAIN | set(_MDOC_ENCLOSE) | set(_MDOC_OPEN) | set(_MDOC_CLOSE) | set(_MDOC_OS_NAMES)
)
_MDOC_BLOCK = frozenset({"Sh", "Ss", "Pp", "Lp", "Nd", "Bl", "El", "It", "Bd", "Ed", "D1", "Dl", "Rs", "Re"})
_CLOSE_DELIMS = frozenset({".", ",", ":", ";", ")", "]", "?", "!"})
_OPEN_DELIMS = frozenset({"(", "["})
#: Names the converter handles itself: a page's own `.de` of one of them is not expanded (pages redefine `.UR`
#: and friends for old troffs), and `.if d name` is true for them.
_BUILTIN_NAMES = (
    frozenset({"TH", "SH", "SS", "TP", "TQ", "IP", "Ip", "PD", "UR", "UE", "MT", "ME", "SY", "OP", "YS", "IX", "TS",
               "TE", "ds", "as", "tr", "nop", "do", "als", "rm", "rn", "so", "Dd", "Dt", "Os"})
    | _FONT_MACROS_JOINED | _FONT_MACROS_SPACED | _PARAGRAPH_REQUESTS | _LINE_BREAK_REQUESTS | _NOFILL_REQUESTS
    | _FILL_REQUESTS | set(_IGNORED_BLOCKS) | _MACRO_DEFINITIONS | _MDOC_CALLABLE | _MDOC_BLOCK
)
# fmt: on


def _split_args(text: str) -> list[tuple[str, bool]]:
    """Split a request's arguments as groff does: on unescaped blanks, ``"..."`` quoting with ``""`` for ``"``.

    Returns:
        ``(raw argument, was quoted)`` pairs; escapes are left in place.
    """
    args: list[tuple[str, bool]] = []
    index, length = 0, len(text)
    while index < length:
        while index < length and text[index] in " \t":
            index += 1
        if index >= length:
            break
        if text[index] == '"':
            index += 1
            chars: list[str] = []
            while index < length:
                char = text[index]
                if char == '"':
                    if index + 1 < length and text[index + 1] == '"':
                        chars.append('"')
                        index += 2
                        continue
                    index += 1
                    break
                if char == "\\" and index + 1 < length:
                    chars.append(text[index : index + 2])
                    index += 2
                    continue
                chars.append(char)
                index += 1
            args.append(("".join(chars), True))
        else:
            start = index
            while index < length and text[index] not in " \t":
                index += 2 if text[index] == "\\" else 1
            args.append((text[start:index], False))
    return args


def _count_braces(line: str) -> int:
    """Return the number of conditional blocks ``\\{`` a line opens minus the ``\\}`` it closes."""
    if "\\{" not in line and "\\}" not in line:
        return 0
    depth = 0
    for match in _ESCAPE_PAIR_RE.finditer(line):
        if match.group(1) == "{":
            depth += 1
        elif match.group(1) == "}":
            depth -= 1
    return depth


def _logical_lines(source: str) -> list[str]:
    """Split roff source into input lines with comments removed and ``\\``-newline continuations joined.

    A line that held only a comment (``.\\" ...``, ``'\\" ...``, ``\\" ...``, ``.\\# ...``) disappears instead of
    becoming a blank line (which would break the paragraph). ``\\#`` elsewhere also joins the next line.
    """
    lines: list[str] = []
    pending = ""
    for raw in source.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line, joins, commented = raw, False, False
        if "\\" in raw:
            for match in _ESCAPE_PAIR_RE.finditer(raw):
                escape = match.group(1)
                if escape in ('"', "#", ""):
                    line = raw[: match.start()]
                    commented = escape != ""
                    joins = escape != '"'
                    break
        if commented and not (pending + line).strip(" \t.'"):
            continue  # a comment line: drop it whole, without joining
        if joins:
            pending += line
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def _special_char(name: str) -> str:
    """Return the glyph for ``\\(name`` / ``\\[name]`` / ``\\C'name'``; unknown names print nothing."""
    glyph = _SPECIAL_CHARS.get(name)
    if glyph is not None:
        return glyph
    if len(name) == 2:
        if name[0] == "*" and name[1].lower() in _GREEK:
            greek = _GREEK[name[1].lower()]
            return greek.upper() if name[1].isupper() else greek
        if name[0] in _COMBINING_ACCENTS and name[1].isalpha() and (name[0] != "o" or name[1] in "aA"):
            return unicodedata.normalize("NFC", name[1] + _COMBINING_ACCENTS[name[0]])
    if name.startswith("u") and len(name) > 1:
        try:
            return "".join(chr(int(part, 16)) for part in name[1:].split("_"))
        except (ValueError, OverflowError):
            return ""
    if name.startswith("char") and name[4:].isdigit():
        code = int(name[4:])
        return chr(code) if code < 0x110000 else ""
    return ""


def _skip_name(text: str, index: int) -> tuple[str, int]:
    """Read an escape's name at ``index``: ``x``, ``(xx`` or ``[name]``; return ``(name, index after it)``."""
    if index >= len(text):
        return "", index
    if text[index] == "(":
        return text[index + 1 : index + 3], index + 3
    if text[index] == "[":
        end = text.find("]", index)
        if end < 0:
            return text[index + 1 :], len(text)
        return text[index + 1 : end], end + 1
    return text[index], index + 1


def _skip_delimited(text: str, index: int) -> tuple[str, int]:
    """Read an escape's delimited argument at ``index`` (``'...'``, or ``[...]``); return ``(content, end)``."""
    if index >= len(text):
        return "", index
    delimiter = text[index]
    closing = "]" if delimiter == "[" else delimiter
    position = index + 1
    while position < len(text) and text[position] != closing:
        if text[position] == "\\" and position + 1 < len(text):
            if text[position + 1] in _DELIMITED_ESCAPES:
                _, position = _skip_delimited(text, position + 2)
            else:
                position += 2
        else:
            position += 1
    return text[index + 1 : position], min(position + 1, len(text))


def _skip_size(text: str, index: int) -> int:
    """Skip the argument of a size escape: ``\\s-1``, ``\\s+2``, ``\\s0``, ``\\s12``, ``\\s(12``, ``\\s[..]``."""
    length = len(text)
    if index < length and text[index] in "+-":
        index += 1
    if index >= length:
        return index
    char = text[index]
    if char == "(":
        index += 1
        if index < length and text[index] in "+-":
            index += 1
        return min(index + 2, length)
    if char in "['":
        return _skip_delimited(text, index)[1]
    if char.isdigit():
        if char in "123" and index + 1 < length and text[index + 1].isdigit():
            return index + 2
        return index + 1
    return index


def _evaluate_number(expression: str) -> float | None:
    """Evaluate a roff numeric expression left to right (roff has no precedence); ``None`` if unreadable."""
    expression = _UNIT_RE.sub("", expression)
    tokens: list[str] = []
    position = 0
    while position < len(expression):
        match = _NUMBER_TOKEN_RE.match(expression, position)
        if match is None:
            return None
        tokens.append(match.group(1))
        position = match.end()
    if not tokens:
        return None
    cursor = 0

    def term() -> float:
        nonlocal cursor
        if cursor >= len(tokens):
            raise ValueError("missing operand")
        token = tokens[cursor]
        cursor += 1
        if token == "(":
            value = chain()
            if cursor < len(tokens) and tokens[cursor] == ")":
                cursor += 1
            return value
        if token == "-":
            return -term()
        if token == "+":
            return term()
        if token == "!":
            return 0.0 if term() > 0 else 1.0
        return float(token)

    def chain() -> float:
        nonlocal cursor
        value = term()
        while cursor < len(tokens) and tokens[cursor] != ")":
            operator = tokens[cursor]
            cursor += 1
            right = term()
            if operator == "+":
                value += right
            elif operator == "-":
                value -= right
            elif operator == "*":
                value *= right
            elif operator in "/%":
                value = 0.0 if right == 0 else (value // right if operator == "/" else value % right)
            elif operator == "<":
                value = float(value < right)
            elif operator == ">":
                value = float(value > right)
            elif operator == "<=":
                value = float(value <= right)
            elif operator == ">=":
                value = float(value >= right)
            elif operator in ("=", "=="):
                value = float(value == right)
            elif operator == "&":
                value = float(value > 0 and right > 0)
            elif operator == ":":
                value = float(value > 0 or right > 0)
            else:
                raise ValueError(f"unknown operator {operator}")
        return value

    try:
        return chain()
    except (ValueError, IndexError):
        return None


class _TextWriter:
    """Collects words into lines and lines into paragraphs, in fill mode (joined) or no-fill mode (kept)."""

    def __init__(self) -> None:
        self.paragraphs: list[list[str]] = []
        self.lines: list[str] = []
        self.words: list[str] = []
        self.fill = True
        self.glue = False
        self.heading_only = False

    def add(self, text: str) -> None:
        """Append text to the current line; a trailing ``\\c`` glues the next text to it without a space."""
        text = text.rstrip("\n")
        # `\\c` joins the next input line to this one - unless a space came before it, which still separates them
        glue_after = text.endswith(_GLUE) and not text.rstrip(_GLUE)[-1:].isspace()
        text = text.replace(_GLUE, "")
        if self.fill:
            parts = text.split()
        else:
            text = text.replace("\t", " ").rstrip()
            parts = [text] if text.strip() else []
        if parts:
            if self.glue and self.words:
                self.words[-1] += parts[0].lstrip() if self.fill else parts[0]
                parts = parts[1:]
            self.words.extend(parts)
            self.heading_only = False
        self.glue = glue_after or (self.glue and not parts and not text.strip())

    def line_break(self) -> None:
        """End the current output line."""
        if self.words:
            self.lines.append(" ".join(self.words))
            self.words = []
        self.glue = False

    def _close_paragraph(self) -> None:
        self.line_break()
        if self.lines:
            self.paragraphs.append(self.lines)
            self.lines = []
        self.heading_only = False

    def paragraph_break(self) -> None:
        """End the current paragraph (a blank line), except right after a heading: text follows it directly."""
        if self.heading_only and not self.words:
            return
        self._close_paragraph()

    def heading(self, text: str) -> None:
        """Put a heading on its own line at the start of a new paragraph."""
        self._close_paragraph()
        words = text.replace(_GLUE, "").split()
        if words:
            self.lines.append(" ".join(words))
            self.heading_only = True

    def text(self) -> str:
        """Return the collected text: paragraphs separated by a blank line."""
        self._close_paragraph()
        return "\n\n".join("\n".join(line.rstrip() for line in lines) for lines in self.paragraphs)


@dataclass
class _Table:
    """State of a tbl(1) table between ``.TS`` and ``.TE``."""

    phase: str = "options"  # options -> format -> data
    tab: str = "\t"
    in_block: bool = False
    saved_fill: bool = True


class _MdocWords:
    """Words of one mdoc line with mdoc's spacing: closing punctuation attaches left, opening attaches right."""

    def __init__(self, *, spacing: bool = True) -> None:
        self.items: list[str] = []
        self.no_space = False
        self.spacing = spacing  # False between `.Sm off` and `.Sm on`: words are not separated

    def word(self, text: str, *, attach: bool = False) -> None:
        if not text:
            return
        if self.items and (attach or self.no_space or not self.spacing or text in _CLOSE_DELIMS):
            self.items[-1] += text
        else:
            self.items.append(text)
        self.no_space = text in _OPEN_DELIMS

    def text(self) -> str:
        return " ".join(self.items)


class _RoffConverter:
    """A line-by-line roff interpreter that keeps the words of the ``man`` and ``mdoc`` macro packages."""

    def __init__(self) -> None:
        self.out = _TextWriter()
        self.strings: dict[str, str] = dict(_PREDEFINED_STRINGS)
        self.macros: dict[str, list[str]] = {}
        self.aliases: dict[str, str] = {}
        self.translations: dict[int, str] = {}
        self.ie_results: list[bool] = []
        self.skip_braces = 0
        self.collecting: tuple[str, str, list[str]] | None = None  # (macro name or "" for .ig, end name, body)
        self.ignore_until: str | None = None
        self.table: _Table | None = None
        self.tag_pending = False
        self.heading_pending = False
        self.links: list[str] = []
        self.depth = 0
        self.budget = _MAX_EXPANDED_LINES
        self.stopped = False
        # mdoc state
        self.mdoc_name = ""
        self.section = ""
        self.lists: list[list[Any]] = []  # [type, item counter, compact]
        self.function_args: int | None = None
        self.spacing = True

    # -- escapes ---------------------------------------------------------------------------------------------

    def unescape(self, text: str) -> str:
        """Replace the escapes of a text line by what they print (fonts, sizes, motions print nothing)."""
        if "\\" not in text:
            return text
        out: list[str] = []
        index, length = 0, len(text)
        while index < length:
            backslash = text.find("\\", index)
            if backslash < 0:
                out.append(text[index:])
                break
            out.append(text[index:backslash])
            if backslash + 1 >= length:
                break
            escape = text[backslash + 1]
            index = backslash + 2
            simple = _SIMPLE_ESCAPES.get(escape)
            if simple is not None:
                out.append(simple)
            elif escape == "(" or escape == "[":
                name, index = _skip_name(text, index - 1)
                out.append(_special_char(name))
            elif escape == "*":
                name, index = _skip_name(text, index)
                out.append(self.strings.get(name.split(" ")[0], ""))
            elif escape == "n":
                if index < length and text[index] in "+-":
                    index += 1
                _, index = _skip_name(text, index)
            elif escape in _NAME_ESCAPES:
                _, index = _skip_name(text, index)
            elif escape == "s":
                index = _skip_size(text, index)
            elif escape in _DELIMITED_ESCAPES:
                content, index = _skip_delimited(text, index)
                if escape == "C":
                    out.append(_special_char(content))
                elif escape == "h" and (_evaluate_number(content.lstrip("|")) or 0) > 0:
                    out.append(" ")  # a forward motion separates words (`\\h'+01'` after a list number)
            elif escape in ('"', "#"):
                break
            elif escape == "O":
                index += 1 if index < length and text[index].isdigit() else 0
            else:
                out.append(escape)
        return "".join(out)

    # -- driver ----------------------------------------------------------------------------------------------

    def convert(self, source: str) -> str:
        for line in _logical_lines(source.replace("\x00", "")):
            if self.stopped:
                break
            self.feed(line)
        text = self.out.text()
        if self.translations:
            text = text.translate(self.translations)
        text = re.sub(r"[ \t]+\n", "\n", text)
        return re.sub(r"\n{3,}", "\n\n", text).strip()

    def feed(self, line: str) -> None:
        """Interpret one input line in the current state."""
        if self.skip_braces > 0:
            self.skip_braces = max(0, self.skip_braces + _count_braces(line))
            return
        if self.collecting is not None:
            name, end, body = self.collecting
            match = _CONTROL_LINE_RE.match(line) if line[:1] in ".'" else None
            if match is not None and match.group(1) == end:
                self.collecting = None
                if name:
                    self.macros[name] = body
            else:
                body.append(line)
            return
        if self.ignore_until is not None:
            match = _CONTROL_LINE_RE.match(line) if line[:1] in ".'" else None
            if match is not None and match.group(1) == self.ignore_until:
                self.ignore_until = None
            return
        if self.table is not None and self._table_line(line):
            return
        if line[:1] in ".'":
            self._request(line)
        else:
            self._text_line(line)
        if self.tag_pending and self.out.words and not self.out.glue:
            self.out.line_break()
            self.tag_pending = False

    def _emit(self, text: str) -> None:
        """Add the text of one input line; in no-fill mode each input line is an output line."""
        if self.heading_pending:
            self.heading_pending = False
            self._heading(text)
            return
        self.out.add(text)
        if not self.out.fill and not self.out.glue:
            self.out.line_break()

    def _heading(self, text: str) -> None:
        self.out.heading(text)
        self.section = " ".join(text.split()).upper()
        self.tag_pending = False

    def _text_line(self, line: str) -> None:
        if not line.strip():
            self.out.paragraph_break()
            return
        if self.out.fill and line[0] in " \t":
            self.out.line_break()
        self._emit(self.unescape(line))

    # -- tables ----------------------------------------------------------------------------------------------

    def _table_line(self, line: str) -> bool:
        """Handle a line inside ``.TS``/``.TE``; return False to let ``feed`` handle it as usual."""
        table = self.table
        assert table is not None
        if table.phase == "options":
            table.phase = "format"
            if line.rstrip().endswith(";"):
                match = _TBL_TAB_RE.search(line)
                if match is not None:
                    table.tab = match.group(1)
                return True
        if table.phase == "format":
            if line.rstrip().endswith("."):
                table.phase = "data"
            return True
        if table.in_block:
            if line.startswith("T}"):
                table.in_block = False
                self._table_cells(line[2:])
                return True
            return False  # text block lines: ordinary text and requests
        if line[:1] in ".'":
            match = _CONTROL_LINE_RE.match(line)
            if match is not None and match.group(1) == "T&":
                table.phase = "format"
                return True
            return False
        self._table_cells(line)
        return True

    def _table_cells(self, line: str) -> None:
        table = self.table
        assert table is not None
        for cell in line.split(table.tab):
            cell = cell.strip()
            if cell == "T{":
                table.in_block = True
                continue
            if cell in ("", "_", "=", "\\_", "^", "\\^", "\\="):  # empty cells, rules and vertical spans
                continue
            self.out.add(self.unescape(cell).replace("\t", " "))
        if not table.in_block:
            self.out.line_break()

    # -- requests and macros ---------------------------------------------------------------------------------

    def _condition(self, text: str) -> tuple[bool, str]:
        """Evaluate the condition at the start of ``text`` for nroff output; return ``(result, body)``.

        ``n`` is true and ``t`` false; ``d name`` asks whether a macro or string is defined; string comparisons
        ``'a'b'`` compare the printed strings; numeric expressions see ``\\n(.g`` (groff) as 1 and any other
        register as 0. A condition that cannot be evaluated is false.
        """
        text = text.lstrip(" \t")
        negate = False
        while text.startswith("!"):
            negate = not negate
            text = text[1:]
        if not text:
            return False, ""
        first = text[0]
        value: bool | None
        if first in "ntoev" and (len(text) == 1 or not (text[1].isalnum() or text[1] in "._")):
            value = {"n": True, "t": False, "v": False}.get(first)
            rest = text[1:]
        elif first in "drcmFS" and len(text) > 1 and text[1] in " \t":
            pieces = text[2:].lstrip(" \t").split(None, 1)
            argument = pieces[0] if pieces else ""
            rest = pieces[1] if len(pieces) > 1 else ""
            if first == "d":
                value = argument in self.macros or argument in self.strings or argument in _BUILTIN_NAMES
            else:
                value = False if first == "r" else None
        elif first == "'" or (not first.isalnum() and first not in "\\(+-.|"):
            left, middle = _skip_delimited(text, 0)
            right, end = _skip_delimited(text, middle - 1)
            value = self.unescape(left) == self.unescape(right)
            rest = text[end:]
        else:
            pieces = text.split(None, 1)
            expression = pieces[0]
            rest = pieces[1] if len(pieces) > 1 else ""
            if "\\{" in expression:  # `.if \n(.g\{` - the block opens right after the expression
                expression, _, tail = expression.partition("\\{")
                rest = "\\{" + tail + (" " + rest if rest else "")
            registers = _REGISTER_RE.sub(lambda match: "1" if match.group(1) in ("(.g", "[.g]") else "0", expression)
            number = _evaluate_number(registers) if "\\" not in registers else None
            value = None if number is None else number > 0
        if value is None:
            return False, rest
        return value != negate, rest

    def _conditional(self, taken: bool, body: str) -> None:
        body = body.lstrip(" \t")
        if not taken:
            depth = _count_braces(body)
            if depth > 0:
                self.skip_braces = depth
            return
        if body.startswith("\\{"):
            body = body[2:].lstrip(" \t")
        if body.strip():
            self.feed(body)

    def _call_macro(self, name: str, rest: str) -> None:
        if self.depth >= _MAX_MACRO_DEPTH:
            return
        args = [arg for arg, _ in _split_args(rest)]

        def substitute(match: re.Match[str]) -> str:
            spec = match.group("arg")
            if spec is None:
                return str(len(args)) if match.group("count") else "\\"
            if spec == "*":
                return " ".join(args)
            if spec == "@":
                return " ".join(f'"{arg}"' for arg in args)
            number = int(spec.strip("([]"))
            return args[number - 1] if 0 < number <= len(args) else ""

        self.depth += 1
        try:
            for raw in self.macros[name]:
                self.budget -= 1
                if self.budget < 0 or self.stopped:
                    break
                self.feed(_COPY_MODE_RE.sub(substitute, raw))
        finally:
            self.depth -= 1

    def _request(self, line: str) -> None:
        conditional = _CONDITIONAL_RE.match(line)
        if conditional is not None:
            kind, rest = conditional.group(1), conditional.group(2)
            if kind == "el":
                taken = not self.ie_results.pop() if self.ie_results else False
                self._conditional(taken, rest)
            elif kind == "while":
                self._conditional(False, self._condition(rest)[1])
            else:
                result, body = self._condition(rest)
                if kind == "ie":
                    self.ie_results.append(result)
                self._conditional(result, body)
            return
        match = _CONTROL_LINE_RE.match(line.replace("\\}", ""))
        if match is None:
            return
        name, rest = match.group(1), match.group(2)
        if not name:
            return
        name = self.aliases.get(name, name)
        if name in self.macros and name not in _BUILTIN_NAMES:
            self._call_macro(name, rest)
        elif name in _MDOC_BLOCK or name in _MDOC_CALLABLE:
            self._mdoc_request(name, _split_args(rest))
        else:
            self._man_request(name, rest)

    def _man_request(self, name: str, rest: str) -> None:
        out = self.out
        if name in _FONT_MACROS_JOINED:
            args = [self.unescape(arg) for arg, _ in _split_args(rest)]
            if args:
                self._emit("".join(args))
        elif name in _FONT_MACROS_SPACED:
            args = [self.unescape(arg) for arg, _ in _split_args(rest)]
            if args:
                self._emit(" ".join(args))
        elif name in _PARAGRAPH_REQUESTS:
            out.paragraph_break()
        elif name in _LINE_BREAK_REQUESTS:
            out.line_break()
        elif name in _NOFILL_REQUESTS:
            out.line_break()
            out.fill = False
        elif name in _FILL_REQUESTS:
            out.line_break()
            out.fill = True
        elif name in ("SH", "SS"):
            text = " ".join(self.unescape(arg) for arg, _ in _split_args(rest))
            if text.strip():
                self._heading(text)
            else:
                out.paragraph_break()
                self.heading_pending = True
        elif name == "TP":
            out.paragraph_break()
            self.tag_pending = True
        elif name == "TQ":
            out.line_break()
            self.tag_pending = True
        elif name in ("IP", "Ip"):
            out.paragraph_break()
            args = _split_args(rest)
            if args:
                out.add(self.unescape(args[0][0]))
        elif name in ("UR", "MT"):
            args = _split_args(rest)
            self.links.append(self.unescape(args[0][0]) if args else "")
        elif name in ("UE", "ME"):
            target = self.links.pop() if self.links else ""
            if target:
                out.add(f"<{target}>")
            trailing = "".join(self.unescape(arg) for arg, _ in _split_args(rest))
            if trailing:
                out.glue = True
                out.add(trailing)
        elif name == "SY":
            out.paragraph_break()
            out.add(" ".join(self.unescape(arg) for arg, _ in _split_args(rest)))
        elif name == "OP":
            args = [self.unescape(arg) for arg, _ in _split_args(rest)]
            if args:
                out.add("[" + " ".join(args) + "]")
        elif name == "YS":
            out.paragraph_break()
        elif name == "TS":
            out.line_break()
            self.table = _Table(saved_fill=out.fill)
            out.fill = True
        elif name == "TE":
            if self.table is not None:
                out.line_break()
                out.fill = self.table.saved_fill
                self.table = None
        elif name in _IGNORED_BLOCKS:
            self.ignore_until = _IGNORED_BLOCKS[name]
        elif name in _MACRO_DEFINITIONS:
            args = rest.split()
            if name == "ig":
                self.collecting = ("", args[0] if args else ".", [])
            elif args:
                body = list(self.macros.get(args[0], [])) if name.startswith("am") else []
                self.collecting = (args[0], args[1] if len(args) > 1 else ".", body)
        elif name in ("ds", "as", "ds1", "as1"):
            pieces = rest.split(None, 1)
            if pieces:
                value = pieces[1] if len(pieces) > 1 else ""
                value = self.unescape(value.removeprefix('"'))
                if name.startswith("as"):
                    value = self.strings.get(pieces[0], "") + value
                self.strings[pieces[0]] = value
        elif name == "tr":
            chars = self.unescape(rest.strip())
            for index in range(0, len(chars), 2):
                self.translations[ord(chars[index])] = chars[index + 1] if index + 1 < len(chars) else " "
        elif name == "nop":
            self._text_line(rest)
        elif name == "do":
            self.feed("." + rest)
        elif name in ("als", "rn"):
            args = rest.split()
            if len(args) >= 2:
                new, old = (args[0], args[1]) if name == "als" else (args[1], args[0])
                if old in self.macros:
                    self.macros[new] = self.macros[old]
                elif old in self.strings:
                    self.strings[new] = self.strings[old]
                else:
                    self.aliases[new] = self.aliases.get(old, old)
        elif name == "rm":
            for macro in rest.split():
                self.macros.pop(macro, None)
                self.strings.pop(macro, None)
        elif name in ("ex", "nx"):
            self.stopped = True
        # Everything else - .TH, .PD, .IX, .in, .ft, .nr, .so, .tm, .ce, .ll, unknown macros - prints nothing.

    # -- mdoc ------------------------------------------------------------------------------------------------

    def _mdoc_request(self, name: str, args: list[tuple[str, bool]]) -> None:
        out = self.out
        in_synopsis = self.section == "SYNOPSIS"
        if name in ("Sh", "Ss"):
            self._heading(" ".join(self.unescape(arg) for arg, _ in args))
        elif name in ("Pp", "Lp", "Rs", "Re"):
            out.paragraph_break()
        elif name == "Nd":
            out.add("-")
            out.add(self._mdoc_render(args, 0))
        elif name == "Bl":
            kinds = [arg for arg, _ in args if arg.startswith("-") and arg not in ("-compact", "-width", "-offset")]
            self.lists.append([kinds[0][1:] if kinds else "tag", 0, any(arg == "-compact" for arg, _ in args)])
            out.paragraph_break()
        elif name == "El":
            if self.lists:
                self.lists.pop()
            out.paragraph_break()
        elif name == "It":
            self._mdoc_item(args)
        elif name == "Bd":
            out.paragraph_break()
            if any(arg in ("-literal", "-unfilled") for arg, _ in args):
                out.fill = False
        elif name == "Ed":
            out.fill = True
            out.paragraph_break()
        elif name in ("D1", "Dl"):
            out.line_break()
            out.add(self._mdoc_render(args, 0))
            out.line_break()
        else:
            if in_synopsis and name in ("Nm", "Ft", "Fd", "In"):
                out.line_break()
            words = _MdocWords(spacing=self.spacing)
            self._mdoc_sequence([(name, False), *args], 0, words)
            self._emit(words.text())
            if in_synopsis and name in ("Ft", "Fd", "In"):
                out.line_break()

    def _mdoc_item(self, args: list[tuple[str, bool]]) -> None:
        out = self.out
        kind, _, compact = self.lists[-1] if self.lists else ("tag", 0, False)
        if compact or kind == "column":
            out.line_break()
        else:
            out.paragraph_break()
        if kind in ("bullet", "dash", "hyphen", "enum"):
            if kind == "enum":
                self.lists[-1][1] += 1
                out.add(f"{self.lists[-1][1]}.")
            else:
                out.add("•" if kind == "bullet" else "-")
        text = self._mdoc_render(args, 0).replace("\t", " ")
        if text:
            out.add(text)
        if kind in ("tag", "ohang", "diag", "column") and text:
            out.line_break()

    def _mdoc_render(self, args: list[tuple[str, bool]], index: int) -> str:
        words = _MdocWords(spacing=self.spacing)
        self._mdoc_sequence(args, index, words)
        return words.text()

    def _mdoc_sequence(self, args: list[tuple[str, bool]], index: int, words: _MdocWords) -> int:
        """Render ``args[index:]``: plain words, and callable macros with the arguments they take."""
        while index < len(args):
            text, quoted = args[index]
            if not quoted and text in _MDOC_CALLABLE:
                index = self._mdoc_macro(text, args, index + 1, words)
            else:
                words.word(self.unescape(text))
                index += 1
        return index

    @staticmethod
    def _plain_args(args: list[tuple[str, bool]], index: int) -> tuple[list[str], int]:
        """Return the raw arguments up to the next callable macro, and the index of that macro."""
        plain: list[str] = []
        while index < len(args) and (args[index][1] or args[index][0] not in _MDOC_CALLABLE):
            plain.append(args[index][0])
            index += 1
        return plain, index

    def _mdoc_macro(self, name: str, args: list[tuple[str, bool]], index: int, words: _MdocWords) -> int:
        """Render one callable mdoc macro whose arguments start at ``args[index]``; return the next index."""
        unescape = self.unescape
        if name in _MDOC_ENCLOSE:
            end = len(args)
            while end > index and not args[end - 1][1] and args[end - 1][0] in _CLOSE_DELIMS:
                end -= 1
            opening, closing = _MDOC_ENCLOSE[name]
            inner = self._mdoc_render(args[index:end], 0)
            words.word(opening + inner + closing)
            for text, _ in args[end:]:
                words.word(text)
            return len(args)
        if name in _MDOC_OPEN:
            words.word(_MDOC_OPEN[name])
            words.no_space = True
            return index
        if name in _MDOC_CLOSE:
            words.word(_MDOC_CLOSE[name], attach=True)
            return index
        if name == "Ns":
            words.no_space = True
            return index
        if name == "Ap":
            words.word("'", attach=True)
            words.no_space = True
            return index
        plain, after = self._plain_args(args, index)
        values = [unescape(text) for text in plain]
        delimiters = [
            not args[index + offset][1] and text in _CLOSE_DELIMS | _OPEN_DELIMS | {"|"}
            for offset, text in enumerate(plain)
        ]
        content = [value for value, is_delimiter in zip(values, delimiters) if not is_delimiter]

        def emit(render: Callable[[str], str], default: str | None = None) -> None:
            if not content and default is not None:
                words.word(default)
            for value, is_delimiter in zip(values, delimiters):
                words.word(value if is_delimiter else render(value))

        if name == "Fl":
            if not content:
                words.word("-")
                # `Fl Fl apple` is `--apple`: a bare flag dash sticks to the flag macro after it
                words.no_space = after < len(args) and args[after][0] == "Fl"
            emit(lambda value: "-" + value)
        elif name == "Ar":
            emit(lambda value: value, "file ...")
        elif name == "Nm":
            if content and not self.mdoc_name:
                self.mdoc_name = content[0]
            emit(lambda value: value, self.mdoc_name)
        elif name == "Xr":
            if len(content) >= 2 and not delimiters[0] and not delimiters[1]:
                words.word(f"{values[0]}({values[1]})")
                for value in values[2:]:
                    words.word(value)
            else:
                emit(lambda value: value)
        elif name == "Fn":
            if content and not delimiters[0]:
                function_args = [value for value, is_delimiter in zip(values[1:], delimiters[1:]) if not is_delimiter]
                trailing = [value for value, is_delimiter in zip(values[1:], delimiters[1:]) if is_delimiter]
                words.word(f"{values[0]}({', '.join(function_args)})")
                for value in trailing:
                    words.word(value)
                if self.section == "SYNOPSIS":
                    words.word(";")
            else:
                emit(lambda value: value)
        elif name == "Fo":
            if content:
                words.word(content[0] + "(")
                words.no_space = True
            self.function_args = 0
        elif name == "Fc":
            words.word(")" + (";" if self.section == "SYNOPSIS" else ""), attach=True)
            self.function_args = None
            emit(lambda value: value)
        elif name == "Fa" and self.function_args is not None:
            for value in content:
                if self.function_args:
                    words.word(",", attach=True)
                words.word(value, attach=self.function_args == 0)
                self.function_args += 1
        elif name == "In":
            emit(lambda value: f"#include <{value}>" if self.section == "SYNOPSIS" else f"<{value}>")
        elif name in _MDOC_OS_NAMES:
            words.word(_MDOC_OS_NAMES[name])
            emit(lambda value: value)
        elif name == "St":
            emit(lambda value: _MDOC_STANDARDS.get(value, value))
        elif name == "Lk":
            if len(content) >= 2:
                words.word(" ".join(content[1:]) + ":")
                words.word(content[0])
            else:
                emit(lambda value: value)
        elif name in ("Ex", "Rv"):
            subjects = [value for value in content if value != "-std"] or [self.mdoc_name or "this"]
            if name == "Ex":
                words.word(f"The {' '.join(subjects)} utility exits 0 on success, and >0 if an error occurs.")
            else:
                called = ", ".join(f"{subject}()" for subject in subjects)
                words.word(
                    f"The {called} function returns the value 0 if successful; otherwise the value -1 is "
                    "returned and the global variable errno is set to indicate the error."
                )
        elif name == "An":
            emit(lambda value: value)
            if words.items and words.items[-1] in ("-split", "-nosplit"):
                words.items.pop()
        elif name == "Ud":
            words.word("currently under development.")
        elif name == "Bt":
            words.word("is currently in beta test.")
        elif name == "Sm":
            self.spacing = content[0] != "off" if content else not self.spacing
            words.spacing = self.spacing
            return after
        elif name in ("Bk", "Ek", "Bf", "Ef", "Tg", "Db", "Hf", "Dd", "Dt", "Os", "Xo", "Xc", "Ta"):
            if name in ("Bk", "Bf", "Tg", "Db", "Dd", "Dt", "Os"):
                return after  # their arguments are options, not text
            emit(lambda value: value)
        else:
            emit(lambda value: value)
        return after


def roff_to_text(source: str) -> str:
    """Convert the roff source of a manual page (``man`` or ``mdoc`` macros) to plain text.

    What a reader sees is kept, the layout is not: text lines are joined into paragraphs with single spaces,
    paragraphs are separated by a blank line, a heading (``.SH``/``.Sh``, ``.SS``/``.Ss``) stands on its own line
    with its paragraph right below, a ``.TP`` tag and an mdoc ``.It`` tag get their own line, and inside ``.nf`` /
    ``.EX`` / ``.Bd -literal`` blocks the input lines are kept as they are. The page header (``.TH``, ``.Dt``,
    ``.Dd``, ``.Os``) is dropped: it holds the section number, which would give away the label of
    :func:`build_manpage_sections_corpus`.

    Interpreted: comments; ``\\``-newline continuations; the font macros (``.BR a b`` -> ``ab``, ``.B a b`` ->
    ``a b``); escapes (``\\-`` -> ``-``, ``\\(em`` -> ``—``, ``\\(aq`` -> ``'``, ``\\e`` -> ``\\``, named
    and ``\\[uXXXX]`` glyphs; font, size, motion, width and register escapes print nothing); strings (``.ds``,
    ``\\*(lq``, ``\\*R``); conditionals ``.if``/``.ie``/``.el`` evaluated for nroff (``n`` true, ``t`` false,
    ``\\n(.g`` 1, other registers 0), with their ``\\{ ... \\}`` blocks; user macros (``.de``) expanded with their
    ``\\$1`` arguments; tbl tables (rows kept, one per line, cells joined by spaces; format lines dropped);
    ``.UR``/``.MT`` links; and the mdoc macros (``.Fl v`` -> ``-v``, ``.Xr ls 1`` -> ``ls(1)``, ``.Op`` ->
    ``[...]``, ``.Nd`` -> ``- ...``, lists, displays). Equations (``.EQ``), pictures (``.PS``), ``.ig`` blocks and
    requests that only lay out (``.in``, ``.ft``, ``.nr``, ``.ne``, ...) print nothing; so do unknown requests.

    The converter never raises: on input it cannot follow it returns what it has.

    Args:
        source: The page's roff source (already decompressed).

    Returns:
        The page as plain text, stripped.
    """
    converter = _RoffConverter()
    try:
        return converter.convert(source)
    except RecursionError:  # a pathological macro nest; keep what was converted so far
        logger.debug("roff_to_text: recursion limit reached", exc_info=True)
        return converter.out.text().strip()


# --- finding and reading pages ----------------------------------------------------------------------------------


def default_man_dirs() -> list[Path]:
    """Return the manual page directories of this machine that exist.

    Asked in this order: ``manpath`` (man-db's own search path, with a timeout), the ``MANPATH`` environment
    variable, then ``/usr/share/man``. Duplicates are removed, order is kept.
    """
    candidates: list[str] = []
    manpath = shutil.which("manpath")
    if manpath is not None:
        try:
            result = subprocess.run([manpath], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            logger.debug("manpath failed: %s", error)
        else:
            if result.returncode == 0:
                candidates = [entry for entry in result.stdout.strip().split(":") if entry]
    if not candidates:
        candidates = [entry for entry in os.environ.get("MANPATH", "").split(":") if entry]
    if not candidates:
        candidates = [_FALLBACK_MAN_DIR]
    found: list[Path] = []
    for entry in candidates:
        path = Path(entry)
        if path.is_dir() and path not in found:
            found.append(path)
    return found


def _page_name(filename: str, section: str) -> str | None:
    """Return the page name of ``<name>.<section>[suffix][.gz]``, or ``None`` if the file is not such a page."""
    base = filename
    for suffix in _DECOMPRESSORS:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    name, dot, extension = base.rpartition(".")
    if not dot or not name or not extension.startswith(section):
        return None
    return name


def _find_man_pages(man_dirs: Sequence[Path], sections: Sequence[str]) -> tuple[list[ManPage], int]:
    """Find the pages, the first directory winning a name+section found twice; return ``(pages, shadowed)``."""
    pages: dict[tuple[str, str], ManPage] = {}
    shadowed = 0
    for root in man_dirs:
        for section in sections:
            folder = Path(root) / f"man{section}"
            if not folder.is_dir():
                continue
            try:
                entries = sorted(folder.iterdir())
            except OSError as error:
                logger.warning("man pages: cannot list %s (%s)", folder, error)
                continue
            for path in entries:
                name = _page_name(path.name, section)
                if name is None or not path.is_file():  # is_file follows symlinks: dangling links are skipped
                    continue
                if (section, name) in pages:
                    shadowed += 1
                    continue
                pages[(section, name)] = ManPage(name=name, section=section, path=path)
    return sorted(pages.values(), key=lambda page: (page.section, page.name)), shadowed


def find_man_pages(
    man_dirs: Sequence[str | os.PathLike[str]] | None = None,
    sections: Sequence[str] = DEFAULT_MAN_SECTIONS,
) -> list[ManPage]:
    """Find the manual page files under ``<dir>/man<section>/``.

    Args:
        man_dirs: Roots to search (default: :func:`default_man_dirs`); roots that do not exist are skipped.
        sections: Section directories to read (``"3"`` reads ``man3``, whose pages may be ``.3``, ``.3pm``, ...).

    Returns:
        The pages sorted by ``(section, name)``. A page is ``<name>.<ext>[.gz|.bz2|.xz]`` whose extension starts
        with the section (``ls.1.gz``, ``Foo::Bar.3pm.gz``); its section is the directory's. A name found twice in
        one section (in two roots, or as ``foo.3`` and ``foo.3pm``) keeps the first: earlier root, then file name.
    """
    dirs = default_man_dirs() if man_dirs is None else [Path(root) for root in man_dirs]
    return _find_man_pages(dirs, sections)[0]


def _decode(data: bytes) -> str:
    """Decode page bytes: UTF-8 where valid (nearly all pages today), else Latin-1 (old pages)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _read_source(path: str | os.PathLike[str]) -> str:
    """Read and decompress one page file."""
    data = Path(path).read_bytes()
    for suffix, decompress in _DECOMPRESSORS.items():
        if str(path).endswith(suffix):
            data = decompress(data)
            break
    return _decode(data)


def _is_redirect(source: str) -> bool:
    """Return whether a page is only ``.so other/page`` (an alias that man follows), comments aside."""
    meaningful = [line for line in _logical_lines(source) if line.strip(" \t.'")]
    return len(meaningful) == 1 and re.match(r"[.'][ \t]*so[ \t]+\S", meaningful[0]) is not None


def _read_and_convert(path: str) -> tuple[str, str]:
    """Read one page; return ``("ok", text)``, ``("redirect", "")`` or ``("unreadable", reason)``."""
    try:
        source = _read_source(path)
    except (OSError, EOFError, ValueError, lzma.LZMAError) as error:  # gzip/bz2 raise OSError/EOFError/ValueError
        return "unreadable", f"{type(error).__name__}: {error}"
    if _is_redirect(source):
        return "redirect", ""
    try:
        return "ok", roff_to_text(source)
    except Exception as error:  # noqa: BLE001 - one odd page must not stop a build of thousands
        return "unreadable", f"roff_to_text failed: {type(error).__name__}: {error}"


def _family(name: str) -> str:
    """The family of a page: its name up to the first ``_``, ``-`` or ``.`` (``gcloud_compute_ssh`` -> ``gcloud``)."""
    return re.split(r"[_.-]", name.lstrip("_.-"), maxsplit=1)[0] or name


def _stable_rank(name: str, salt: str) -> str:
    """Order key for a page: a SHA-256 digest, identical on every machine and Python run (unlike ``hash()``)."""
    return hashlib.sha256(f"{salt}\x00{name}".encode()).hexdigest()


def _split_of(name: str, salt: str, validation_fraction: float, test_fraction: float) -> str:
    """The split of a page name: a uniform number from its SHA-256, so it depends on nothing but name and salt."""
    position = int(_stable_rank(name, salt)[:16], 16) / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + validation_fraction:
        return "validation"
    return "train"


def _missing_pages_message(dirs: Sequence[Path], sections: Sequence[str], reason: str) -> str:
    searched = ", ".join(str(root) for root in dirs) or "(none)"
    folders = ", ".join(f"man{section}" for section in sections)
    return (
        f"No manual pages found: {reason}. Searched: {searched} (layout <dir>/man<N>/<page>.<N>.gz, sections "
        f"{folders}); no man<N>/*.gz page was found there. Install them (Debian/Ubuntu: `apt-get install man-db "
        "manpages manpages-dev`; minimal container images delete /usr/share/man - see "
        "/etc/dpkg/dpkg.cfg.d/excludes and `unminimize`), or pass man_dirs=[...] pointing at folders that hold "
        "man1..man8. Corpora that need no manual pages: 'gettext:de' (or another language), 'synthetic:reverse', "
        "'synthetic:copy'."
    )


@dataclass
class _BuildReport:
    """Counts collected while building the corpus, for the log and the dataset description."""

    man_dirs: list[str] = field(default_factory=list)
    found: int = 0
    kept_by_section: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    capped_families: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "corpus": "manpages",
            "man_dirs": self.man_dirs,
            "options": options,
            "pages_found": self.found,
            "kept_by_section": dict(sorted(self.kept_by_section.items())),
            "dropped": {reason: self.dropped.get(reason, 0) for reason in _DROP_REASONS},
            "capped_families": self.capped_families,
        }


def _check_options(family_cap: int | None, validation_fraction: float, test_fraction: float, min_words: int) -> None:
    if family_cap is not None and family_cap < 1:
        raise ValueError(f"family_cap must be a positive number of pages or None, got {family_cap}")
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise ValueError(
            "validation_fraction and test_fraction must be in [0, 1) with a sum below 1 (the rest is train), got "
            f"{validation_fraction} and {test_fraction}"
        )
    if min_words < 0:
        raise ValueError(f"min_words must be >= 0, got {min_words}")


def _resolve_symlinks(pages: list[ManPage], report: _BuildReport) -> list[ManPage]:
    """Keep one page per real file: the page that is the file itself, else the first in sorted order."""
    by_target: dict[str, list[ManPage]] = {}
    for page in pages:
        by_target.setdefault(os.path.realpath(page.path), []).append(page)
    kept: list[ManPage] = []
    for group in by_target.values():
        own = [page for page in group if not page.path.is_symlink()]
        kept.append(own[0] if own else group[0])
        report.dropped["symlink"] += len(group) - 1
    return sorted(kept, key=lambda page: (page.section, page.name))


def _cap_families(pages: list[ManPage], family_cap: int | None, salt: str, report: _BuildReport) -> list[ManPage]:
    """Keep at most ``family_cap`` pages of each (section, family), chosen by a stable hash of the name."""
    if family_cap is None:
        return pages
    families: dict[tuple[str, str], list[ManPage]] = {}
    for page in pages:
        families.setdefault((page.section, _family(page.name)), []).append(page)
    kept: list[ManPage] = []
    for (section, family), members in families.items():
        if len(members) > family_cap:
            members = sorted(members, key=lambda page: _stable_rank(page.name, f"{salt}\x00family_cap"))
            report.dropped["family_cap"] += len(members) - family_cap
            report.capped_families[f"{family}({section})"] = len(members)
            logger.info("man pages: family %s(%s) has %d pages, keeping %d", family, section, len(members), family_cap)
            members = members[:family_cap]
        kept.extend(members)
    return sorted(kept, key=lambda page: (page.section, page.name))


def _convert_all(pages: list[ManPage], num_proc: int | None) -> list[tuple[str, str]]:
    """Read and convert the pages, in ``num_proc`` worker processes when there are enough pages to pay for them."""
    paths = [str(page.path) for page in pages]
    workers = (os.cpu_count() or 1) if num_proc is None else max(1, num_proc)
    workers = min(workers, max(1, len(paths) // 64))
    if workers <= 1:
        return [_read_and_convert(path) for path in paths]
    # fork shares the already imported interpreter; spawn/forkserver would re-import torch in every worker.
    context = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_read_and_convert, paths, chunksize=32))


def _cache_key(pages: list[ManPage], options: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps({"version": _CACHE_VERSION, "options": options}, sort_keys=True).encode())
    for page in pages:
        try:
            stat = os.stat(page.path)
        except OSError:
            continue
        digest.update(
            f"{page.section}\x00{page.name}\x00{page.path}\x00{stat.st_size}\x00{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()[:24]


def _build_rows(
    *,
    man_dirs: Sequence[str | os.PathLike[str]] | None,
    sections: Sequence[str],
    family_cap: int | None,
    validation_fraction: float,
    test_fraction: float,
    split_salt: str,
    min_words: int,
    num_proc: int | None,
    cache_dir: str | os.PathLike[str] | None,
) -> tuple[dict[str, dict[str, list[str]]], dict[str, Any]]:
    """Build the rows of :func:`build_manpages_corpus`; return ``(columns by split, report dict)``."""
    _check_options(family_cap, validation_fraction, test_fraction, min_words)
    started = time.perf_counter()
    if man_dirs is None:
        dirs = default_man_dirs()
        searched = dirs or [Path(_FALLBACK_MAN_DIR)]
        if not dirs:
            raise ManPagesNotFoundError(_missing_pages_message(searched, sections, "no manual page directory exists"))
    else:
        searched = [Path(root) for root in man_dirs]
        dirs = [root for root in searched if root.is_dir()]
        if not dirs:
            raise ManPagesNotFoundError(
                _missing_pages_message(searched, sections, "none of the given directories exists")
            )
    options = {
        "sections": list(sections),
        "family_cap": family_cap,
        "validation_fraction": validation_fraction,
        "test_fraction": test_fraction,
        "split_salt": split_salt,
        "min_words": min_words,
    }
    report = _BuildReport(man_dirs=[str(root) for root in dirs])
    pages, report.dropped["shadowed"] = _find_man_pages(dirs, sections)
    report.found = len(pages)
    if not pages:
        raise ManPagesNotFoundError(_missing_pages_message(searched, sections, "the directories hold no pages"))

    cache_file: Path | None = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"manpages-{_cache_key(pages, options)}.json"
        if cache_file.is_file():
            try:
                cached = json.loads(cache_file.read_text(encoding="utf-8"))
                logger.info("man pages: loaded the corpus from the cache %s", cache_file)
                return cached["columns"], cached["report"]
            except (OSError, ValueError, KeyError) as error:
                logger.warning("man pages: ignoring the unreadable cache %s (%s)", cache_file, error)

    pages = _resolve_symlinks(pages, report)
    pages = _cap_families(pages, family_cap, split_salt, report)
    results = _convert_all(pages, num_proc)

    columns: dict[str, dict[str, list[str]]] = {
        split: {"name": [], "section": [], "text": []} for split in ("train", "validation", "test")
    }
    seen_texts: set[str] = set()
    for page, (status, text) in zip(pages, results):
        if status == "unreadable":
            logger.warning("man pages: skipping %s: %s", page.path, text)
            report.dropped["unreadable"] += 1
        elif status == "redirect":
            report.dropped["redirect"] += 1
        elif len(text.split()) < min_words:
            report.dropped["too_short"] += 1
        elif text in seen_texts:
            report.dropped["duplicate"] += 1
        else:
            seen_texts.add(text)
            split = _split_of(page.name, split_salt, validation_fraction, test_fraction)
            columns[split]["name"].append(page.name)
            columns[split]["section"].append(page.section)
            columns[split]["text"].append(text)
            report.kept_by_section[page.section] += 1
    if not seen_texts:
        raise ValueError(
            f"No manual page survived the filters: {report.found} pages found under "
            f"{', '.join(report.man_dirs)}, dropped {dict(report.dropped)} (min_words={min_words})"
        )
    report_dict = report.as_dict(options)
    report_dict["seconds"] = round(time.perf_counter() - started, 2)
    logger.info(
        "man pages: %d found, kept %s, dropped %s, train=%d validation=%d test=%d pages (%.1f s)",
        report.found,
        report_dict["kept_by_section"],
        report_dict["dropped"],
        len(columns["train"]["name"]),
        len(columns["validation"]["name"]),
        len(columns["test"]["name"]),
        report_dict["seconds"],
    )
    for split, split_columns in columns.items():
        if not split_columns["name"]:
            logger.warning("man pages: the %s split is empty; raise its fraction or add pages", split)
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps({"columns": columns, "report": report_dict}), encoding="utf-8")
            os.replace(partial, cache_file)
        except OSError as error:
            logger.warning("man pages: could not write the cache %s (%s)", cache_file, error)
    return columns, report_dict


def build_manpages_corpus(
    *,
    man_dirs: Sequence[str | os.PathLike[str]] | None = None,
    sections: Sequence[str] = DEFAULT_MAN_SECTIONS,
    family_cap: int | None = 200,
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
    split_salt: str = "hf_encdec-manpages",
    min_words: int = 20,
    num_proc: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> datasets.DatasetDict:
    """Build a plain-text corpus from the machine's manual pages.

    Rules, in order (each drop is counted under the name in brackets):

    1. Pages: every ``<dir>/man<section>/<name>.<section>*[.gz]`` (:func:`find_man_pages`); a name found again
       in the same section - in a later directory, or as another file - is left out [shadowed].
    2. Aliases: symlinks to a file already taken are dropped [symlink] (the page that is the file itself is kept).
    3. Family cap: pages whose names share the part before the first ``_``, ``-`` or ``.`` form a family per
       section (``gcloud_compute_ssh`` -> ``gcloud``, ``git-commit`` -> ``git``). Of a family larger than
       ``family_cap``, ``family_cap`` pages are kept, chosen by SHA-256 of the name (not the alphabetical first)
       [family_cap]. This runs before any page is read, so thousands of generated pages cost nothing.
    4. Reading: files that cannot be read or decompressed [unreadable]; pages that are only ``.so other/page``
       [redirect]. The rest is converted with :func:`roff_to_text`.
    5. Filters: pages with fewer than ``min_words`` words [too_short]; pages whose text equals an earlier one in
       ``(section, name)`` order [duplicate].
    6. Split by page **name**: a page goes to ``test`` if the SHA-256 of ``split_salt`` + name, read as a number in
       [0, 1), is below ``test_fraction``, to ``validation`` if below ``test_fraction + validation_fraction``, else
       to ``train``. The split of a page depends only on its name: the same on every machine and run, unchanged
       when other pages come or go, and the same for ``printf(1)`` and ``printf(3)``.

    The build report - directories, options, pages found, pages kept per section, drops per reason, capped
    families - is stored as JSON in every split's ``info.description`` (``json.loads`` it, or read it with
    :func:`manpages_summary`), and logged.

    Args:
        man_dirs: Roots holding ``man1``..``man8`` (default: :func:`default_man_dirs`). Missing roots are skipped.
        sections: Section directories to read.
        family_cap: Most pages kept per (section, family); ``None`` keeps all.
        validation_fraction: Expected share of page names in ``validation``.
        test_fraction: Expected share of page names in ``test``.
        split_salt: Changes which names are held out (and which family members are kept), deterministically.
        min_words: Drop pages with fewer whitespace-separated words than this.
        num_proc: Worker processes for reading and converting (default ``os.cpu_count()``; 1 = in this process).
        cache_dir: If given, the built rows are stored there as JSON, keyed by a hash of the options and of every
            found file's path, size and modification time, and reused while nothing changed.

    Returns:
        A ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and string columns ``name``,
        ``section`` (the directory's section, ``"3"`` also for ``.3pm`` pages) and ``text``.

    Raises:
        ManPagesNotFoundError: If no given directory exists or they hold no page of ``sections``.
        ValueError: If an option is out of range or no page survives the filters.
    """
    columns, report = _build_rows(
        man_dirs=man_dirs,
        sections=sections,
        family_cap=family_cap,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        split_salt=split_salt,
        min_words=min_words,
        num_proc=num_proc,
        cache_dir=cache_dir,
    )
    features = datasets.Features({name: datasets.Value("string") for name in ("name", "section", "text")})
    description = json.dumps(report, sort_keys=True)
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                split_columns, features=features, info=datasets.DatasetInfo(description=description, features=features)
            )
            for split, split_columns in columns.items()
        }
    )


def build_manpage_sections_corpus(
    *,
    max_words: int | None = 256,
    min_pages_per_section: int = 30,
    man_dirs: Sequence[str | os.PathLike[str]] | None = None,
    sections: Sequence[str] = DEFAULT_MAN_SECTIONS,
    family_cap: int | None = 200,
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
    split_salt: str = "hf_encdec-manpages",
    min_words: int = 20,
    num_proc: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> datasets.DatasetDict:
    """Build a text-classification corpus: which section does a manual page belong to?

    The pages, filters and split are those of :func:`build_manpages_corpus` (same keyword arguments), so a page is
    in the same split in both corpora. The text is the page's from its start (the ``NAME`` heading; the ``.TH``
    header with the section number is never part of it), cut to its first ``max_words`` whitespace-separated
    words and re-joined with single spaces (line breaks are not kept). Sections with fewer than
    ``min_pages_per_section`` pages in the whole corpus are dropped (logged, and listed under
    ``"dropped_sections"`` in the JSON of ``info.description``); ``section 6`` has one page on a typical server.

    Args:
        max_words: Words kept from the start of each page (``None``: the whole page).
        min_pages_per_section: Fewest pages (over all splits) a section needs to become a class.
        man_dirs, sections, family_cap, validation_fraction, test_fraction, split_salt, min_words, num_proc,
            cache_dir: As for :func:`build_manpages_corpus`.

    Returns:
        A ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and columns ``name`` (string),
        ``text`` (string) and ``label`` (``datasets.ClassLabel`` whose names are the kept section numbers, sorted).

    Raises:
        ManPagesNotFoundError: As for :func:`build_manpages_corpus`.
        ValueError: If an option is out of range or no section has ``min_pages_per_section`` pages.
    """
    if max_words is not None and max_words < 1:
        raise ValueError(f"max_words must be positive or None, got {max_words}")
    if min_pages_per_section < 1:
        raise ValueError(f"min_pages_per_section must be >= 1, got {min_pages_per_section}")
    columns, report = _build_rows(
        man_dirs=man_dirs,
        sections=sections,
        family_cap=family_cap,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        split_salt=split_salt,
        min_words=min_words,
        num_proc=num_proc,
        cache_dir=cache_dir,
    )
    counts: Counter[str] = Counter()
    for split_columns in columns.values():
        counts.update(split_columns["section"])
    label_names = sorted(section for section, count in counts.items() if count >= min_pages_per_section)
    dropped_sections = {section: count for section, count in sorted(counts.items()) if section not in label_names}
    if not label_names:
        raise ValueError(
            f"No section has min_pages_per_section={min_pages_per_section} pages (pages per section: "
            f"{dict(sorted(counts.items()))}); lower min_pages_per_section or add man_dirs"
        )
    if dropped_sections:
        logger.info(
            "man page sections: dropping sections with fewer than %d pages: %s",
            min_pages_per_section,
            ", ".join(f"{section} ({count} pages)" for section, count in dropped_sections.items()),
        )
    report = {
        **report,
        "task": "section classification",
        "label_names": label_names,
        "dropped_sections": dropped_sections,
        "max_words": max_words,
        "min_pages_per_section": min_pages_per_section,
    }
    description = json.dumps(report, sort_keys=True)
    features = datasets.Features(
        {
            "name": datasets.Value("string"),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=label_names),
        }
    )
    label_ids = {section: index for index, section in enumerate(label_names)}
    splits: dict[str, datasets.Dataset] = {}
    for split, split_columns in columns.items():
        rows: dict[str, list[Any]] = {"name": [], "text": [], "label": []}
        for name, section, text in zip(split_columns["name"], split_columns["section"], split_columns["text"]):
            if section not in label_ids:
                continue
            words = text.split()
            rows["name"].append(name)
            rows["text"].append(" ".join(words if max_words is None else words[:max_words]))
            rows["label"].append(label_ids[section])
        splits[split] = datasets.Dataset.from_dict(
            rows, features=features, info=datasets.DatasetInfo(description=description, features=features)
        )
    return datasets.DatasetDict(splits)


def manpages_summary(corpus: datasets.DatasetDict) -> dict[str, Any]:
    """Per-split statistics of a corpus from :func:`build_manpages_corpus` or :func:`build_manpage_sections_corpus`.

    Args:
        corpus: A ``datasets.DatasetDict`` with a ``text`` column and a ``section`` column or a ``label``
            (``ClassLabel``) column.

    Returns:
        ``{"splits": {split: {"pages", "words", "sections": {section: pages}}}, "sections": {section: pages},
        "build_report": dict}``; for a corpus with ``label`` also ``"label_names"``, ``"class_balance"``
        (``{split: {label name: pages}}``), ``"majority_class"`` (the most frequent label in ``train``, ties to
        the lower label id) and ``"majority_baseline"`` (``{"validation": accuracy, "test": accuracy}`` of always
        predicting it; ``None`` for an empty split).
    """
    splits: dict[str, dict[str, Any]] = {}
    totals: Counter[str] = Counter()
    labelled = "label" in next(iter(corpus.values())).column_names if corpus else False
    label_names: list[str] = []
    labels_by_split: dict[str, list[int]] = {}
    report: dict[str, Any] = {}
    for split, dataset in corpus.items():
        if labelled:
            label_names = list(dataset.features["label"].names)
            labels_by_split[split] = [int(label) for label in dataset["label"]]
            sections = [label_names[label] for label in labels_by_split[split]]
        else:
            sections = list(dataset["section"]) if "section" in dataset.column_names else []
        counts = Counter(sections)
        totals.update(counts)
        splits[split] = {
            "pages": dataset.num_rows,
            "words": sum(len(text.split()) for text in dataset["text"]),
            "sections": dict(sorted(counts.items())),
        }
        if not report:
            try:
                report = json.loads(dataset.info.description or "{}")
            except ValueError:
                report = {"description": dataset.info.description}
    summary: dict[str, Any] = {"splits": splits, "sections": dict(sorted(totals.items())), "build_report": report}
    if labelled:
        train_counts = Counter(labels_by_split.get("train", []))
        majority = min(train_counts, key=lambda label: (-train_counts[label], label)) if train_counts else None
        summary["label_names"] = label_names
        summary["class_balance"] = {
            split: {label_names[label]: count for label, count in sorted(Counter(labels).items())}
            for split, labels in labels_by_split.items()
        }
        summary["majority_class"] = None if majority is None else label_names[majority]
        summary["majority_baseline"] = {
            split: (
                round(sum(label == majority for label in labels_by_split[split]) / len(labels_by_split[split]), 4)
                if labels_by_split.get(split) and majority is not None
                else None
            )
            for split in ("validation", "test")
            if split in labels_by_split
        }
    return summary
