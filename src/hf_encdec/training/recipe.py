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
import math
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
    ProgressCallback,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    TrainerState,
)
from transformers.trainer_utils import TrainOutput

from ..data import (
    FILES_LABEL,
    check_tokenizer_matches_model,
    tokenizer_fingerprint,
    corpus_label,
    gettext_extras,
    iter_corpus_texts,
    load_corpus,
    segment_with_bpe_dropout,
    tokenize_pairs,
    train_tokenizer,
)
from ..data.files import carried_tokenizer
from ..data.gettext_corpus import gettext_corpus_summary
from ..evaluation import (
    build_compute_metrics,
    copy_baseline_scores,
    corpus_scores,
    plot_attention,
    plot_copy_attention,
    plot_loss_curve,
    repetition_rate,
)
from ..inference import check_model_folder, is_autoregressive, trained_on_software_messages, translate
from ..localization.placeholders import find_accelerators, find_placeholders, keeps_placeholders
from ..model_card import ModelCardFacts, write_model_card
from ..models.transformers_contract import no_hub_kernels
from ..registration import family_of
from ..speed import speed_up
from .distill import distill_settings
from .nat_report import compare_decoding, teacher_of
from .presets import build_config
from .scheduled_sampling import ScheduledSamplingCallback
from .time_budget import (
    WSD,
    BudgetedSchedule,
    DecayEarlyStopping,
    TimeBudgetCallback,
    calibration_step,
    read_record,
    schedule_kwargs,
)
from .trainer import LENGTH_COLUMN, TranslationTrainer, latest_complete_checkpoint
from .warm_start import warm_start

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
# the training pairs in their BPE-dropout segmentations, made once by the main process (in the checkpoints folder,
# which is never published)
SEGMENTATIONS = "bpe-dropout-segmentations"
# at most this many segmentations of the training pairs are made, however many epochs the run takes
MAX_SEGMENTATIONS = 32
TOKENIZER_DIR = "tokenizer"
REPORT_FILE = "eval_results.json"
TRANSLATIONS_FILE = "test_translations.jsonl"
# what versions before the JSON Lines file wrote; read_translations still reads it
LEGACY_TRANSLATIONS_FILE = "test_translations.tsv"
LEGACY_TRANSLATIONS_HEADER = "source\treference\ttranslation"
# beam length penalties tried on the validation split after training (HF's score / length ** penalty)
LENGTH_PENALTIES = (0.6, 1.0, 1.5, 2.0)
TUNING_SENTENCES = 1000
OPTIONS_FILE = "train_options.json"
# the options that name local files or folders: the run folder records them by their base names only (they are
# uploaded with it), so that no user name or folder layout of the machine goes public
PATH_OPTIONS = ("data", "output_dir", "config_file", "undistilled", "init_from")


@dataclass
class TrainOptions:
    """Everything `hf-encdec train` can set; the defaults are the tuned main-job recipe."""

    data: str = "gettext:de"
    # data files: the language keys of their `translation` column (or their column names); also the card's languages
    source_lang: str | None = None
    target_lang: str | None = None
    output_dir: str = "runs/gettext-de"
    preset: str | None = "pointer-generator-small"
    config_file: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 8000
    tokenizer_model: str = "bpe"
    max_source_length: int = 96
    max_target_length: int = 96
    max_steps: int = 4000
    # minutes the run may train (data preparation and validations included); max_steps is then only an upper bound,
    # the step count is fixed from the measured speed at the end of the warm-up, or (warmup_stable_decay) when its
    # decay has to begin (time_budget.py); None: max_steps
    time_budget: float | None = None
    max_tokens: int = 1024
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    warmup_steps: int = 300
    lr_scheduler_type: str = "cosine"
    # warmup_stable_decay only: the steps of its final decay; None: a fifth of max_steps (time_budget.DECAY_SHARE)
    decay_steps: int | None = None
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    # BPE-dropout (Provilkov et al. 2020): the probability of skipping each merge in the training pairs' segmentations
    bpe_dropout: float = 0.0
    eval_steps: int = 1000
    eval_size: int = 400
    test_size: int | None = None
    num_beams: int = 4
    length_penalty: float | None = None  # None: the best of LENGTH_PENALTIES on the validation split
    num_iterations: int = 10  # non-autoregressive models: rounds of mask-predict for the test set and the saved model
    length_beam_size: int = 3  # non-autoregressive models: target lengths tried per source
    # non-autoregressive models: test pairs (evenly spaced) of the decoding comparison; None: the whole split
    comparison_size: int | None = 1000
    # non-autoregressive models: a NAT run trained on the real references, compared on the same pairs
    undistilled: str | None = None
    # a finished run whose weights of the same name and shape start the model (its tokenizer must be this run's)
    init_from: str | None = None
    # glancing training (model config glancing_ratio > 0): anneal the ratio linearly to this value over max_steps
    glancing_ratio_end: float | None = None
    max_new_tokens: int = 128
    # scheduled sampling on a schedule, `KIND[:NAME=VALUE,...]` (ScheduledSamplingCallback.from_spec); None: off
    scheduled_sampling: str | None = None
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
    """One readable log line per logging step (the progress bar shows the rest); for a NAT with glancing or CTC also
    the glancing ratio and the training pairs CTC has left out so far."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in logs.items() if k != "total_flos"}
            model = kwargs.get("model")
            if getattr(model, "glancing_ratio", 0):
                shown["glancing_ratio"] = round(model.glancing_ratio, 4)
            if getattr(getattr(model, "config", None), "is_ctc", False):
                shown["ctc_skipped_pairs"] = model.ctc_skipped_pairs
            logger.info("step %d: %s", state.global_step, shown)


class GlancingScheduleCallback(TrainerCallback):
    """Anneals a NAT's glancing ratio linearly from its config's `glancing_ratio` to `end` over `max_steps` (GLAT
    anneals 0.5 to 0.3); set before every step from the step count, so a resumed run continues the schedule."""

    def __init__(self, end: float) -> None:
        if not 0.0 <= end <= 1.0:
            raise ValueError(f"glancing_ratio_end must lie in [0, 1], got {end}")
        self.end = end

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        start = model.config.glancing_ratio
        progress = min(state.global_step / max(state.max_steps, 1), 1.0)
        model.glancing_ratio = start + (self.end - start) * progress


class RunFolderExistsError(FileExistsError):
    """The output folder already holds a run, and neither `resume` nor `overwrite` is set."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"{path} already holds a run; set resume=True to continue it, overwrite=True to start over (deletes it), "
            "or choose another output_dir"
        )


