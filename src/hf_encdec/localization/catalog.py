"""Filling a gettext catalog (``.po``, or a ``.pot`` template) with a model's translations, and checking it.

This is what ``hf-encdec translate-po RUN_DIR INPUT.po --output OUTPUT.po`` runs.

* The input is checked before any model work (:func:`check_catalog`): a catalog GNU gettext would reject as
  malformed (an unterminated string, a bad escape, a duplicate msgid/msgctxt pair, a header charset that does not
  decode the file, ...) is refused with the file, line and problem, by the strict parser of
  :mod:`~hf_encdec.localization.pofile`, and, where gettext-tools is installed, by ``msgfmt --check-format`` too
  (which also refuses translations already in the catalog whose format directives or edge newlines break their
  source). Nothing is written then.
* Every entry whose ``msgstr`` is empty is filled (translated ones are left alone unless ``overwrite``), through
  :func:`hf_encdec.inference.translate_messages` (:func:`hf_encdec.inference.fill_catalog`), so the layout and format directives of each message are kept by
  construction, and no hypothesis with a character decoded from an invalid byte sequence (U+FFFD) is taken; an
  entry where no hypothesis passes stays untranslated and is listed in the report, so the program falls back to
  English there rather than crash on a wrong ``%s``. Filled entries are marked ``#, fuzzy``: the gettext convention
  for "a human must review this".
* The output is the input's text with only those msgstrs, their ``fuzzy`` flags and the header fields
  ``Language``, ``Plural-Forms``, ``Content-Type`` (``charset=UTF-8``) and ``Content-Transfer-Encoding`` (``8bit``)
  changed, re-encoded in UTF-8; it is parsed again and compared with the input entry by entry
  (:func:`~hf_encdec.localization.pofile.catalog_changes`) before it replaces anything.
* ``msgctxt`` is used for matching only: the model was trained on messages without their context, so it is not sent
  to the model, and two entries that differ only in context get the same translation.
* Plural entries fill ``msgstr[0]`` from ``msgid`` and ``msgstr[1..n-1]`` from ``msgid_plural``, ``n`` from the
  header's ``Plural-Forms`` (German: 2). A template without one gets the language's rule from :data:`PLURAL_FORMS`.

:func:`msgfmt_check` runs GNU ``msgfmt -c --use-fuzzy`` (gettext-tools) on a catalog and counts the entries it
rejects; :func:`directive_problems` is the pure-Python check of the same properties that always runs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polib

from .mo import read_mo_file
from .placeholders import find_printf, placeholder_problems, printf_arguments
from .pofile import Catalog, CatalogEntry, CatalogError, CatalogProblem, catalog_changes, parse_catalog, read_catalog, render_catalog

logger = logging.getLogger(__name__)

__all__ = ["CHANGED_HEADER_FIELDS", "PLURAL_FORMS", "FillReport", "MsgfmtResult", "check_catalog", "directive_problems", "fill_catalog_with",
           "msgfmt_check", "msgfmt_input_problems", "template_from_mo"]

#: Plural rules of common languages (from the GNU gettext manual, "Plural forms"), for templates whose header has none.
PLURAL_FORMS: dict[str, str] = {
    **dict.fromkeys(
        ["de", "en", "nl", "sv", "da", "nb", "nn", "no", "it", "es", "pt", "fi", "el", "hu", "et", "bg", "ca", "eo",
         "gl", "eu", "he", "af", "sq", "tr"],
        "nplurals=2; plural=(n != 1);",
    ),
    **dict.fromkeys(["fr", "pt_BR", "oc"], "nplurals=2; plural=(n > 1);"),
    **dict.fromkeys(["ja", "ko", "zh_CN", "zh_TW", "vi", "th", "id", "ms"], "nplurals=1; plural=0;"),
    **dict.fromkeys(
        ["ru", "uk", "be", "sr", "hr", "bs"],
        "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
    ),
    "pl": "nplurals=3; plural=(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
    **dict.fromkeys(["cs", "sk"], "nplurals=3; plural=(n==1) ? 0 : (n>=2 && n<=4) ? 1 : 2;"),
}

_NPLURALS_RE = re.compile(r"nplurals\s*=\s*(\d+)")

#: The header fields a filled catalog changes (every other header field stays as it was).
CHANGED_HEADER_FIELDS: tuple[str, ...] = ("Language", "Plural-Forms", "Content-Type", "Content-Transfer-Encoding")


@dataclass
class FillReport:
    """What :func:`fill_catalog` did."""

    output: Path
    entries: int = 0  # translatable entries (the header and obsolete entries not counted)
    kept: int = 0  # already translated, left alone
    filled: int = 0  # filled by the model and marked fuzzy
    not_filled: list[str] = field(default_factory=list)  # msgids left untranslated: no hypothesis passed the checks

    def summary(self) -> str:
        text = (f"{self.output}: {self.filled} of {self.entries} entries filled (marked fuzzy), "
                f"{self.kept} already translated and kept")
        if self.not_filled:
            text += (f", {len(self.not_filled)} left untranslated (no hypothesis kept their format directives and "
                     "layout and decoded to valid text)")
        return text


@dataclass
class MsgfmtResult:
    """The verdict of ``msgfmt -c --use-fuzzy`` on a catalog."""

    entries: int  # entries of the catalog (the header not counted)
    rejected: int  # entries with at least one error
    errors: list[str]  # msgfmt's error lines
    header_errors: int = 0  # errors of the header (before the first entry), which reject the whole catalog


def _plural_forms(catalog: Catalog, language: str) -> str:
    """The catalog's Plural-Forms, or the language's from :data:`PLURAL_FORMS`; raise when neither is known."""
    header = catalog.metadata("Plural-Forms") or ""
    if _NPLURALS_RE.search(header) and "INTEGER" not in header:
        return header
    rule = PLURAL_FORMS.get(language) or PLURAL_FORMS.get(_base_language(language))
    if rule is None:
        raise ValueError(
            f"the catalog's header has no Plural-Forms and hf_encdec knows no plural rule for language {language!r}; "
            f"add a Plural-Forms line to the header (the GNU gettext manual lists them), or use one of: "
            f"{', '.join(sorted(PLURAL_FORMS))}"
        )
    return rule


def _base_language(language: str) -> str:
    """`de` of `de_CH`, `sr` of `sr@latin`."""
    return re.split(r"[_@.]", language, maxsplit=1)[0]


def _form_zero_is_one(plural_forms: str) -> bool:
    """Whether form 0 is used for n = 1 alone (`plural=(n != 1)`): then msgstr[0] may leave out the number."""
    return re.search(r"plural\s*=\s*\(?\s*n\s*!=\s*1\s*\)?\s*;?\s*$", plural_forms) is not None


def _singular_form_source(entry: polib.POEntry | CatalogEntry, plural_forms: str) -> str:
    """The English form msgstr[0] translates and is checked against, as ``msgfmt -c`` checks it.

    msgfmt checks msgstr[0] against msgid_plural (form 0 may serve 21, 31, ... in Russian), except that where form 0
    serves n = 1 alone the number's directive may be left out. So the singular is used when it reads the plural's
    arguments, or reads none where form 0 is n = 1 alone; otherwise msgstr[0] translates the plural.
    """
    singular, plural = printf_arguments(find_printf(entry.msgid))[0], printf_arguments(find_printf(entry.msgid_plural))[0]
    if singular == plural or (not singular and _form_zero_is_one(plural_forms)):
        return entry.msgid
    return entry.msgid_plural


def _catalog_language(catalog: Catalog, language: str | None, path: Path, model_language: str | None) -> str:
    """The language to fill in: ``language`` or the header's, checked against what the model translates into."""
    header = (catalog.metadata("Language") or "").strip()
    chosen = language or header
    if not chosen:
        raise ValueError(f"{path} has no Language in its header (a .pot template?); give the language, e.g. --language de")
    if language and header and _base_language(language) != _base_language(header):
        raise ValueError(f"{path} is a catalog for Language {header!r}, but --language {language!r} was given")
    if model_language and _base_language(model_language) != _base_language(chosen):
        raise ValueError(
            f"the model translates into {model_language!r} (trained on gettext:{model_language}), but {path} is to be "
            f"filled in {chosen!r}; use a model trained on gettext:{chosen}"
        )
    return chosen


