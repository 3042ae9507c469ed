"""vim's own catalog (kept outside share/locale) joined to the gettext corpus's training split: `gettext+vim:<lang>`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hf_encdec.data import corpus_label, gettext_extras, load_corpus
from hf_encdec.data import _with_vim_catalog
from hf_encdec.data.gettext_corpus import (
    GettextCatalogNotFoundError,
    build_extra_catalog_pairs,
    build_gettext_corpus,
    vim_locale_dirs,
)


def test_the_extra_catalog_pairs_are_cleaned_as_the_corpus_cleans_them_and_kept_once(
    tmp_path: Path, catalog_writer: Callable[..., Path]
) -> None:
    root = tmp_path / "vim90" / "lang"
    catalog_writer(root, "de", "vim", [
        ("E37: No write since last change", "E37: Kein Schreibvorgang seit der letzten Änderung"),
        ("%s: %s", "%s: %s"),  # no letter in the English side
        ("Untranslated", ""),
        ("%d line\x00%d lines", "%d Zeile\x00%d Zeilen"),
        ("  Search   forward\n", "Vorwärts  suchen"),
    ])
    catalog_writer(root, "fr", "vim", [("Search forward", "Chercher en avant")])
    pairs = build_extra_catalog_pairs("de", [root])
    assert sorted(zip(pairs["source"], pairs["target"], pairs["package"])) == [
        ("%d line", "%d Zeile", "vim"),
        ("%d lines", "%d Zeilen", "vim"),
        ("E37: No write since last change", "E37: Kein Schreibvorgang seit der letzten Änderung", "vim"),
        ("Search forward", "Vorwärts suchen", "vim"),
    ]  # a .mo file holds its messages sorted by msgid
    assert vim_locale_dirs(str(tmp_path / "vim*" / "lang")) == [root]
    with pytest.raises(GettextCatalogNotFoundError, match=str(tmp_path / "nowhere")):
        build_extra_catalog_pairs("de", [tmp_path / "nowhere"])


def test_vims_pairs_join_the_training_split_only_and_never_a_held_out_message(
    locale_tree: Path, tmp_path: Path, catalog_writer: Callable[..., Path]
) -> None:
    corpus = build_gettext_corpus("de", [locale_tree], num_test_packages=2, num_validation_packages=2)
    test_message, test_package = corpus["test"]["source"][0], corpus["test"]["package"][0]
    root = tmp_path / "vim90" / "lang"
    catalog_writer(root, "de", "vim", [("Last set from", "Zuletzt gesetzt in"), (test_message, "anders übersetzt")])
    catalog_writer(root, "de", test_package, [("A held-out package's message", "Eine Meldung")])
    joined = _with_vim_catalog(corpus, "de", [root])
    for split in ("validation", "test"):
        assert joined[split].to_dict() == corpus[split].to_dict()
    assert joined["train"].to_dict()["source"] == list(corpus["train"]["source"]) + ["Last set from"]
    assert joined["train"]["package"][-1] == "vim"


def test_a_gettext_spec_names_its_joins_once_each() -> None:
    assert gettext_extras("gettext+vim") == ("vim",) and gettext_extras("gettext+man+vim") == ("man", "vim")
    assert gettext_extras("gettext+vim+vim") is None and gettext_extras("gettext+wiki") is None
    assert corpus_label("gettext+vim") == "gettext+vim:de"
    with pytest.raises(ValueError, match="gettext\\+wiki:de.*'gettext\\+vim:<lang>'"):
        load_corpus("gettext+wiki:de")


@pytest.mark.skipif(
    not any((root / "de" / "LC_MESSAGES" / "vim.mo").is_file() for root in vim_locale_dirs()),
    reason="this machine's vim has no German catalog (/usr/share/vim/vim*/lang/de/LC_MESSAGES/vim.mo)",
)
def test_the_machines_vim_catalog_adds_training_pairs_and_leaves_the_held_out_splits_alone() -> None:
    plain, joined = load_corpus("gettext:de"), load_corpus("gettext+vim:de")
    for split in ("validation", "test"):
        assert list(joined[split]["source"]) == list(plain[split]["source"])
    added = joined["train"].select(range(plain["train"].num_rows, joined["train"].num_rows))
    assert list(joined["train"]["source"][: plain["train"].num_rows]) == list(plain["train"]["source"])
    assert added.num_rows > 1000 and set(added["package"]) == {"vim"}
    assert not set(added["source"]) & set(plain["test"]["source"])