class ResumeOptionsError(ValueError):
    """A run is resumed with options that differ from the ones it was started with (`differences`: name -> (recorded,
    given))."""

    def __init__(self, path: Path, differences: dict[str, tuple[Any, Any]]) -> None:
        self.path, self.differences = path, differences
        listed = "; ".join(f"{name}: started with {old!r}, now {new!r}" for name, (old, new) in differences.items())
        super().__init__(
            f"{path} was started with other options than the ones given to resume it ({listed}); resume with the "
            f"options recorded in {path / OPTIONS_FILE}, or start a new run in another output_dir"
        )


# what may change when a run resumes: how it is resumed, and where its folder now lies
RESUME_FREE_OPTIONS = ("resume", "overwrite", "output_dir")


def recorded_options(output_dir: str | Path) -> dict[str, Any] | None:
    """The options a run folder records (train_options.json, as `shareable_options` wrote them), or None."""
    path = Path(output_dir) / OPTIONS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _check_resumed_options(output_dir: Path, options: TrainOptions) -> None:
    """A resumed run must train on with the options it started with: a resumed checkpoint of another model shape,
    corpus or schedule would fail deep in the Trainer, or, worse, train on silently with a changed recipe."""
    recorded = recorded_options(output_dir)
    if recorded is None:
        return
    given = shareable_options(options)
    differences = {
        name: (recorded[name], given[name])
        for name in given
        # options added by later versions are missing from older records; older records kept whole paths
        if name in recorded and name not in RESUME_FREE_OPTIONS
        and _comparable(name, recorded[name]) != _comparable(name, given[name])
    }
    if differences:
        raise ResumeOptionsError(output_dir, differences)


def _comparable(name: str, value: Any) -> Any:
    return Path(value).name if name in PATH_OPTIONS and isinstance(value, str) else value


def _start_run_folder(output_dir: Path, options: TrainOptions) -> None:
    """Create the run folder (resumed, emptied or new, as `options` say) and record the options in it.

    Raises:
        RunFolderExistsError: the folder holds a run and neither `resume` nor `overwrite` is set.
        ResumeOptionsError: a resumed run is given other options than it recorded.
    """
    existing = output_dir.is_dir() and any(output_dir.iterdir())
    if existing and not options.resume and not options.overwrite:
        raise RunFolderExistsError(output_dir)
    if existing and options.resume:
        _check_resumed_options(output_dir, options)
    if existing and options.overwrite and not options.resume:
        logger.warning("deleting the previous run in %s (overwrite=True)", output_dir)
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / OPTIONS_FILE).write_text(json.dumps(shareable_options(options), indent=2))


def shareable_options(options: TrainOptions) -> dict[str, Any]:
    """`options` as the run folder records them (train_options.json, eval_results.json): every option that names a
    local file or folder by its base name, a built-in corpus by its spec.

    >>> shared = shareable_options(TrainOptions(data="/home/alice/work/heldout", output_dir="/home/alice/runs/de"))
    >>> shared["data"], shared["output_dir"], shared["preset"]
    ('heldout', 'de', 'pointer-generator-small')
    """
    shared = dataclasses.asdict(options)
    for name in PATH_OPTIONS:
        if shared[name] is not None and (name != "data" or _is_file_data(shared[name])):
            shared[name] = Path(shared[name]).name
    return shared


def _tokenizer(corpus: datasets.DatasetDict, options: TrainOptions, folder: Path) -> PreTrainedTokenizerBase:
    """Stage 2, tokenizer: reload the one of the run being resumed; take the one the corpus carries (a distilled
    corpus its teacher's, a denoising corpus its translation corpus's); or train one on the train split (the same
    corpus and options give the same tokenizer, which is what lets a run start from a pre-trained one)."""
    if (folder / "tokenizer.json").is_file():
        logger.info("reusing the tokenizer in %s", folder)
        return AutoTokenizer.from_pretrained(folder)
    carried = carried_tokenizer(options.data) if _is_file_data(options.data) else None
    if carried is not None:
        tokenizer = AutoTokenizer.from_pretrained(carried)
        logger.info("using the %d-token tokenizer that the corpus carries in %s (vocab_size is not used)",
                    len(tokenizer), carried)
    else:
        started = time.perf_counter()
        tokenizer = corpus_tokenizer(corpus, options)
        logger.info("trained a %d-token %s tokenizer in %.1fs", len(tokenizer), options.tokenizer_model,
                    time.perf_counter() - started)
    tokenizer.save_pretrained(folder)
    return tokenizer


