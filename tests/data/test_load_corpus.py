"""The load_corpus spec dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_encdec.data import load_corpus


def test_gettext_spec_with_language(locale_tree: Path) -> None:
    options = {"locale_dirs": [locale_tree], "num_test_packages": 2, "num_validation_packages": 2}
    german = load_corpus("gettext", **options)
    also_german = load_corpus("gettext:de", **options)
    assert list(german["train"]["source"]) == list(also_german["train"]["source"])
    assert "Datei öffnen" in [*german["train"]["target"], *german["validation"]["target"], *german["test"]["target"]]
    with pytest.raises(FileNotFoundError, match="'fr'") as caught:  # a root without catalogs
        load_corpus("gettext:fr", locale_dirs=[locale_tree / "missing"])
    assert "synthetic:reverse" in str(caught.value)
    with pytest.raises(ValueError, match="names language 'fr' but lang='de'"):
        load_corpus("gettext:fr", lang="de", locale_dirs=[locale_tree])


def test_synthetic_spec_passes_options() -> None:
    corpus = load_corpus("synthetic:reverse", train_size=7, validation_size=2, test_size=3, seed=5)
    assert {split: data.num_rows for split, data in corpus.items()} == {"train": 7, "validation": 2, "test": 3}
    assert all(t == " ".join(s.split(" ")[::-1]) for s, t in zip(corpus["train"]["source"], corpus["train"]["target"]))
    with pytest.raises(ValueError, match="valid tasks"):
        load_corpus("synthetic:rotate")
    with pytest.raises(ValueError, match="synthetic:reverse"):
        load_corpus("synthetic")


def test_file_and_folder_specs(tmp_path: Path) -> None:
    records = [{"source": f"s{index}", "target": f"t{index}"} for index in range(20)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    cache = tmp_path / "cache"
    from_file = load_corpus(str(train), validation_size=2, test_size=3, cache_dir=cache)
    assert {split: data.num_rows for split, data in from_file.items()} == {"train": 15, "validation": 2, "test": 3}
    (tmp_path / "test.jsonl").write_text(json.dumps({"source": "x", "target": "y"}) + "\n", encoding="utf-8")
    from_folder = load_corpus(tmp_path, validation_size=0, cache_dir=cache)
    assert from_folder["train"].num_rows == 20
    assert list(from_folder["test"]["source"]) == ["x"]
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        load_corpus(str(tmp_path / "absent.csv"))


def test_unknown_spec_lists_the_valid_forms() -> None:
    with pytest.raises(ValueError) as caught:
        load_corpus("wmt14")
    message = str(caught.value)
    for form in ("'gettext:<lang>'", "synthetic:<task>", "reverse", ".jsonl", "folder"):
        assert form in message
