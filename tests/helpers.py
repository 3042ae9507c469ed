"""Small real objects the tests share: tiny model builders and a word-level tokenizer built with `tokenizers`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hf_encdec import (
    DecoderConfig,
    DecoderForCausalLM,
    EncoderConfig,
    EncoderForMaskedLM,
    PointerGeneratorConfig,
    PointerGeneratorForConditionalGeneration,
    TransformerConfig,
    TransformerForConditionalGeneration,
)
from variants import BATCH, SOURCE_LEN, TARGET_LEN, TINY_TRANSFORMER, VOCAB, split_attn

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]


def word_level_tokenizer(words: list[str], *, add_eos: bool = True) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer: <pad>=0 <s>=1 </s>=2 <unk>=3 <mask>=4, then `words`."""
    vocab = {token: i for i, token in enumerate(SPECIALS + [w for w in words if w not in SPECIALS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if add_eos:
        backend.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 2)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def build(family: str, overrides: dict[str, Any] | None = None, **extra: Any) -> torch.nn.Module:
    """A tiny eval-mode model of `family` ('seq2seq', 'pointer_generator', 'encoder', 'decoder') with a variant's
    overrides."""
    kwargs, attn = split_attn(overrides or {})
    kwargs = {**TINY_TRANSFORMER, **kwargs, **extra}
    if family == "seq2seq":
        config = TransformerConfig(encoder_layers=2, decoder_layers=2, **kwargs)
        model_class = TransformerForConditionalGeneration
    elif family == "pointer_generator":
        config = PointerGeneratorConfig(encoder_layers=2, decoder_layers=2, **kwargs)
        model_class = PointerGeneratorForConditionalGeneration
    elif family == "encoder":
        config = EncoderConfig(num_hidden_layers=2, **kwargs)
        model_class = EncoderForMaskedLM
    elif family == "decoder":
        config = DecoderConfig(num_hidden_layers=2, **kwargs)
        model_class = DecoderForCausalLM
    else:
        raise ValueError(family)
    torch.manual_seed(0)
    return model_class._from_config(config, attn_implementation=attn).eval()


def token_ids(batch: int = BATCH, length: int = SOURCE_LEN, low: int = 5) -> torch.Tensor:
    """Random ids above the special tokens."""
    return torch.randint(low, VOCAB, (batch, length))


__all__ = ["TARGET_LEN", "build", "token_ids", "word_level_tokenizer"]


def run_without_hf_encdec(script: str, *args: str, home: Path) -> Any:
    """Run `script` (which blocks `import hf_encdec` itself) in a fresh Python, offline, with `home` as HF_HOME (where
    remote code is copied to), and return the JSON its last line prints; a failure shows the script's stderr."""
    completed = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": os.environ.get("PATH", ""), "HF_HOME": str(home)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def reverse_digits(tokenizer: PreTrainedTokenizerFast, count: int, *, length: int = 5, seed: int = 0) -> Any:
    """`count` tokenized pairs of the reversal task (a sequence of digits, the same digits backwards), a `Dataset`
    with `input_ids` and `labels`."""
    from datasets import Dataset

    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(count):
        digits = [str(int(i)) for i in torch.randint(0, 10, (length,), generator=generator)]
        rows.append({"source": " ".join(digits), "target": " ".join(reversed(digits))})
    return Dataset.from_list(rows).map(
        lambda row: {"input_ids": tokenizer(row["source"])["input_ids"], "labels": tokenizer(row["target"])["input_ids"]},
        remove_columns=["source", "target"],
    )


def train_on_reversal(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, dataset: Any, output_dir: Path,
                      **arguments: Any) -> Any:
    """Train `model` on `dataset` (`reverse_digits`) with transformers' `Seq2SeqTrainer` (evaluation generates), check
    that the loss falls by a fifth and that evaluation and prediction run, and return the trainer and the predictions
    of the first 4 pairs. `arguments` go to `Seq2SeqTrainingArguments`."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    args = Seq2SeqTrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=16, report_to=[], use_cpu=True, save_strategy="no",
        predict_with_generate=True, generation_max_length=8, per_device_eval_batch_size=32, disable_tqdm=True,
        **arguments,
    )
    trainer = Seq2SeqTrainer(
        model=model, args=args, train_dataset=dataset, eval_dataset=dataset.select(range(16)),
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model), processing_class=tokenizer,
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0] * 0.8, losses
    assert trainer.evaluate()["eval_loss"] < losses[0]
    predictions = trainer.predict(dataset.select(range(4))).predictions
    assert predictions.shape[0] == 4
    return trainer, predictions