def _needs_filling(entry: CatalogEntry, overwrite: bool, forms: int) -> bool:
    if entry.msgid_plural is not None:  # any empty form (only the empty ones are filled, unless overwrite)
        return overwrite or not all(entry.msgstr_plural.get(index) for index in range(forms))
    return overwrite or not entry.msgstr


def fill_catalog_with(
    translate: Callable[[list[str]], list[str | None]],
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    language: str | None = None,
    overwrite: bool = False,
    model_language: str | None = None,
) -> FillReport:
    """Fill the untranslated entries of the catalog at `input_path` with `translate` and write it to `output_path`
    (atomically). :func:`hf_encdec.inference.fill_catalog` calls this with a trained model.

    Args:
        translate: Maps the distinct source texts to their translations, in order; ``None`` leaves an entry
            untranslated.
        input_path: A ``.po`` catalog or a ``.pot`` template.
        output_path: Where the filled catalog goes (may be `input_path`; it is replaced only once complete).
        language: The catalog's language; needed for a template, checked against a catalog's header.
        overwrite: Translate entries that already have a translation too.
        model_language: The language the translator writes, when known: a catalog in another language is refused.

    Returns:
        A :class:`FillReport`.

    Raises:
        CatalogError: (a ``ValueError``) The input is refused (:func:`check_catalog`); nothing is written.
        RuntimeError: The written text would differ from the input in more than the filled msgstrs, their flags and
            :data:`CHANGED_HEADER_FIELDS`; nothing is written (a bug of the writer: it should not happen).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> lines = ['msgid ""', 'msgstr ""', '"Language: de' + chr(92) + 'n"', '', 'msgid "Quit"', 'msgstr ""', '']
    >>> _ = (folder / "in.po").write_text(chr(10).join(lines))
    >>> fill_catalog_with(lambda texts: [text.upper() for text in texts], folder / "in.po", folder / "out.po").filled
    1
    >>> 'msgstr "QUIT"' in (folder / "out.po").read_text()
    True
    """
    path = Path(input_path)
    catalog = check_catalog(path)
    language = _catalog_language(catalog, language, path, model_language)
    plural_forms = _plural_forms(catalog, language)
    forms = int(_NPLURALS_RE.search(plural_forms).group(1))  # type: ignore[union-attr]
    entries = [entry for entry in catalog.messages if entry.msgid]
    report = FillReport(Path(output_path), entries=len(entries))
    todo = [entry for entry in entries if _needs_filling(entry, overwrite, forms)]
    report.kept = len(entries) - len(todo)
    sources = list(dict.fromkeys(
        text for entry in todo
        for text in ((_singular_form_source(entry, plural_forms), entry.msgid_plural) if entry.msgid_plural is not None
                     else (entry.msgid,))
    ))
    outputs = translate(sources) if sources else []
    if len(outputs) != len(sources):
        raise RuntimeError(f"the translator returned {len(outputs)} translations for {len(sources)} texts")
    translated = dict(zip(sources, outputs))
    fills: dict[int, str | dict[int, str]] = {}
    for entry in todo:
        if entry.msgid_plural is not None:
            singular, plural = translated[_singular_form_source(entry, plural_forms)], translated[entry.msgid_plural]
            if singular is None or plural is None:
                report.not_filled.append(entry.msgid)
                continue
            # One form (Japanese) is used for every number: it says the plural.
            new = {0: plural if forms == 1 else singular, **{i: plural for i in range(1, forms)}}
            # forms beyond the header's nplurals, which gettext accepts, stay as they are
            fills[entry.index] = {**entry.msgstr_plural, **{
                i: text if overwrite or not entry.msgstr_plural.get(i) else entry.msgstr_plural[i] for i, text in new.items()}}
        else:
            text = translated[entry.msgid]
            if text is None:
                report.not_filled.append(entry.msgid)
                continue
            fills[entry.index] = text
        report.filled += 1
    header = dict(zip(CHANGED_HEADER_FIELDS, (language, plural_forms, "text/plain; charset=UTF-8", "8bit")))
    data = render_catalog(catalog, fills, fuzzy=fills, header=header).encode("utf-8")
    # The written catalog is read back as gettext reads it and compared with the input: a msgid, comment or entry
    # the writer changed by mistake stops here, before the output replaces anything.
    try:
        changes = catalog_changes(catalog, parse_catalog(data, path=str(output_path)), translated=fills, header=header)
    except CatalogError as error:
        changes = [str(problem) for problem in error.problems]
    if changes:
        raise RuntimeError(f"filling {path} would change more than its msgstrs ({len(changes)} differences, nothing "
                           f"written; please report this): " + "; ".join(changes[:5]))
    _save_atomically(data, Path(output_path))
    return report


