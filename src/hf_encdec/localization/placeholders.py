"""What a translation of a software message must keep: format directives, keyboard accelerators, edge newlines.

A program prints its translated message with the same arguments as the English one, so the translation must carry
the same format directives (``%s``, ``%-10lu``, ``%1$s``, ``%<PRIu64>``, ``%(name)s``, ``{name}``): a dropped,
added or changed one makes ``printf`` read the wrong argument, which GNU ``msgfmt -c`` rejects for ``c-format``
entries. Positional directives (``%2$s ... %1$d``) may change their order; everything else about them must stay.
``msgfmt -c`` also rejects a translation that does not begin and end with a newline exactly when the English does.

>>> find_placeholders("Copied %d of %s (100%%) to {dest}")
['%d', '%s', '%%', '{dest}']
>>> placeholder_problems("Cannot open %s: %s\\n", "Kann %s nicht öffnen\\n")
['dropped %s']
>>> placeholder_problems("_Open", "Ö_ffnen")
[]
"""

from __future__ import annotations

import re
from collections import Counter

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase

__all__ = ["PLACEHOLDER_RE", "DirectivesBeforeEnd", "find_accelerators", "find_placeholders", "find_printf", "has_words", "keeps_placeholders", "placeholder_problems",
           "printf_arguments"]

#: printf directives (C99 and POSIX positional ``%1$s``, flags, width, precision, length, ``%<PRIu64>`` as gettext
#: writes the inttypes macros, ``%%`` bare only; Python's ``%r``), Python's ``%(name)s``, and brace fields (``{}``, ``{0}``,
#: ``{name}``, ``{0:.2f}``, ``{name!r}``, ``{x[0]}``; not the escaped ``{{``). The space flag is left out: ``% c`` in
#: "50% complete" is a literal percent sign far more often than a directive.
PLACEHOLDER_RE = re.compile(
    r"%%|%(?:\d+\$)?[-+#0']*(?:\d+|\*(?:\d+\$)?)?(?:\.(?:\d+|\*(?:\d+\$)?))?(?:hh|ll|[hlLqjzZt])?[diouxXeEfFgGaAcCsSpnmr]"
    r"|%(?:\d+\$)?[-+#0']*\d*(?:\.\d+)?<PRI[a-zA-Z0-9]+>"
    r"|%\([A-Za-z_][A-Za-z0-9_]*\)[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]"
    r"|(?<!\{)\{[A-Za-z0-9_.\[\]]*(?:![rsa])?(?::[^{}]*)?\}(?!\})"
)
# The parts of one printf directive that decide which argument it reads and as what type.
_PRINTF_RE = re.compile(
    r"%(?:(?P<position>\d+)\$)?[-+#0']*(?P<width>\d+|\*(?:\d+\$)?)?(?:\.(?P<precision>\d+|\*(?:\d+\$)?))?"
    r"(?:(?P<length>hh|ll|[hlLqjzZt])?(?P<conversion>[diouxXeEfFgGaAcCsSpnmr])|<PRI(?P<macro>[a-zA-Z0-9]+)>)"
)
# Conversions printf reads the same argument type with (msgfmt -c accepts `%i` for `%d`, `%x` for `%u`, ...).
_ARGUMENT_TYPES = {
    **dict.fromkeys("di", "int"), **dict.fromkeys("ouxX", "unsigned"), **dict.fromkeys("eEfFgGaA", "double"),
    "c": "char", "C": "wide char", "s": "string", "S": "wide string", "p": "pointer", "n": "count", "r": "repr",
}

_LETTER_RE = re.compile(r"[^\W\d_]")  # any Unicode letter
# A keyboard accelerator: GTK's `_` or Qt/KDE's `&` in front of a letter or digit that starts a word (`_Open`,
# `Save _As`, `&File`). `&&` is a literal ampersand, `&amp;` an entity, `file_name` an identifier: none count.
_ACCELERATOR_RE = re.compile(r"(?<![\w&_])(?:_|&(?![A-Za-z]+;|#\d+;))(?=[^\W_])")
# The same marker anywhere in a word: translators move the accelerator to a letter of their word (`Ö_ffnen`).
_MARKER_RE = re.compile(r"(?<![&_])(?:_|&(?![A-Za-z]+;|#\d+;))(?=[^\W_])")


def _stray_percents(text: str) -> int:
    """How many `%` of `text` are not part of a directive that :data:`PLACEHOLDER_RE` recognises."""
    return text.count("%") - sum(match.count("%") for match in PLACEHOLDER_RE.findall(text))


def find_printf(text: str) -> list[str]:
    """The printf directives of `text`, in order (``%%`` included; Python's ``%(name)s`` not)."""
    return [item for item in find_placeholders(text) if item.startswith("%") and not item.startswith("%(")]