def corpus_tokenizer(corpus: datasets.DatasetDict, options: TrainOptions) -> PreTrainedTokenizerBase:
    """The tokenizer `hf-encdec train` trains for a corpus: `options.tokenizer_model` with `options.vocab_size` on the
    texts of both sides of the train split."""
    return train_tokenizer(
        iter_corpus_texts(corpus, splits=("train",)),
        vocab_size=options.vocab_size,
        model=options.tokenizer_model,
        model_max_length=max(options.max_source_length, options.max_target_length),
    )


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
        lr_scheduler_kwargs=schedule_kwargs(options.lr_scheduler_type, warmup_steps=options.warmup_steps,
                                            total_steps=options.max_steps, decay_steps=options.decay_steps),
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


def _copy_heatmap(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source: str, path: Path
) -> Path | None:
    """A pointer-generator's copy attention with p_gen per target token for the model's own (greedy) translation;
    None for a model without the copy mechanism."""
    if not getattr(model, "copies_source", False):
        return None
    device = next(model.parameters()).device
    inputs = tokenizer([source], return_tensors="pt").to(device)
    with torch.inference_mode():
        generated = model.generate(
            **inputs, num_beams=1, do_sample=False, max_new_tokens=48, output_attentions=True,
            return_dict_in_generate=True,
        )
    weights = generated.copy_attentions[0].float().cpu().numpy()  # (T, S)
    p_gen = generated.p_gen[0, :, 0].float().cpu().numpy()  # (T,)
    source_tokens = [tokenizer.decode([i]) for i in inputs["input_ids"][0].tolist()]
    target_tokens = [tokenizer.decode([i]) for i in generated.sequences[0, 1:].tolist()]
    return plot_copy_attention(weights, p_gen, source_tokens, target_tokens, path, title=f"copy: {source[:60]}")


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
            max_new_tokens=options.max_new_tokens, progress=False, protect=False,
        )
        scores = corpus_scores(hypotheses, subset["target"])
        trials.append({"length_penalty": penalty, "bleu": scores["bleu"], "chrf": scores["chrf"]})
        logger.info("validation, beam %d, length penalty %.1f: BLEU %.2f chrF %.2f",
                    options.num_beams, penalty, scores["bleu"], scores["chrf"])
    # ties go to the penalty closest to 1.0, transformers' default
    best = max(trials, key=lambda trial: (trial["bleu"] + trial["chrf"], -abs(trial["length_penalty"] - 1.0)))
    return best["length_penalty"], trials


def _write_translations(path: Path, test: datasets.Dataset, hypotheses: list[str]) -> None:
    """source, reference and translation of every test pair as JSON Lines, one pair a line; written to a temporary
    file first, so a crash never leaves a half-written file."""
    rows = [{"source": s, "reference": r, "translation": h} for s, r, h in zip(test["source"], test["target"], hypotheses)]
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    os.replace(temporary, path)


def _read_escaped_tsv(lines: list[str]) -> list[dict[str, str]]:
    """The test_translations.tsv of earlier versions: a header line, tab-separated, with \\t \\n \\\\ escapes."""
    def unescape(text: str) -> str:
        out, chars = [], iter(text)
        for char in chars:
            out.append({"t": "\t", "n": "\n", "\\": "\\"}[next(chars)] if char == "\\" else char)
        return "".join(out)

    header, *rows = lines
    names = header.split("\t")
    return [dict(zip(names, map(unescape, row.split("\t")))) for row in rows]


