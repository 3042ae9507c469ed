"""Sequence classification with the Trainer, offline: from scratch, or fine-tuned from a masked-LM checkpoint.

Each text is cut to ``--max_seq_length`` tokens; the model reads it and predicts its ``label``. ``all_results.json``
gets ``eval_accuracy`` and ``eval_f1`` (macro), and the majority-class accuracy of the same examples for comparison.

    # manual-page sections (1 user commands, 2 system calls, 3 library functions, ...) from the first words of a page,
    # fine-tuned from the masked-LM run of examples/run_mlm.py
    python examples/run_classification.py --model_name_or_path runs/mlm-encoder --dataset_name manpages-sections \\
        --do_train --do_eval --max_steps 300 --output_dir runs/sections-pretrained
    # from scratch, same size: --model_type hf_encdec_encoder --config_overrides "..." --tokenizer_name runs/mlm-encoder
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import datasets
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

from hf_encdec.training import scripts
from hf_encdec.training.scripts import DataArguments, ModelArguments

logger = logging.getLogger(__name__)


@dataclass
class ClassificationArguments:
    max_seq_length: int = field(default=256, metadata={"help": "Tokens of each text the model reads."})


def label_names(corpus: datasets.DatasetDict) -> list[str]:
    """The class names: the ``ClassLabel`` names, else the sorted distinct labels of the training data."""
    feature = next(iter(corpus.values())).features["label"]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    return sorted({str(label) for part in corpus.values() for label in part["label"]})


def majority_accuracy(train_labels: list[int], labels: list[int]) -> float:
    """Accuracy of always answering the most frequent training label."""
    majority = Counter(train_labels).most_common(1)[0][0]
    return sum(label == majority for label in labels) / len(labels)


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, cls_args, training_args = scripts.parse_arguments(
        (ModelArguments, DataArguments, ClassificationArguments, TrainingArguments), argv
    )
    scripts.setup_logging(training_args)
    corpus = scripts.load_splits(data_args, task="classification")
    names = label_names(corpus)
    index = {name: position for position, name in enumerate(names)}
    tokenizer = scripts.get_tokenizer(
        model_args, training_args, lambda: scripts.text_iterator(corpus["train"]),
        model_max_length=cls_args.max_seq_length,
    )

    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(batch["text"], truncation=True, max_length=cls_args.max_seq_length,
                            return_token_type_ids=False)
        labels = batch["label"]
        if not isinstance(corpus["train"].features["label"], datasets.ClassLabel):
            unknown = sorted({str(label) for label in labels} - set(index))
            if unknown:
                raise ValueError(f"labels {unknown} are not among the training labels {names}")
            labels = [index[str(label)] for label in labels]
        return {**encoded, "labels": labels}

    with training_args.main_process_first(desc="tokenizing"):
        encoded = datasets.DatasetDict({
            split: part.map(encode, batched=True, remove_columns=part.column_names, desc=f"tokenizing {split}")
            for split, part in corpus.items()
        })
    extra = {"num_labels": len(names), "id2label": dict(enumerate(names)), "label2id": index}
    if model_args.model_name_or_path is None:
        extra["max_position_embeddings"] = cls_args.max_seq_length
    model = scripts.build_model(
        AutoModelForSequenceClassification, model_args, tokenizer, seed=training_args.seed, extra=extra
    )
    splits = scripts.requested_splits(encoded, data_args, training_args)
    trainer = Trainer(
        model=model, args=training_args, train_dataset=splits.get("train"), eval_dataset=splits.get("validation"),
        data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
        compute_metrics=scripts.classification_metrics(len(names)),
    )

    def score(prefix: str, data: datasets.Dataset) -> dict[str, float]:
        metrics = trainer.evaluate(data, metric_key_prefix=prefix)
        if "train" in encoded and len(encoded["train"]):
            metrics[f"{prefix}_majority_accuracy"] = majority_accuracy(encoded["train"]["labels"], data["labels"])
        return metrics

    return scripts.train_and_score(trainer, training_args, splits, score=score)


if __name__ == "__main__":
    main()
