"""Parallel data from the user's own JSON, JSON Lines, CSV or TSV files.

Files are read with ``datasets.load_dataset`` (the packaged ``json`` and ``csv`` builders, nothing from the Hub) and
reduced to two string columns, ``source`` and ``target``, taken either from two named columns or from the Hugging Face
translation format ``{"translation": {"en": "...", "de": "..."}}``.

CSV and TSV cells are read as text exactly as written: every column is declared a string (``"007"`` stays
``"007"``), and ``NA``/``null``/``None`` are not turned into missing values. TSV is read without quote processing
(``csv.QUOTE_NONE``), so a ``"`` inside a sentence is kept; a TSV cell therefore cannot contain a tab or a newline.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets

logger = logging.getLogger(__name__)

__all__ = ["DATA_FILE_EXTENSIONS", "TOKENIZER_DIR", "carried_tokenizer", "find_split_files", "load_parallel_files"]

TOKENIZER_DIR = "tokenizer"
"""The subfolder in which a corpus folder carries the tokenizer to train on it with (see :func:`carried_tokenizer`)."""

DATA_FILE_EXTENSIONS: dict[str, str] = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv"}
"""File extension -> ``datasets`` builder that reads it."""

_STRING = datasets.Value("string")


def _builder_for(path: Path, role: str) -> str:
    """Return the ``datasets`` builder for ``path``, or raise naming the valid extensions."""
    builder = DATA_FILE_EXTENSIONS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(
            f"{role} {str(path)!r} has an unsupported extension {path.suffix!r}; valid extensions: "
            f"{', '.join(DATA_FILE_EXTENSIONS)}"
        )
    return builder


def _csv_header(path: Path, delimiter: str) -> list[str]:
    """Read the column names of a CSV/TSV file (its first row)."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle, delimiter=delimiter, quoting=quoting), [])


def _json_problem(path: Path) -> str | None:
    """Where a JSON Lines file is broken: its first line that is not one complete JSON object (None when the file
    is one valid JSON document, whose problem is then not a syntax error)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        json.loads(text)
        return None
    except json.JSONDecodeError:
        pass
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            return (f"line {number} is not valid JSON ({error.msg} at column {error.colno}); each line must be one "
                    'complete JSON object, e.g. {"source": "...", "target": "..."}')
        if not isinstance(row, dict):
            return f"line {number} is a JSON {type(row).__name__}, not an object with the pair's fields"
    return None


def _read_file(path: Path, role: str, cache_dir: str | os.PathLike[str] | None) -> datasets.Dataset:
    """Load one data file as a ``Dataset`` with the columns it has."""
    if not path.is_file():
        raise FileNotFoundError(f"{role} {str(path)!r} does not exist")
    builder = _builder_for(path, role)
    options: dict[str, Any] = {}
    if builder == "csv":
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        header = _csv_header(path, delimiter)
        if not header:
            raise ValueError(f"{role} {str(path)!r} is empty: no header row with column names")
        options = {
            "delimiter": delimiter,
            "keep_default_na": False,
            "na_filter": False,
            # Every column as text, so pandas does not turn "007" into 7 or "1.50" into 1.5.
            "features": datasets.Features({name: _STRING for name in header}),
        }
        if delimiter == "\t":
            options["quoting"] = csv.QUOTE_NONE
    elif path.stat().st_size == 0:
        raise ValueError(f"{role} {str(path)!r} is empty")
    try:
        dataset = datasets.load_dataset(
            builder,
            data_files={"train": str(path)},
            split="train",
            cache_dir=None if cache_dir is None else str(cache_dir),
            **options,
        )
    except ValueError as error:
        if "corresponds to no data" in str(error):  # a header-only CSV gives the builder no table at all
            raise ValueError(f"{role} {str(path)!r} is empty: no data rows") from error
        raise
    except datasets.exceptions.DatasetGenerationError as error:
        problem = _json_problem(path) if builder == "json" else None
        cause = error.__cause__ or error
        raise ValueError(
            f"{role} {str(path)!r} could not be read: {problem or f'{type(cause).__name__}: {cause}'}"
        ) from error
    assert isinstance(dataset, datasets.Dataset)  # split="train" returns one Dataset
    if dataset.num_rows == 0:
        raise ValueError(f"{role} {str(path)!r} is empty: no data rows")
    return dataset


def _as_text(value: Any) -> str | None:
    """Return a cell as text, or ``None`` for a missing or blank value."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def _to_pairs(
    dataset: datasets.Dataset,
    *,
    path: Path,
    source_column: str,
    target_column: str,
    source_lang: str | None,
    target_lang: str | None,
) -> datasets.Dataset:
    """Reduce a loaded file to ``source``/``target`` string columns, dropping rows with a missing side."""
    columns = dataset.column_names
    translation_languages: list[str] = []
    if "translation" in columns and isinstance(dataset.features["translation"], dict):
        translation_languages = sorted(dataset.features["translation"])

    if source_lang is not None or target_lang is not None:
        if source_lang is None or target_lang is None:
            raise ValueError("give both source_lang and target_lang, or neither")
        if translation_languages:
            missing = [lang for lang in (source_lang, target_lang) if lang not in translation_languages]
            if missing:
                raise ValueError(
                    f"{str(path)!r}: language(s) {missing} not in the 'translation' column; languages found: "
                    f"{translation_languages}"
                )

            def extract(batch: dict[str, list[Any]]) -> tuple[list[Any], list[Any]]:
                return (
                    [row.get(source_lang) if row else None for row in batch["translation"]],
                    [row.get(target_lang) if row else None for row in batch["translation"]],
                )

        elif (source_lang in columns and target_lang in columns) or (
            source_column in columns and target_column in columns
        ):
            # columns named after the languages, or else the source/target columns, the languages naming them
            if source_lang in columns and target_lang in columns:
                source_column, target_column = source_lang, target_lang

            def extract(batch: dict[str, list[Any]]) -> tuple[list[Any], list[Any]]:
                return batch[source_column], batch[target_column]

        else:
            raise ValueError(
                f"{str(path)!r}: source_lang={source_lang!r}/target_lang={target_lang!r} given, but the file has "
                f"neither a 'translation' column, nor columns named after the languages, nor {source_column!r}/"
                f"{target_column!r} columns; columns found: {columns}"
            )
    else:
        missing = [name for name in (source_column, target_column) if name not in columns]
        if missing:
            hint = (
                f"; it has a 'translation' column with languages {translation_languages}: pass source_lang and "
                "target_lang"
                if translation_languages
                else "; pass source_column and target_column"
            )
            raise ValueError(f"{str(path)!r} has no column(s) {missing}; columns found: {columns}{hint}")

        def extract(batch: dict[str, list[Any]]) -> tuple[list[Any], list[Any]]:
            return batch[source_column], batch[target_column]

    def convert(batch: dict[str, list[Any]]) -> dict[str, list[str]]:
        sources: list[str] = []
        targets: list[str] = []
        for raw_source, raw_target in zip(*extract(batch)):
            source, target = _as_text(raw_source), _as_text(raw_target)
            if source is not None and target is not None:
                sources.append(source)
                targets.append(target)
        return {"source": sources, "target": targets}

    pairs = dataset.map(
        convert,
        batched=True,
        remove_columns=columns,
        features=datasets.Features({"source": _STRING, "target": _STRING}),
        keep_in_memory=True,
        desc=f"reading {path.name}",
    )
    dropped = dataset.num_rows - pairs.num_rows
    if dropped:
        logger.warning("%s: dropped %d of %d rows with an empty or missing side", path, dropped, dataset.num_rows)
    if pairs.num_rows == 0:
        raise ValueError(f"{str(path)!r} has no rows with both a source and a target ({dataset.num_rows} rows read)")
    return pairs


