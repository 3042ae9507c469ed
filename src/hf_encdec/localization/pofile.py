"""Gettext catalogs (``.po``/``.pot``) read by GNU gettext's grammar, and written back changed only where asked.

A translation tool must never change a ``msgid``: the program looks its messages up by it. A lenient reader guesses
where a catalog is broken (polib reads ``msgid "unterminated`` without its closing quote as ``"unterminate"``), and a
writer that re-serialises every entry re-wraps, re-orders and re-encodes what it did not understand. So:

* :func:`parse_catalog` follows the grammar GNU gettext's ``msgfmt`` reads (checked against gettext-tools 0.21): a
  string ends on its line; escapes are ``\\n \\t \\r \\b \\f \\v \\a \\\\ \\"``, octal and hex; keywords are
  ``msgctxt``, ``msgid``, ``msgid_plural``, ``msgstr`` and ``msgstr[N]`` with N counting from 0; comments start their
  own line; ``#~`` marks every line of an obsolete entry; ``#|`` holds the previous ``msgctxt``/``msgid``/
  ``msgid_plural``; a ``msgctxt``/``msgid`` pair occurs once (obsolete entries included); the header's charset
  decodes the file. Whatever breaks one of these raises :class:`CatalogError` naming the file, the line and the
  problem, and nothing is guessed. It is stricter than msgfmt in three respects: an octal or hex escape must give
  bytes of valid text (msgfmt copies ``\\303`` alone, or ``\\0``, into a catalog that then does not decode or cuts
  the string), the charset must be one Python decodes (msgfmt warns and goes on), and ``domain`` directives are
  refused (one catalog, one domain).
* :func:`render_catalog` writes the text of the file back, re-encoded in UTF-8, with only the given ``msgstr``
  blocks, the ``fuzzy`` flag of those entries and the given header fields replaced: comments, references, flags,
  obsolete entries, the order of the entries and every line it was not asked to change stay as they were.
* :func:`catalog_changes` lists what differs between two catalogs beyond what a fill may change; a caller checks
  the rendered text with it before writing.

>>> catalog = parse_catalog(b'msgid ""\\nmsgstr "Content-Type: text/plain; charset=UTF-8\\\\n"\\n\\n'
...                         b'#, c-format\\nmsgid "Open %s"\\nmsgstr ""\\n')
>>> entry = catalog.messages[0]
>>> entry.msgid, entry.flags, entry.line
('Open %s', ['c-format'], 5)
>>> print(render_catalog(catalog, {entry.index: "%s öffnen"}, fuzzy=[entry.index]).split("\\n\\n")[1])
#, fuzzy, c-format
msgid "Open %s"
msgstr "%s öffnen"
<BLANKLINE>
>>> parse_catalog(b'msgid "unterminated\\nmsgstr ""\\n', path="bad.po")
Traceback (most recent call last):
    ...
hf_encdec.localization.pofile.CatalogError: bad.po is not a well-formed gettext catalog (1 problem):
bad.po:1: end-of-line within string: a string ends with " on its own line (a long string goes on in a new "..." on the next line)
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Catalog",
    "CatalogEntry",
    "CatalogError",
    "CatalogProblem",
    "catalog_changes",
    "header_fields",
    "parse_catalog",
    "read_catalog",
    "render_catalog",
]

_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "a": "\a", "\\": "\\", '"': '"'}
_QUOTE = {value: f"\\{key}" for key, value in _SIMPLE_ESCAPES.items()}
_KEYWORDS = ("domain", "msgctxt", "msgid", "msgid_plural", "msgstr")
# gettext's own placeholder in a template's header (xgettext writes it): the template is read as UTF-8, as polib does.
_TEMPLATE_CHARSET = "CHARSET"
_CHARSET_RE = re.compile(r"charset\s*=\s*([^\s;]+)", re.IGNORECASE)
_MAX_SHOWN = 20  # problems named in an error's message (all of them are in CatalogError.problems)


@dataclass(frozen=True)
class CatalogProblem:
    """One reason a catalog is refused: ``str()`` is ``path:line: message``, as gettext's tools write theirs."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class CatalogError(ValueError):
    """A catalog that GNU gettext would reject (or that would not survive a rewrite): its problems, each with a line."""

    def __init__(self, path: str, problems: list[CatalogProblem], *, what: str = "is not a well-formed gettext catalog") -> None:
        self.path = path
        self.problems = problems
        lines = [str(problem) for problem in problems[:_MAX_SHOWN]]
        if len(problems) > _MAX_SHOWN:
            lines.append(f"... and {len(problems) - _MAX_SHOWN} more")
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        super().__init__(f"{path} {what} ({count}):\n" + "\n".join(lines))


