"""A message's terminal layout, kept aside while the text is translated and put back around the translation.

The gettext corpus collapses layout whitespace before training (:func:`~hf_encdec.data.gettext_corpus.normalize_whitespace`):
a model learns words, not column padding. A catalog, though, must keep the layout: ``msgfmt -c`` rejects a
translation whose leading or trailing newlines differ from the English, and ``--help`` text is aligned in columns.
So, as computer-aided translation tools do, the layout is taken from the source, deterministically:

* leading and trailing whitespace (newlines, indents) is copied;
* each line is cut into cells at column gaps (two or more spaces, or tabs); each cell is translated on its own and
  the next cell starts at its source column again (two spaces apart when a translation is longer);
* a cell that goes on over the following lines (a wrapped sentence, or a ``--help`` description continued at its
  column) is translated whole and wrapped again to the width it had, at the indent it had;
* cells without words, and option lists (``-a, --all``, ``--block-size=SIZE``), are kept as they are.

>>> layout = split_layout("\\n  -a, --all     do not ignore entries\\n                starting with .\\n")
>>> layout.texts
('do not ignore entries starting with .',)
>>> print(layout.render(["Einträge nicht ignorieren, die mit . beginnen"]), end="|")
<BLANKLINE>
  -a, --all     Einträge nicht
                ignorieren, die mit .
                beginnen
|
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from .placeholders import has_words

__all__ = ["Layout", "split_layout"]

# Leading whole blank lines, the text (its first line's indent included), the trailing blanks and newlines.
_EDGES_RE = re.compile(r"((?:[ \t\r]*\n)*)(.*?)([ \t\r\n]*)", re.DOTALL)
# A column gap: two or more spaces, or a tab. Two spaces after a sentence's end are a sentence break (the typewriter
# convention of many GNU messages: "Invalid argument.  Try --help"), not a column.
_GAP_RE = re.compile(r"(?<![.!?]) {2,}|(?<=[.!?]) {3,}|[ ]*\t[ \t]*")
_ASCII_SPACE_RE = re.compile(r"[ \t\n\r\f\v]+")  # not str.split(): a no-break space is the translation's own
# An option list: `-a`, `--all`, `-a, --all`, `--block-size=SIZE`, `-t, --tabsize=COLS`, `-o FILE`, `--color[=WHEN]`.
_OPTION = r"--?[\w?][\w-]*(?:(?:=|\[=| )[\[<]?[\w.-]+[\]>]?\]?)?"
_OPTIONS_RE = re.compile(rf"{_OPTION}(?:, ?{_OPTION})*")
_SENTENCE_END = (".", ":", "!", "?", ";")


@dataclass
class _Cell:
    """One piece of text to translate (or to keep) and where it stood."""

    text: str  # the source text, whitespace collapsed
    column: int  # where it starts on its first line
    gap: str  # the whitespace before it on that line ("" for the first cell)
    keep: bool  # kept as it is (no words, or an option list)
    ends: list[int]  # the column where it ends on each source line it spans
    continuation: str = ""  # the indent of its continuation lines

    def render(self, translation: str) -> str:
        if len(self.ends) == 1:
            return translation
        # wrapped so that no line goes past the rightmost column the source reached
        lines = textwrap.wrap(translation, width=max(self.ends), initial_indent=" " * self.column,
                              subsequent_indent=self.continuation, break_long_words=False, break_on_hyphens=False)
        return "\n".join(lines)[self.column:]


@dataclass
class _Line:
    indent: str
    cells: list[_Cell]
    end: str  # what followed the line's text: its trailing blanks and the newline ("" on the last line)


@dataclass
class Layout:
    """A message split into the texts a model translates and the layout that :meth:`render` puts back."""

    lead: str
    lines: list[_Line]
    trail: str

    @property
    def texts(self) -> tuple[str, ...]:
        """The texts to translate, in order (cells that are kept do not appear)."""
        return tuple(cell.text for line in self.lines for cell in line.cells if not cell.keep)

    def render(self, translations: Sequence[str]) -> str:
        """The message with `translations` (one per entry of :attr:`texts`) in place of the source texts."""
        if len(translations) != len(self.texts):
            raise ValueError(f"expected {len(self.texts)} translations (one per text of the layout), got {len(translations)}")
        remaining = iter(translations)
        rendered: list[str] = [self.lead]
        for line in self.lines:
            out = line.indent
            for cell in line.cells:
                if cell.gap:
                    column = len(out.rsplit("\n", 1)[-1])
                    out += cell.gap if "\t" in cell.gap else " " * max(cell.column - column, 2)
                out += cell.render(cell.text if cell.keep else _ASCII_SPACE_RE.sub(" ", next(remaining)).strip(" "))
            rendered.append(out + line.end)
        rendered.append(self.trail)
        return "".join(rendered)


def _keep(text: str) -> bool:
    """Whether a cell is kept untranslated: nothing but directives and symbols, or an option list."""
    return not has_words(text) or _OPTIONS_RE.fullmatch(text) is not None


def _line_cells(text: str, start: int) -> list[_Cell]:
    """The cells of one line's text (no leading or trailing blanks), which starts at column `start`."""
    cells: list[_Cell] = []
    position, gap = 0, ""
    for match in [*_GAP_RE.finditer(text), None]:
        end = match.start() if match else len(text)
        piece = text[position:end]
        words = _ASCII_SPACE_RE.sub(" ", piece)  # a sentence break's two spaces: one, as the model learned
        cells.append(_Cell(words, start + position, gap, _keep(words), [start + end]))
        if match:
            position, gap = match.end(), match.group()
    return cells


def _continues(previous: _Line, indent: str, cells: list[_Cell]) -> bool:
    """Whether a line (its indent, its cells) goes on with the last cell of the line before it."""
    if not previous.cells or len(cells) != 1 or cells[0].keep:
        return False
    last = previous.cells[-1]
    if last.keep or last.text.endswith(_SENTENCE_END):
        return False
    if len(last.ends) > 1:  # already continued: the same indent again
        return indent == last.continuation
    if len(previous.cells) > 1:  # a --help row: its description goes on at its column, or a little further in
        return last.column <= len(indent) <= last.column + 4  # (coreutils indents continuation lines by two more)
    return indent == previous.indent  # a wrapped paragraph


def split_layout(message: str) -> Layout:
    """Split `message` into its :class:`Layout`: the texts to translate and everything around them."""
    lead, core, trail = _EDGES_RE.fullmatch(message).groups()  # type: ignore[union-attr]
    lines: list[_Line] = []
    raw_lines = core.split("\n") if core else []
    for number, raw in enumerate(raw_lines):
        end = "" if number == len(raw_lines) - 1 else "\n"
        body = raw.rstrip(" \t\r")
        end = raw[len(body):] + end
        text = body.lstrip(" \t")
        indent = body[: len(body) - len(text)]
        cells = _line_cells(text, len(indent)) if text else []
        if lines and cells and _continues(lines[-1], indent, cells):
            last = lines[-1].cells[-1]
            last.text = f"{last.text} {cells[0].text}"
            last.ends.append(cells[0].ends[0])
            last.continuation = indent
            lines[-1].end = end
            continue
        lines.append(_Line(indent, cells, end))
    return Layout(lead, lines, trail)