def read_translations(path: str | Path) -> list[dict[str, str]]:
    """The test translations of a run as {"source", "reference", "translation"} dicts, in test-split order.

    `path` is a run folder or a translations file: test_translations.jsonl, or the test_translations.tsv that
    earlier versions wrote.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TRANSLATIONS_FILE if (path / TRANSLATIONS_FILE).is_file() else path / LEGACY_TRANSLATIONS_FILE
    # split on "\n" only: json escapes it inside texts, and splitlines() would also break at U+2028 and the like
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line]
    if lines and lines[0] == LEGACY_TRANSLATIONS_HEADER:
        return _read_escaped_tsv(lines)
    return [json.loads(line) for line in lines]


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


def _is_file_data(data: str) -> bool:
    return corpus_label(data) == FILES_LABEL


def _language_options(options: TrainOptions) -> dict[str, str]:
    """The language keys that go to the data-file loader; the built-in corpora know their own languages."""
    given = {key: value for key in ("source_lang", "target_lang") if (value := getattr(options, key)) is not None}
    if given and not _is_file_data(options.data):
        raise ValueError(
            f"source_lang/target_lang ({given}) name the languages of data files; {options.data!r} has its own "
            "(gettext:LANG is English to LANG): leave them out"
        )
    return given


def language_pair(data: str, source_lang: str | None = None, target_lang: str | None = None) -> tuple[str, str] | None:
    """The (source, target) languages of a run's data: English and the catalogs' language for gettext, the given
    languages for data files, those of the original corpus for a distilled one, None where nothing says (a card then
    names no language rather than a made-up one).

    >>> language_pair("gettext:fr"), language_pair("pairs.jsonl", "en", "nl"), language_pair("synthetic:copy")
    (('en', 'fr'), ('en', 'nl'), None)
    """
    if data.startswith("gettext"):
        return "en", data.split(":", 1)[1] if ":" in data else "de"
    if source_lang and target_lang:
        return source_lang, target_lang
    settings = distill_settings(data) if _is_file_data(data) else None
    return None if settings is None else language_pair(settings["data"])


def dataset_name(data: str) -> str:
    """How a run's data is named where others read it (model card, Hub metadata): a built-in corpus by its spec, a
    local file or folder by its base name, never by its path."""
    return Path(data).name if _is_file_data(data) else data


def _data_description(options: TrainOptions, corpus: datasets.DatasetDict, tokenized: datasets.DatasetDict) -> dict[str, Any]:
    description: dict[str, Any] = {"dataset": dataset_name(options.data)}
    if options.data.startswith("gettext"):
        summary = gettext_corpus_summary(corpus)
        description["source"] = "gettext catalogs of the machine (/usr/share/locale/<lang>/LC_MESSAGES/*.mo)"
        extras = gettext_extras(options.data.partition(":")[0]) or ()
        if "man" in extras:
            description["source"] += (", and in training the machine's translated manual pages "
                                      "(/usr/share/man/<lang>/man<N>/ beside their English originals), aligned by line")
        if "vim" in extras:
            description["source"] += ", and in training vim's own catalog (/usr/share/vim/vim<N>/lang/<lang>/LC_MESSAGES)"
        description["split"] = "by software package: test packages never seen in training"
        description["test packages"] = ", ".join(summary["test_packages"])
        description["validation packages"] = ", ".join(summary["validation_packages"])
    for split in ("train", "validation"):
        description[f"{split} pairs"] = f"{len(corpus[split])} ({len(tokenized[split])} within the length limits)"
    description["test pairs"] = f"{len(corpus['test'])} (all translated and scored, none filtered)"
    return description


@dataclass
class _RunData:
    """The data of a run: the raw corpus, its tokenized train and validation splits, and the three sets used."""

    corpus: datasets.DatasetDict
    tokenized: datasets.DatasetDict
    train: datasets.Dataset  # tokenized, with the length column the token batches sort by
    validation: datasets.Dataset  # the in-training evaluation subset
    test: datasets.Dataset  # raw text, never filtered by length: every held-out pair is translated and scored


@dataclass
class _TestResult:
    """The model's scores on the test set next to the copy baseline's, and a few sample translations."""

    scores: dict[str, Any]
    baseline: dict[str, Any]
    samples: list[tuple[str, str, str]]  # (source, reference, translation)
    seconds: float
    directives: dict[str, Any] | None = None  # for software messages: who keeps the sources' format directives


def _prepare_data(
    options: TrainOptions, args: Seq2SeqTrainingArguments, tokenizer_folder: Path
) -> tuple[_RunData, PreTrainedTokenizerBase]:
    """Stage 1, data: load the corpus, check it has all three splits, get the tokenizer, tokenize train and
    validation, and pick the subsets. The main process goes first, so the others reuse its tokenizer."""
    with args.main_process_first(desc="corpus and tokenizer"):
        corpus = load_corpus(options.data, **_language_options(options))
        for split in ("train", "validation", "test"):
            if split not in corpus or len(corpus[split]) == 0:
                raise ValueError(f"the corpus {options.data!r} has no {split} pairs; it needs train, validation and test")
        tokenizer = _tokenizer(corpus, options, tokenizer_folder)
        # the test split is translated from its raw text (below), never tokenized or length-filtered here
        tokenized = tokenize_pairs(
            datasets.DatasetDict({split: corpus[split] for split in ("train", "validation")}),
            tokenizer,
            max_source_length=options.max_source_length,
            max_target_length=options.max_target_length,
            keep_columns=("source", "target"),
        )
        train = tokenized["train"]
        if options.bpe_dropout:
            train = _bpe_dropout_segmentations(train, tokenizer, options, args)
    train = train.map(
        lambda batch: {LENGTH_COLUMN: [max(len(s), len(t)) for s, t in zip(batch["input_ids"], batch["labels"])]},
        batched=True,
    )
    data = _RunData(
        corpus=corpus,
        tokenized=tokenized,
        train=train,
        validation=_evenly_spaced(tokenized["validation"], options.eval_size),
        test=_evenly_spaced(corpus["test"], options.test_size),
    )
    return data, tokenizer


def _bpe_dropout_segmentations(
    train: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, options: TrainOptions, args: Seq2SeqTrainingArguments
) -> datasets.Dataset:
    """The training pairs in as many BPE-dropout segmentations as the run has epochs (at most MAX_SEGMENTATIONS),
    one after the other, so that each pass over a pair sees a new one. They are made once, by the main process, and
    kept in the checkpoints folder: the other processes of a multi-process run and a resumed run read the same ones,
    so every process agrees on the batches and a resumed run continues where it stopped."""
    folder = Path(args.output_dir) / SEGMENTATIONS
    if (folder / "dataset_info.json").is_file():
        logger.info("reusing the BPE-dropout segmentations in %s", folder)
        return datasets.load_from_disk(str(folder))
    tokens = sum(max(len(s), len(t)) for s, t in zip(train["input_ids"], train["labels"]))
    per_batch = options.max_tokens or args.per_device_train_batch_size * options.max_target_length
    seen = options.max_steps * options.gradient_accumulation_steps * args.world_size * per_batch
    copies = min(MAX_SEGMENTATIONS, max(1, -(-seen // tokens)))
    started = time.perf_counter()
    noisy = segment_with_bpe_dropout(train, tokenizer, dropout=options.bpe_dropout, copies=copies,
                                     max_source_length=options.max_source_length,
                                     max_target_length=options.max_target_length)
    staging = folder.with_name(f".{SEGMENTATIONS}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    noisy.save_to_disk(str(staging))
    os.replace(staging, folder)  # a run stopped while writing leaves no half-written segmentations to reuse
    logger.info("BPE-dropout %.2f: %d segmentations of the %d training pairs (about one per epoch) in %.1fs",
                options.bpe_dropout, copies, train.num_rows, time.perf_counter() - started)
    return datasets.load_from_disk(str(folder))


def _special_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int | None]:
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.bos_token_id,
    }


def _build_model(options: TrainOptions, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """Stage 3, model: the config of the preset or config file, sized to the tokenizer, and a fresh model from it,
    with the speed paths (`speed_up`)."""
    if options.preset is not None and options.config_file is not None:
        raise ValueError(
            f"TrainOptions has both preset={options.preset!r} and config_file={options.config_file!r}; "
            "set one of them and the other to None"
        )
    special = _special_token_ids(tokenizer)
    config = build_config(
        preset=None if options.config_file else options.preset,
        config_file=options.config_file,
        vocab_size=len(tokenizer),
        # mask_token_id goes only to the families that declare it (the NAT family's placeholder)
        special_tokens={**special, "mask_token_id": tokenizer.mask_token_id},
        overrides={"label_smoothing": options.label_smoothing, **options.model_overrides},
    )
    check_tokenizer_matches_model(tokenizer, config)
    torch.manual_seed(options.seed)
    model = AutoModelForSeq2SeqLM.from_config(config, attn_implementation=options.attn_implementation)
    if options.init_from is not None:
        warm_start(model, options.init_from, tokenizer)
    # Saved with the config: translate() keeps the layout and format directives of software messages by default.
    # A label, not the spec: a local data path would publish the user's folders with the model.
    model.config.training_data = corpus_label(options.data)
    # which vocabulary the ids mean: a swapped tokenizer or a drafter of another tokenizer is refused by it
    model.config.tokenizer_fingerprint = tokenizer_fingerprint(tokenizer)
    _check_comparison_options(options, model)
    # validation during training decodes greedily up to the longest target; the saved model gets the beam settings
    model.generation_config = GenerationConfig(**special, num_beams=1, max_length=options.max_target_length + 1)
    return speed_up(model)


def _early_stopping(
    options: TrainOptions, args: Seq2SeqTrainingArguments, budget: TimeBudgetCallback | None
) -> EarlyStoppingCallback:
    """Early stopping on validation chrF; under warmup_stable_decay it waits for the decay (`DecayEarlyStopping`)."""
    if options.lr_scheduler_type != WSD:
        return EarlyStoppingCallback(early_stopping_patience=options.early_stopping_patience)
    if budget is not None:
        return DecayEarlyStopping(options.early_stopping_patience, decay_start=budget.decay_start)
    start = args.max_steps - args.lr_scheduler_kwargs["num_decay_steps"]
    return DecayEarlyStopping(options.early_stopping_patience, decay_start=lambda: start)


def _check_comparison_options(options: TrainOptions, model: PreTrainedModel) -> None:
    """The NAT comparison's options fail now, not after training: they apply to NAT runs only."""
    if options.comparison_size is not None and options.comparison_size < 1:
        raise ValueError(f"comparison_size must be a positive number of test pairs or None, got {options.comparison_size}")
    if options.glancing_ratio_end is not None and not getattr(model.config, "glancing_ratio", 0):
        raise ValueError(
            f"glancing_ratio_end={options.glancing_ratio_end} anneals glancing training, which this "
            f"{model.config.model_type} model does not do: a NAT preset with --set glancing_ratio=0.5 does"
        )
    if options.undistilled is None:
        return
    if is_autoregressive(model):
        raise ValueError(
            f"undistilled={options.undistilled!r} compares NAT runs; this run trains {model.config.model_type}, "
            "which is autoregressive (use --preset nat-small)"
        )
    check_model_folder(options.undistilled)


