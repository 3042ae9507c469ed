"""A text-to-text generation pipeline for every seq2seq model of the library.

transformers 5 removed the `translation` and `text2text-generation` pipelines (and their names cannot be registered
again), while `text-generation` treats an encoder-decoder model as a causal LM. `import hf_encdec` therefore
registers the task `"seq2seq-generation"`:

>>> from transformers import pipeline
>>> translate = pipeline("seq2seq-generation", model="path/to/checkpoint",
...                      model_kwargs={"use_kernels": False})                 # doctest: +SKIP
>>> translate("Open the file", num_beams=4, max_new_tokens=64)                # doctest: +SKIP
[{'generated_text': 'Datei öffnen'}]

This pipeline is the library's one path from text to translations: :func:`hf_encdec.inference.translate` runs it
over length-sorted batches with a progress bar.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, GenerationConfig, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

TASK = "seq2seq-generation"


class Seq2SeqGenerationPipeline(Pipeline):
    """Encode the input text, `generate()` with the given settings, decode each returned sequence.

    Inputs: a string, a list of strings or a generator of strings (then the outputs come as an iterator). Keyword
    arguments go to `generate()` (`num_beams`, `max_new_tokens`, `do_sample`, `num_return_sequences`, ...), except
    `skip_special_tokens` (decoding) and `truncation`/`max_length` of the tokenizer call, given as
    `tokenizer_kwargs={...}`. Each input gives a list with one `{"generated_text": ...}` per returned sequence.
    """

    _pipeline_calls_generate = True
    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _default_generation_config = GenerationConfig(max_new_tokens=128)

    def _sanitize_parameters(
        self,
        skip_special_tokens: bool | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        **generate_kwargs: Any,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        preprocess = {"tokenizer_kwargs": tokenizer_kwargs} if tokenizer_kwargs is not None else {}
        postprocess = {"skip_special_tokens": skip_special_tokens} if skip_special_tokens is not None else {}
        return preprocess, generate_kwargs, postprocess

    def preprocess(self, text: str, tokenizer_kwargs: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
        if not isinstance(text, str):
            raise TypeError(f"{TASK} takes a string or a list of strings, got {type(text).__name__}")
        return self.tokenizer(text, return_tensors="pt", **(tokenizer_kwargs or {}))

    def _forward(self, model_inputs: dict[str, torch.Tensor], **generate_kwargs: Any) -> dict[str, torch.Tensor]:
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        model_inputs.pop("token_type_ids", None)
        output_ids = self.model.generate(**model_inputs, **generate_kwargs)  # (B * num_return_sequences, T)
        # The Pipeline splits a batched output along its first axis, one row per input; grouping the returned
        # sequences by input keeps all of an input's sequences with it when num_return_sequences > 1.
        batch_size = model_inputs["input_ids"].shape[0]
        return {"output_ids": output_ids.reshape(batch_size, -1, output_ids.shape[-1])}  # (B, num_return_sequences, T)

    def postprocess(self, model_outputs: dict[str, torch.Tensor], skip_special_tokens: bool = True) -> list[dict[str, str]]:
        (sequences,) = model_outputs["output_ids"]  # one input: (num_return_sequences, T)
        return [
            {"generated_text": text.strip()}
            for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens)
        ]


def register_pipeline() -> None:
    """Register the `seq2seq-generation` task (idempotent)."""
    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            TASK, pipeline_class=Seq2SeqGenerationPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
        )
