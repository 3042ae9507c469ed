"""The main job: train, evaluate and package a translation model, end to end, offline.

    corpus (gettext catalogs, synthetic task or user files)
      -> BPE tokenizer trained on the train split
      -> seq2seq model from a preset or config file
      -> Seq2SeqTrainer: token batches, label smoothing, warmup + decay, validation chrF/BLEU by generation,
         early stopping, complete-marked checkpoints, exact resume
      -> test BLEU/chrF with beam search next to the copy-the-source baseline, sample translations
      -> a Hub-ready folder: safetensors + remote code, tokenizer, generation config, model card, PNG plots

>>> from hf_encdec.training import TrainOptions, run_training                              # doctest: +SKIP
>>> report = run_training(TrainOptions(data="gettext:de", output_dir="runs/gettext-de"))   # doctest: +SKIP
>>> report["test"]["chrf"], report["copy_baseline"]["chrf"]                                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    EarlyStoppingCallback,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)

from ..data import check_tokenizer_matches_model, iter_corpus_texts, load_corpus, tokenize_pairs, train_tokenizer
from ..data.gettext_corpus import gettext_corpus_summary
from ..evaluation import build_compute_metrics, copy_baseline_scores, corpus_scores, plot_attention, plot_loss_curve
from ..hub import write_model_card
from ..inference import translate
from .presets import build_config
from .trainer import LENGTH_COLUMN, TranslationTrainer, latest_complete_checkpoint

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
TOKENIZER_DIR = "tokenizer"
REPORT_FILE = "eval_results.json"
TRANSLATIONS_FILE = "test_translations.tsv"
# beam length penalties tried on the validation split after training (HF's score / length ** penalty)
LENGTH_PENALTIES = (0.6, 1.0, 1.5, 2.0)
TUNING_SENTENCES = 1000
OPTIONS_FILE = "train_options.json"


@dataclass
class TrainOptions:
    """Everything `hf-encdec train` can set; the defaults are the tuned main-job recipe."""

    data: str = "gettext:de"
    output_dir: str = "runs/gettext-de"
    preset: str | None = "pointer-generator-small"
    config_file: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 8000
    tokenizer_model: str = "bpe"
    max_source_length: int = 96
    max_target_length: int = 96
    max_steps: int = 4000
    max_tokens: int = 1024
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    warmup_steps: int = 300
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    eval_steps: int = 1000
    eval_size: int = 400
    test_size: int | None = None
    num_beams: int = 4
    length_penalty: float | None = None  # None: the best of LENGTH_PENALTIES on the validation split
    max_new_tokens: int = 128
    early_stopping_patience: int = 3
    save_total_limit: int = 2
    num_samples: int = 6
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    attn_implementation: str = "sdpa"
    logging_steps: int = 50

    @classmethod
    def quick(cls, **overrides: Any) -> TrainOptions:
        """A smoke run of a few minutes: the default model for 600 steps, a 500-sentence test subset, beam 2."""
        values: dict[str, Any] = {
            "vocab_size": 4000,
            "max_steps": 600,
            "warmup_steps": 100,
            "eval_steps": 300,
            "eval_size": 100,
            "test_size": 500,
            "num_beams": 2,
        }
        values.update(overrides)
        return cls(**values)


class _PrintLossCallback(TrainerCallback):
    """One readable log line per logging step (the progress bar shows the rest)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in logs.items() if k != "total_flos"}
            logger.info("step %d: %s", state.global_step, shown)


def _prepare_output_dir(output_dir: Path, *, resume: bool, overwrite: bool) -> None:
    existing = output_dir.is_dir() and any(output_dir.iterdir())
    if existing and not resume and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds a run; pass --resume to continue it, --overwrite to start over "
            "(deletes it), or choose another --output-dir"
        )
    if existing and overwrite and not resume:
        logger.warning("deleting the previous run in %s (--overwrite)", output_dir)
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)


def _tokenizer(corpus: datasets.DatasetDict, options: TrainOptions, folder: Path) -> PreTrainedTokenizerBase:
    """Train the tokenizer on the train split, or reload the one of the run being resumed."""
    if (folder / "tokenizer.json").is_file():
        logger.info("reusing the tokenizer in %s", folder)
        return AutoTokenizer.from_pretrained(folder)
    started = time.perf_counter()
    tokenizer = train_tokenizer(
        iter_corpus_texts(corpus, splits=("train",)),
        vocab_size=options.vocab_size,
        model=options.tokenizer_model,
        model_max_length=max(options.max_source_length, options.max_target_length),
    )
    tokenizer.save_pretrained(folder)
    logger.info("trained a %d-token %s tokenizer in %.1fs", len(tokenizer), options.tokenizer_model, time.perf_counter() - started)
    return tokenizer


