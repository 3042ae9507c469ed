"""Built-in synthetic tasks: correct targets, determinism, disjoint splits, clear errors."""

from __future__ import annotations

import pytest

from hf_encdec.data.synthetic import SYNTHETIC_TASKS, load_synthetic, make_vocab, synthetic_target

SIZES = {"train_size": 200, "validation_size": 30, "test_size": 40}


def expected_target(task: str, source: str) -> str:
    """The task written out independently, for the default digit vocabulary."""
    tokens = source.split(" ")
    if task == "copy":
        result = tokens
    elif task == "reverse":
        result = tokens[::-1]
    elif task == "sort":
        result = sorted(tokens, key=int)
    elif task == "shift":
        result = [str((int(token) + 1) % 10) for token in tokens]
    elif task == "duplicate":
        result = tokens * 2
    else:
        raise AssertionError(task)
    return " ".join(result)


@pytest.mark.parametrize("task", sorted(SYNTHETIC_TASKS))
def test_targets_are_correct_and_shapes_bounded(task: str) -> None:
    corpus = load_synthetic(task, min_length=2, max_length=6, **SIZES)
    assert {split: data.num_rows for split, data in corpus.items()} == {"train": 200, "validation": 30, "test": 40}
    for data in corpus.values():
        assert data.column_names == ["source", "target"]
        for source, target in zip(data["source"], data["target"]):
            tokens = source.split(" ")
            assert 2 <= len(tokens) <= 6
            assert set(tokens) <= set("0123456789")
            assert target == expected_target(task, source)


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = load_synthetic("reverse", seed=3, **SIZES)
    again = load_synthetic("reverse", seed=3, **SIZES)
    other = load_synthetic("reverse", seed=4, **SIZES)
    for split in first:
        assert first[split]["source"] == again[split]["source"]
    assert first["train"]["source"] != other["train"]["source"]


def test_the_first_rows_of_a_split_have_its_length_distribution() -> None:
    corpus = load_synthetic("reverse", min_length=2, max_length=6, **SIZES)
    for split, data in corpus.items():  # rows come in the order drawn: not sorted by length or symbol
        lengths = [len(source.split(" ")) for source in data["source"]]
        assert len(set(lengths[:20])) >= 4, split
        assert lengths != sorted(lengths) and data["source"] != sorted(data["source"])


def test_splits_are_disjoint_and_test_is_stable_across_train_sizes() -> None:
    corpus = load_synthetic("copy", vocab=4, min_length=1, max_length=5, **SIZES)
    train, validation, test = (set(corpus[split]["source"]) for split in ("train", "validation", "test"))
    assert len(train) == 200 and len(validation) == 30 and len(test) == 40  # no repeats inside a split either
    assert not train & validation and not train & test and not validation & test
    bigger = load_synthetic("copy", vocab=4, min_length=1, max_length=5, **{**SIZES, "train_size": 400})
    assert bigger["test"]["source"] == corpus["test"]["source"]


def test_sort_and_shift_follow_vocabulary_order_not_string_order() -> None:
    assert synthetic_target("sort", "b 0 a 9", vocab=12) == "0 9 a b"
    assert synthetic_target("sort", "x z y", vocab=["z", "y", "x"]) == "z y x"
    assert synthetic_target("shift", "z x y", vocab=["x", "y", "z"]) == "x y z"
    assert synthetic_target("shift", "9 b", vocab=12) == "a 0"


def test_custom_symbols_are_used() -> None:
    corpus = load_synthetic("reverse", vocab=["cat", "dog", "emu"], train_size=20, validation_size=5, test_size=5)
    assert {token for source in corpus["train"]["source"] for token in source.split(" ")} <= {"cat", "dog", "emu"}


def test_unknown_task_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="valid tasks: copy, duplicate, reverse, shift, sort"):
        load_synthetic("rotate")


def test_requesting_more_sequences_than_exist_is_an_error() -> None:
    with pytest.raises(ValueError, match="only 14 exist"):  # 2 + 4 + 8 binary sequences of length 1..3
        load_synthetic("copy", vocab=2, min_length=1, max_length=3, train_size=10, validation_size=2, test_size=2)


@pytest.mark.parametrize("vocab", [1, 63, ["a", "a"], ["a b", "c"], [""]])
def test_bad_vocabularies_are_rejected(vocab: object) -> None:
    with pytest.raises(ValueError, match="vocab"):
        make_vocab(vocab)  # type: ignore[arg-type]


def test_bad_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="min_length=5, max_length=3"):
        load_synthetic("copy", min_length=5, max_length=3)
