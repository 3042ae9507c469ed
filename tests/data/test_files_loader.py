"""The JSON/JSONL/CSV/TSV parallel-data loader, on real files in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_encdec.data.files import find_split_files, load_parallel_files

PAIRS = [(f"source sentence {index}", f"Zielsatz {index}") for index in range(40)]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A private datasets cache so tests neither read nor fill the user's."""
    return tmp_path / "hf_cache"


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


def as_pairs(dataset: object) -> list[tuple[str, str]]:
    return list(zip(dataset["source"], dataset["target"]))  # type: ignore[index]


@pytest.mark.parametrize("extension", [".json", ".jsonl", ".csv", ".tsv"])
def test_each_format_loads_the_exact_pairs(tmp_path: Path, cache_dir: Path, extension: str) -> None:
    path = tmp_path / f"data{extension}"
    records = [{"source": source, "target": target, "id": index} for index, (source, target) in enumerate(PAIRS)]
    if extension == ".json":
        path.write_text(json.dumps(records), encoding="utf-8")
    elif extension == ".jsonl":
        write_jsonl(path, records)
    else:
        separator = "\t" if extension == ".tsv" else ","
        lines = [separator.join(["id", "source", "target"])]
        lines += [separator.join([str(index), source, target]) for index, (source, target) in enumerate(PAIRS)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = load_parallel_files(path, validation_size=0, test_size=0, cache_dir=cache_dir)
    assert corpus["train"].column_names == ["source", "target"]
    assert as_pairs(corpus["train"]) == PAIRS
    assert corpus["validation"].num_rows == 0 and corpus["test"].num_rows == 0


def test_csv_and_tsv_cells_stay_text(tmp_path: Path, cache_dir: Path) -> None:
    csv_path = tmp_path / "data.csv"
    csv_path.write_text('source,target\n007,NA\n1.50,"Komma, ""zitiert"""\n', encoding="utf-8")
    assert as_pairs(load_parallel_files(csv_path, validation_size=0, test_size=0, cache_dir=cache_dir)["train"]) == [
        ("007", "NA"),
        ("1.50", 'Komma, "zitiert"'),
    ]
    tsv_path = tmp_path / "data.tsv"
    tsv_path.write_text('source\ttarget\n"quoted" start\tNone\nnull\tDatei »%s«\n', encoding="utf-8")
    assert as_pairs(load_parallel_files(tsv_path, validation_size=0, test_size=0, cache_dir=cache_dir)["train"]) == [
        ('"quoted" start', "None"),
        ("null", "Datei »%s«"),
    ]


def test_custom_columns_and_translation_format(tmp_path: Path, cache_dir: Path) -> None:
    custom = write_jsonl(tmp_path / "custom.jsonl", [{"en": "hello", "de": "hallo"}, {"en": "file", "de": "Datei"}])
    corpus = load_parallel_files(
        custom, source_column="en", target_column="de", validation_size=0, test_size=0, cache_dir=cache_dir
    )
    assert as_pairs(corpus["train"]) == [("hello", "hallo"), ("file", "Datei")]
    nested = write_jsonl(
        tmp_path / "nested.jsonl",
        [{"translation": {"en": "hello", "de": "hallo"}}, {"translation": {"en": "file", "de": "Datei"}}],
    )
    reverse = load_parallel_files(
        nested, source_lang="de", target_lang="en", validation_size=0, test_size=0, cache_dir=cache_dir
    )
    assert as_pairs(reverse["train"]) == [("hallo", "hello"), ("Datei", "file")]


def test_explicit_split_files_are_used_as_given(tmp_path: Path, cache_dir: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [{"source": s, "target": t} for s, t in PAIRS[:30]])
    validation = write_jsonl(tmp_path / "validation.jsonl", [{"source": s, "target": t} for s, t in PAIRS[30:35]])
    test = tmp_path / "test.csv"
    test.write_text("source,target\n" + "".join(f"{s},{t}\n" for s, t in PAIRS[35:]), encoding="utf-8")
    corpus = load_parallel_files(train, validation_file=validation, test_file=test, cache_dir=cache_dir)
    assert as_pairs(corpus["train"]) == PAIRS[:30]
    assert as_pairs(corpus["validation"]) == PAIRS[30:35]
    assert as_pairs(corpus["test"]) == PAIRS[35:]
    assert find_split_files(tmp_path) == {"train": train, "validation": validation, "test": test}


def test_held_out_splits_are_deterministic_disjoint_and_complete(tmp_path: Path, cache_dir: Path) -> None:
    path = write_jsonl(tmp_path / "all.jsonl", [{"source": s, "target": t} for s, t in PAIRS])
    first = load_parallel_files(path, validation_size=0.1, test_size=6, seed=1, cache_dir=cache_dir)
    again = load_parallel_files(path, validation_size=0.1, test_size=6, seed=1, cache_dir=cache_dir)
    other = load_parallel_files(path, validation_size=0.1, test_size=6, seed=2, cache_dir=cache_dir)
    assert {split: data.num_rows for split, data in first.items()} == {"train": 30, "validation": 4, "test": 6}
    assert all(as_pairs(first[split]) == as_pairs(again[split]) for split in first)
    assert set(as_pairs(first["test"])) != set(as_pairs(other["test"]))
    parts = [set(as_pairs(first[split])) for split in ("train", "validation", "test")]
    assert parts[0] | parts[1] | parts[2] == set(PAIRS)
    assert sum(map(len, parts)) == len(PAIRS)
    for split in ("train", "test"):  # the cut splits come in the shuffle's order, not the file's
        pairs = as_pairs(first[split])
        assert pairs != sorted(pairs, key=PAIRS.index)


def test_rows_with_a_blank_side_are_dropped(tmp_path: Path, cache_dir: Path) -> None:
    path = write_jsonl(
        tmp_path / "gaps.jsonl",
        [
            {"source": "keep", "target": "behalten"},
            {"source": "", "target": "leer"},
            {"source": "blank", "target": "   "},
            {"source": "missing", "target": None},
        ],
    )
    corpus = load_parallel_files(path, validation_size=0, test_size=0, cache_dir=cache_dir)
    assert as_pairs(corpus["train"]) == [("keep", "behalten")]


def test_missing_file_is_named(tmp_path: Path, cache_dir: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_parallel_files(missing, cache_dir=cache_dir)
    present = write_jsonl(tmp_path / "ok.jsonl", [{"source": "a", "target": "b"}])
    with pytest.raises(FileNotFoundError, match="test_file .*absent.csv"):
        load_parallel_files(present, test_file=tmp_path / "absent.csv", cache_dir=cache_dir)


def test_unknown_extension_lists_the_valid_ones(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ValueError, match=r"'\.parquet'.*\.json, \.jsonl, \.csv, \.tsv"):
        load_parallel_files(path, cache_dir=cache_dir)


def test_missing_columns_lists_the_columns_found(tmp_path: Path, cache_dir: Path) -> None:
    path = write_jsonl(tmp_path / "cols.jsonl", [{"english": "a", "german": "b"}])
    expected = r"no column\(s\) \['source', 'target'\]; columns found: \['english', 'german'\]"
    with pytest.raises(ValueError, match=expected):
        load_parallel_files(path, cache_dir=cache_dir)
    nested = write_jsonl(tmp_path / "nested.jsonl", [{"translation": {"en": "a", "de": "b"}}])
    with pytest.raises(ValueError, match=r"languages \['de', 'en'\]: pass source_lang and target_lang"):
        load_parallel_files(nested, cache_dir=cache_dir)
    with pytest.raises(ValueError, match=r"language\(s\) \['fr'\] not in the 'translation' column"):
        load_parallel_files(nested, source_lang="en", target_lang="fr", cache_dir=cache_dir)


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.jsonl", ""), ("header_only.csv", "source,target\n"), ("nothing.csv", "")],
)
def test_empty_data_is_an_error(tmp_path: Path, cache_dir: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=f"{name}.* empty"):
        load_parallel_files(path, cache_dir=cache_dir)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"source": "a", "target": "b"}\n{"source": "c", "tar\n', r"line 2 is not valid JSON \(Unterminated string"),
        ('{"source": "a", "target": "b"}\n\n["c", "d"]\n', "line 3 is a JSON list, not an object"),
    ],
    ids=["cut-off-object", "not-an-object"],
)
def test_a_broken_json_lines_file_names_the_file_and_the_line(
    tmp_path: Path, cache_dir: Path, content: str, problem: str
) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=f"train_file '{path}' could not be read: {problem}"):
        load_parallel_files(path, cache_dir=cache_dir)


def test_all_blank_rows_is_an_error(tmp_path: Path, cache_dir: Path) -> None:
    path = write_jsonl(tmp_path / "blank.jsonl", [{"source": " ", "target": "x"}])
    with pytest.raises(ValueError, match="no rows with both a source and a target"):
        load_parallel_files(path, cache_dir=cache_dir)


def test_hold_out_that_leaves_no_training_data_is_an_error(tmp_path: Path, cache_dir: Path) -> None:
    path = write_jsonl(tmp_path / "small.jsonl", [{"source": s, "target": t} for s, t in PAIRS[:3]])
    with pytest.raises(ValueError, match="leaving none to train on"):
        load_parallel_files(path, test_size=3, cache_dir=cache_dir)
    with pytest.raises(ValueError, match="fraction in"):
        load_parallel_files(path, test_size=1.5, cache_dir=cache_dir)
