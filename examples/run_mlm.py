"""Masked-language-model pretraining or fine-tuning (BERT-style) with the Trainer, offline.

Texts are tokenized, concatenated and cut into blocks of ``--max_seq_length`` tokens; 15% of the tokens are chosen
for prediction, of which 80% become ``<mask>``, 10% a random token and 10% stay (``DataCollatorForLanguageModeling``,
Devlin et al. 2018). The validation blocks are masked once, with a fixed seed, so every model is scored on the same
masked positions; ``all_results.json`` gets ``eval_loss`` and ``perplexity`` = exp(eval_loss).

    # our encoder from scratch on the installed manual pages, with a WordPiece tokenizer trained on them
    python examples/run_mlm.py --model_type hf_encdec_encoder \\
        --config_overrides "hidden_size=256,num_hidden_layers=4,num_attention_heads=4,intermediate_size=1024" \\
        --dataset_name manpages --tokenizer_type wordpiece --do_train --do_eval --max_steps 1000 \\
        --output_dir runs/mlm-encoder
    # the same with transformers' BERT: --model_type bert; under two processes: torchrun --nproc_per_node 2 ...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments
from transformers.data.data_collator import default_data_collator

from hf_encdec.training import scripts
from hf_encdec.training.scripts import DataArguments, ModelArguments

logger = logging.getLogger(__name__)


@dataclass
class MLMArguments:
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per block."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens to predict."})


class MaskingCollator:
    """Masks training batches afresh each time; passes through examples that were masked already (the fixed
    validation set), only stacking them."""

    def __init__(self, masking: DataCollatorForLanguageModeling) -> None:
        self.masking = masking

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if "labels" in features[0]:
            return default_data_collator(features)
        return self.masking(features)


def mask_once(blocks: datasets.Dataset, masking: DataCollatorForLanguageModeling, seed: int) -> datasets.Dataset:
    """The blocks with inputs and labels masked once, reproducibly (the same positions for every model)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        masked = masking([{"input_ids": ids} for ids in blocks["input_ids"]])
    finally:
        torch.random.set_rng_state(generator_state)
    return datasets.Dataset.from_dict(
        {"input_ids": masked["input_ids"].tolist(), "attention_mask": [[1] * len(ids) for ids in blocks["input_ids"]],
         "labels": masked["labels"].tolist()}
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, mlm_args, training_args = scripts.parse_arguments(
        (ModelArguments, DataArguments, MLMArguments, TrainingArguments), argv
    )
    scripts.setup_logging(training_args)
    corpus = scripts.load_splits(data_args, task="text")
    tokenizer = scripts.get_tokenizer(
        model_args, training_args, lambda: scripts.text_iterator(corpus["train"]),
        model_max_length=mlm_args.max_seq_length,
    )
    if tokenizer.mask_token is None:
        raise ValueError(f"the tokenizer of {model_args.tokenizer_name or model_args.model_name_or_path} has no mask "
                         "token; masked-LM training needs one")
    with training_args.main_process_first(desc="tokenizing"):
        blocks = scripts.group_texts(scripts.tokenize_texts(corpus, tokenizer), mlm_args.max_seq_length)
    masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_args.mlm_probability)
    model = scripts.build_model(
        AutoModelForMaskedLM, model_args, tokenizer, seed=training_args.seed,
        extra=None if model_args.model_name_or_path else {"max_position_embeddings": mlm_args.max_seq_length},
    )
    # the held-out blocks are masked once, each split with its own seed, so every model is scored on the same positions
    splits = {split: data if split == "train" else mask_once(data, masking, training_args.seed + (split == "test"))
              for split, data in scripts.requested_splits(blocks, data_args, training_args).items()}
    trainer = Trainer(
        model=model, args=training_args, train_dataset=splits.get("train"), eval_dataset=splits.get("validation"),
        data_collator=MaskingCollator(masking), processing_class=tokenizer,
    )
    return scripts.train_and_score(trainer, training_args, splits, with_perplexity=True)


if __name__ == "__main__":
    main()