def check_catalog(input_path: str | os.PathLike[str]) -> Catalog:
    """Read a catalog strictly and refuse it, with every problem's file and line, where GNU gettext would.

    The strict parser (:func:`~hf_encdec.localization.pofile.read_catalog`) always runs; where gettext-tools is
    installed, ``msgfmt --check-format`` runs on the file too (:func:`msgfmt_input_problems`), which also refuses
    translations already present whose format directives or edge newlines break their source.

    Raises:
        FileNotFoundError: No file at `input_path`.
        CatalogError: (a ``ValueError``) The catalog is refused; ``.problems`` lists each with its line.
    """
    catalog = read_catalog(input_path)
    problems = msgfmt_input_problems(input_path)
    if problems:
        raise CatalogError(str(input_path), problems, what="is refused by GNU msgfmt --check-format")
    return catalog


def msgfmt_input_problems(catalog_path: str | os.PathLike[str]) -> list[CatalogProblem] | None:
    """The errors ``msgfmt --check-format`` finds in a catalog (``[]``: none); ``None`` without gettext-tools.

    ``--check-format`` and not ``-c``: ``-c`` also checks the header, which a template (``nplurals=INTEGER``,
    ``charset=CHARSET``) fails and which filling rewrites anyway.
    """
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        return None
    path = str(catalog_path)
    result = subprocess.run([msgfmt, "--check-format", "-o", os.devnull, path], capture_output=True, text=True,
                            check=False)
    if result.returncode == 0:
        return []
    pattern = re.compile(rf"^{re.escape(path)}:(\d+):(?:\d+:)? ?(.*)$")
    problems = [CatalogProblem(path, int(match.group(1)), match.group(2))
                for match in map(pattern.match, result.stderr.splitlines())
                if match and not match.group(2).startswith("warning")]
    return problems or [CatalogProblem(path, 0, f"msgfmt --check-format failed: {result.stderr.strip()}")]