def _train(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: _RunData,
    options: TrainOptions,
    args: Seq2SeqTrainingArguments,
    callbacks: list[TrainerCallback] | None,
    budget: TimeBudgetCallback | None = None,
) -> tuple[TranslationTrainer, TrainOutput]:
    """Stage 4, train: the Trainer with validation, early stopping and checkpoints; resumes the last complete
    checkpoint when `options.resume` is set. With a `budget`, the step count is fixed during the run (time_budget.py)."""
    logger.info(
        "%s with %.1fM parameters; %d training pairs, %d validation (in-training eval), %d test; %d process(es)",
        type(model).__name__, model.num_parameters() / 1e6, len(data.train), len(data.validation), len(data.test),
        args.world_size,
    )
    trainer = TranslationTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        compute_metrics=build_compute_metrics(tokenizer),
        callbacks=[
            _early_stopping(options, args, budget),
            _PrintLossCallback(),
            *([ScheduledSamplingCallback.from_spec(options.scheduled_sampling)] if options.scheduled_sampling else []),
            *([GlancingScheduleCallback(options.glancing_ratio_end)] if options.glancing_ratio_end is not None else []),
            *([budget] if budget is not None else []),
            *(callbacks or []),
        ],
        max_tokens=options.max_tokens,
        lr_schedule=budget.schedule if budget is not None else None,
    )
    if budget is not None:
        budget.progress_callbacks = [c for c in trainer.callback_handler.callbacks if isinstance(c, ProgressCallback)]
    resume_from = latest_complete_checkpoint(Path(options.output_dir) / CHECKPOINTS) if options.resume else None
    if options.resume:
        logger.info("resuming from %s", resume_from or "the start (no complete checkpoint yet)")
    if resume_from is not None:
        state = _relocate_best_checkpoint(resume_from)
        if state.global_step >= args.max_steps:
            return trainer, _finished_training(trainer, state, options)
    train_result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return trainer, train_result


