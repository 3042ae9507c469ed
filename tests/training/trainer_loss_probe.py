"""Run one Seq2SeqTrainer step of a tiny model on a fixed 4-example batch and print, as JSON on rank 0, the logged
loss and a checksum of the updated weights.

Usage: python trainer_loss_probe.py FAMILY OUT_DIR BATCH_SIZE GRAD_ACCUM   (FAMILY: transformer or rnn; also under
torchrun --nproc_per_node 2). Targets have different lengths, so a per-micro-batch mean would log (and step)
differently from the token mean over the whole batch.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerFast, Seq2SeqTrainer, Seq2SeqTrainingArguments

from hf_encdec import (
    RNNSeq2SeqConfig,
    RNNSeq2SeqForConditionalGeneration,
    TransformerConfig,
    TransformerForConditionalGeneration,
)


def build(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if family == "transformer":
        config = TransformerConfig(
            vocab_size=50, hidden_size=32, num_attention_heads=4, intermediate_size=37, encoder_layers=1,
            decoder_layers=1, dropout=0.0,
        )
        return TransformerForConditionalGeneration(config)
    config = RNNSeq2SeqConfig(
        vocab_size=50, embedding_size=24, hidden_size=32, encoder_layers=1, decoder_layers=1, rnn_type="gru",
        attention_type="bahdanau", input_feeding=False, dropout=0.0,
    )
    return RNNSeq2SeqForConditionalGeneration(config)


def main() -> None:
    family, out_dir, batch_size, accumulation = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model = build(family)
    lengths = [2, 9, 4, 12]
    rows = [
        {"input_ids": [5 + i, 6 + i, 7 + i, 2], "labels": [(5 + i + j) % 45 + 5 for j in range(n)] + [2]}
        for i, n in enumerate(lengths)
    ]
    args = Seq2SeqTrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
        max_steps=1, learning_rate=0.1, optim="sgd", lr_scheduler_type="constant", logging_steps=1, report_to=[],
        use_cpu=True, save_strategy="no", ddp_find_unused_parameters=False, disable_tqdm=True, seed=0,
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}, unk_token="<unk>")),
        pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
    )
    trainer = Seq2SeqTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows),
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    checksum = sum(float((p.double() * (i + 1)).sum()) for i, p in enumerate(model.parameters()))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"loss": losses[0], "weights": checksum, "world_size": int(os.environ.get("WORLD_SIZE", "1"))}))


if __name__ == "__main__":
    main()
