"""What the fine-tuning scripts in ``examples/`` share: arguments, data, tokenizer, model and results.

``examples/run_translation.py``, ``run_mlm.py``, ``run_clm.py`` and ``run_classification.py`` follow the conventions of
transformers' own ``run_*.py`` examples: ``HfArgumentParser`` over :class:`ModelArguments`, :class:`DataArguments`,
a script's own dataclass and ``TrainingArguments`` (``Seq2SeqTrainingArguments`` for translation), the real
``Trainer``, ``all_results.json`` in ``--output_dir``. This module holds the parts they have in common, so each script
is only its task's preprocessing, collator and metrics.

The model comes from one of:

* ``--model_name_or_path``: any checkpoint folder - ours (a ``hf-encdec train`` run folder too), or a stock
  transformers model saved with ``save_pretrained``;
* ``--model_type`` (one of ours, ``hf_encdec_encoder``, ..., or any transformers type: ``bert``, ``gpt2``, ``llama``,
  ``marian``, ``bart``) with ``--config_overrides "hidden_size=256,num_hidden_layers=4"``, from scratch;
* ``--preset`` (one of hf_encdec's named sizes, e.g. ``decoder-small-llama``), from scratch.

The tokenizer comes from ``--tokenizer_name``, else from the checkpoint, else it is trained on the training split
(``--tokenizer_type bpe|unigram|wordpiece``, ``--vocab_size``) and saved with the model.

Data: ``--dataset_name`` names an offline corpus of this library (``manpages``, ``manpages-sections``, ``gettext:de``,
``synthetic:reverse``), or ``--train_file``/``--validation_file``/``--test_file`` name the user's files (``.txt``,
``.json``/``.jsonl``, ``.csv``/``.tsv``).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import transformers
from transformers import (
    AutoConfig,
    AutoTokenizer,
    HfArgumentParser,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from ..data import build_manpage_sections_corpus, build_manpages_corpus, load_corpus, load_parallel_files
from ..data.tokenizer import TOKENIZER_MODELS, check_tokenizer_matches_model, tokenizer_fingerprint, train_tokenizer
from ..models.transformers_contract import no_hub_kernels
from ..registration import FAMILIES, presets
from ..speed import speed_up

logger = logging.getLogger(__name__)

__all__ = [
    "DataArguments",
    "ModelArguments",
    "classification_metrics",
    "group_texts",
    "package_halves",
    "require_split",
    "scratch_config",
    "text_iterator",
    "tokenize_texts",
    "train",
    "build_model",
    "finish",
    "get_tokenizer",
    "load_splits",
    "parse_arguments",
    "parse_config_overrides",
    "select_samples",
    "setup_logging",
]

OUR_MODEL_TYPES: tuple[str, ...] = tuple(family.model_type for family in FAMILIES)
TEXT_CORPORA: tuple[str, ...] = ("manpages",)
LABELLED_CORPORA: tuple[str, ...] = ("manpages-sections",)
TOKENIZER_FILES: tuple[str, ...] = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class ModelArguments:
    """Which model and tokenizer to start from (see the module docstring)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A checkpoint folder to fine-tune (ours, a run folder, or a stock model)."}
    )
    model_type: str | None = field(
        default=None,
        metadata={"help": f"Train from scratch: one of {', '.join(OUR_MODEL_TYPES)}, or a transformers type (bert, gpt2, "
                  "llama, marian, bart, ...)."},
    )
    preset: str | None = field(default=None, metadata={"help": "Train from scratch from an hf_encdec preset."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "With --model_type/--preset: config values, 'k=v,k=v' (numbers, true/false)."}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "A tokenizer folder (default: train one)."})
    tokenizer_type: str = field(
        default="bpe", metadata={"help": f"The tokenizer model trained without --tokenizer_name: {TOKENIZER_MODELS}."}
    )
    vocab_size: int = field(default=8000, metadata={"help": "Size of the trained tokenizer's vocabulary."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Load checkpoint code (needed without hf_encdec)."})
    attn_implementation: str | None = field(default=None, metadata={"help": "sdpa (default) or eager."})

    def __post_init__(self) -> None:
        sources = [name for name in ("model_name_or_path", "model_type", "preset") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one of --model_name_or_path (fine-tune a checkpoint), --model_type or --preset (train "
                f"from scratch); got {sources or 'none'}"
            )
        if self.config_overrides and self.model_name_or_path:
            raise ValueError("--config_overrides applies to --model_type/--preset, not to --model_name_or_path")
        if self.tokenizer_type not in TOKENIZER_MODELS:
            raise ValueError(f"--tokenizer_type {self.tokenizer_type!r} is not one of {TOKENIZER_MODELS}")


@dataclass
class DataArguments:
    """Which data, and how much of it."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "An offline corpus: manpages, manpages-sections, gettext:<lang>, synthetic:<task>."},
    )
    train_file: str | None = field(default=None, metadata={"help": "Training data (.txt, .json/.jsonl, .csv/.tsv)."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation data, same format."})
    test_file: str | None = field(default=None, metadata={"help": "Test data (--do_predict), same format."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use the first N validation examples."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use the first N test examples."})

    def __post_init__(self) -> None:
        if (self.dataset_name is None) == (self.train_file is None and self.validation_file is None
                                           and self.test_file is None):
            raise ValueError("give either --dataset_name or data files (--train_file/--validation_file/--test_file)")
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number of examples, got {value}")


def _launched_without_accelerator() -> bool:
    """Started by torchrun / accelerate launch with several processes on a machine without a GPU."""
    import torch

    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return several and not torch.cuda.is_available() and not (hasattr(torch, "xpu") and torch.xpu.is_available())


def _close_process_group() -> None:
    """Destroy the process group before the interpreter exits: gloo's threads left running then can abort a rank
    ("terminate called without an active exception") after its work is done, failing the whole launch."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def parse_arguments(types: Sequence[type], argv: Sequence[str] | None = None) -> tuple[Any, ...]:
    """Parse the command line (or one ``.json`` file of arguments) into the given dataclasses. Several processes on a
    machine without a GPU (``torchrun``, ``accelerate launch``) get ``--use_cpu``, so they train together over gloo."""
    parser = HfArgumentParser(tuple(types))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        atexit.register(_close_process_group)
    args = list(sys.argv[1:] if argv is None else argv)
    if _launched_without_accelerator() and "--use_cpu" not in args:
        args.append("--use_cpu")  # TrainingArguments starts CPU ranks (gloo) only with use_cpu
    if len(args) == 1 and args[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(args[0]))
    return parser.parse_args_into_dataclasses(args=args)


def setup_logging(training_args: TrainingArguments) -> None:
    """Readable logs on the main process, warnings only on the others."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", handlers=[logging.StreamHandler()]
    )
    level = training_args.get_process_log_level()
    for name in ("hf_encdec", "__main__"):
        logging.getLogger(name).setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_explicit_format()


# -- data ---------------------------------------------------------------------------------------------------------


def _file_builder(path: str) -> tuple[str, str | None]:
    """The ``datasets`` builder of a data file and its delimiter."""
    suffix = Path(path).suffix.lower()
    if suffix == ".txt":
        return "text", None
    if suffix in (".json", ".jsonl"):
        return "json", None
    if suffix == ".csv":
        return "csv", ","
    if suffix == ".tsv":
        return "csv", "\t"
    raise ValueError(f"data file {path}: unsupported extension {suffix!r}; use .txt, .json, .jsonl, .csv or .tsv")


def _load_files(data_args: DataArguments) -> datasets.DatasetDict:
    files = {
        split: path
        for split, path in (("train", data_args.train_file), ("validation", data_args.validation_file),
                            ("test", data_args.test_file))
        if path is not None
    }
    for path in files.values():
        if not Path(path).is_file():
            raise FileNotFoundError(f"data file {path} does not exist")
    builders = {_file_builder(path) for path in files.values()}
    if len(builders) != 1:
        raise ValueError(f"the data files must share one format, got {sorted(files.values())}")
    builder, delimiter = builders.pop()
    options = {} if delimiter is None else {"delimiter": delimiter}
    return datasets.load_dataset(builder, data_files=files, **options)


def load_splits(data_args: DataArguments, *, task: str) -> datasets.DatasetDict:
    """The splits of ``--dataset_name`` or of the data files, checked for the columns ``task`` needs.

    Args:
        data_args: The data arguments.
        task: ``"text"`` (a ``text`` column: MLM, CLM), ``"classification"`` (``text`` and ``label``) or
            ``"translation"`` (``source`` and ``target``).

    Raises:
        ValueError: A corpus that does not fit the task (naming the ones that do) or missing columns.
    """
    name = data_args.dataset_name
    if name is not None:
        # the pages are rendered with groff once and kept with datasets' own cache (HF_DATASETS_CACHE); a changed
        # page, option or groff version builds them again
        manpages_cache = Path(datasets.config.HF_DATASETS_CACHE) / "hf_encdec_manpages"
        if task == "text" and name in TEXT_CORPORA:
            corpus = build_manpages_corpus(cache_dir=manpages_cache)
        elif task == "classification" and name in LABELLED_CORPORA:
            corpus = build_manpage_sections_corpus(cache_dir=manpages_cache)
        elif task == "translation" and name not in TEXT_CORPORA + LABELLED_CORPORA:
            corpus = load_corpus(name)
        else:
            fitting = {"text": TEXT_CORPORA, "classification": LABELLED_CORPORA,
                       "translation": ("gettext:<lang>", "synthetic:<task>")}[task]
            raise ValueError(f"--dataset_name {name!r} does not fit this script; it takes {', '.join(fitting)} or "
                             "--train_file/--validation_file")
    elif task == "translation":
        corpus = load_parallel_files(
            data_args.train_file, validation_file=data_args.validation_file, test_file=data_args.test_file
        ) if data_args.train_file else _load_files(data_args)
    else:
        corpus = _load_files(data_args)
    needed = {"text": ("text",), "classification": ("text", "label"), "translation": ("source", "target")}[task]
    for split, part in corpus.items():
        missing = [column for column in needed if column not in part.column_names]
        if missing:
            raise ValueError(f"{split} data lacks column(s) {missing}; it has {part.column_names}")
    return corpus


def select_samples(dataset: datasets.Dataset, count: int | None) -> datasets.Dataset:
    """The first ``count`` examples (all when ``count`` is None)."""
    return dataset if count is None else dataset.select(range(min(count, len(dataset))))


def require_split(corpus: datasets.DatasetDict, split: str, flag: str) -> datasets.Dataset:
    """The split ``flag`` needs, with a clear error when the data has none or it is empty."""
    if split not in corpus or len(corpus[split]) == 0:
        raise ValueError(
            f"{flag} needs {split} data and there is none (splits: {list(corpus)}): give --{split}_file or a "
            f"--dataset_name with a {split} split"
        )
    return corpus[split]


#: the split each flag asks for, and the option that cuts it
SPLIT_FLAGS = {"train": ("--do_train", "max_train_samples"), "validation": ("--do_eval", "max_eval_samples"),
               "test": ("--do_predict", "max_predict_samples")}


def requested_splits(
    corpus: datasets.DatasetDict | dict[str, datasets.Dataset], data_args: DataArguments, training_args: TrainingArguments
) -> dict[str, datasets.Dataset]:
    """The splits the flags ask for (``train`` for --do_train, ``validation`` for --do_eval, ``test`` for
    --do_predict), each cut to its --max_*_samples; a flag whose split is missing or empty fails naming the flag."""
    wanted = {"train": training_args.do_train, "validation": training_args.do_eval, "test": training_args.do_predict}
    return {
        split: select_samples(require_split(corpus, split, SPLIT_FLAGS[split][0]), getattr(data_args, SPLIT_FLAGS[split][1]))
        for split in wanted
        if wanted[split]
    }


def train_and_score(
    trainer: Trainer,
    training_args: TrainingArguments,
    splits: dict[str, datasets.Dataset],
    *,
    score: Callable[[str, datasets.Dataset], dict[str, float]] | None = None,
    with_perplexity: bool = False,
    push: bool = True,
) -> dict[str, float]:
    """Train on ``splits["train"]`` when given (`train`), then score ``validation`` and ``test`` when given: with
    ``score(prefix, dataset)`` (prefix ``eval`` or ``predict``), by default ``trainer.evaluate``; last, with `push`
    and --push_to_hub, upload the output folder. Returns the metrics `finish` recorded."""
    results: dict[str, float] = {}
    if "train" in splits:
        train(trainer, training_args, len(splits["train"]))
    for split, name, prefix in (("validation", "eval", "eval"), ("test", "test", "predict")):
        if split in splits:
            data = splits[split]
            metrics = score(prefix, data) if score else trainer.evaluate(data, metric_key_prefix=prefix)
            results.update(finish(trainer, name, metrics, len(data), with_perplexity=with_perplexity))
    if push and training_args.push_to_hub:
        trainer.push_to_hub()
    return results


def package_halves(corpus: datasets.DatasetDict, package: str, *, salt: str = "hf_encdec-adapt") -> datasets.DatasetDict:
    """One gettext package's messages, wherever they are in ``corpus``, cut in two halves by a stable hash of the
    English text: ``train`` is one half, ``validation`` and ``test`` the other (domain adaptation: fine-tune on half of a
    held-out package, test on the rest; no early stopping or model choice looks at the test half)."""
    parts = [part for part in corpus.values() if "package" in part.column_names]
    if not parts:
        raise ValueError("--dataset_package needs a gettext corpus (--dataset_name gettext:<lang>)")
    rows = datasets.concatenate_datasets(parts).filter(lambda batch: [name == package for name in batch["package"]],
                                                       batched=True)
    if len(rows) < 2:
        packages = sorted({name for part in parts for name in part.unique("package")})
        raise ValueError(f"package {package!r} has {len(rows)} messages; packages: {', '.join(packages)}")
    digest = [hashlib.sha256(f"{salt}\x00{text}".encode()).digest()[0] for text in rows["source"]]
    train = [index for index, value in enumerate(digest) if value % 2 == 0]
    test = [index for index, value in enumerate(digest) if value % 2 == 1]
    halves = datasets.DatasetDict(train=rows.select(train), validation=rows.select(test), test=rows.select(test))
    logger.info("package %s: %d messages to fine-tune on, %d to test on", package, len(train), len(test))
    return halves


def text_iterator(dataset: datasets.Dataset, column: str = "text", batch_size: int = 1000) -> Iterator[str]:
    """The texts of one column, streamed (for tokenizer training)."""
    for batch in dataset.select_columns([column]).iter(batch_size=batch_size):
        yield from batch[column]


def tokenize_texts(corpus: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase) -> datasets.DatasetDict:
    """Every split's ``text`` as ``input_ids`` (each text ends in the tokenizer's ``</s>``, which separates documents
    once they are concatenated), no other columns."""

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"input_ids": tokenizer(batch["text"], return_token_type_ids=False, return_attention_mask=False)["input_ids"]}

    return datasets.DatasetDict({
        split: part.map(encode, batched=True, remove_columns=part.column_names, desc=f"tokenizing {split}")
        for split, part in corpus.items()
    })


def group_texts(tokenized: datasets.DatasetDict, block_size: int) -> datasets.DatasetDict:
    """Concatenate each split's token ids and cut them into blocks of ``block_size`` (the remainder shorter than a
    block is dropped, as in transformers' examples).

    Raises:
        ValueError: ``block_size`` < 2, or a non-empty split with less than one block of tokens.
    """
    if block_size < 2:
        raise ValueError(f"the block size must be at least 2 tokens, got {block_size}")

    def cut(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        ids = [token for ids in batch["input_ids"] for token in ids]
        usable = len(ids) // block_size * block_size
        blocks = [ids[start:start + block_size] for start in range(0, usable, block_size)]
        return {"input_ids": blocks, "attention_mask": [[1] * block_size for _ in blocks]}

    grouped = {}
    for split, part in tokenized.items():
        grouped[split] = part.map(cut, batched=True, batch_size=1000, remove_columns=part.column_names,
                                  desc=f"grouping {split} into blocks of {block_size}")
        if len(part) and not len(grouped[split]):
            raise ValueError(f"{split}: {len(part)} texts hold less than one block of {block_size} tokens; "
                             "lower the block size or add text")
    return datasets.DatasetDict(grouped)


# -- tokenizer ----------------------------------------------------------------------------------------------------


def get_tokenizer(
    model_args: ModelArguments,
    training_args: TrainingArguments,
    texts: Callable[[], Iterator[str]],
    *,
    model_max_length: int,
) -> PreTrainedTokenizerBase:
    """The tokenizer of ``--tokenizer_name`` or of the checkpoint; else one trained on ``texts()`` (the training split
    only), saved into ``--output_dir`` and reused from there when the run resumes. The main process trains it first,
    the others read its files."""
    source = model_args.tokenizer_name or model_args.model_name_or_path
    if source is not None:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=model_args.trust_remote_code)
    output_dir = Path(training_args.output_dir)
    with training_args.main_process_first(desc="tokenizer"):
        if all((output_dir / name).is_file() for name in TOKENIZER_FILES):
            logger.info("reusing the tokenizer in %s", output_dir)
            return AutoTokenizer.from_pretrained(output_dir)
        tokenizer = train_tokenizer(
            texts(), vocab_size=model_args.vocab_size, model=model_args.tokenizer_type, model_max_length=model_max_length
        )
        if training_args.process_index == 0:
            tokenizer.save_pretrained(output_dir)
    return tokenizer


# -- model --------------------------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip()


def parse_config_overrides(text: str | None) -> dict[str, Any]:
    """``"hidden_size=256,dropout=0.1,norm_type=rmsnorm"`` -> a dict with numbers, booleans and None parsed.

    >>> parse_config_overrides("hidden_size=256,dropout=0.1,tie_word_embeddings=false,norm_type=rmsnorm")
    {'hidden_size': 256, 'dropout': 0.1, 'tie_word_embeddings': False, 'norm_type': 'rmsnorm'}
    """
    values: dict[str, Any] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--config_overrides: {item!r} is not key=value (e.g. 'hidden_size=256,num_hidden_layers=4')")
        values[key.strip()] = _parse_value(value)
    return values


def _known_keys(model_type: str) -> set[str]:
    default = CONFIG_MAPPING[model_type]()
    return set(default.to_dict()) | set(getattr(default, "attribute_map", {})) | set(vars(default))


def scratch_config(
    model_args: ModelArguments, tokenizer: PreTrainedTokenizerBase, extra: dict[str, Any] | None = None
) -> PreTrainedConfig:
    """The config of ``--model_type``/``--preset`` with ``--config_overrides``, sized to the tokenizer: vocabulary,
    pad/bos/eos (and decoder start, mask) ids. ``extra`` holds the script's values (``num_labels``, ...).

    Raises:
        ValueError: An unknown model type or preset, or an override that is no field of the config.
    """
    if model_args.preset is not None:
        table = presets()
        if model_args.preset not in table:
            raise ValueError(f"unknown preset {model_args.preset!r}; valid presets: {', '.join(sorted(table))}")
        model_type, values = table[model_args.preset]
        values = dict(values)
    else:
        model_type, values = model_args.model_type, {}
        if model_type not in CONFIG_MAPPING:
            raise ValueError(
                f"unknown --model_type {model_type!r}; ours: {', '.join(OUR_MODEL_TYPES)}; transformers' own include "
                "bert, gpt2, llama, marian, bart"
            )
    overrides = parse_config_overrides(model_args.config_overrides)
    known = _known_keys(model_type)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"--config_overrides: {unknown} are not fields of {model_type} configs; see its config class "
                         f"{CONFIG_MAPPING[model_type].__name__}")
    special = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    for name, value in (("decoder_start_token_id", tokenizer.bos_token_id), ("mask_token_id", tokenizer.mask_token_id),
                        ("decoder_vocab_size", len(tokenizer))):
        if name in known:
            special[name] = value
    values.update(overrides)
    values.update(special)
    values.update(extra or {})
    if model_type == "llama" and "head_dim" not in values and "hidden_size" in values:
        values["head_dim"] = values["hidden_size"] // values.get("num_attention_heads", 32)
    return AutoConfig.for_model(model_type, **values)


def build_model(
    auto_class: type,
    model_args: ModelArguments,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int,
    extra: dict[str, Any] | None = None,
) -> PreTrainedModel:
    """The model to train: ``auto_class.from_pretrained`` of the checkpoint (``extra`` as config values, e.g. a new
    ``num_labels``), or ``auto_class.from_config`` of :func:`scratch_config`, with the speed paths
    (:func:`hf_encdec.speed.speed_up`). Checks the tokenizer fits it."""
    options: dict[str, Any] = {}
    if model_args.attn_implementation is not None:
        options["attn_implementation"] = model_args.attn_implementation
    if model_args.model_name_or_path is not None:
        path = model_args.model_name_or_path
        if Path(path).is_dir() and not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"--model_name_or_path {path} has no config.json; is it a model folder?")
        model = auto_class.from_pretrained(
            path, trust_remote_code=model_args.trust_remote_code, **(extra or {}), **options, **no_hub_kernels()
        )
    else:
        transformers.set_seed(seed)
        model = auto_class.from_config(scratch_config(model_args, tokenizer, extra), **options)
        model.config.tokenizer_fingerprint = tokenizer_fingerprint(tokenizer)  # the vocabulary the ids mean
    check_tokenizer_matches_model(tokenizer, model.config)
    logger.info("%s: %.2fM parameters", type(model).__name__, model.num_parameters() / 1e6)
    return speed_up(model)


# -- results ------------------------------------------------------------------------------------------------------


def perplexity(loss: float) -> float:
    """exp(loss), inf on overflow."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def checkpoint_to_resume(training_args: TrainingArguments) -> str | bool | None:
    """``--resume_from_checkpoint`` as ``Trainer.train`` takes it: a folder, or ``True`` for the newest checkpoint in
    ``--output_dir`` (``--resume_from_checkpoint true``)."""
    value = training_args.resume_from_checkpoint
    if value is None:
        return None
    if str(value).lower() == "true":
        return True
    if not Path(value).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {value} is not a checkpoint folder")
    return value


def train(trainer: Trainer, training_args: TrainingArguments, train_samples: int) -> None:
    """Train (resuming when asked), save the model and tokenizer, and record the train metrics."""
    result = trainer.train(resume_from_checkpoint=checkpoint_to_resume(training_args))
    trainer.save_model()
    metrics = dict(result.metrics)
    metrics["train_samples"] = train_samples
    metrics["train_processes"] = training_args.world_size
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()


def finish(
    trainer: Trainer, split: str, metrics: dict[str, float], samples: int, *, with_perplexity: bool = False
) -> dict[str, float]:
    """Log ``metrics`` and add them to ``{split}_results.json`` and ``all_results.json``, with the sample count and,
    for a language model, the perplexity exp(loss)."""
    prefix = {"test": "predict"}.get(split, split)
    metrics = dict(metrics)
    if with_perplexity:
        metrics[f"{prefix}_perplexity"] = perplexity(metrics[f"{prefix}_loss"])
        if prefix == "eval":
            metrics["perplexity"] = metrics["eval_perplexity"]  # the key transformers' run_mlm/run_clm write
    metrics[f"{prefix}_samples"] = samples
    trainer.log_metrics(split, metrics)
    trainer.save_metrics(split, metrics)
    return metrics


def classification_metrics(num_labels: int) -> Callable[[Any], dict[str, float]]:
    """``compute_metrics`` for classification: accuracy and macro-F1 (the mean over classes of each class's F1; a
    class neither predicted nor present counts 0)."""

    def compute(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = np.asarray(logits).argmax(-1)
        labels = np.asarray(prediction.label_ids)
        scores = []
        for label in range(num_labels):
            true_positive = np.sum((predicted == label) & (labels == label))
            denominator = np.sum(predicted == label) + np.sum(labels == label)
            scores.append(2.0 * true_positive / denominator if denominator else 0.0)
        return {"accuracy": float(np.mean(predicted == labels)), "f1": float(np.mean(scores))}

    return compute