def _relocate_best_checkpoint(checkpoint: Path) -> TrainerState:
    """The Trainer state saved in `checkpoint`, its best checkpoint pointed into the run folder where it is now.

    The Trainer records the best checkpoint by the path it had when it was saved; after the run folder was moved (or
    a relative output folder is resumed from another working directory) transformers would drop it as missing, and
    the checkpoint rotation would no longer protect it until the next save. The state file is rewritten in place.
    """
    path = checkpoint / "trainer_state.json"
    state = TrainerState.load_from_json(str(path))
    best = state.best_model_checkpoint
    moved = checkpoint.parent / Path(best).name if best else None
    if best and not Path(best).is_dir() and moved is not None and moved.is_dir():
        logger.info("the best checkpoint %s is now %s (the run folder was moved)", best, moved)
        state.best_model_checkpoint = str(moved)
        state.save_to_json(str(path))
    return state


def _finished_training(trainer: TranslationTrainer, state: TrainerState, options: TrainOptions) -> TrainOutput:
    """A resumed run whose last checkpoint already reached `max_steps` (it stopped while testing or packaging).
    `Trainer.train` would take one step more; instead take the run's state and, as `load_best_model_at_end` would,
    the weights of its best checkpoint. The training loss is the mean over the logged steps."""
    logger.info("training already finished at step %d; going on with its best checkpoint", state.global_step)
    trainer.state = state
    if trainer.args.load_best_model_at_end and state.best_model_checkpoint:
        best = Path(options.output_dir) / CHECKPOINTS / Path(state.best_model_checkpoint).name
        trainer.model = trainer.model_wrapped = speed_up(
            type(trainer.model).from_pretrained(best, attn_implementation=options.attn_implementation, **no_hub_kernels())
        ).to(trainer.args.device)
    total, previous = 0.0, 0
    for entry in state.log_history:  # each logged loss is the mean over the steps since the previous log
        if "loss" in entry:
            total += entry["loss"] * (entry["step"] - previous)
            previous = entry["step"]
    return TrainOutput(state.global_step, total / previous if previous else float("nan"), {})


def _choose_decoding(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, validation: datasets.Dataset, options: TrainOptions
) -> list[dict[str, float]]:
    """Stage 5, pick the length penalty: tune it on the validation split unless `options` fix it (or decode
    greedily), and give the model its final generation config. Returns the validation trials, if any."""
    tuning: list[dict[str, float]] = []
    if getattr(model.config, "is_ctc", False):  # one CTC pass: no lengths, no iterations
        model.generation_config = GenerationConfig(**_special_token_ids(tokenizer), max_new_tokens=options.max_new_tokens)
        return tuning
    if not is_autoregressive(model):  # parallel decoding: iterations and length beam, nothing to tune
        model.generation_config = GenerationConfig(
            **_special_token_ids(tokenizer), num_iterations=options.num_iterations,
            length_beam_size=options.length_beam_size, max_new_tokens=options.max_new_tokens,
        )
        return tuning
    length_penalty = options.length_penalty
    # the training config's max_length (validation) would clash with the test's max_new_tokens
    model.generation_config = GenerationConfig(**_special_token_ids(tokenizer), max_new_tokens=options.max_new_tokens)
    if length_penalty is None and options.num_beams > 1:
        length_penalty, tuning = _tune_length_penalty(model, tokenizer, validation, options)
        logger.info("length penalty %.1f chosen on the validation split", length_penalty)
    model.generation_config = GenerationConfig(
        **_special_token_ids(tokenizer), num_beams=options.num_beams,
        length_penalty=1.0 if length_penalty is None else length_penalty, max_new_tokens=options.max_new_tokens,
    )
    return tuning


def _test(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, test: datasets.Dataset, options: TrainOptions,
    output_dir: Path,
) -> _TestResult:
    """Stage 6, test: translate every test pair with the saved decoding settings, write the translations, score
    them next to the copy-the-source baseline and pick sample translations."""
    if is_autoregressive(model):
        logger.info("translating %d test sentences with beam size %d, length penalty %.1f", len(test),
                    options.num_beams, model.generation_config.length_penalty)
    elif getattr(model.config, "is_ctc", False):
        logger.info("translating %d test sentences in one CTC pass", len(test))
    else:
        logger.info("translating %d test sentences with %d mask-predict iterations, length beam %d", len(test),
                    options.num_iterations, options.length_beam_size)
    started = time.perf_counter()
    # the model's own best hypotheses: what it learned, without translate()'s protections for software messages
    hypotheses = translate(model, tokenizer, test["source"], max_new_tokens=options.max_new_tokens, protect=False)
    seconds = time.perf_counter() - started
    _write_translations(output_dir / TRANSLATIONS_FILE, test, hypotheses)
    return _TestResult(
        scores={
            **corpus_scores(hypotheses, test["target"]),
            # repeated word bigrams per sentence (coverage exists to lower it), next to the references' own
            "repetition_rate": repetition_rate(hypotheses),
            "reference_repetition_rate": repetition_rate(test["target"]),
        },
        baseline=copy_baseline_scores(test["source"], test["target"]),
        samples=[(test["source"][i], test["target"][i], hypotheses[i]) for i in _pick_samples(test, options.num_samples)],
        seconds=seconds,
        directives=_directive_fidelity(test["source"], test["target"], hypotheses) if trained_on_software_messages(model) else None,
    )


