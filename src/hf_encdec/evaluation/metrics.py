"""Corpus-level translation metrics: sacreBLEU BLEU and chrF, the copy baseline, and Trainer glue.

Scores are corpus-level with sacreBLEU defaults (BLEU: 13a tokenisation, exponential smoothing; chrF: character
6-grams, beta 2), one reference per hypothesis. Every score comes with its sacreBLEU signature so a reported
number can be reproduced exactly (Post 2018, "A Call for Clarity in Reporting BLEU Scores", arXiv 1804.08771).

- `bleu_score` and `chrf_score` are the single place where numbers are computed: `corpus_scores`, the copy baseline,
  `compute_metrics` and the `evaluate` modules in `hf_encdec/metrics/` all call them.
- `copy_baseline_scores` scores the source sentences as if they were translations. A model that does not beat it
  has learnt nothing beyond copying (relevant for copy-heavy toy tasks and closely related languages).
- `build_compute_metrics` adapts `corpus_scores` to `Seq2SeqTrainer(predict_with_generate=True)`.
- `load_metric` loads the same metrics as `evaluate` modules shipped inside this package, so `evaluate.load` never
  has to reach the Hugging Face Hub (a metric loaded by name is fetched from the Hub; one loaded by the absolute path
  of its script is read from disk).
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sacrebleu

if TYPE_CHECKING:
    import datasets
    import evaluate
    from transformers import EvalPrediction, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = [
    "METRIC_MODULES",
    "bleu_score",
    "build_compute_metrics",
    "chrf_score",
    "mbr_order",
    "copy_baseline_scores",
    "corpus_scores",
    "evaluate_features",
    "load_metric",
    "metric_script_path",
    "reference_streams",
]

# Public metric name -> folder (and script) name under `hf_encdec/metrics/`.
METRIC_MODULES: dict[str, str] = {
    "bleu": "sacrebleu_local",
    "sacrebleu": "sacrebleu_local",
    "chrf": "chrf_local",
}


def _check_parallel(first: Sequence[str], second: Sequence[str], first_name: str, second_name: str) -> None:
    """Raise if two sentence lists are not a non-empty, equally long list of strings each."""
    for name, sentences in ((first_name, first), (second_name, second)):
        if isinstance(sentences, str):
            raise TypeError(f"{name} must be a list of sentences, got a single string: {sentences[:50]!r}")
        bad = [i for i, sentence in enumerate(sentences) if not isinstance(sentence, str)]
        if bad:
            raise TypeError(
                f"{name} must contain only strings; item {bad[0]} is {type(sentences[bad[0]]).__name__}"
            )
    if len(first) != len(second):
        raise ValueError(
            f"{first_name} and {second_name} must be parallel, got {len(first)} {first_name} "
            f"and {len(second)} {second_name}"
        )
    if len(first) == 0:
        raise ValueError(f"cannot score an empty corpus: {first_name} and {second_name} are both empty")


def bleu_score(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, Any]:
    """Corpus-level sacreBLEU BLEU with default settings (13a tokenisation, exponential smoothing).

    Args:
        hypotheses: detokenised system outputs, one per segment.
        references: per segment, one reference or a list of references (the same number for every segment).

    Returns:
        `{"score", "counts", "totals", "precisions", "bp", "sys_len", "ref_len", "signature"}` as sacreBLEU reports
        them; `score` is on the 0-100 scale and `signature` makes it reproducible.

    Raises:
        ValueError: `hypotheses` is empty, or segments have different numbers of references.
    """
    if len(hypotheses) == 0:
        raise ValueError("cannot score an empty corpus")
    bleu = sacrebleu.BLEU()
    result = bleu.corpus_score(list(hypotheses), reference_streams(references))
    return {
        "score": float(result.score),
        "counts": list(result.counts),
        "totals": list(result.totals),
        "precisions": [float(p) for p in result.precisions],
        "bp": float(result.bp),
        "sys_len": int(result.sys_len),
        "ref_len": int(result.ref_len),
        "signature": str(bleu.get_signature()),
    }


def chrf_score(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, Any]:
    """Corpus-level sacreBLEU chrF with default settings (character 6-grams, no word n-grams, beta 2).

    Args:
        hypotheses: detokenised system outputs, one per segment.
        references: per segment, one reference or a list of references (the same number for every segment).

    Returns:
        `{"score", "char_order", "word_order", "beta", "signature"}`; `score` is on the 0-100 scale.

    Raises:
        ValueError: `hypotheses` is empty, or segments have different numbers of references.
    """
    if len(hypotheses) == 0:
        raise ValueError("cannot score an empty corpus")
    chrf = sacrebleu.CHRF()
    result = chrf.corpus_score(list(hypotheses), reference_streams(references))
    return {
        "score": float(result.score),
        "char_order": int(result.char_order),
        "word_order": int(result.word_order),
        "beta": int(result.beta),
        "signature": str(chrf.get_signature()),
    }


def mbr_order(hypotheses: Sequence[str]) -> list[int]:
    """Minimum Bayes risk with chrF as the utility: the indices of `hypotheses`, highest expected chrF first.

    Each hypothesis is scored by its mean sentence chrF (sacreBLEU's, as :func:`chrf_score`) against every other
    hypothesis of the list, the list standing in for samples of the model's distribution (Kumar & Byrne 2004;
    Freitag et al. 2022 use chrF-like utilities). The consensus translation wins over an outlier that beam search
    happened to score highest. Ties keep the given order (beam search's, best first), so a list whose
    hypotheses all agree comes back unchanged.

    Beam search's best, the one hypothesis that disagrees with the rest, moves last:

    >>> mbr_order(["Datei schließen", "Datei öffnen", "Datei öffnen.", "Die Datei öffnen"])
    [3, 2, 1, 0]
    """
    if len(hypotheses) < 2:
        return list(range(len(hypotheses)))
    chrf = sacrebleu.CHRF()
    expected = [
        sum(chrf.sentence_score(hypothesis, [other]).score for j, other in enumerate(hypotheses) if j != i)
        for i, hypothesis in enumerate(hypotheses)
    ]
    return sorted(range(len(hypotheses)), key=lambda i: -expected[i])


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
    """Corpus-level sacreBLEU BLEU and chrF of `hypotheses` against one reference each.

    Args:
        hypotheses: detokenised system outputs, one per segment.
        references: detokenised references, parallel to `hypotheses`.

    Returns:
        `{"bleu": float, "chrf": float, "bleu_signature": str, "chrf_signature": str, "num_segments": int}`;
        scores are on sacreBLEU's 0-100 scale.

    Raises:
        ValueError: the lists differ in length or are empty.
        TypeError: an argument is a single string or contains a non-string.
    """
    _check_parallel(hypotheses, references, "hypotheses", "references")
    bleu = bleu_score(hypotheses, references)
    chrf = chrf_score(hypotheses, references)
    return {
        "bleu": bleu["score"],
        "chrf": chrf["score"],
        "bleu_signature": bleu["signature"],
        "chrf_signature": chrf["signature"],
        "num_segments": len(hypotheses),
    }


def repetition_rate(texts: Sequence[str], n: int = 2) -> float:
    """Repeated word n-grams per sentence: for each text, the n-grams (whitespace words) that repeat one earlier in
    the same text, averaged over the texts. Coverage (See et al. 2017) exists to lower it; compare a system with its
    references, which repeat too.

    >>> repetition_rate(["a b a b a b", "a b c"])  # 'a b' twice more and 'b a' once more in the first; none after
    1.5
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    if not texts:
        raise ValueError("texts is empty; nothing to measure")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    total = 0
    for text in texts:
        words = text.split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        total += len(grams) - len(set(grams))
    return total / len(texts)


def reference_streams(references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    """Transpose per-segment references into sacreBLEU's reference streams.

    `["r1", "r2"]` (one reference each) becomes `[["r1", "r2"]]`; `[["a1", "b1"], ["a2", "b2"]]` (two each) becomes
    `[["a1", "a2"], ["b1", "b2"]]`.

    Raises:
        ValueError: segments have different numbers of references.
    """
    per_segment = [[reference] if isinstance(reference, str) else list(reference) for reference in references]
    counts = sorted({len(group) for group in per_segment})
    if len(counts) > 1:
        raise ValueError(f"every segment needs the same number of references, got counts {counts}")
    return [list(stream) for stream in zip(*per_segment)]


def evaluate_features() -> list[datasets.Features]:
    """The input schemas of the shipped `evaluate` modules: one string prediction with one reference or a list.

    `datasets` is imported here rather than at module level so that scoring alone does not pay for it.
    """
    import datasets  # noqa: PLC0415

    return [
        datasets.Features(
            {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
        ),
        datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
    ]


def copy_baseline_scores(sources: list[str], references: list[str]) -> dict[str, Any]:
    """Scores of the copy-the-source baseline: each hypothesis is its source sentence unchanged.

    Same return value and errors as `corpus_scores`.
    """
    _check_parallel(sources, references, "sources", "references")
    return corpus_scores(list(sources), references)


def _as_token_ids(array: Any, name: str) -> np.ndarray:
    """Turn Trainer output (array, tuple of arrays, or nested lists) into a 2-D integer id matrix."""
    if isinstance(array, tuple):
        # The Trainer hands over a tuple when the model returns several outputs; generated ids come first.
        if not array:
            raise ValueError(f"{name} is an empty tuple")
        array = array[0]
    ids = np.asarray(array)
    if ids.ndim == 3:
        raise ValueError(
            f"{name} has shape {ids.shape}: these are logits, not generated ids. Use "
            "Seq2SeqTrainingArguments(predict_with_generate=True) so BLEU is computed on real translations."
        )
    if ids.ndim != 2:
        raise ValueError(f"{name} must be a (batch, length) matrix of token ids, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        if np.issubdtype(ids.dtype, np.floating) and np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)):
            ids = ids.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
    return ids.astype(np.int64, copy=False)


def build_compute_metrics(tokenizer: PreTrainedTokenizerBase) -> Callable[[EvalPrediction], dict[str, float]]:
    """Build a `compute_metrics` for `Seq2SeqTrainer(predict_with_generate=True)`.

    The returned function replaces -100 (the ignore index the collator pads labels with, and the value the Trainer
    pads predictions with across batches) by the pad id, maps ids outside the vocabulary (for instance extended-vocab
    copy ids of a pointer-generator) to `<unk>` (or pad), decodes with `skip_special_tokens=True`, strips, and scores
    with `corpus_scores`.

    Args:
        tokenizer: the tokenizer that produced the labels; it must define a pad token.

    Returns:
        A function `EvalPrediction -> {"bleu": float, "chrf": float, "gen_len": float}`, where `gen_len` is the mean
        number of non-pad tokens per generated sequence (the convention of the transformers translation example).

    Raises:
        ValueError: the tokenizer has no pad token.
    """
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token before building compute_metrics")
    unk_id = tokenizer.unk_token_id
    out_of_range_id = pad_id if unk_id is None else unk_id

    def clean(ids: np.ndarray, name: str) -> np.ndarray:
        ids = np.where(ids == -100, pad_id, ids)
        vocab_limit = len(tokenizer)  # read per call: tokens may be added after compute_metrics is built
        outside = (ids < 0) | (ids >= vocab_limit)
        if outside.any():
            logger.warning(
                "%d %s id(s) outside the tokenizer vocabulary [0, %d) decoded as %r",
                int(outside.sum()),
                name,
                vocab_limit,
                tokenizer.convert_ids_to_tokens(out_of_range_id),
            )
            ids = np.where(outside, out_of_range_id, ids)
        return ids

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        if eval_prediction.label_ids is None:
            raise ValueError("compute_metrics needs labels: the evaluation dataset has no 'labels' column")
        predictions = clean(_as_token_ids(eval_prediction.predictions, "predictions"), "predicted")
        labels = clean(_as_token_ids(eval_prediction.label_ids, "label_ids"), "label")
        hypotheses = [text.strip() for text in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
        references = [text.strip() for text in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        scores = corpus_scores(hypotheses, references)
        gen_len = float(np.mean(np.count_nonzero(predictions != pad_id, axis=1)))
        return {"bleu": scores["bleu"], "chrf": scores["chrf"], "gen_len": gen_len}

    return compute_metrics


def metric_script_path(name: str) -> Path:
    """Absolute path of the `evaluate` script shipped in the package for metric `name` (see `METRIC_MODULES`)."""
    key = name.lower()
    if key not in METRIC_MODULES:
        raise ValueError(f"unknown metric {name!r}; valid names: {', '.join(sorted(METRIC_MODULES))}")
    folder = METRIC_MODULES[key]
    path = Path(str(importlib.resources.files("hf_encdec") / "metrics" / folder / f"{folder}.py"))
    if not path.is_file():
        raise FileNotFoundError(
            f"metric script {path} is missing from the installed package; it ships as package data "
            "('metrics/*/*.py' in pyproject.toml) and must be installed from a regular directory, not a zip"
        )
    return path


def load_metric(name: str) -> evaluate.EvaluationModule:
    """Load `"bleu"`/`"sacrebleu"` or `"chrf"` as an `evaluate` module shipped in this package, fully offline.

    `evaluate.load("sacrebleu")` would look on the Hub; passing the absolute path of a local script never does.
    `evaluate` is imported here, not at module level, because importing it takes seconds.

    Raises:
        ValueError: `name` is not one of the shipped metrics (the message lists the valid names).
    """
    path = metric_script_path(name)
    import evaluate  # noqa: PLC0415 - slow import, only paid by callers that want an evaluate module

    logger.debug("loading evaluate metric %r from %s", name, path)
    return evaluate.load(str(path))
