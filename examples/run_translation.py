"""Translation training or fine-tuning with the Seq2SeqTrainer, offline, scored with BLEU and chrF.

Pairs longer than ``--max_source_length``/``--max_target_length`` tokens are dropped from training (a cut pair would
teach stopping mid-sentence); every evaluation and test pair is kept (an over-long source is cut, with a warning), and
the test translations are scored against the untouched references.
Evaluation and prediction generate (``--predict_with_generate``, beams from ``--generation_num_beams`` or the model's
generation config) and write ``eval_bleu``/``eval_chrf`` (``predict_*`` for the test split) to ``all_results.json``;
``--do_predict`` also writes ``predictions.jsonl`` (source, reference, translation).

    # domain adaptation: fine-tune the main job's run folder on half of git's messages, test on the other half
    python examples/run_translation.py --model_name_or_path runs/main --dataset_name gettext:de --dataset_package git \\
        --do_train --do_predict --predict_with_generate --max_steps 300 --output_dir runs/adapt-git
    # the score before adapting: the same without --do_train
    # from scratch with transformers' Marian: --model_type marian --config_overrides "d_model=256,..." --dataset_name gettext:de
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from transformers import (
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)

from hf_encdec.data.tokenizer import tokenize_pairs
from hf_encdec.evaluation.metrics import build_compute_metrics, corpus_scores
from hf_encdec.training import scripts
from hf_encdec.training.scripts import DataArguments, ModelArguments

logger = logging.getLogger(__name__)


@dataclass
class TranslationArguments:
    dataset_package: str | None = field(
        default=None, metadata={"help": "With a gettext corpus: fine-tune on half of this package, test on the rest."}
    )
    max_source_length: int = field(default=128, metadata={"help": "Longest source kept, in tokens."})
    max_target_length: int = field(default=128, metadata={"help": "Longest target kept, in tokens."})


def pair_texts(corpus: datasets.DatasetDict):
    yield from scripts.text_iterator(corpus["train"], "source")
    yield from scripts.text_iterator(corpus["train"], "target")


def encode_for_scoring(
    pairs: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, args: TranslationArguments
) -> datasets.Dataset:
    """Every pair of a split that is scored: none is dropped; a source over ``--max_source_length`` tokens is cut
    (and counted in the log), and so are labels over ``--max_target_length`` (they only give the loss)."""

    def encode(batch: dict[str, list[str]]) -> dict[str, list]:
        encoded = tokenizer(batch["source"], truncation=True, max_length=args.max_source_length,
                            return_token_type_ids=False)
        encoded["labels"] = tokenizer(text_target=batch["target"], truncation=True,
                                      max_length=args.max_target_length)["input_ids"]
        return encoded

    cut = sum(len(ids) > args.max_source_length for ids in tokenizer(list(pairs["source"]))["input_ids"])
    if cut:
        logger.warning("%d of %d sources are longer than --max_source_length %d tokens and are cut", cut, len(pairs),
                       args.max_source_length)
    return pairs.map(encode, batched=True, remove_columns=pairs.column_names)


def write_predictions(path: Path, pairs: datasets.Dataset, hypotheses: list[str]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for source, reference, hypothesis in zip(pairs["source"], pairs["target"], hypotheses):
            handle.write(json.dumps({"source": source, "reference": reference, "translation": hypothesis},
                                    ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, tr_args, training_args = scripts.parse_arguments(
        (ModelArguments, DataArguments, TranslationArguments, Seq2SeqTrainingArguments), argv
    )
    scripts.setup_logging(training_args)
    corpus = scripts.load_splits(data_args, task="translation")
    if tr_args.dataset_package is not None:
        corpus = scripts.package_halves(corpus, tr_args.dataset_package)
    tokenizer = scripts.get_tokenizer(model_args, training_args, lambda: pair_texts(corpus),
                              model_max_length=max(tr_args.max_source_length, tr_args.max_target_length))
    model = scripts.build_model(AutoModelForSeq2SeqLM, model_args, tokenizer, seed=training_args.seed)
    if model_args.model_name_or_path is None:  # a fresh model stops at </s>, decodes up to the target limit
        model.generation_config.max_length = tr_args.max_target_length + 1
    raw = scripts.requested_splits(corpus, data_args, training_args)
    with training_args.main_process_first(desc="tokenizing"):
        encoded = {split: encode_for_scoring(part, tokenizer, tr_args) for split, part in raw.items() if split != "train"}
        if "train" in raw:
            encoded["train"] = tokenize_pairs(raw["train"], tokenizer, max_source_length=tr_args.max_source_length,
                                              max_target_length=tr_args.max_target_length)
    trainer = Seq2SeqTrainer(
        model=model, args=training_args, train_dataset=encoded.get("train"), eval_dataset=encoded.get("validation"),
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model), processing_class=tokenizer,
        compute_metrics=build_compute_metrics(tokenizer) if training_args.predict_with_generate else None,
    )

    def score(prefix: str, data: datasets.Dataset) -> dict[str, float]:
        if prefix == "eval":
            return trainer.evaluate(data)
        output = trainer.predict(data, metric_key_prefix=prefix)
        metrics = dict(output.metrics)
        if training_args.predict_with_generate:
            ids = np.where(output.predictions < 0, tokenizer.pad_token_id, output.predictions)
            ids = np.where(ids >= len(tokenizer), tokenizer.unk_token_id, ids)
            hypotheses = [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
            # scored against the untouched reference texts (the labels above may be cut to --max_target_length)
            scores = corpus_scores(hypotheses, list(raw["test"]["target"]))
            metrics.update(predict_bleu=scores["bleu"], predict_chrf=scores["chrf"])
            if trainer.is_world_process_zero():
                write_predictions(Path(training_args.output_dir) / "predictions.jsonl", raw["test"], hypotheses)
        return metrics

    return scripts.train_and_score(trainer, training_args, encoded, score=score)


if __name__ == "__main__":
    main()
