"""Format directives, accelerators and edge newlines: what a software message's translation must keep, and the
generate() constraint that keeps a hypothesis from ending without its directives."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor

from helpers import build, word_level_tokenizer
from hf_encdec.localization.placeholders import (
    DirectivesBeforeEnd,
    find_accelerators,
    find_placeholders,
    has_words,
    placeholder_problems,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%s and %d", ["%s", "%d"]),
        ("%-10.3lf|%08lx|%zu|%lld|%hhu|%'d|%+5i", ["%-10.3lf", "%08lx", "%zu", "%lld", "%hhu", "%'d", "%+5i"]),
        ("%2$s before %1$d", ["%2$s", "%1$d"]),
        ("%08<PRIx64> at %r", ["%08<PRIx64>", "%r"]),
        ("50% complete, {{escaped}}, {x[0]}", ["{x[0]}"]),
        ("%*d and %.*s", ["%*d", "%.*s"]),
        ("%<PRIu64> bytes, %1$<PRId32>", ["%<PRIu64>", "%1$<PRId32>"]),
        ("100%% done", ["%%"]),
        ("%(count)d files in %(dir)s", ["%(count)d", "%(dir)s"]),
        ("{} {0} {name} {0:.2f} {name!r}", ["{}", "{0}", "{name}", "{0:.2f}", "{name!r}"]),
        ("no directives: 50 percent, {not a field}", []),
    ],
)
def test_directives_are_found_whole(text: str, expected: list[str]) -> None:
    assert find_placeholders(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("_Open", ["_"]), ("Save _As", ["_"]), ("&File", ["&"]), ("a && b", []), ("&amp; more", []),
     ("file_name", []), ("__init__", []), ("_2 columns", ["_"])],
)
def test_accelerators_are_markers_before_a_word(text: str, expected: list[str]) -> None:
    assert find_accelerators(text) == expected


@pytest.mark.parametrize(
    ("source", "translation", "problems"),
    [
        ("Cannot open %s: %s", "%s kann nicht geöffnet werden: %s", []),
        ("Cannot open %s: %s", "Kann %s nicht öffnen", ["dropped %s"]),
        ("%d files", "%s Dateien", ["dropped %d", "added %s"]),
        ("%d files", "%d Dateien in %s", ["added %s"]),
        ("%1$s to %2$s", "nach %2$s von %1$s", []),  # positional directives may be reordered
        ("100%% done", "100% fertig", ["a % that starts no valid directive"]),
        ("50% complete", "50 % abgeschlossen", []),  # a literal percent sign, kept
        ("50% complete", "50 Prozent abgeschlossen", ["a literal % dropped"]),
        ("%s of %d", "%d von %s", ["printf directives in another order (reorder with positions: %1$s, %2$d)"]),
        ("%s of %d", "%2$d von %1$s", []),  # msgfmt -c accepts this reordering
        ("%s and %s", "%1$s und %2$s", []),
        # `%.*%` is no `%%`: git's "bad ls-files format: %%%.*s" came back as "%.*%%.*%%.*s"
        ("format: %%%.*s", "Format: %.*%%.*%%.*s", ["dropped %.*s", "added %%", "a % that starts no valid directive"]),
        ("%-10s|", "%s|", []),  # width and flags do not change the argument
        ("%s files", "%1$s Dateien, %s", ["numbered and unnumbered printf directives mixed"]),
        ("addr 0x%08<PRIx64>", "Adresse", ["dropped %08<PRIx64>"]),
        ("Unknown option %r", "Unbekannte Option", ["dropped %r"]),
        ("Item {x[0]}", "Element", ["dropped {x[0]}"]),
        ("Use {{braces}} for {x}", "Verwende {{Klammern}} für {x}", []),
        ("%1$s: `END %1$s'", "%1$s: »END %1D %1$s«", ["a % that starts no valid directive"]),
        ("%d%% done", "%d%% fertig, %", ["a % that starts no valid directive"]),
        ("Done.\n", "Fertig.", ["trailing newline differs"]),
        ("\nUsage:", "Aufruf:", ["leading newline differs"]),
        ("_Open", "Ö_ffnen", []),  # translators move the accelerator into their word
        ("_Open", "Öffnen", ["accelerator '_' not kept exactly once"]),
        ("_Open", "_Datei _öffnen", ["accelerator '_' not kept exactly once"]),
        ("&Quit", "_Beenden", ["accelerator '&' not kept exactly once"]),
    ],
)
def test_problems_name_what_breaks(source: str, translation: str, problems: list[str]) -> None:
    assert placeholder_problems(source, translation) == problems


def test_words_are_letters_outside_directives() -> None:
    assert not has_words("%s: %s") and not has_words("{name} (%d)") and has_words("%s: no such file")


WORDS = [f"w{i}" for i in range(90)] + ["%s", "%d"]


def test_a_hypothesis_cannot_end_while_a_directive_is_missing() -> None:
    tokenizer = word_level_tokenizer(WORDS)
    constraint = DirectivesBeforeEnd("w5 %s w6 %d", tokenizer, eos_token_id=tokenizer.eos_token_id)
    rows = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in ("w1 %s w2 %d", "w1 %s w2 w3", "%d w4 w5 w6")]
    scores = constraint(torch.tensor([[tokenizer.bos_token_id, *row] for row in rows]), torch.zeros(3, len(tokenizer)))
    eos = tokenizer.eos_token_id
    assert scores[0, eos] == 0 and scores[1, eos] == float("-inf") and scores[2, eos] == float("-inf")
    assert torch.isfinite(scores[:, :eos]).all() and torch.isfinite(scores[:, eos + 1:]).all()


class _WantsToStop(LogitsProcessor):
    """A model that would rather end at once, and next rather write a directive than a word."""

    def __init__(self, eos: int, directives: list[int]) -> None:
        self.eos, self.directives = eos, directives

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores[:, self.eos] += 30.0
        scores[:, self.directives] += 15.0
        return scores


def test_generate_with_the_constraint_only_ends_hypotheses_that_have_the_directives() -> None:
    tokenizer = word_level_tokenizer(WORDS)
    model = build("pointer_generator")
    source = "w7 %s w8 %d w9"
    inputs = tokenizer([source], return_tensors="pt")
    settings = {"num_beams": 4, "num_return_sequences": 4, "max_new_tokens": 12, "do_sample": False}
    stop = _WantsToStop(tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(["%s", "%d"]))

    def ended(output: torch.Tensor) -> list[str]:
        return [tokenizer.decode(row, skip_special_tokens=True) for row in output if (row == tokenizer.eos_token_id).any()]

    free = ended(model.generate(**inputs, logits_processor=[stop], **settings))
    constraint = DirectivesBeforeEnd(source, tokenizer, eos_token_id=tokenizer.eos_token_id)
    constrained = ended(model.generate(**inputs, logits_processor=[stop, constraint], **settings))
    assert free[0] == "" and not any({"%s", "%d"} <= set(find_placeholders(text)) for text in free)
    assert len(constrained) == 4
    assert all(sorted(set(find_placeholders(text))) == ["%d", "%s"] for text in constrained), constrained