@dataclass
class _Keyword:
    """One keyword of an entry with its strings: where it is in the text (for the writer) and what it says."""

    name: str  # msgctxt, msgid, msgid_plural, msgstr; previous ones as "#|msgid", ...
    index: int | None  # N of msgstr[N]
    value: str
    start: int  # offset of the keyword
    end: int  # offset just after its last string
    line: int
    obsolete: bool
    byte_escapes: bool  # an octal/hex escape above 0x7F: its value depends on the charset, so a re-encoding rewrites it


@dataclass
class CatalogEntry:
    """One entry of a catalog, as gettext reads it. ``line`` is its ``msgid`` keyword's line; ``index`` its position."""

    msgid: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: str = ""
    msgstr_plural: dict[int, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    translator_comments: list[str] = field(default_factory=list)
    extracted_comments: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    previous: dict[str, str] = field(default_factory=dict)  # the #| msgctxt, msgid, msgid_plural
    obsolete: bool = False
    line: int = 0
    index: int = 0
    # where its parts are in the text: the writer's handles
    _keywords: list[_Keyword] = field(default_factory=list, repr=False)
    _flag_lines: list[tuple[int, int]] = field(default_factory=list, repr=False)  # (start, end) of each "#," line
    _insert_at: int = field(default=0, repr=False)  # where a new "#," line goes: before "#|" lines and the keywords
    _inline: bool = field(default=False, repr=False)  # text before _insert_at on its line (then a newline goes first)

    @property
    def is_header(self) -> bool:
        return self.msgid == "" and self.msgctxt is None and not self.obsolete

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags

    @property
    def translated(self) -> bool:
        """Whether every form has a translation (``msgstr`` or each ``msgstr[N]``)."""
        if self.msgid_plural is not None:
            return bool(self.msgstr_plural) and all(self.msgstr_plural.values())
        return bool(self.msgstr)


@dataclass
class Catalog:
    """A parsed catalog: its decoded text and its entries in file order (header and obsolete entries included)."""

    path: str
    text: str
    charset: str  # as the header declares it ("UTF-8" when it declares none, or a template's "CHARSET")
    newline: str
    entries: list[CatalogEntry]

    @property
    def header(self) -> CatalogEntry | None:
        return next((entry for entry in self.entries if entry.is_header), None)

    @property
    def messages(self) -> list[CatalogEntry]:
        """The translatable entries: neither the header nor obsolete."""
        return [entry for entry in self.entries if not entry.is_header and not entry.obsolete]

    def header_fields(self) -> list[tuple[str, str]]:
        """The header's ``Name: value`` fields in their order (``[]`` without a header)."""
        return header_fields(self.header.msgstr) if self.header is not None else []

    def metadata(self, name: str) -> str | None:
        """The value of header field `name` (case as gettext writes it, e.g. ``Plural-Forms``), or ``None``."""
        return next((value for key, value in self.header_fields() if key.lower() == name.lower()), None)


def header_fields(msgstr: str) -> list[tuple[str, str]]:
    """``Name: value`` pairs of a header ``msgstr``; a line without a colon is kept with an empty name.

    >>> header_fields("Language: de\\nContent-Type: text/plain; charset=UTF-8\\n")
    [('Language', 'de'), ('Content-Type', 'text/plain; charset=UTF-8')]
    """
    fields = []
    for line in msgstr.split("\n"):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        fields.append((name.strip(), value.strip()) if colon else ("", line))
    return fields


# ---------------------------------------------------------------------------------------------------------- reading


@dataclass
class _Token:
    kind: str  # "keyword", "string", "comment"
    text: str  # keyword name, the string's raw inside (escapes not yet resolved), or the comment line from "#"
    start: int
    end: int
    line: int
    obsolete: bool = False
    previous: bool = False
    index: int | None = None  # msgstr[N]


class _Lexer:
    """Splits a decoded catalog into keywords, strings and comment lines, as gettext's lexer does."""

    def __init__(self, text: str, path: str) -> None:
        self.text, self.path = text, path
        self.tokens: list[_Token] = []
        self.problems: list[CatalogProblem] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(CatalogProblem(self.path, line, message))

    def run(self) -> None:
        text, position, line = self.text, 0, 1
        line_start = True  # only whitespace since the last newline
        while position < len(text):
            char = text[position]
            if char == "\n":
                position, line, line_start = position + 1, line + 1, True
            elif char in " \t\r\f\v":
                position += 1
            elif char == "#":
                end = text.find("\n", position)
                end = len(text) if end < 0 else end
                if not line_start:
                    self.problem(line, "a comment must start its own line ('#' after other text)")
                elif text.startswith("#~", position) or text.startswith("#|", position):
                    self._marked_line(position, end, line)
                else:
                    self.tokens.append(_Token("comment", text[position:end].rstrip("\r"), position, end, line))
                position = end
            else:
                following = self._token(position, len(text), line, obsolete=False, previous=False)
                line += text.count("\n", position, following)  # `msgstr\n[0]`: gettext allows a newline there
                position, line_start = following, False

    def _marked_line(self, start: int, end: int, line: int) -> None:
        """A ``#~`` (obsolete) or ``#|`` (previous) line: its keywords and strings, so marked."""
        obsolete = self.text.startswith("#~", start)
        position = start + 2
        previous = not obsolete or self.text.startswith("|", position)
        if obsolete and previous:
            position += 1
        while position < end:
            char = self.text[position]
            if char in " \t\r\f\v":
                position += 1
            elif char == "#" and obsolete and not previous:
                # "#~ #, fuzzy": a comment of an obsolete entry, which gettext accepts there too
                self.tokens.append(_Token("comment", self.text[position:end].rstrip("\r"), position, end, line, obsolete=True))
                return
            else:
                position = self._token(position, end, line, obsolete=obsolete, previous=previous)

    def _token(self, position: int, limit: int, line: int, *, obsolete: bool, previous: bool) -> int:
        """One keyword or string starting at `position`; returns the offset after it. `limit`: where its line ends."""
        text = self.text
        char = text[position]
        if char == '"':
            return self._string(position, limit, line, obsolete=obsolete, previous=previous)
        if char.isascii() and (char.isalpha() or char == "_"):
            end = position
            while end < limit and text[end].isascii() and (text[end].isalnum() or text[end] == "_"):
                end += 1
            word = text[position:end]
            if word not in _KEYWORDS:
                self.problem(line, f"keyword {word!r} unknown (valid: {', '.join(_KEYWORDS[1:])}, msgstr[N])")
                return end
            token = _Token("keyword", word, position, end, line, obsolete, previous)
            if word == "msgstr":
                end = self._plural_index(token, end, limit)
            token.end = end
            self.tokens.append(token)
            return end
        self.problem(line, f"syntax error: unexpected {char!r} (a line holds a keyword, a \"string\" or a # comment)")
        following = position + 1
        while following < limit and not text[following].isspace():
            following += 1
        return following

    def _plural_index(self, token: _Token, end: int, limit: int) -> int:
        """The ``[N]`` of ``msgstr[N]`` (gettext allows blanks, and newlines outside ``#~`` lines, around it)."""
        text = self.text
        probe = end
        stop = limit if token.obsolete or token.previous else len(text)
        while probe < stop and text[probe] in " \t\r\f\v\n":
            probe += 1
        if probe >= stop or text[probe] != "[":
            return end
        match = re.compile(r"\[\s*(\d+)\s*\]").match(text, probe)
        if match is None:
            self.problem(token.line, "syntax error: msgstr[ must be followed by a number and ] (msgstr[0], msgstr[1], ...)")
            return probe + 1
        token.index = int(match.group(1))
        return match.end()

    def _string(self, start: int, limit: int, line: int, *, obsolete: bool, previous: bool) -> int:
        text = self.text
        position = start + 1
        while True:
            if position >= len(text):
                self.problem(line, 'end-of-file within string: the last string has no closing "')
                self.tokens.append(_Token("string", text[start + 1:position], start, position, line, obsolete, previous))
                return position
            char = text[position]
            if char == '"':
                self.tokens.append(_Token("string", text[start + 1:position], start, position + 1, line, obsolete, previous))
                return position + 1
            if char == "\n" or position >= limit:
                self.problem(line, 'end-of-line within string: a string ends with " on its own line '
                                   '(a long string goes on in a new "..." on the next line)')
                self.tokens.append(_Token("string", text[start + 1:position].rstrip("\r"), start, position, line, obsolete, previous))
                return position
            position += 2 if char == "\\" and position + 1 < len(text) and text[position + 1] != "\n" else 1


_ESCAPE_RE = re.compile(r"\\(?:([ntrbfva\\\"])|([0-7]{1,3})|x([0-9A-Fa-f]+)|(.|$))", re.DOTALL)


def _unescape(raw: str, codec: str, line: int, problems: list[CatalogProblem], path: str) -> tuple[str, bool]:
    """The value of a string's inside: escapes resolved, octal/hex ones as bytes of the catalog's charset.

    Returns the value and whether it has a byte escape above 0x7F (its meaning depends on the charset).
    """
    if "\\" not in raw:
        return raw, False
    pieces: list[bytes] = []
    high = False
    position = 0
    for match in _ESCAPE_RE.finditer(raw):
        pieces.append(raw[position:match.start()].encode(codec, errors="surrogateescape"))
        simple, octal, hexadecimal, other = match.groups()
        if simple is not None:
            pieces.append(_SIMPLE_ESCAPES[simple].encode(codec))
        elif other is not None:
            problems.append(CatalogProblem(path, line, f"invalid control sequence \\{other}: valid escapes are \\n \\t "
                                                       "\\r \\b \\f \\v \\a \\\\ \\\" and octal (\\ooo) or hex (\\xhh) bytes"))
        else:
            value = int(octal, 8) if octal is not None else int(hexadecimal, 16)
            if value == 0 or value > 0xFF:
                problems.append(CatalogProblem(path, line, f"escape {match.group(0)} is not a byte of text (1 to 0xff); "
                                                           "gettext would cut or change the string there"))
                continue
            high = high or value > 0x7F
            pieces.append(bytes([value]))
        position = match.end()
    pieces.append(raw[position:].encode(codec, errors="surrogateescape"))
    try:
        return b"".join(pieces).decode(codec), high
    except UnicodeDecodeError:
        problems.append(CatalogProblem(path, line, f"the string's octal/hex escapes are not valid {codec} bytes"))
        return raw, high


def _find_charset(raw: bytes, path: str) -> tuple[str, int]:
    """The charset the header declares, and its line: read from the header entry as Latin-1 (ASCII-compatible)."""
    lexer = _Lexer(raw.decode("latin-1"), path)
    lexer.run()
    entries, _ = _Parser(lexer.tokens, lexer.text, path, "latin-1").run()
    header = next((entry for entry in entries if entry.is_header), None)
    if header is None:
        return "UTF-8", 0
    match = _CHARSET_RE.search(header.msgstr)
    return (match.group(1), header.line) if match else ("UTF-8", header.line)


def _codec(charset: str) -> str | None:
    """Python's codec for a gettext charset name, or ``None`` when Python has none."""
    if charset.upper() == _TEMPLATE_CHARSET:
        return "utf-8"
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None


def parse_catalog(data: bytes, *, path: str = "<catalog>") -> Catalog:
    """Parse the bytes of a ``.po``/``.pot`` file by gettext's grammar; raise :class:`CatalogError` with every problem.

    >>> parse_catalog(b'msgid "a"\\nmsgstr ""\\n\\nmsgid "a"\\nmsgstr "b"\\n', path="dup.po")
    Traceback (most recent call last):
        ...
    hf_encdec.localization.pofile.CatalogError: dup.po is not a well-formed gettext catalog (1 problem):
    dup.po:4: duplicate message definition: msgid 'a' is already defined at line 1
    """
    if data.startswith(codecs.BOM_UTF8):
        raise CatalogError(path, [CatalogProblem(path, 1, "the file starts with a UTF-8 byte-order mark, which gettext "
                                                          "reads as a syntax error; remove it")])
    charset, header_line = _find_charset(data, path)
    codec = _codec(charset)
    if codec is None:
        raise CatalogError(path, [CatalogProblem(
            path, header_line, f"the header's charset {charset!r} is unknown to Python's codecs; convert the catalog "
                               "to UTF-8 (msgconv --to-code=UTF-8) or name its charset as iconv does (e.g. ISO-8859-1)")])
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        bad = " ".join(f"0x{byte:02X}" for byte in data[error.start:error.end])
        declared = f"the header's charset {charset}" if header_line else "no header declares a charset, so UTF-8"
        raise CatalogError(path, [CatalogProblem(
            path, line, f"byte {bad} is not valid {charset} ({declared}): convert the file to that charset, or "
                        "declare the one it is written in (Content-Type: text/plain; charset=...)")]) from None
    lexer = _Lexer(text, path)
    lexer.run()
    entries, problems = _Parser(lexer.tokens, text, path, codec).run()
    problems = sorted(lexer.problems + problems, key=lambda problem: problem.line)
    if problems:
        raise CatalogError(path, problems)
    first_newline = text.find("\n")
    newline = "\r\n" if first_newline > 0 and text[first_newline - 1] == "\r" else "\n"
    for index, entry in enumerate(entries):
        entry.index = index
    return Catalog(path=path, text=text, charset=charset, newline=newline, entries=entries)


def read_catalog(path: str | os.PathLike[str]) -> Catalog:
    """:func:`parse_catalog` of the file at `path`."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"catalog {file} does not exist")
    return parse_catalog(file.read_bytes(), path=str(file))


class _Parser:
    """Assembles tokens into entries by gettext's grammar: [msgctxt] msgid (msgstr | msgid_plural msgstr[0..n-1])."""

    def __init__(self, tokens: list[_Token], text: str, path: str, codec: str) -> None:
        self.tokens, self.text, self.path, self.codec = tokens, text, path, codec
        self.position = 0
        self.problems: list[CatalogProblem] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(CatalogProblem(self.path, line, message))

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next_is(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "keyword" and token.text == word and not token.previous

    def run(self) -> tuple[list[CatalogEntry], list[CatalogProblem]]:
        entries: list[CatalogEntry] = []
        seen: dict[tuple[str | None, str], int] = {}
        while self.peek() is not None:
            entry = self._entry()
            if entry is None:
                continue
            key = (entry.msgctxt, entry.msgid)
            if key in seen:
                context = f" in context {entry.msgctxt!r}" if entry.msgctxt is not None else ""
                what = 'the header (msgid "")' if key == (None, "") else f"msgid {entry.msgid!r}{context}"
                self.problem(entry.line, f"duplicate message definition: {what} is already defined at line {seen[key]}")
            else:
                seen[key] = entry.line
            entries.append(entry)
        return entries, self.problems

    def _strings(self, keyword: _Token) -> _Keyword:
        """The strings after `keyword`, joined (a keyword needs at least one)."""
        raw: list[_Token] = []
        while (token := self.peek()) is not None and token.kind == "string" and token.previous == keyword.previous:
            if token.obsolete != keyword.obsolete:
                self.problem(token.line, "inconsistent use of #~: every line of an entry is obsolete (#~) or none is")
            raw.append(token)
            self.position += 1
        if not raw:
            self.problem(keyword.line, f'syntax error: {keyword.text} must be followed by a "string"')
        value, high = "", False
        if raw:
            # escapes are resolved over the joined strings: an escaped multibyte character may span two of them
            value, high = _unescape("".join(token.text for token in raw), self.codec, keyword.line, self.problems, self.path)
        end = raw[-1].end if raw else keyword.end
        name = ("#|" if keyword.previous else "") + keyword.text
        return _Keyword(name, keyword.index, value, keyword.start, end, keyword.line, keyword.obsolete, high)

    def _take(self, entry: CatalogEntry, token: _Token) -> _Keyword:
        self.position += 1
        keyword = self._strings(token)
        if token.obsolete != entry.obsolete and not token.previous:  # "#|" lines are checked with the entry's keyword
            self.problem(token.line, "inconsistent use of #~: every line of an entry is obsolete (#~) or none is")
        entry._keywords.append(keyword)
        return keyword

    def _insertion_point(self, token: _Token) -> tuple[int, bool]:
        """Where a new line goes before `token`: the start of its line, or the token itself (after a newline) when a
        keyword follows other text on its line."""
        start = self.text.rfind("\n", 0, token.start) + 1
        if token.previous or not self.text[start:token.start].strip():
            return start, False
        return token.start, True

    def _entry(self) -> CatalogEntry | None:
        entry = CatalogEntry(msgid="")
        marked: list[_Token] = []  # the tokens of "#~" and "#|" lines before the keywords
        # comments and previous-field (#|) lines come first
        while (token := self.peek()) is not None and (token.kind == "comment" or token.previous):
            if token.kind == "comment":
                self.position += 1
                marked += [token] if token.obsolete else []
                self._comment(entry, token)
            elif token.kind == "string":
                self.problem(token.line, "syntax error: a #| string without a keyword before it")
                self.position += 1
            else:
                if token.text not in ("msgctxt", "msgid", "msgid_plural"):
                    self.problem(token.line, f"keyword {token.text!r} is not allowed in a #| line (msgctxt, msgid, msgid_plural)")
                if not entry.previous and not any(k.name.startswith("#|") for k in entry._keywords):
                    entry._insert_at, entry._inline = self._insertion_point(token)
                marked.append(token)
                keyword = self._take(entry, token)
                entry.previous[token.text] = keyword.value
        token = self.peek()
        if token is None:
            return None  # comments after the last entry: kept as text, no entry
        if token.kind == "string":
            self.problem(token.line, "syntax error: a string without a keyword before it")
            self.position += 1
            return None
        if token.text == "domain":
            self.problem(token.line, "'domain' directives are not supported: keep one domain a catalog")
            self.position += 1
            self._strings(token)
            return None
        if token.text not in ("msgctxt", "msgid"):
            self.problem(token.line, f"syntax error: {token.text} before msgid (an entry is [msgctxt] msgid, then msgstr, "
                                     "or msgid_plural and msgstr[0], msgstr[1], ...)")
            self.position += 1
            self._strings(token)
            return None
        if not any(k.name.startswith("#|") for k in entry._keywords):
            entry._insert_at, entry._inline = self._insertion_point(token)
        entry.obsolete = token.obsolete
        if any(earlier.obsolete != entry.obsolete for earlier in marked):
            self.problem(token.line, "inconsistent use of #~: every line of an entry is obsolete (#~) or none is")
        if token.text == "msgctxt":
            keyword = self._take(entry, token)
            entry.msgctxt = keyword.value
            if not self._next_is("msgid"):
                self.problem(keyword.line, "syntax error: msgctxt must be followed by msgid")
                return None
            token = self.peek()
        keyword = self._take(entry, token)  # type: ignore[arg-type]
        entry.msgid, entry.line = keyword.value, keyword.line
        if self._next_is("msgid_plural"):
            entry.msgid_plural = self._take(entry, self.peek()).value  # type: ignore[arg-type]
        if not self._next_is("msgstr"):
            self.problem(entry.line, "missing 'msgstr' section: an entry is [msgctxt] msgid, then msgstr (or msgid_plural "
                                     "and msgstr[0], msgstr[1], ...), with no comment in between")
            return None
        forms = 0
        while self._next_is("msgstr"):
            token = self.peek()
            assert token is not None
            if entry.msgid_plural is None:
                if token.index is not None:
                    self.problem(token.line, "missing 'msgid_plural' section: msgstr[N] belongs to an entry with msgid_plural")
                if forms:
                    self.problem(token.line, "syntax error: a second msgstr in one entry")
            elif token.index is None:
                self.problem(token.line, "syntax error: an entry with msgid_plural has msgstr[0], msgstr[1], ..., not msgstr")
            elif token.index != forms:
                self.problem(token.line, "first plural form has nonzero index" if forms == 0
                             else f"plural form has wrong index: msgstr[{token.index}] where msgstr[{forms}] comes next")
            keyword = self._take(entry, token)
            if entry.msgid_plural is None:
                entry.msgstr = keyword.value
            else:
                entry.msgstr_plural[forms if token.index is None else token.index] = keyword.value
            forms += 1
        if self._next_is("msgid_plural"):
            self.problem(self.peek().line, "syntax error: msgid_plural comes after msgid, before msgstr")  # type: ignore[union-attr]
        return entry

    def _comment(self, entry: CatalogEntry, token: _Token) -> None:
        body = token.text[1:]
        if body.startswith(","):
            entry.flags += [flag.strip() for flag in body[1:].split(",") if flag.strip()]
            entry._flag_lines.append((token.start, token.end))
        elif body.startswith(":"):
            entry.references += body[1:].split()
        elif body.startswith("."):
            entry.extracted_comments.append(body[1:].removeprefix(" "))
        else:
            entry.translator_comments.append(body.removeprefix(" "))


# ---------------------------------------------------------------------------------------------------------- writing


def _quote(text: str) -> str:
    """``text`` as a PO string: quoted, with gettext's escapes."""
    if "\0" in text:
        raise ValueError(f"{text!r} holds a NUL character, which a catalog cannot hold (it ends a C string)")
    return '"' + "".join(_QUOTE.get(char, char) for char in text) + '"'


def _keyword_text(keyword: str, value: str, newline: str, prefix: str = "") -> str:
    """``keyword "value"``; a value with inner newlines goes on one string a line after them, as gettext writes it.
    `prefix` starts each continuation line (``#~ `` in an obsolete entry)."""
    pieces = re.findall(r"[^\n]*\n|[^\n]+", value)
    if len(pieces) <= 1:
        return f"{keyword} {_quote(value)}"
    return f'{keyword} ""' + "".join(f"{newline}{prefix}{_quote(piece)}" for piece in pieces)


def _line_prefix(keyword: _Keyword) -> str:
    if keyword.name.startswith("#|"):
        return "#~| " if keyword.obsolete else "#| "
    return "#~ " if keyword.obsolete else ""


def render_catalog(
    catalog: Catalog,
    translations: Mapping[int, str | Mapping[int, str]],
    *,
    fuzzy: Iterable[int] = (),
    header: Mapping[str, str] | None = None,
) -> str:
    """The catalog's text with only these changes, for writing in UTF-8:

    * `translations`: ``{entry index: msgstr}``, or ``{entry index: {form: msgstr}}`` for a plural entry (every form
      it is to have): that entry's msgstr lines are replaced;
    * `fuzzy`: entries that get the ``fuzzy`` flag (added to their first ``#,`` line, or a new one);
    * `header`: header fields set to these values, in place where the header has them, appended where not (a
      catalog without a header gets one).

    Everything else is the input's text. Strings whose octal/hex escapes spell bytes of a non-UTF-8 charset are
    written out again, since the bytes would read differently in UTF-8.
    """
    # the header's edit first: a new header and a new "#, fuzzy" of the first entry both go at offset 0 (the sort
    # below is stable)
    edits: list[tuple[int, int, str]] = [] if header is None else [_header_edit(catalog, header)]
    newline, entries = catalog.newline, catalog.entries
    for index, value in translations.items():
        entry = entries[index]
        if entry.obsolete or entry.is_header:
            raise ValueError(f"entry {index} (line {entry.line}) is {'obsolete' if entry.obsolete else 'the header'}: "
                             "only translatable entries are filled")
        strings = [keyword for keyword in entry._keywords if keyword.name == "msgstr"]
        if isinstance(value, Mapping):
            if entry.msgid_plural is None:
                raise ValueError(f"entry at line {entry.line} has no msgid_plural: give one msgstr, not forms")
            text = newline.join(_keyword_text(f"msgstr[{form}]", value[form], newline) for form in sorted(value))
        else:
            if entry.msgid_plural is not None:
                raise ValueError(f"entry at line {entry.line} has a msgid_plural: give {{form: msgstr}}")
            text = _keyword_text("msgstr", value, newline)
        edits.append((strings[0].start, strings[-1].end, text))
    for index in dict.fromkeys(fuzzy):
        entry = entries[index]
        if entry.fuzzy:
            continue
        if entry._flag_lines:
            start, end = entry._flag_lines[0]
            flags = [flag.strip() for flag in catalog.text[start + 2:end].split(",") if flag.strip()]
            edits.append((start, end, "#, " + ", ".join(["fuzzy", *flags])))
        else:
            edits.append((entry._insert_at, entry._insert_at, (newline if entry._inline else "") + "#, fuzzy" + newline))
    if _codec(catalog.charset) not in ("utf-8", "ascii"):
        edited = [(start, end) for start, end, _ in edits]
        for entry in entries:
            for keyword in entry._keywords:
                if keyword.byte_escapes and not any(start <= keyword.start < end for start, end in edited):
                    name = keyword.name.removeprefix("#|") if keyword.index is None else f"msgstr[{keyword.index}]"
                    edits.append((keyword.start, keyword.end,
                                  _keyword_text(name, keyword.value, newline, _line_prefix(keyword))))
    edits.sort(key=lambda edit: (edit[0], edit[1]))
    pieces, position = [], 0
    for start, end, text in edits:
        if start < position:
            raise ValueError(f"overlapping changes at offset {start} of {catalog.path}")
        pieces += [catalog.text[position:start], text]
        position = end
    pieces.append(catalog.text[position:])
    return "".join(pieces)


def _header_edit(catalog: Catalog, values: Mapping[str, str]) -> tuple[int, int, str]:
    """The edit that sets header fields `values`: the header's msgstr written again, or a new header first."""
    newline, header = catalog.newline, catalog.header
    wanted = {name.lower(): (name, value) for name, value in values.items()}
    fields: list[tuple[str, str]] = []
    for name, value in catalog.header_fields():
        if name.lower() in wanted:
            fields.append((name, wanted.pop(name.lower())[1]))
        else:
            fields.append((name, value))
    fields += list(wanted.values())
    lines = [f"{name}: {value}\n" if name else f"{value}\n" for name, value in fields]
    body = 'msgstr ""' + "".join(newline + _quote(line) for line in lines)
    if header is None:
        return 0, 0, f'msgid ""{newline}{body}{newline}{newline}'
    strings = [keyword for keyword in header._keywords if keyword.name == "msgstr"]
    return strings[0].start, strings[-1].end, body


def catalog_changes(
    before: Catalog, after: Catalog, *, translated: Collection[int] = (), header: Collection[str] = ()
) -> list[str]:
    r"""What differs between two catalogs beyond what filling may change; ``[]`` when nothing.

    Filling may change the msgstrs of the `translated` entries (indexes of `before`) and give them the ``fuzzy``
    flag, and change the header fields named in `header`. Every msgid, msgid_plural, msgctxt, comment, reference,
    flag, previous (``#|``) field, obsolete entry, other header field and the order of the entries must stay.

    >>> before = parse_catalog(b'msgid "unterminated"\nmsgstr ""\n')
    >>> catalog_changes(before, parse_catalog(b'msgid "unterminate"\nmsgstr ""\n'))
    ["<catalog>:1: msgid 'unterminated' became 'unterminate'"]
    """
    changes: list[str] = []
    old_entries, new_entries = before.entries, after.entries
    if before.header is None and after.header is not None and new_entries and new_entries[0].is_header:
        new_entries = new_entries[1:]
    if len(old_entries) != len(new_entries):
        return [f"{before.path}: {len(old_entries)} entries became {len(new_entries)}"]
    names = {name.lower() for name in header}
    for old, new in zip(old_entries, new_entries):
        where = f"{before.path}:{old.line}"
        for part in ("obsolete", "msgctxt", "msgid", "msgid_plural", "translator_comments", "extracted_comments",
                     "references", "previous"):
            if getattr(old, part) != getattr(new, part):
                changes.append(f"{where}: {part} {getattr(old, part)!r} became {getattr(new, part)!r}")
        if [flag for flag in old.flags if flag != "fuzzy"] != [flag for flag in new.flags if flag != "fuzzy"]:
            changes.append(f"{where}: flags {old.flags!r} became {new.flags!r}")
        filled = old.index in translated
        if old.fuzzy and not new.fuzzy or not filled and old.fuzzy != new.fuzzy:
            changes.append(f"{where}: fuzzy {old.fuzzy} became {new.fuzzy}")
        if old.is_header:
            kept = [(name, value) for name, value in header_fields(old.msgstr) if name.lower() not in names]
            now = [(name, value) for name, value in header_fields(new.msgstr) if name.lower() not in names]
            if kept != now:
                changes.append(f"{where}: header fields {kept!r} became {now!r}")
        elif not filled and (old.msgstr, old.msgstr_plural) != (new.msgstr, new.msgstr_plural):
            changes.append(f"{where}: msgstr of an entry not filled changed")
    return changes
