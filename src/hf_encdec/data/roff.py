"""Manual page files to plain text: read (decompress, decode, resolve ``.so`` includes) and render with groff.

``groff`` is the formatter ``man`` itself runs (man-db depends on it, so a machine with manual pages has it).
:func:`roff_to_text` renders a page for a terminal as ``man`` would, then keeps the words a reader sees: the page
header and footer, which name the section, and the layout are dropped. :func:`read_page` gives the source that
``man`` would hand to groff, and :func:`is_alias` tells an alias page (only ``.so other/page``) from a page.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = [
    "COMPRESSED_SUFFIXES",
    "GROFF_OPTIONS",
    "GroffNotFoundError",
    "find_groff",
    "groff_version",
    "is_alias",
    "read_page",
    "roff_to_text",
]

GROFF_OPTIONS: tuple[str, ...] = (
    "-mandoc",  # the man or the mdoc macros, whichever the page is written in
    "-t",  # tables through tbl(1)
    "-k",  # input encodings through preconv(1); the text is handed over as UTF-8 (decoded by read_page)
    "-K",
    "utf-8",
    "-Tutf8",
    "-P-cbou",  # grotty: plain characters, no escape sequences or overstriking for bold and underline
    "-rcR=1",  # one continuous page: a single header and footer, no page breaks
    # a paragraph on one output line: no hyphenation or justification to undo; grotty drops characters beyond
    # column 32,767, which the right end of the page title would pass with a longer line
    "-rLL=30000n",
    "-rHY=0",  # no hyphenation for a word longer than that
    "-Wall",  # the warnings of sloppy pages say nothing about the text
)
"""The options :func:`roff_to_text` runs ``groff`` with (groff(1), grotty(1), groff_man(7))."""

_DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.decompress,
    ".bz2": bz2.decompress,
    ".xz": lzma.decompress,
    ".lzma": lzma.decompress,
}
COMPRESSED_SUFFIXES: tuple[str, ...] = tuple(_DECOMPRESSORS)
"""The compressions a page file may have (``ls.1.gz``); a page may also be uncompressed."""

_GROFF_TIMEOUT_SECONDS = 120  # the largest pages (bash(1), perl*(1)) take well under a second
_INCLUDE_RE = re.compile(r"^[.'][ \t]*so[ \t]+(\S+)[^\n]*$", re.MULTILINE)
_COMMENT_RE = re.compile(r"[.']?[ \t]*\\[\"#]")
_TITLE_RE = re.compile(r"^[.'][ \t]*(TH|Dd|Dt)\b", re.MULTILINE)  # the requests that set a page header and footer
#: Hyphen and minus glyphs that groff may print for ``-`` and ``\-`` (Debian maps both to ASCII, others do not)
#: become ``-``; the box-drawing characters of tables become spaces.
_GLYPHS = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2212": "-"} | {chr(c): " " for c in range(0x2500, 0x2580)})


class GroffNotFoundError(FileNotFoundError):
    """Raised when the ``groff`` program, which renders the pages, is not installed; the message says how."""


def find_groff(program: str = "groff") -> str:
    """Return the path of the ``groff`` program, or raise :class:`GroffNotFoundError` saying how to install it.

    Args:
        program: The program's name (looked up on ``PATH``) or path.

    Raises:
        GroffNotFoundError: If no such program exists.

    >>> find_groff().endswith("groff")
    True
    """
    found = shutil.which(program)
    if found is None:
        raise GroffNotFoundError(
            f"{program!r} was not found on PATH: the manual page corpora render every page with groff, the "
            "formatter man itself runs. Install it: `apt-get install groff-base` (Debian/Ubuntu; man-db depends on "
            "it), `dnf install groff-base` (Fedora/RHEL), `apk add groff` (Alpine), `brew install groff` (macOS). "
            "Corpora that need neither groff nor manual pages: 'gettext:de' (or another language), "
            "'synthetic:reverse', 'synthetic:copy'."
        )
    return found


def groff_version(groff: str = "groff") -> str:
    """The first line of ``groff --version``, e.g. ``GNU groff version 1.22.4``.

    Raises:
        GroffNotFoundError: If ``groff`` is not installed.
    """
    result = subprocess.run([find_groff(groff), "--version"], capture_output=True, text=True, timeout=30, check=False)
    return result.stdout.split("\n", 1)[0].strip()


def _plain_text(rendered: str, *, titled: bool) -> str:
    """Reduce groff's terminal rendering to the words: header and footer dropped, one space between words.

    With ``cR=1`` the first non-blank line of a page with a title (``titled``) is its header (``LS(1)  User
    Commands  LS(1)``) and the last one its footer (``GNU coreutils 9.1  September 2022  LS(1)``); both name the
    section. Indentation, the padding of justified text and table rules become single spaces; runs of blank lines
    become one, the paragraph break.
    """
    lines: list[str] = []
    for raw in rendered.split("\n"):
        line = " ".join(raw.translate(_GLYPHS).split())
        if line or not raw.strip():  # a line of table rules disappears; a blank line stays a paragraph break
            lines.append(line)
    filled = [index for index, line in enumerate(lines) if line]
    if titled:
        filled = filled[1:-1]
    if not filled:
        return ""
    body = "\n".join(lines[filled[0] : filled[-1] + 1])
    return re.sub(r"\n{3,}", "\n\n", body)


def roff_to_text(source: str, *, groff: str = "groff") -> str:
    """Convert the roff source of a manual page (``man`` or ``mdoc`` macros) to plain text with groff.

    The page is rendered as ``man`` would for a terminal (:data:`GROFF_OPTIONS`: both macro packages, tables,
    any input encoding), on one continuous page with a line longer than any paragraph. Then the page header and
    footer are dropped - they hold the section number, which would give away the label of the
    ``manpages-sections`` corpus - and the layout is undone: each output line keeps its words with one space
    between them (a paragraph is one line, a heading stands on its own line with its paragraph below, a table
    row is one line, the lines of an example stay lines), and paragraphs are separated by one blank line.

    Args:
        source: The page's roff source (decompressed, ``.so`` includes resolved: :func:`read_page`).
        groff: The ``groff`` program's name or path.

    Returns:
        The page as plain text, stripped; ``""`` when groff renders nothing.

    Raises:
        GroffNotFoundError: If ``groff`` is not installed (the message says how to install it).
        RuntimeError: If groff fails on the page (exit status and its first message) or runs past two minutes.

    >>> print(roff_to_text('.TH LS 1 "2024" "GNU" "User Commands"\\n.SH NAME\\nls \\\\- list \\\\fBfiles\\\\fR\\n'))
    NAME
    ls - list files
    """
    command = [find_groff(groff), *GROFF_OPTIONS]
    try:
        result = subprocess.run(
            command, input=source.encode("utf-8", "replace"), capture_output=True, timeout=_GROFF_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"groff ran past {_GROFF_TIMEOUT_SECONDS} s on the page") from error
    if result.returncode != 0 and not result.stdout.strip():
        message = result.stderr.decode("utf-8", "replace").strip().split("\n")[0]
        raise RuntimeError(f"groff exited with status {result.returncode}: {message}")
    return _plain_text(result.stdout.decode("utf-8", "replace"), titled=_TITLE_RE.search(source) is not None)


def _read_file(path: Path) -> str:
    """Read and decompress one page file; decode it as UTF-8 where valid (nearly all pages), else Latin-1."""
    data = path.read_bytes()
    decompress = _DECOMPRESSORS.get(path.suffix)
    data = data if decompress is None else decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_page(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None, depth: int = 0) -> str:
    """Read a page file as ``man`` hands it to groff: decompressed, decoded, each ``.so`` include in place.

    Args:
        path: The page file (``ls.1``, ``ls.1.gz``, ``.bz2``, ``.xz``, ``.lzma``).
        root: Where include paths start (``.so man1/bash.1``); default: the folder above the page's ``man<N>``.
        depth: Includes already followed (a page that includes itself stops after four).

    Raises:
        OSError, EOFError, ValueError, lzma.LZMAError: If the file cannot be read or decompressed.
    """
    page = Path(path)
    base = page.parent.parent if root is None else Path(root)
    source = _read_file(page)

    def include(match: re.Match[str]) -> str:
        # groff's own .so reads neither compressed files nor paths from the man root: resolve them here, and drop
        # an include that is not found rather than let groff look in the working directory
        target = base / match.group(1)
        for candidate in [target, *(target.with_name(target.name + suffix) for suffix in _DECOMPRESSORS)]:
            if candidate.is_file() and depth < 4:
                return read_page(candidate, root=base, depth=depth + 1)
        logger.debug("%s: include %s not found under %s", page, match.group(1), base)
        return ""

    return source if is_alias(source) else _INCLUDE_RE.sub(include, source)


def is_alias(source: str) -> bool:
    """Return whether a page is only ``.so other/page`` (an alias that man follows), comments aside.

    >>> is_alias('.\\\\" the same page as ls\\n.so man1/ls.1\\n'), is_alias(".TH LS 1\\n.so man1/ls.1\\n")
    (True, False)
    """
    meaningful = [line for line in source.split("\n") if line.strip(" \t.'") and not _COMMENT_RE.match(line)]
    return len(meaningful) == 1 and _INCLUDE_RE.match(meaningful[0]) is not None