def _save_atomically(data: bytes, path: Path) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`: never a half-written catalog."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        Path(temporary).write_bytes(data)
        # mkstemp makes the file private; a catalog gets the mode of the one it replaces, or the umask's default
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def directive_problems(catalog_path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The pure-Python check of a catalog: ``{msgid: problems}`` for every translated entry that breaks its source.

    The checks of :func:`~hf_encdec.localization.placeholders.placeholder_problems` (directives, edge newlines,
    accelerator), for each translated form against its English form, without gettext-tools.
    """
    problems: dict[str, list[str]] = {}
    catalog = polib.pofile(str(catalog_path), wrapwidth=0)
    plural_forms = catalog.metadata.get("Plural-Forms", "")
    for entry in catalog:
        if entry.obsolete or not entry.msgid:
            continue
        if entry.msgid_plural:
            forms = sorted(entry.msgstr_plural.items())
            first = _singular_form_source(entry, plural_forms) if len(forms) > 1 else entry.msgid_plural
            pairs = [(first if index == 0 else entry.msgid_plural, text) for index, text in forms]
        else:
            pairs = [(entry.msgid, entry.msgstr)]
        found = [problem for source, text in pairs if text for problem in placeholder_problems(source, text)]
        if found:
            problems[entry.msgid] = found
    return problems


def msgfmt_check(catalog_path: str | os.PathLike[str]) -> MsgfmtResult | None:
    """Run ``msgfmt -c --use-fuzzy`` on a catalog and count the entries it rejects; ``None`` without gettext-tools.

    ``-c`` checks the header, the format directives of entries flagged ``c-format`` (and the other languages'
    format flags) and the leading and trailing newlines of every entry; ``--use-fuzzy`` includes the fuzzy entries,
    which a machine-filled catalog is made of.
    """
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        return None
    path = Path(catalog_path)
    result = subprocess.run(
        [msgfmt, "-c", "--use-fuzzy", "-o", os.devnull, str(path)], capture_output=True, text=True, check=False
    )
    catalog = polib.pofile(str(path), wrapwidth=0)
    starts = sorted(entry.linenum for entry in catalog if entry.msgid and not entry.obsolete)
    pattern = re.compile(rf"^{re.escape(str(path))}:(\d+):")
    errors = [line for line in result.stderr.splitlines() if pattern.match(line) and "warning" not in line]
    rejected: set[int] = set()
    header_errors = 0
    for line in errors:
        number = int(pattern.match(line).group(1))  # type: ignore[union-attr]
        before = [start for start in starts if start <= number]
        if before:
            rejected.add(before[-1])
        else:
            header_errors += 1
    if result.returncode != 0 and not errors:
        raise RuntimeError(f"msgfmt failed on {path} without naming an entry: {result.stderr.strip()}")
    return MsgfmtResult(entries=len(starts), rejected=len(rejected), errors=errors, header_errors=header_errors)


def template_from_mo(mo_path: str | os.PathLike[str], output_path: str | os.PathLike[str], *, keep_translations: bool = False) -> Path:
    """Write the entries of a compiled ``.mo`` catalog as a ``.pot`` template (or, with `keep_translations`, a ``.po``).

    A ``.mo`` keeps no flags, so an entry is flagged ``c-format`` where its msgid has a printf directive, as
    ``xgettext`` does for C sources: ``msgfmt -c`` then checks its directives. Used to test the filling on the
    machine's own catalogs: the held-out packages' messages, untranslated, and with their real translations.
    """
    messages = read_mo_file(mo_path)
    template = polib.POFile(wrapwidth=0)
    template.metadata = {
        "Project-Id-Version": Path(mo_path).stem,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
    }
    if keep_translations:
        template.metadata["Language"] = Path(mo_path).parent.parent.name
        template.metadata["Plural-Forms"] = polib.mofile(str(mo_path)).metadata.get("Plural-Forms") or _plural_forms(
            template, template.metadata["Language"])
    for message in messages:
        printf = [item for item in find_printf(message.msgid) if item != "%%"]
        entry = polib.POEntry(msgid=message.msgid, msgctxt=message.context or None, flags=["c-format"] if printf else [])
        if message.msgid_plural is not None:
            entry.msgid_plural = message.msgid_plural
            forms = message.msgstr if keep_translations else ("", "")
            entry.msgstr_plural = dict(enumerate(forms))
        else:
            entry.msgstr = message.msgstr[0] if keep_translations and message.msgstr else ""
        template.append(entry)
    path = Path(output_path)
    template.save(str(path))
    return path