def _split_size(value: float | int, name: str) -> float | int:
    """Validate a split size: a fraction in [0, 1) or a non-negative count."""
    if isinstance(value, bool) or value < 0 or (isinstance(value, float) and value >= 1):
        raise ValueError(f"{name} must be a fraction in [0, 1) or a non-negative count, got {value!r}")
    return value


def _hold_out(
    dataset: datasets.Dataset, count: int, *, name: str, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Split ``count`` rows off ``dataset`` with a seeded shuffle: ``(rest, held_out)``."""
    if count == 0:
        return dataset, dataset.select([])
    if count >= dataset.num_rows:
        raise ValueError(f"{name} takes {count} of the {dataset.num_rows} remaining rows, leaving none to train on")
    parts = dataset.train_test_split(test_size=count, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def load_parallel_files(
    train_file: str | os.PathLike[str],
    *,
    validation_file: str | os.PathLike[str] | None = None,
    test_file: str | os.PathLike[str] | None = None,
    source_column: str = "source",
    target_column: str = "target",
    source_lang: str | None = None,
    target_lang: str | None = None,
    validation_size: float | int = 0.05,
    test_size: float | int = 0.05,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> datasets.DatasetDict:
    """Load parallel text from ``.json``, ``.jsonl``, ``.csv`` or ``.tsv`` files.

    Columns: ``source_column``/``target_column`` (default ``source``/``target``); or, with ``source_lang`` and
    ``target_lang``, the HF translation format ``{"translation": {"en": ..., "de": ...}}`` or columns named after the
    languages. Rows with a missing or blank side are dropped (and counted in the log); other columns are dropped.

    A split without its own file is cut from the training file with a seeded shuffle (test first, then validation
    from the rest), so the same file and seed always give the same splits; the cut splits and the rest left for
    train come in the shuffle's order, so their first rows are a sample of them. A file given for a split keeps
    its order: its rows line up with the user's own references.

    Args:
        train_file: The training data (or all data, when the other splits are cut from it).
        validation_file: Optional validation data; else ``validation_size`` rows of ``train_file``.
        test_file: Optional test data; else ``test_size`` rows of ``train_file``.
        source_column: Column with the source text.
        target_column: Column with the target text.
        source_lang: Source language key of the translation format, or a column name; with neither, the language
            of the ``source_column`` (a label: the model card's language).
        target_lang: Target language, as ``source_lang``.
        validation_size: Fraction of ``train_file`` in [0, 1) or row count held out for validation when there is
            no ``validation_file`` (0: an empty split).
        test_size: Fraction of ``train_file`` in [0, 1) or row count held out for test when there is no
            ``test_file`` (0: an empty split).
        seed: Seed of the hold-out shuffle.
        cache_dir: ``datasets`` cache directory (default: the ``datasets`` default, ``HF_DATASETS_CACHE``).

    Returns:
        A ``DatasetDict`` with splits ``train``, ``validation``, ``test`` and string columns ``source``, ``target``.

    Raises:
        FileNotFoundError: If a file does not exist (the message names it).
        ValueError: For an unsupported extension (valid ones listed), missing columns (columns found listed), a file
            without usable rows, or split sizes that leave nothing to train on.
    """
    _split_size(validation_size, "validation_size")
    _split_size(test_size, "test_size")
    options = {
        "source_column": source_column,
        "target_column": target_column,
        "source_lang": source_lang,
        "target_lang": target_lang,
    }
    files: dict[str, Path | None] = {
        "train": Path(train_file),
        "validation": None if validation_file is None else Path(validation_file),
        "test": None if test_file is None else Path(test_file),
    }
    for role, path in files.items():  # fail on a bad name before reading anything
        if path is not None:
            if not path.is_file():
                raise FileNotFoundError(f"{role}_file {str(path)!r} does not exist")
            _builder_for(path, f"{role}_file")

    splits: dict[str, datasets.Dataset] = {}
    for role, path in files.items():
        if path is not None:
            splits[role] = _to_pairs(_read_file(path, f"{role}_file", cache_dir), path=path, **options)
    train = splits["train"]
    total = train.num_rows
    # Fractions are of the whole training file, so 0.1 means a tenth of it whichever split is cut first.
    counts = {
        name: round(size * total) if isinstance(size, float) else size
        for name, size in (("test_size", test_size), ("validation_size", validation_size))
    }
    if "test" not in splits:
        train, splits["test"] = _hold_out(train, counts["test_size"], name="test_size", seed=seed)
    if "validation" not in splits:
        train, splits["validation"] = _hold_out(
            train, counts["validation_size"], name="validation_size", seed=seed + 1
        )
    splits["train"] = train
    for role in ("validation", "test"):
        if splits[role].num_rows == 0:
            logger.warning("the %s split is empty (no %s_file and %s_size=0)", role, role, role)
    logger.info(
        "parallel files: train=%d validation=%d test=%d pairs (from %s)",
        splits["train"].num_rows,
        splits["validation"].num_rows,
        splits["test"].num_rows,
        ", ".join(str(path) for path in files.values() if path is not None),
    )
    return datasets.DatasetDict({role: splits[role] for role in ("train", "validation", "test")})


def find_split_files(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Find ``train.*``, ``validation.*`` and ``test.*`` data files in a directory.

    Args:
        directory: A folder holding ``train.<ext>`` and optionally ``validation.<ext>``, ``test.<ext>`` with an
            extension from :data:`DATA_FILE_EXTENSIONS`.

    Returns:
        ``{"train": path, ...}`` for the splits found.

    Raises:
        FileNotFoundError: If there is no ``train.<ext>`` (the message lists the files present), or a split has
            more than one candidate file.
    """
    folder = Path(directory)
    found: dict[str, Path] = {}
    for split in ("train", "validation", "test"):
        candidates: Sequence[Path] = [
            folder / f"{split}{extension}"
            for extension in DATA_FILE_EXTENSIONS
            if (folder / f"{split}{extension}").is_file()
        ]
        if len(candidates) > 1:
            raise FileNotFoundError(
                f"{str(folder)!r} has several {split} files ({', '.join(path.name for path in candidates)}); keep one"
            )
        if candidates:
            found[split] = candidates[0]
    if "train" not in found:
        present = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []
        raise FileNotFoundError(
            f"{str(folder)!r} has no train file (train{', train'.join(DATA_FILE_EXTENSIONS)}); files present: "
            f"{present or 'none'}"
        )
    return found


def carried_tokenizer(data: str | os.PathLike[str]) -> Path | None:
    """The tokenizer folder that the corpus folder `data` carries (``tokenizer/tokenizer.json``), or None (any other
    corpus). `hf-encdec train` uses it instead of training one: `hf-encdec distill` writes its teacher's there (the
    student can then draft for its teacher), `hf-encdec pretrain` the translation corpus's (the pre-trained model
    can then be fine-tuned on the translation corpus)."""
    folder = Path(data) / TOKENIZER_DIR
    return folder if (folder / "tokenizer.json").is_file() else None
