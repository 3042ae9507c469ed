"""Sequence-level knowledge distillation (Kim & Rush 2016, arXiv 1606.07947): a trained autoregressive model
translates the training split, and a student (the non-autoregressive family above all) trains on its outputs, which
are less varied than human references (one mode per source instead of many).

`distill_corpus` writes a corpus folder that `hf-encdec train --data DIR` reads: `train.jsonl` with the teacher's
translations as targets (the reference where the teacher wrote nothing, which would otherwise drop the pair),
`validation.jsonl` and `test.jsonl` with the real references (so scores stay comparable), `tokenizer/` (the teacher's
tokenizer, which `train` then uses instead of training one: the student can draft for its teacher in speculative
decoding) and `distill.json` saying what made it. The training split is translated in chunks, each written atomically, so an
interrupted run continues where it stopped.

>>> from hf_encdec.training.distill import distill_corpus                                    # doctest: +SKIP
>>> distill_corpus("runs/main", "gettext:de", "runs/distilled-de")                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import datasets
from tqdm.auto import tqdm

from ..data import load_corpus
from ..data.files import TOKENIZER_DIR
from ..inference import load_translator, translate

logger = logging.getLogger(__name__)

MANIFEST = "distill.json"
CHUNKS = ".chunks"


def distill_settings(data: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The settings (teacher, original data, beams, ...) a distilled corpus folder was made with, or None when
    `data` is not one."""
    manifest = Path(data) / MANIFEST
    return json.loads(manifest.read_text())["settings"] if manifest.is_file() else None


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    """Write rows as JSON Lines through a temporary file, so a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _pairs(split: datasets.Dataset) -> list[dict[str, str]]:
    return [{"source": s, "target": t} for s, t in zip(split["source"], split["target"])]


def distill_corpus(
    teacher: str | Path,
    data: str,
    output_dir: str | Path,
    *,
    num_beams: int | None = None,
    batch_size: int = 64,
    max_new_tokens: int = 128,
    chunk_size: int = 2000,
    max_train_samples: int | None = None,
) -> dict[str, Any]:
    """Translate the training split of `data` with the model folder `teacher` and write the distilled corpus.

    `num_beams` defaults to the teacher's own generation config. Returns the manifest (also `distill.json`).

    Raises:
        FileNotFoundError: `teacher` is not a complete model folder, or `data` names missing files.
        ValueError: the corpus lacks a split, or `output_dir` holds a distillation of another teacher or corpus.
    """
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(data)
    for split in ("train", "validation", "test"):
        if split not in corpus or len(corpus[split]) == 0:
            raise ValueError(f"the corpus {data!r} has no {split} pairs; distillation needs train, validation and test")
    train = corpus["train"]
    if max_train_samples is not None:
        train = train.select(range(min(max_train_samples, len(train))))
    model, tokenizer = load_translator(teacher)
    # the student trains on the teacher's vocabulary (`hf-encdec train` uses it): a NAT can then draft for its teacher
    tokenizer.save_pretrained(output / TOKENIZER_DIR)
    beams = num_beams if num_beams is not None else model.generation_config.num_beams
    settings = {"teacher": str(Path(teacher).resolve()), "data": data, "num_beams": beams,
                "max_new_tokens": max_new_tokens, "train_pairs": len(train), "chunk_size": chunk_size}
    manifest_path = output / MANIFEST
    if manifest_path.is_file():
        previous = json.loads(manifest_path.read_text())
        if previous.get("settings") != settings:
            raise ValueError(
                f"{output} holds a distillation made with other settings ({previous.get('settings')}); choose another "
                "output folder or delete it"
            )
    manifest_path.write_text(json.dumps({"settings": settings, "complete": False}, indent=2))

    chunks = output / CHUNKS
    chunks.mkdir(exist_ok=True)
    started = time.perf_counter()
    starts = range(0, len(train), chunk_size)
    done = sum((chunks / f"{start:08d}.jsonl").is_file() for start in starts)
    if done:
        logger.info("resuming: %d of %d chunks already translated", done, len(starts))
    bar = tqdm(total=len(train), initial=min(done * chunk_size, len(train)), desc="distilling", unit="sent")
    for start in starts:
        path = chunks / f"{start:08d}.jsonl"
        if path.is_file():
            continue
        sources = train["source"][start : start + chunk_size]
        outputs = translate(model, tokenizer, sources, num_beams=beams, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, progress=False, protect=False)  # the teacher as it is
        write_jsonl(path, [{"source": s, "target": t} for s, t in zip(sources, outputs)])
        bar.update(len(sources))
    bar.close()

    distilled = [row for start in starts for row in _read_jsonl(chunks / f"{start:08d}.jsonl")]
    empty = 0
    for row, reference in zip(distilled, train["target"]):
        if not row["target"].strip():
            row["target"], empty = reference, empty + 1
    unchanged = sum(row["target"] == reference for row, reference in zip(distilled, train["target"]))
    write_jsonl(output / "train.jsonl", distilled)
    write_jsonl(output / "validation.jsonl", _pairs(corpus["validation"]))
    write_jsonl(output / "test.jsonl", _pairs(corpus["test"]))
    manifest = {
        "settings": settings,
        "complete": True,
        "splits": {"train": len(distilled), "validation": len(corpus["validation"]), "test": len(corpus["test"])},
        "train_targets_equal_to_the_reference": unchanged,
        "empty_teacher_outputs_replaced_by_the_reference": empty,
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    logger.info("wrote %s: %d distilled training pairs (%d equal to the reference)", output, len(distilled), unchanged)
    return manifest
