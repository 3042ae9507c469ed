"""The comparison a non-autoregressive run reports: mask-predict at several iteration counts against the
autoregressive teacher (greedy and beam) and the copy baseline, on the same test pairs; with the token-repetition
rate (the multi-modality problem made visible: a parallel decoder that cannot decide between two translations writes
parts of both, and repeated tokens are its most common symptom) and the translation speed at batch 1 and 32.

>>> repetition_rate([[5, 5, 6], [7, 8]])
0.2
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..evaluation import copy_baseline_scores, corpus_scores
from ..inference import is_autoregressive, load_translator, translate
from .distill import distill_settings

logger = logging.getLogger(__name__)

ITERATIONS = (1, 4, 10)
CTC_ITERATIONS = (2, 4)  # a CTC model trained with glancing, refined (one pass is its first row)
#: the speed is the median of SPEED_REPEATS timings over the first SPEED_SENTENCES pairs: a 2-core cloud machine's
#: speed drifts by 10% within a minute, so one timing of 64 sentences put the same two models 4.5x and 5.3x apart
SPEED_SENTENCES = 128
SPEED_REPEATS = 3


def repetition_rate(token_ids: Sequence[Sequence[int]]) -> float:
    """The share of tokens that repeat the token just before them (over all sequences)."""
    repeats = sum(sum(a == b for a, b in zip(ids, ids[1:])) for ids in token_ids)
    total = sum(len(ids) for ids in token_ids)
    return repeats / total if total else 0.0


def _text_repetition(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> float:
    return repetition_rate(tokenizer(list(texts), add_special_tokens=False)["input_ids"])


def _speed(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, sources: Sequence[str], **kwargs: Any) -> dict[str, float]:
    """Sentences per second over `sources` at batch 1 and batch 32 (after a warm-up call): the median of
    `SPEED_REPEATS` timings."""
    speeds = {}
    translate(model, tokenizer, list(sources[:2]), batch_size=2, progress=False, protect=False, **kwargs)
    for batch_size in (1, 32):
        timings = []
        for _ in range(SPEED_REPEATS):
            started = time.perf_counter()
            translate(model, tokenizer, list(sources), batch_size=batch_size, progress=False, protect=False, **kwargs)
            timings.append(time.perf_counter() - started)
        speeds[f"sentences/s (batch {batch_size})"] = round(len(sources) / statistics.median(timings), 2)
    return speeds


def _system(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    references: Sequence[str],
    **kwargs: Any,
) -> dict[str, Any]:
    hypotheses = translate(model, tokenizer, list(sources), progress=True, protect=False, **kwargs)
    scores = corpus_scores(hypotheses, list(references))
    row = {"BLEU": round(scores["bleu"], 2), "chrF": round(scores["chrf"], 2),
           "token repetition": round(_text_repetition(tokenizer, hypotheses), 4)}
    row.update(_speed(model, tokenizer, sources[:SPEED_SENTENCES], **kwargs))
    return row


def teacher_of(data: str) -> str | None:
    """The teacher model folder of a distilled corpus folder (its distill.json), or None."""
    settings = distill_settings(data)
    return None if settings is None else settings["teacher"]


def compare_decoding(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    references: Sequence[str],
    *,
    length_beam_size: int = 3,
    max_new_tokens: int = 128,
    teacher: str | None = None,
    undistilled: str | None = None,
    num_iterations: int = 10,
) -> dict[str, dict[str, Any]]:
    """{system: {BLEU, chrF, token repetition, sentences/s (batch 1), sentences/s (batch 32)}} on the same pairs:
    the NAT at each of `ITERATIONS` (length beam `length_beam_size`), in one pass with repeated tokens merged, and in
    one pass with its length candidates re-scored by the teacher (noisy parallel decoding), or a CTC model's one
    pass (and, trained with glancing, its refinement over each of `CTC_ITERATIONS`); the teacher folder's greedy and beam-4 output when given; when `undistilled` names a NAT run folder trained on the real references, its output at
    `num_iterations`; the references themselves (repetition only) and the copy baseline.

    Raises:
        ValueError: `undistilled` is not a non-autoregressive run folder.
    """
    rows: dict[str, dict[str, Any]] = {}
    teacher_model = load_translator(teacher, device=model.device) if teacher is not None else None
    if getattr(model.config, "is_ctc", False):
        logger.info("NAT test translation, one CTC pass")
        rows["NAT (CTC), one pass"] = _system(model, tokenizer, sources, references, max_new_tokens=max_new_tokens)
        if getattr(model.config, "glancing_ratio", 0) > 0:  # it saw its own alignment's tokens: it can refine
            for iterations in CTC_ITERATIONS:
                logger.info("NAT test translation, CTC refined over %d iterations", iterations)
                rows[f"NAT (CTC), T={iterations}"] = _system(
                    model, tokenizer, sources, references, num_iterations=iterations, max_new_tokens=max_new_tokens
                )
    else:
        for iterations in ITERATIONS:
            logger.info("NAT test translation, %d iteration(s), length beam %d", iterations, length_beam_size)
            rows[f"NAT, T={iterations}, length beam {length_beam_size}"] = _system(
                model, tokenizer, sources, references, num_iterations=iterations, length_beam_size=length_beam_size,
                max_new_tokens=max_new_tokens,
            )
        logger.info("NAT test translation, one pass, repeated tokens merged")
        rows[f"NAT, T=1, length beam {length_beam_size}, de-duplicated"] = _system(
            model, tokenizer, sources, references, num_iterations=1, length_beam_size=length_beam_size,
            max_new_tokens=max_new_tokens, deduplicate=True,
        )
        if teacher_model is not None and length_beam_size > 1:
            logger.info("NAT test translation, one pass, the %d length candidates re-scored by the teacher",
                        length_beam_size)
            rows[f"NAT, T=1, length beam {length_beam_size}, AR re-scoring"] = _system(
                model, tokenizer, sources, references, num_iterations=1, length_beam_size=length_beam_size,
                max_new_tokens=max_new_tokens, rescorer=teacher_model[0],
            )
    if undistilled is not None:
        other, other_tokenizer = load_translator(undistilled, device=model.device)
        if is_autoregressive(other):
            raise ValueError(
                f"undistilled={undistilled!r} holds a {other.config.model_type} model; it must be a NAT run folder "
                "(trained with --preset nat-small on the real references)"
            )
        logger.info("NAT without distillation (%s), %d iterations", undistilled, num_iterations)
        rows[f"NAT without distillation, T={num_iterations}, length beam {length_beam_size}"] = _system(
            other, other_tokenizer, sources, references, num_iterations=num_iterations,
            length_beam_size=length_beam_size, max_new_tokens=max_new_tokens,
        )
    if teacher_model is not None:
        for beams in (1, 4):
            logger.info("teacher test translation, beam %d", beams)
            rows[f"AR teacher, {'greedy' if beams == 1 else f'beam {beams}'}"] = _system(
                *teacher_model, sources, references, num_beams=beams, max_new_tokens=max_new_tokens
            )
    baseline = copy_baseline_scores(list(sources), list(references))
    rows["references"] = {"token repetition": round(_text_repetition(tokenizer, references), 4)}
    rows["copy the source"] = {"BLEU": round(baseline["bleu"], 2), "chrF": round(baseline["chrf"], 2),
                               "token repetition": round(_text_repetition(tokenizer, sources), 4)}
    return rows