def _directive_fidelity(sources: list[str], references: list[str], hypotheses: list[str]) -> dict[str, Any]:
    """The share of the model's best test hypotheses (and of references) that keep their source's format directives
    and accelerator: what `msgfmt -c` checks of a catalog entry besides its edge newlines, which the corpus removed.
    translate() and translate-po take the hypotheses that keep them (see the model card)."""
    with_directives = [i for i, source in enumerate(sources) if find_placeholders(source) or find_accelerators(source)]
    return {
        "test pairs with directives or an accelerator": len(with_directives),
        "best hypotheses keeping them": round(sum(keeps_placeholders(sources[i], hypotheses[i]) for i in with_directives)
                                           / max(len(with_directives), 1), 4),
        "references keeping them": round(sum(keeps_placeholders(sources[i], references[i]) for i in with_directives)
                                         / max(len(with_directives), 1), 4),
    }


def _figures(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, state: TrainerState, result: _TestResult,
    output_dir: Path,
) -> dict[str, str]:
    """The loss curve and an attention heatmap of the first sample, as {caption: file name in output_dir}."""
    images = {}
    if state.log_history:
        plot_loss_curve(state.log_history, output_dir / "loss_curve.png", title="training")
        images["Training and validation loss"] = "loss_curve.png"
    if result.samples:
        _attention_heatmap(model, tokenizer, result.samples[0][0], output_dir / "attention.png")
        images["Cross-attention (last decoder layer, mean over heads) for a test sentence"] = "attention.png"
        for index, (source, *_rest) in enumerate(result.samples[:3]):
            name = f"copy_attention_{index + 1}.png"
            if _copy_heatmap(model, tokenizer, source, output_dir / name) is not None:
                images[f"Copy attention and p_gen per target token, test sentence {index + 1}"] = name
    return images


def _hardware() -> str:
    return f"{platform.machine()} {os.cpu_count()} CPU cores, torch {torch.__version__}" + (
        f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    )


def _card_facts(
    options: TrainOptions, model: PreTrainedModel, data: _RunData, report: dict[str, Any], images: dict[str, str]
) -> ModelCardFacts:
    """What the model card of the run says, from the report and the model's own description of its config."""
    family = family_of(model.config.model_type)
    scores, baseline, decoding = report["test"], report["copy_baseline"], report["decoding"]
    return ModelCardFacts(
        model_name=Path(options.output_dir).name,
        family=family.name,
        family_summary=family.summary,
        language_pair=language_pair(options.data, options.source_lang, options.target_lang),
        configuration=model.config.describe(),
        metrics={key: scores[key] for key in ("bleu", "chrf", "bleu_signature", "chrf_signature")},
        baseline_metrics={"bleu": baseline["bleu"], "chrf": baseline["chrf"]},
        data=_data_description(options, data.corpus, data.tokenized),
        training={
            "steps": report["global_step"],
            "tokens per batch (max)": options.max_tokens,
            "learning rate": f"{options.learning_rate} ({options.lr_scheduler_type}, {options.warmup_steps} warmup steps)",
            "label smoothing": options.label_smoothing,
            "best validation chrF": report["best_validation_chrf"],
            "training time (minutes)": report["train_minutes"],
            "test decoding": _decoding_line(decoding)
            + f", {report['test_sentences']} sentences, {report['test_translation_minutes']} min",
            "hardware": report["hardware"],
        },
        samples=[(s["source"], s["reference"], s["translation"]) for s in report["samples"]],
        images=images,
        comparison=report.get("decoding_comparison", {}).get("rows", {}),
        comparison_pairs=report.get("decoding_comparison", {}).get("test_pairs"),
        software_messages=report.get("software_messages", {}),
    )


def _decoding_line(decoding: dict[str, Any]) -> str:
    if decoding.get("ctc"):
        return "CTC, one pass"
    if "num_iterations" in decoding:
        return f"mask-predict, {decoding['num_iterations']} iterations, length beam {decoding['length_beam_size']}"
    return f"beam {decoding['num_beams']}, length penalty {decoding['length_penalty']}" + (
        " (chosen on validation)" if decoding["validation_trials"] else ""
    )


def _decoding_summary(model: PreTrainedModel, options: TrainOptions, tuning: list[dict[str, float]]) -> dict[str, Any]:
    if getattr(model.config, "is_ctc", False):
        return {"ctc": True}
    if not is_autoregressive(model):
        return {"num_iterations": options.num_iterations, "length_beam_size": options.length_beam_size}
    return {"num_beams": options.num_beams, "length_penalty": model.generation_config.length_penalty,
            "validation_trials": tuning}


def _in_run_folder(checkpoint: str | None) -> str | None:
    """A checkpoint folder of the run as `checkpoints/checkpoint-N`, wherever the run folder is."""
    return None if checkpoint is None else f"{CHECKPOINTS}/{Path(checkpoint).name}"


