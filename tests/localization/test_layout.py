"""The layout of a message (edge whitespace, --help columns, wrapped lines) is split off and put back exactly."""

from __future__ import annotations

import pytest

from hf_encdec.localization.layout import split_layout

MESSAGES = {
    "plain": "Cannot open %s",
    "edge newlines": "\n\nUsage: %s [OPTION]... [FILE]...\n",
    "indented": "  or:  %s --version\n",
    "tabs": "\t-x\tskip this\n",
    "help rows": "  -a, --all             do not ignore entries\n  -A, --almost-all      do not list . and ..\n",
    "help row continued": "  -s, --size            print the allocated size of each file,\n                          in blocks\n",
    "wrapped paragraph": "Mandatory arguments to long options are\nmandatory for short options too.\n",
    "blank lines": "First paragraph.\n\nSecond paragraph.",
    "heading and rows": "\nOutput control:\n  -m, --max-count=NUM   stop after NUM lines\n",
    "only whitespace": " \n",
    "trailing blanks on a line": "Line one.  \nLine two.",
}


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_rendering_the_source_texts_gives_back_the_message(message: str) -> None:
    layout = split_layout(message)
    assert layout.render(list(layout.texts)) == message


def test_texts_are_what_a_translator_would_translate() -> None:
    assert split_layout(MESSAGES["help row continued"]).texts == ("print the allocated size of each file, in blocks",)
    assert split_layout(MESSAGES["wrapped paragraph"]).texts == ("Mandatory arguments to long options are mandatory for short options too.",)
    assert split_layout(MESSAGES["heading and rows"]).texts == ("Output control:", "stop after NUM lines")
    assert split_layout(MESSAGES["blank lines"]).texts == ("First paragraph.", "Second paragraph.")
    assert split_layout("Usage:\n  tool FILE").texts == ("Usage:", "tool FILE")  # a colon ends a paragraph
    assert split_layout("%s: %s\n").texts == ()  # nothing but directives: kept as it is
    # two spaces after a sentence's end are a sentence break, not a column
    assert split_layout("Invalid argument.  Try --help.\n").texts == ("Invalid argument. Try --help.",)


def test_columns_come_back_at_the_source_column() -> None:
    layout = split_layout(MESSAGES["help rows"])
    got = layout.render(["Einträge nicht ignorieren", "nicht . und .. auflisten"]).splitlines()
    assert got == ["  -a, --all             Einträge nicht ignorieren", "  -A, --almost-all      nicht . und .. auflisten"]
    short = split_layout("  add   Add files\n")  # a longer translation of the first cell pushes the next one on
    assert short.render(["hinzufügen", "Dateien hinzufügen"]) == "  hinzufügen  Dateien hinzufügen\n"


def test_a_continued_cell_is_wrapped_again_at_its_width_and_indent() -> None:
    layout = split_layout(MESSAGES["help row continued"])
    translation = "die belegte Größe jeder Datei in Blöcken ausgeben, auch für sehr große Dateien"
    lines = layout.render([translation]).split("\n")
    assert lines[0].startswith("  -s, --size            die") and lines[-1] == ""
    assert all(line.startswith(" " * 26) and not line[26].isspace() for line in lines[1:-1])
    assert max(len(line) for line in lines) <= len(MESSAGES["help row continued"].split("\n")[0])
    assert " ".join(" ".join(line.split()) for line in lines).replace("-s, --size ", "").strip() == translation


def test_newlines_inside_a_translation_do_not_break_the_layout() -> None:
    layout = split_layout("\nDone.\n")
    assert layout.render(["Fertig\n  und gut."]) == "\nFertig und gut.\n"


def test_rendering_needs_one_translation_per_text() -> None:
    with pytest.raises(ValueError, match="expected 2 translations"):
        split_layout(MESSAGES["blank lines"]).render(["nur eine"])
