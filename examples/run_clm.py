"""Causal-language-model training or fine-tuning (GPT-2 / Llama-style) with the Trainer, offline.

Texts are tokenized, concatenated (each ends in ``</s>``) and cut into blocks of ``--block_size`` tokens; the model
learns to predict each next token. ``all_results.json`` gets ``eval_loss`` and ``perplexity`` = exp(eval_loss), and
``samples.json`` a few continuations of held-out openings (greedy with a repetition penalty, and sampled).

    # our GPT-2-like decoder from scratch on the installed manual pages
    python examples/run_clm.py --model_type hf_encdec_decoder \\
        --config_overrides "hidden_size=256,num_hidden_layers=4,num_attention_heads=4,intermediate_size=1024" \\
        --dataset_name manpages --do_train --do_eval --max_steps 1000 --output_dir runs/clm-decoder
    # transformers' GPT-2 of the same size: --model_type gpt2 --config_overrides "hidden_size=256,...";
    # the Llama block: --preset decoder-small-llama (ours) or --model_type llama
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments
from transformers.data.data_collator import default_data_collator

from hf_encdec.training import scripts
from hf_encdec.training.scripts import DataArguments, ModelArguments

logger = logging.getLogger(__name__)


@dataclass
class CLMArguments:
    block_size: int = field(default=128, metadata={"help": "Tokens per training block."})
    num_samples: int = field(default=3, metadata={"help": "Continuations written to samples.json (0: none)."})
    sample_prompt_words: int = field(default=8, metadata={"help": "Words of a held-out text that open a sample."})
    sample_new_tokens: int = field(default=40, metadata={"help": "Tokens generated per sample."})


def with_labels(blocks: datasets.DatasetDict) -> datasets.DatasetDict:
    """Labels are the inputs: the models shift them by one position themselves."""
    return blocks.map(lambda batch: {"labels": batch["input_ids"]}, batched=True)


def write_samples(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], args: CLMArguments, path: Path
) -> list[dict[str, str]]:
    """Continue the first words of held-out texts, greedily and by sampling, and save them as JSON."""
    samples = []
    model.eval()
    for text in texts[: args.num_samples]:
        prompt = " ".join(text.split()[: args.sample_prompt_words])
        # no </s> after the prompt: the model continues the text
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
        row = {"prompt": prompt}
        with torch.no_grad():
            greedy = model.generate(ids, max_new_tokens=args.sample_new_tokens, do_sample=False, repetition_penalty=1.3,
                                    pad_token_id=tokenizer.pad_token_id)
            torch.manual_seed(0)
            sampled = model.generate(ids, max_new_tokens=args.sample_new_tokens, do_sample=True, top_p=0.9,
                                     temperature=0.8, pad_token_id=tokenizer.pad_token_id)
        row["greedy"] = tokenizer.decode(greedy[0, ids.shape[1]:], skip_special_tokens=True)
        row["sampled"] = tokenizer.decode(sampled[0, ids.shape[1]:], skip_special_tokens=True)
        samples.append(row)
    path.write_text(json.dumps(samples, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return samples


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, clm_args, training_args = scripts.parse_arguments(
        (ModelArguments, DataArguments, CLMArguments, TrainingArguments), argv
    )
    scripts.setup_logging(training_args)
    corpus = scripts.load_splits(data_args, task="text")
    tokenizer = scripts.get_tokenizer(
        model_args, training_args, lambda: scripts.text_iterator(corpus["train"]), model_max_length=clm_args.block_size
    )
    with training_args.main_process_first(desc="tokenizing"):
        blocks = with_labels(scripts.group_texts(scripts.tokenize_texts(corpus, tokenizer), clm_args.block_size))
    model = scripts.build_model(AutoModelForCausalLM, model_args, tokenizer, seed=training_args.seed)
    limit = getattr(model.config, "max_position_embeddings", None)
    if model.config.model_type != "llama" and limit is not None and clm_args.block_size > limit:
        raise ValueError(f"--block_size {clm_args.block_size} is longer than the model's {limit} positions")
    if getattr(model, "loss_type", None) is None:
        # transformers' Trainer divides a causal LM's summed loss by the labels of `labels[..., 1:]` only when the
        # model's loss_type names ForCausalLMLoss; GPT2LMHeadModel's is unset (its loss falls back to ForCausalLMLoss
        # all the same), so the Trainer counted the never-predicted first label of every block too, and reported
        # GPT-2's eval loss as (T-1)/T of its mean: a perplexity 4% too low at T = 128 (README, side by side)
        model.loss_type = "ForCausalLM"
    splits = scripts.requested_splits(blocks, data_args, training_args)
    trainer = Trainer(
        model=model, args=training_args, train_dataset=splits.get("train"), eval_dataset=splits.get("validation"),
        data_collator=default_data_collator, processing_class=tokenizer,
    )
    # pushed below, with the samples
    results = scripts.train_and_score(trainer, training_args, splits, with_perplexity=True, push=False)
    held_out = "test" if "test" in corpus else "validation"
    if clm_args.num_samples and trainer.is_world_process_zero() and held_out in corpus:
        samples = write_samples(trainer.model, tokenizer, corpus[held_out]["text"][: clm_args.num_samples], clm_args,
                                Path(training_args.output_dir) / "samples.json")
        for sample in samples:
            logger.info("sample: %s || %s", sample["prompt"], sample["greedy"])
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return results


if __name__ == "__main__":
    main()