def _evenly_spaced(dataset: datasets.Dataset, count: int | None) -> datasets.Dataset:
    """A deterministic subset spread over the whole split (packages stay represented)."""
    if count is None or count >= len(dataset):
        return dataset
    step = len(dataset) / count
    return dataset.select([int(i * step) for i in range(count)])


def _training_arguments(options: TrainOptions, output_dir: Path) -> Seq2SeqTrainingArguments:
    on_gpu = torch.cuda.is_available()
    return Seq2SeqTrainingArguments(
        output_dir=str(output_dir / CHECKPOINTS),
        max_steps=options.max_steps,
        learning_rate=options.learning_rate,
        warmup_steps=options.warmup_steps,
        lr_scheduler_type=options.lr_scheduler_type,
        weight_decay=options.weight_decay,
        adam_beta2=0.98,
        max_grad_norm=1.0,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        per_device_eval_batch_size=64,
        eval_strategy="steps",
        eval_steps=options.eval_steps,
        save_strategy="steps",
        save_steps=options.eval_steps,
        save_total_limit=options.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="chrf",
        greater_is_better=True,
        predict_with_generate=True,
        generation_num_beams=1,
        logging_steps=options.logging_steps,
        logging_first_step=True,
        report_to=[],
        seed=options.seed,
        use_cpu=not on_gpu,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        disable_tqdm=False,
    )


def _attention_heatmap(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source: str, path: Path) -> Path:
    """Cross-attention of the last decoder layer, averaged over heads, for the model's own translation."""
    device = next(model.parameters()).device
    inputs = tokenizer([source], return_tensors="pt").to(device)
    with torch.inference_mode():
        generated = model.generate(**inputs, num_beams=1, do_sample=False, max_new_tokens=48)
        outputs = model(**inputs, decoder_input_ids=generated[:, :-1], output_attentions=True)
    weights = outputs.cross_attentions[-1][0].float().mean(0).cpu().numpy()  # (T, S)
    source_tokens = [tokenizer.decode([i]) for i in inputs["input_ids"][0].tolist()]
    target_tokens = [tokenizer.decode([i]) for i in generated[0, 1:].tolist()]
    return plot_attention(weights, source_tokens, target_tokens, path, title=f"cross-attention: {source[:60]}")


def _tune_length_penalty(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, validation: datasets.Dataset, options: TrainOptions
) -> tuple[float, list[dict[str, float]]]:
    """The beam length penalty with the best mean of BLEU and chrF on (up to TUNING_SENTENCES of) the validation
    split; the test split plays no part in the choice."""
    subset = _evenly_spaced(validation, TUNING_SENTENCES)
    trials = []
    for penalty in LENGTH_PENALTIES:
        hypotheses = translate(
            model, tokenizer, subset["source"], num_beams=options.num_beams, length_penalty=penalty,
            max_new_tokens=options.max_new_tokens, progress=False,
        )
        scores = corpus_scores(hypotheses, subset["target"])
        trials.append({"length_penalty": penalty, "bleu": scores["bleu"], "chrf": scores["chrf"]})
        logger.info("validation, beam %d, length penalty %.1f: BLEU %.2f chrF %.2f",
                    options.num_beams, penalty, scores["bleu"], scores["chrf"])
    # ties go to the penalty closest to 1.0, transformers' default
    best = max(trials, key=lambda trial: (trial["bleu"] + trial["chrf"], -abs(trial["length_penalty"] - 1.0)))
    return best["length_penalty"], trials


