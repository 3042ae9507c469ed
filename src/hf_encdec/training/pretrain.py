"""Denoising pre-training (BART's text infilling) on the machine's own text, then fine-tuning on translation.

`hf-encdec pretrain` does two things:

1. writes a denoising corpus folder (:func:`write_denoising_corpus`): ``train.jsonl``, ``validation.jsonl``,
   ``test.jsonl`` with the pairs of :func:`~hf_encdec.data.denoising.build_denoising_corpus` (the target language's
   messages of the training packages and manual pages, as much English), ``tokenizer/`` - the tokenizer that
   ``hf-encdec train`` trains for the translation corpus with the same options - and ``denoising.json`` saying what
   made it;
2. trains the model on it with the training recipe (:func:`~hf_encdec.training.recipe.run_training`): a run folder
   like any other, resumable with ``--resume``.

``hf-encdec train --init-from PRETRAINED_RUN`` then fine-tunes: its tokenizer is trained again on the translation
corpus with the same options, comes out the same, and the warm start checks that it does.

>>> from hf_encdec.training.pretrain import pretrain                                          # doctest: +SKIP
>>> pretrain(TrainOptions(output_dir="runs/pretrained-de"), lang="de")                         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..data import load_corpus
from ..data.denoising import build_denoising_corpus
from ..data.files import TOKENIZER_DIR
from .distill import write_jsonl
from .recipe import TrainOptions, corpus_tokenizer, run_training

logger = logging.getLogger(__name__)

MANIFEST = "denoising.json"
TOKENIZER_OPTIONS = ("vocab_size", "tokenizer_model", "max_source_length", "max_target_length")


def write_denoising_corpus(
    output_dir: str | os.PathLike[str],
    options: TrainOptions,
    *,
    lang: str = "de",
    mask_ratio: float = 0.3,
    english_share: float = 1.0,
    man_dirs: list[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the denoising corpus folder for pre-training an English -> `lang` model with the tokenizer `options`
    give, and return its manifest. A folder written with the same settings is reused as it is.

    Raises:
        ValueError: `output_dir` holds a denoising corpus made with other settings.
    """
    output = Path(output_dir)
    settings = {"lang": lang, "mask_ratio": mask_ratio, "english_share": english_share, "seed": seed, "man_dirs": man_dirs,
                **{name: getattr(options, name) for name in TOKENIZER_OPTIONS}}
    manifest_path = output / MANIFEST
    if manifest_path.is_file():
        previous = json.loads(manifest_path.read_text())
        # a corpus written before english_share was a setting had as much English as target text
        previous["settings"] = {"english_share": 1.0, **previous.get("settings", {})}
        if previous["settings"] == settings and previous.get("complete"):
            logger.info("reusing the denoising corpus in %s", output)
            return previous
        if previous["settings"] != settings:
            raise ValueError(f"{output} holds a denoising corpus made with other settings ({previous['settings']}); "
                             "choose another corpus folder or delete it")
    started = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps({"settings": settings, "complete": False}, indent=2))
    corpus, report = build_denoising_corpus(lang, man_dirs=man_dirs, mask_ratio=mask_ratio,
                                            english_share=english_share, seed=seed)
    corpus_tokenizer(load_corpus(f"gettext:{lang}"), options).save_pretrained(output / TOKENIZER_DIR)
    for split, rows in corpus.items():
        write_jsonl(output / f"{split}.jsonl", rows.to_list())
    manifest = {"settings": settings, "complete": True, "contents": report,
                "minutes": round((time.perf_counter() - started) / 60, 2)}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    logger.info("wrote the denoising corpus %s: %s pairs", output, {split: len(rows) for split, rows in corpus.items()})
    return manifest


def pretrain(
    options: TrainOptions,
    *,
    lang: str = "de",
    corpus_dir: str | os.PathLike[str] | None = None,
    mask_ratio: float = 0.3,
    english_share: float = 1.0,
    man_dirs: list[str] | None = None,
) -> dict[str, Any]:
    """Write (or reuse) the denoising corpus in `corpus_dir` (default: ``<output_dir>-corpus``) and train
    `options`' model on it into `options.output_dir`; return the run's report. `options.data` is not read: the
    corpus is the denoising one."""
    folder = Path(corpus_dir) if corpus_dir is not None else Path(f"{options.output_dir}-corpus")
    write_denoising_corpus(folder, options, lang=lang, mask_ratio=mask_ratio, english_share=english_share,
                           man_dirs=man_dirs, seed=options.seed)
    return run_training(dataclasses.replace(options, data=str(folder)))