def printf_arguments(directives: list[str]) -> tuple[dict[int, str], bool]:
    """The arguments printf reads for `directives`: ``{argument number: type}``, and whether numbered (``%1$s``) and
    unnumbered directives are mixed (which printf does not allow).

    >>> printf_arguments(["%s", "%-5lu", "%.*s", "%%"])
    ({1: 'string', 2: 'l unsigned', 3: 'int', 4: 'string'}, False)
    >>> printf_arguments(["%2$d", "%1$s"])
    ({2: 'int', 1: 'string'}, False)
    """
    arguments: dict[int, str] = {}
    following, numbered, unnumbered = 1, False, False

    def take(position: str | None, kind: str) -> None:
        nonlocal following, numbered, unnumbered
        if position:
            arguments[int(position)], numbered = kind, True
        else:
            arguments[following], unnumbered = kind, True
            following += 1

    for directive in directives:
        match = _PRINTF_RE.fullmatch(directive)
        if match is None or match["conversion"] == "m":  # `%%` (no match) and glibc's `%m` read no argument
            continue
        for star in (match["width"], match["precision"]):
            if star and star.startswith("*"):
                take(star[1:-1] or None, "int")
        if match["macro"]:  # PRIu64: the letter's type at the macro's size
            kind = f"{_ARGUMENT_TYPES.get(match['macro'][0], match['macro'][0])} {match['macro'][1:]}"
        else:
            kind = " ".join(filter(None, [match["length"], _ARGUMENT_TYPES[match["conversion"]]]))
        take(match["position"], kind)
    return arguments, numbered and unnumbered


def has_words(text: str) -> bool:
    """Whether `text` has a letter outside its format directives (``"%s: %s"`` has none).

    >>> has_words("%s: %s"), has_words("%s: No such file")
    (False, True)
    """
    return _LETTER_RE.search(PLACEHOLDER_RE.sub("", text)) is not None


def find_placeholders(text: str) -> list[str]:
    """The format directives of `text`, in order (``%%`` included: a lone ``%`` would start a new directive)."""
    return PLACEHOLDER_RE.findall(text)


def find_accelerators(text: str) -> list[str]:
    """The keyboard-accelerator markers of `text` (``_`` or ``&``), in order."""
    return _ACCELERATOR_RE.findall(text)


def placeholder_problems(source: str, translation: str, *, check_accelerators: bool = True) -> list[str]:
    """Everything `translation` breaks of `source`'s directives, accelerator and edge newlines; ``[]`` when nothing.

    printf directives must read the same arguments as the same types, as ``msgfmt -c`` checks (``%2$d von %1$s``
    for ``%s of %d`` is fine, ``%d von %s`` is not); the other directives (``%(name)s``, brace fields) are compared as
    multisets. Every ``%`` outside a directive must stay one too. The accelerator is checked only where the source has exactly one: the translation needs exactly one too, of the same
    kind, on any letter (translators move it).
    """
    problems: list[str] = []
    wanted, got = Counter(find_placeholders(source)), Counter(find_placeholders(translation))
    source_printf, translation_printf = find_printf(source), find_printf(translation)
    (source_arguments, source_mixed), (arguments, mixed) = printf_arguments(source_printf), printf_arguments(translation_printf)
    if arguments == source_arguments:
        # the same arguments read as the same types: `%2$d ... %1$s` for `%s ... %d` is a correct reordering
        wanted.subtract(source_printf)
        got.subtract(translation_printf)
    problems += [f"dropped {item}" for item in sorted((+(wanted - got)).elements())]
    problems += [f"added {item}" for item in sorted((+(got - wanted)).elements())]
    if arguments != source_arguments and Counter(source_printf) == Counter(translation_printf):
        problems.append("printf directives in another order (reorder with positions: %1$s, %2$d)")
    if mixed and not source_mixed:
        problems.append("numbered and unnumbered printf directives mixed")
    if _stray_percents(translation) != _stray_percents(source):
        # printf reads every `%` as a directive: `%1 ` or `%1D` is a broken one, whatever the directives around it
        problems.append("a % that starts no valid directive" if _stray_percents(translation) > _stray_percents(source)
                        else "a literal % dropped")
    if source.startswith("\n") != translation.startswith("\n"):
        problems.append("leading newline differs")
    if source.endswith("\n") != translation.endswith("\n"):
        problems.append("trailing newline differs")
    source_keys = find_accelerators(source)
    if check_accelerators and len(source_keys) == 1:
        # Any marker counts on both sides (identifiers such as `file_name` too), so that only a lost, doubled or
        # changed accelerator makes a difference.
        if Counter(_MARKER_RE.findall(translation)) != Counter(_MARKER_RE.findall(source)):
            problems.append(f"accelerator {source_keys[0]!r} not kept exactly once")
    return problems


def keeps_placeholders(source: str, translation: str, *, check_accelerators: bool = True) -> bool:
    """Whether `translation` keeps everything :func:`placeholder_problems` checks."""
    return not placeholder_problems(source, translation, check_accelerators=check_accelerators)


class DirectivesBeforeEnd(LogitsProcessor):
    """A `generate()` constraint: a hypothesis cannot end (its end-of-sequence token is masked) while it lacks one of
    the directives of `source`.

    Every hypothesis of the batch is held to the same source, so generate one source at a time with it. Each step
    decodes the hypotheses so far (a directive may span several tokens), which is why :func:`hf_encdec.inference.
    translate_messages` keeps it for the few texts whose unconstrained n-best list has no hypothesis that passes.
    """

    def __init__(self, source: str, tokenizer: PreTrainedTokenizerBase, *, eos_token_id: int | list[int]) -> None:
        self.required = Counter(find_placeholders(source))
        self.tokenizer = tokenizer
        self.eos_token_ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.required:
            return scores
        vocabulary = len(self.tokenizer)
        texts = self.tokenizer.batch_decode([[i for i in row if i < vocabulary] for row in input_ids.tolist()],
                                            skip_special_tokens=True)
        unfinished = [bool(self.required - Counter(find_placeholders(text))) for text in texts]
        rows = torch.tensor(unfinished, device=scores.device)
        scores[rows.nonzero(as_tuple=True)[0].unsqueeze(1), torch.tensor(self.eos_token_ids, device=scores.device)] = float("-inf")
        return scores