def _write_translations(path: Path, test: datasets.Dataset, hypotheses: list[str]) -> None:
    """source, reference and translation of every test pair, one per line, tab-separated (tabs and newlines in the
    texts escaped as \\t and \\n)."""
    def clean(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    lines = ["source\treference\ttranslation"]
    lines += [f"{clean(s)}\t{clean(r)}\t{clean(h)}" for s, r, h in zip(test["source"], test["target"], hypotheses)]
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_translations(path: str | Path) -> list[dict[str, str]]:
    """The rows of a run's test_translations.tsv as {"source", "reference", "translation"} dicts, unescaped."""
    def unescape(text: str) -> str:
        out, chars = [], iter(text)
        for char in chars:
            out.append({"t": "\t", "n": "\n", "\\": "\\"}[next(chars)] if char == "\\" else char)
        return "".join(out)

    header, *rows = Path(path).read_text(encoding="utf-8").splitlines()
    names = header.split("\t")
    return [dict(zip(names, map(unescape, row.split("\t")))) for row in rows]


def _pick_samples(test: datasets.Dataset, count: int) -> list[int]:
    """Indices of `count` test pairs of moderate length, spread over the split."""
    candidates = [i for i, text in enumerate(test["source"]) if 20 <= len(text) <= 90]
    if len(candidates) < count:
        candidates = list(range(len(test)))
    step = max(1, len(candidates) // max(count, 1))
    return candidates[::step][:count]


def _save_final_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, output_dir: Path) -> None:
    """Write the model into a staging folder, then move each file into place with an atomic rename."""
    staging = output_dir / ".staging"
    if staging.exists():
        shutil.rmtree(staging)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for item in staging.iterdir():
        os.replace(item, output_dir / item.name)
    staging.rmdir()


def _data_description(options: TrainOptions, corpus: datasets.DatasetDict, tokenized: datasets.DatasetDict) -> dict[str, Any]:
    description: dict[str, Any] = {"dataset": options.data}
    if options.data.startswith("gettext"):
        summary = gettext_corpus_summary(corpus)
        description["source"] = "gettext catalogs of the machine (/usr/share/locale/<lang>/LC_MESSAGES/*.mo)"
        description["split"] = "by software package: test packages never seen in training"
        description["test packages"] = ", ".join(summary["test_packages"])
        description["validation packages"] = ", ".join(summary["validation_packages"])
    for split in ("train", "validation"):
        description[f"{split} pairs"] = f"{len(corpus[split])} ({len(tokenized[split])} within the length limits)"
    description["test pairs"] = f"{len(corpus['test'])} (all translated and scored, none filtered)"
    return description


def run_training(options: TrainOptions, *, callbacks: list[TrainerCallback] | None = None) -> dict[str, Any]:
    """Run the whole job and return its report (also written to `<output_dir>/eval_results.json`).

    `callbacks` are added to the Trainer's (e.g. a `ScheduledSamplingCallback` for RNN models)."""
    started = time.perf_counter()
    output_dir = Path(options.output_dir)
    args = _training_arguments(options, output_dir)
    if args.process_index == 0:
        _prepare_output_dir(output_dir, resume=options.resume, overwrite=options.overwrite)
        (output_dir / OPTIONS_FILE).write_text(json.dumps(dataclasses.asdict(options), indent=2))
    with args.main_process_first(desc="corpus and tokenizer"):
        corpus = load_corpus(options.data)
        for split in ("train", "validation", "test"):
            if split not in corpus or len(corpus[split]) == 0:
                raise ValueError(f"the corpus {options.data!r} has no {split} pairs; it needs train, validation and test")
        tokenizer = _tokenizer(corpus, options, output_dir / TOKENIZER_DIR)
        # the test split is translated from its raw text (below), never tokenized or length-filtered here
        tokenized = tokenize_pairs(
            datasets.DatasetDict({split: corpus[split] for split in ("train", "validation")}),
            tokenizer,
            max_source_length=options.max_source_length,
            max_target_length=options.max_target_length,
            keep_columns=("source", "target"),
        )
    train = tokenized["train"].map(
        lambda batch: {LENGTH_COLUMN: [max(len(s), len(t)) for s, t in zip(batch["input_ids"], batch["labels"])]},
        batched=True,
    )
    validation = _evenly_spaced(tokenized["validation"], options.eval_size)
    # the test set is never filtered by length: every held-out pair is translated and scored
    test = _evenly_spaced(corpus["test"], options.test_size)

    special = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.bos_token_id,
    }
    overrides = {"label_smoothing": options.label_smoothing, **options.model_overrides}
    if options.preset is not None and options.config_file is not None:
        raise ValueError("give either --preset or --config, not both")
    config = build_config(
        preset=None if options.config_file else options.preset,
        config_file=options.config_file,
        vocab_size=len(tokenizer),
        special_tokens=special,
        overrides=overrides,
    )
    check_tokenizer_matches_model(tokenizer, config)
    torch.manual_seed(options.seed)
    model = AutoModelForSeq2SeqLM.from_config(config, attn_implementation=options.attn_implementation)
    # validation during training decodes greedily up to the longest target; the saved model gets the beam settings
    model.generation_config = GenerationConfig(**special, num_beams=1, max_length=options.max_target_length + 1)
    logger.info(
        "%s with %.1fM parameters; %d training pairs, %d validation (in-training eval), %d test; %d process(es)",
        type(model).__name__, model.num_parameters() / 1e6, len(train), len(validation), len(test), args.world_size,
    )

    trainer = TranslationTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        compute_metrics=build_compute_metrics(tokenizer),
        callbacks=[
            EarlyStoppingCallback(early_stopping_patience=options.early_stopping_patience),
            _PrintLossCallback(),
            *(callbacks or []),
        ],
        max_tokens=options.max_tokens,
    )
    resume_from = latest_complete_checkpoint(output_dir / CHECKPOINTS) if options.resume else None
    if options.resume:
        logger.info("resuming from %s", resume_from or "the start (no complete checkpoint yet)")
    train_result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - started
    if not trainer.is_world_process_zero():
        return {}

    model = trainer.model.eval()
    tuning: list[dict[str, float]] = []
    length_penalty = options.length_penalty
    if length_penalty is None and options.num_beams > 1:
        length_penalty, tuning = _tune_length_penalty(model, tokenizer, corpus["validation"], options)
        logger.info("length penalty %.1f chosen on the validation split", length_penalty)
    model.generation_config = GenerationConfig(
        **special, num_beams=options.num_beams, length_penalty=1.0 if length_penalty is None else length_penalty,
        max_new_tokens=options.max_new_tokens,
    )
    _save_final_model(model, tokenizer, output_dir)
    logger.info("translating %d test sentences with beam size %d, length penalty %.1f", len(test),
                options.num_beams, model.generation_config.length_penalty)
    eval_started = time.perf_counter()
    hypotheses = translate(model, tokenizer, test["source"], max_new_tokens=options.max_new_tokens)
    eval_seconds = time.perf_counter() - eval_started
    _write_translations(output_dir / TRANSLATIONS_FILE, test, hypotheses)
    scores = corpus_scores(hypotheses, test["target"])
    baseline = copy_baseline_scores(test["source"], test["target"])
    samples = [(test["source"][i], test["target"][i], hypotheses[i]) for i in _pick_samples(test, options.num_samples)]
    images = {}
    if trainer.state.log_history:
        plot_loss_curve(trainer.state.log_history, output_dir / "loss_curve.png", title="training")
        images["Training and validation loss"] = "loss_curve.png"
    if samples:
        _attention_heatmap(model, tokenizer, samples[0][0], output_dir / "attention.png")
        images["Cross-attention (last decoder layer, mean over heads) for a test sentence"] = "attention.png"

    report = {
        "data": options.data,
        "model": type(model).__name__,
        "parameters": model.num_parameters(),
        "test": scores,
        "copy_baseline": baseline,
        "test_sentences": len(test),
        "decoding": {"num_beams": options.num_beams, "length_penalty": model.generation_config.length_penalty,
                     "validation_trials": tuning},
        "best_validation_chrf": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "global_step": trainer.state.global_step,
        "processes": args.world_size,
        "train_loss": train_result.training_loss,
        "train_minutes": round(train_seconds / 60, 2),
        "test_translation_minutes": round(eval_seconds / 60, 2),
        "total_minutes": round((time.perf_counter() - started) / 60, 2),
        "hardware": f"{platform.machine()} {os.cpu_count()} CPU cores, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""),
        "samples": [{"source": s, "reference": r, "translation": h} for s, r, h in samples],
        "options": dataclasses.asdict(options),
    }
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    config_summary = {
        key: getattr(model.config, key)
        for key in (
            "hidden_size", "num_attention_heads", "num_key_value_heads", "encoder_layers", "decoder_layers",
            "intermediate_size", "norm_position", "norm_type", "position_type", "hidden_act", "vocab_size",
            "rnn_type", "attention_type",
        )
        if hasattr(model.config, key)
    }
    lang = options.data.split(":", 1)[1] if options.data.startswith("gettext:") else ("de" if options.data == "gettext" else "xx")
    write_model_card(
        output_dir,
        model_name=output_dir.name,
        family=model.config.model_type.removeprefix("hf_encdec_"),
        config_summary=config_summary,
        metrics={"bleu": scores["bleu"], "chrf": scores["chrf"], "bleu_signature": scores["bleu_signature"],
                 "chrf_signature": scores["chrf_signature"]},
        baseline_metrics={"bleu": baseline["bleu"], "chrf": baseline["chrf"]},
        data_description=_data_description(options, corpus, tokenized),
        training_summary={
            "steps": trainer.state.global_step,
            "tokens per batch (max)": options.max_tokens,
            "learning rate": f"{options.learning_rate} ({options.lr_scheduler_type}, {options.warmup_steps} warmup steps)",
            "label smoothing": options.label_smoothing,
            "best validation chrF": trainer.state.best_metric,
            "training time (minutes)": report["train_minutes"],
            "test decoding": f"beam {options.num_beams}, length penalty {model.generation_config.length_penalty}"
            + (" (chosen on validation)" if tuning else "")
            + f", {len(test)} sentences, {report['test_translation_minutes']} min",
            "hardware": report["hardware"],
        },
        samples=samples,
        images=images,
        language_pair=("en", lang),
    )
    logger.info("test BLEU %.2f chrF %.2f (copy baseline BLEU %.2f chrF %.2f); wrote %s",
                scores["bleu"], scores["chrf"], baseline["bleu"], baseline["chrf"], output_dir)
    return report
