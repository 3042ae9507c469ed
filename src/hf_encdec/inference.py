"""Loading a trained folder and translating with it: length-sorted batches, beam settings, a progress bar.

>>> from hf_encdec.inference import load_translator, translate      # doctest: +SKIP
>>> model, tokenizer = load_translator("runs/gettext-de")             # doctest: +SKIP
>>> translate(model, tokenizer, ["Open the file", "Quit"], num_beams=4)  # doctest: +SKIP
['Datei öffnen', 'Beenden']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .data.tokenizer import check_tokenizer_matches_model
from .pipelines import Seq2SeqGenerationPipeline

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def is_autoregressive(model: PreTrainedModel) -> bool:
    """Whether `model` writes one token after another (every family but the non-autoregressive one)."""
    return getattr(model, "generation_cache", "key_value") != "none"


def check_model_folder(path: str | Path) -> Path:
    """Raise a clear error when `path` is not a complete saved model (config, weights, tokenizer)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist; give the output folder of a finished training run")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        missing.append("model.safetensors")
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        missing.append("tokenizer.json")
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a complete model folder: missing {', '.join(missing)}. A training run writes them at the "
            "end; an interrupted run can be resumed (TrainOptions(resume=True) with the same output folder)"
        )
    return folder


def load_translator(
    path: str | Path, *, device: str | torch.device | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer of a saved seq2seq folder, checked against each other, in eval mode."""
    folder = check_model_folder(path)
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    except Exception as error:  # safetensors, json and torch each raise their own types for a damaged file
        raise RuntimeError(f"could not load the model in {folder} (corrupt or partial files?): {error}") from error
    tokenizer = AutoTokenizer.from_pretrained(folder)
    check_tokenizer_matches_model(tokenizer, model.config)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), tokenizer


def translate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    num_beams: int | None = None,
    max_new_tokens: int = 128,
    length_penalty: float | None = None,
    batch_size: int = 64,
    max_source_length: int | None = None,
    progress: bool = True,
    **generate_kwargs: object,
) -> list[str]:
    """Translate `texts`, longest first in batches of `batch_size` (little padding), returned in input order.

    A thin wrapper over the `seq2seq-generation` pipeline (:class:`~hf_encdec.pipelines.Seq2SeqGenerationPipeline`),
    which tokenizes, pads, generates greedily or with beams (no sampling) and decodes. Sources longer than
    `max_source_length` tokens are truncated (with a warning), as are sources longer than the model's learned
    positions. `num_beams` and `length_penalty` default to the model's generation config (a trained folder's beam
    size and validation-tuned length penalty).
    """
    if isinstance(texts, str):
        raise TypeError("translate() takes a list of strings; wrap a single sentence in a list")
    if not texts:
        return []
    limit = max_source_length
    if getattr(model.config, "position_type", None) == "learned":
        limit = min(limit or model.config.max_position_embeddings, model.config.max_position_embeddings)
    tokenizer_kwargs = {"truncation": True, "max_length": limit} if limit is not None else {}
    # Token lengths only order the batches and count the cut sources; the pipeline tokenizes again for the model.
    lengths = [len(ids) for ids in tokenizer(list(texts), **tokenizer_kwargs)["input_ids"]]
    if limit is not None:
        cut = sum(length >= limit for length in lengths)
        if cut:
            logger.warning("%d source(s) were cut to %d tokens", cut, limit)
    search = {key: value for key, value in (("num_beams", num_beams), ("length_penalty", length_penalty)) if value is not None}
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    translator = Seq2SeqGenerationPipeline(model=model, tokenizer=tokenizer, device=model.device)
    # A generator input makes the pipeline stream its outputs (in input order), so the bar moves as batches finish.
    outputs = translator(
        (texts[i] for i in order),
        batch_size=batch_size,
        tokenizer_kwargs=tokenizer_kwargs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        **search,
        **generate_kwargs,
    )
    bar = tqdm(outputs, total=len(texts), desc="translating", unit="sent", disable=not progress)
    results: list[str] = [""] * len(texts)
    for output, index in zip(bar, order):  # the bar first, so that it sees the end of the outputs and closes
        results[index] = output[0]["generated_text"]
    return results
