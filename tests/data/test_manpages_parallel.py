"""Parallel pairs from translated manual pages: the line alignment, pages written in the test, the machine's own
translated pages, and the gettext corpus they join."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import pytest

from hf_encdec.data import _with_man_pages, corpus_label, load_corpus
from hf_encdec.data.manpages import ManPagesNotFoundError
from hf_encdec.data.manpages_parallel import align_lines, build_manpages_parallel, find_translated_pages

SYSTEM_MAN = Path("/usr/share/man")
# real pages with German translations on Debian/Ubuntu (dpkg, procps) and a link to one of them
REAL_PAGES = ["man1/dpkg-name.1.gz", "man1/dpkg-split.1.gz", "man1/free.1.gz"]

needs_groff = pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")


def test_alignment_pairs_lines_in_order_and_leaves_out_what_has_no_partner() -> None:
    english = ["NAME", "tool - do things", "OPTIONS", "-f, --force", "Overwrite existing files.",
               "-n NUM", "Keep NUM copies.", "AUTHOR", "Written by someone."]
    german = ["BEZEICHNUNG", "tool - Dinge tun", "OPTIONEN", "-f, --force", "Vorhandene Dateien überschreiben.",
              "-n ANZAHL", "ANZAHL Kopien behalten.", "AUTOR", "Geschrieben von jemandem.",
              "ÜBERSETZUNG", "Die deutsche Übersetzung wurde von vielen Menschen angefertigt."]
    pairs = align_lines(english, german)
    assert pairs[:5] == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]
    assert all(j < 9 for _, j in pairs)  # the translator's credits have no original
    assert [i for i, _ in pairs] == sorted({i for i, _ in pairs})
    # a paragraph missing in the translation leaves its neighbours paired with theirs
    missing = align_lines(english, german[:4] + german[5:9])
    assert (5, 4) in missing and (3, 3) in missing and all(i != 4 for i, _ in missing)
    # lines whose option names disagree are not a pair, however close their lengths
    assert align_lines(["-a, --all: show all"], ["-q, --quiet: leise"]) == []
    assert align_lines([], german) == [] and align_lines(english, []) == []


def _page(title: str, lines: list[str]) -> str:
    body = "\n".join(f".PP\n{line}" for line in lines)
    return f'.TH {title} 1 2024 "t" "t"\n.SH NAME\n{title.lower()} \\- {lines[0]}\n{body}\n'


@pytest.fixture
def man_root(tmp_path: Path) -> Path:
    root = tmp_path / "man"
    (root / "man1").mkdir(parents=True)
    (root / "de" / "man1").mkdir(parents=True)
    (root / "man1" / "tool.1").write_text(_page("TOOL", [
        "tool copies files.", "With --force it overwrites files in /tmp.", "Made by the tool team."]))
    (root / "de" / "man1" / "tool.1").write_text(_page("TOOL", [
        "tool kopiert Dateien.", "Mit --force überschreibt es Dateien in /tmp.", "Made by the tool team."]))
    (root / "man1" / "retool.1").symlink_to("tool.1")
    (root / "de" / "man1" / "retool.1").symlink_to("tool.1")
    (root / "man1" / "heldout.1").write_text(_page("HELDOUT", ["heldout prints nothing at all."]))
    (root / "de" / "man1" / "heldout.1").write_text(_page("HELDOUT", ["heldout gibt gar nichts aus."]))
    (root / "man1" / "english-only.1").write_text(_page("EO", ["no translation exists for this page"]))
    return root


@needs_groff
def test_pairs_come_from_translated_pages_once_without_untranslated_lines(man_root: Path) -> None:
    assert [key for key, _, _ in find_translated_pages("de", [man_root])] == ["heldout(1)", "tool(1)"]
    pairs = build_manpages_parallel("de", man_dirs=[man_root], exclude={"heldout"}, num_proc=1)
    assert pairs.column_names == ["source", "target", "package", "context"]
    rows = set(zip(pairs["source"], pairs["target"]))
    assert ("tool copies files.", "tool kopiert Dateien.") in rows
    assert ("With --force it overwrites files in /tmp.", "Mit --force überschreibt es Dateien in /tmp.") in rows
    assert all(source != target for source, target in rows)  # "Made by the tool team." was left untranslated
    assert set(pairs["package"]) == {"man:tool(1)"}  # retool(1) is the same file; heldout(1) is held out
    with pytest.raises(ManPagesNotFoundError, match="translated into 'fr'.*gettext:fr"):
        build_manpages_parallel("fr", man_dirs=[man_root])


@needs_groff
@pytest.mark.skipif(not all((SYSTEM_MAN / "de" / page).is_file() and (SYSTEM_MAN / page).is_file()
                            for page in REAL_PAGES), reason="the machine lacks the German dpkg and procps pages")
def test_the_machines_translated_pages_give_aligned_pairs(tmp_path: Path) -> None:
    root = tmp_path / "man"
    for page in REAL_PAGES:
        for folder in (root, root / "de"):
            (folder / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SYSTEM_MAN / page, root / page)
        shutil.copy(SYSTEM_MAN / "de" / page, root / "de" / page)
    pairs = build_manpages_parallel("de", man_dirs=[root], num_proc=2)
    rows = list(zip(pairs["source"], pairs["target"]))
    assert len(rows) > 40 and len(set(pairs["package"])) == 3
    # what a translation leaves as it is agrees in every pair: option names and numbers
    for source, target in rows:
        for option in (word for word in source.split() if word.startswith("--") and word[2:3].isalpha()):
            assert option.strip(".,;:)") in target, (source, target)
    assert any("Symlink" in target and "symlink" in source for source, target in rows)


@needs_groff
def test_gettext_with_man_pages_adds_training_pairs_only_and_keeps_held_out_pages_out(man_root: Path) -> None:
    features = datasets.Features({name: datasets.Value("string") for name in ("source", "target", "package", "context")})
    corpus = datasets.DatasetDict({
        split: datasets.Dataset.from_dict({"source": [f"{split} text"], "target": [f"{split} Text"],
                                           "package": [package], "context": [""]}, features=features)
        for split, package in (("train", "coreutils"), ("validation", "heldout"), ("test", "grep"))
    })
    # a test message that a manual page also has: the page's pair is left out, the test pair kept
    corpus["test"] = datasets.Dataset.from_dict({"source": ["tool copies files."], "target": ["tool kopiert."],
                                                 "package": ["grep"], "context": [""]}, features=features)
    joined = _with_man_pages(corpus, "de", man_dirs=[man_root])
    assert joined["validation"]["source"] == ["validation text"] and joined["test"]["source"] == ["tool copies files."]
    assert "tool copies files." not in joined["train"]["source"]
    assert "With --force it overwrites files in /tmp." in joined["train"]["source"]
    assert joined["train"]["package"][0] == "coreutils" and set(joined["train"]["package"][1:]) == {"man:tool(1)"}
    assert corpus_label("gettext+man:de") == "gettext+man:de"
    with pytest.raises(ValueError, match="names language 'de' but lang='fr'"):
        load_corpus("gettext+man:de", lang="fr")
