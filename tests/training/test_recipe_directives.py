"""The main job's report on software messages: the share of test translations and references that keep their
source's format directives and accelerator, counted over the pairs that have any."""

from __future__ import annotations

from hf_encdec.training.recipe import _directive_fidelity


def test_fidelity_counts_only_pairs_with_directives_or_an_accelerator() -> None:
    sources = ["Cannot open %s", "Quit", "_Open", "%d of %d"]
    references = ["%s kann nicht geöffnet werden", "Beenden", "Öffnen", "%d von %d"]
    hypotheses = ["Kann nicht öffnen", "Ende", "_Öffnen", "%d von %d"]
    fidelity = _directive_fidelity(sources, references, hypotheses)
    assert fidelity == {
        "test pairs with directives or an accelerator": 3,
        "best hypotheses keeping them": round(2 / 3, 4),  # `_Öffnen` and `%d von %d`; the first lost its %s
        "references keeping them": round(2 / 3, 4),  # `Öffnen` lost the accelerator
    }