def _package(
    options: TrainOptions,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: _RunData,
    trainer: TranslationTrainer,
    train_result: TrainOutput,
    tuning: list[dict[str, float]],
    result: _TestResult,
    *,
    train_seconds: float,
    started: float,
) -> dict[str, Any]:
    """Stage 7, package: figures, the report (eval_results.json) and the model card next to the saved model."""
    output_dir = Path(options.output_dir)
    images = _figures(model, tokenizer, trainer.state, result, output_dir)
    report = {
        "data": dataset_name(options.data),
        "model": type(model).__name__,
        "parameters": model.num_parameters(),
        "test": result.scores,
        "copy_baseline": result.baseline,
        "test_sentences": len(data.test),
        "decoding": _decoding_summary(model, options, tuning),
        "best_validation_chrf": trainer.state.best_metric,
        # relative to the run folder, which may move (and whose absolute path is nobody else's business)
        "best_checkpoint": _in_run_folder(trainer.state.best_model_checkpoint),
        "global_step": trainer.state.global_step,
        "processes": trainer.args.world_size,
        "train_loss": train_result.training_loss,
        "train_minutes": round(train_seconds / 60, 2),
        "time_budget": read_record(output_dir) if options.time_budget is not None else None,
        "test_translation_minutes": round(result.seconds / 60, 2),
        "total_minutes": round((time.perf_counter() - started) / 60, 2),
        "hardware": _hardware(),
        "samples": [{"source": s, "reference": r, "translation": h} for s, r, h in result.samples],
        "options": shareable_options(options),
    }
    if result.directives is not None:
        report["software_messages"] = result.directives
    if not is_autoregressive(model):
        pairs = _evenly_spaced(data.test, options.comparison_size)
        report["decoding_comparison"] = {
            "test_pairs": len(pairs),
            "rows": compare_decoding(
                model, tokenizer, pairs["source"], pairs["target"], length_beam_size=options.length_beam_size,
                max_new_tokens=options.max_new_tokens, teacher=teacher_of(options.data),
                undistilled=options.undistilled, num_iterations=options.num_iterations,
            ),
        }
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    write_model_card(output_dir, _card_facts(options, model, data, report, images))
    logger.info("test BLEU %.2f chrF %.2f (copy baseline BLEU %.2f chrF %.2f); wrote %s",
                result.scores["bleu"], result.scores["chrf"], result.baseline["bleu"], result.baseline["chrf"], output_dir)
    return report


def _check_time_budget(options: TrainOptions) -> None:
    """A time budget's settings fail before any work."""
    if options.time_budget is None:
        return
    if not math.isfinite(options.time_budget) or options.time_budget <= 0:
        raise ValueError(f"time_budget is minutes of training and must be positive, got {options.time_budget}")
    BudgetedSchedule(options.lr_scheduler_type, warmup_steps=options.warmup_steps, total_steps=options.max_steps)
    if options.decay_steps is not None:
        raise ValueError(
            f"decay_steps={options.decay_steps}: a time budget begins the decay of warmup_stable_decay itself, when "
            "what is left of the budget holds a fifth of the run; drop --decay-steps (or --time-budget)"
        )
    if options.glancing_ratio_end is not None:
        raise ValueError(
            "a time budget fixes the step count only at the end of the warm-up, but the glancing ratio anneals over "
            "the step count from the first step: give --max-steps instead of --time-budget"
        )
    if calibration_step(options.warmup_steps) >= options.max_steps:
        raise ValueError(
            f"a time budget measures the speed over the warm-up ({calibration_step(options.warmup_steps)} steps), which must "
            f"end before max_steps={options.max_steps}, the budget's upper bound: raise --max-steps"
        )


def _time_budget(
    options: TrainOptions, output_dir: Path, started: float, *, is_main: bool
) -> tuple[TrainOptions, TimeBudgetCallback | None]:
    """The options and callback of a budgeted run: a run resumed after its step count was fixed trains to that
    count as a plain run does (the same schedule); otherwise the callback fixes it (time_budget.py)."""
    if options.time_budget is None:
        return options, None
    record = read_record(output_dir) if options.resume else None
    if record is not None and record.get("max_steps") is not None:
        logger.info("time budget: training to step %d, the count the run fixed (%s)",
                    record["max_steps"], output_dir / "time_budget.json")
        return dataclasses.replace(options, max_steps=int(record["max_steps"]),
                                   decay_steps=record.get("decay_steps")), None
    schedule = BudgetedSchedule(options.lr_scheduler_type, warmup_steps=options.warmup_steps,
                                total_steps=options.max_steps)
    return options, TimeBudgetCallback(options.time_budget, started=started, schedule=schedule,
                                       record_dir=output_dir if is_main else None)


def run_training(options: TrainOptions, *, callbacks: list[TrainerCallback] | None = None) -> dict[str, Any]:
    """Run the whole job and return its report (also written to `<output_dir>/eval_results.json`).

    `callbacks` are added to the Trainer's (`options.scheduled_sampling` adds a `ScheduledSamplingCallback`). With several
    processes every one trains; only the main one evaluates and packages the run, the others return {}.

    Raises:
        RunFolderExistsError: `output_dir` holds a run and neither `resume` nor `overwrite` is set.
        ValueError: the corpus lacks a split, or the options or model config are invalid.
    """
    started = time.perf_counter()
    output_dir = Path(options.output_dir)
    if options.scheduled_sampling:
        ScheduledSamplingCallback.from_spec(options.scheduled_sampling)  # a bad schedule fails before any work
    _check_time_budget(options)
    args = _training_arguments(options, output_dir)
    if args.process_index == 0:
        _start_run_folder(output_dir, options)
    options, budget = _time_budget(options, output_dir, started, is_main=args.process_index == 0)
    args = _training_arguments(options, output_dir)
    data, tokenizer = _prepare_data(options, args, output_dir / TOKENIZER_DIR)
    model = _build_model(options, tokenizer)
    trainer, train_result = _train(model, tokenizer, data, options, args, callbacks, budget)
    train_seconds = time.perf_counter() - started
    if not trainer.is_world_process_zero():
        return {}

    model = trainer.model.eval()
    tuning = _choose_decoding(model, tokenizer, data.corpus["validation"], options)
    _save_final_model(model, tokenizer, output_dir)
    result = _test(model, tokenizer, data.test, options, output_dir)
    return _package(options, model, tokenizer, data, trainer, train_result, tuning, result,
                    train_seconds=train_seconds, started=started)
