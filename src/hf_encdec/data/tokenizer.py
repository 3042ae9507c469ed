"""Subword tokenizers trained on the corpus, with the special-token ids every hf_encdec model relies on.

Fixed ids (the model configs default to them):

======== ==== =================================================
token    id   role
======== ==== =================================================
``<pad>`` 0   padding (``pad_token_id``)
``<s>``   1   beginning of sequence and decoder start (``bos_token_id``, ``decoder_start_token_id``)
``</s>``  2   end of sequence (``eos_token_id``), appended to every encoded sequence by the post-processor
``<unk>`` 3   unknown (never produced by the byte-level models below, kept for configs and other tokenizers)
``<mask>`` 4  masked-LM / Mask-Predict placeholder (``mask_token_id``)
======== ==== =================================================

Both models work on **bytes** (GPT-2's byte-level pre-tokenizer, Radford et al. 2019): the text is split into words,
punctuation runs and spaces with GPT-2's regex, each word's UTF-8 bytes are mapped to 256 printable characters, and
BPE (Sennrich et al. 2016, arXiv 1508.07909) or Unigram (Kudo 2018, arXiv 1804.10959) learns subwords over those.
Every byte is in the initial alphabet, so no input ever becomes ``<unk>``, and the byte-level decoder gives back the
exact text: option names (``--help``), format directives (``%s``, ``%1$s``), paths (``/etc/foo.conf``), umlauts and
repeated spaces all round-trip, without the normalisation a SentencePiece-style Metaspace tokenizer applies (which
needs 256 extra byte-fallback tokens to reach the same coverage and re-inserts spaces on decode).

The third model, ``"wordpiece"``, is BERT's (Devlin et al. 2018, arXiv 1810.04805; cased, no lowercasing): the text is
split at whitespace and punctuation (``BertPreTokenizer``), words into the longest known pieces with ``##``
continuations. It is offered for BERT-style masked LM and classification. It does **not** round-trip: spaces around
punctuation are lost on decode (``"--help"`` comes back as ``"- - help"``) and a character unseen in training becomes
``<unk>``, so translation and causal LM should use the byte-level models.

Special-token strings typed in the input text (``"<mask>"``) are recognised as the special tokens, as usual for
Hugging Face tokenizers (``fill-mask`` relies on it); the gettext corpus contains none.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import datasets
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "MASK_TOKEN",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "TOKENIZER_MODELS",
    "UNK_TOKEN",
    "check_tokenizer_matches_model",
    "iter_corpus_texts",
    "segment_with_bpe_dropout",
    "tokenize_pairs",
    "tokenizer_fingerprint",
    "train_tokenizer",
]

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, MASK_TOKEN = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, MASK_TOKEN)
"""The special tokens in id order: ``<pad>``=0, ``<s>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=4."""

TOKENIZER_MODELS: tuple[str, ...] = ("bpe", "unigram", "wordpiece")
"""Subword models :func:`train_tokenizer` can train."""


def _build_trainer(model: str, *, vocab_size: int, min_frequency: int) -> tuple[Tokenizer, trainers.Trainer]:
    """Create an untrained byte-level tokenizer of the given model and its trainer."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # all 256 byte symbols: nothing is ever unknown
    if model == "bpe":
        tokenizer = Tokenizer(models.BPE())
        trainer: trainers.Trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=alphabet,
            show_progress=False,
        )
    elif model == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            unk_token=UNK_TOKEN,
            initial_alphabet=alphabet,
            show_progress=False,
        )
    elif model == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNK_TOKEN))
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
        )
        # BERT-cased: clean control characters, keep case and accents; split at whitespace and punctuation
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, clean_text=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        return tokenizer, trainer
    else:
        raise ValueError(f"Unknown tokenizer model {model!r}; valid models: {', '.join(TOKENIZER_MODELS)}")
    # add_prefix_space=False: a prefix space would come back as a leading space on decode.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer, trainer


def train_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 8000,
    model: str = "bpe",
    min_frequency: int = 2,
    model_max_length: int = 512,
    length: int | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE or Unigram tokenizer, or a BERT WordPiece tokenizer, and wrap it for ``transformers``.

    The texts are streamed into the trainer, never collected into a list; pass a generator such as
    :func:`iter_corpus_texts` over the **training** split only, so no evaluation text shapes the vocabulary.

    Args:
        texts: Training texts (both languages for a shared vocabulary).
        vocab_size: Target vocabulary size, special tokens included. A small corpus may give fewer (BPE stops when
            no pair reaches ``min_frequency``); check ``len(tokenizer)``.
        model: ``"bpe"``, ``"unigram"`` or ``"wordpiece"`` (not byte-level: see the module docstring).
        min_frequency: Minimum count of a pair to be merged (BPE and WordPiece).
        model_max_length: Longest input the models accept, stored on the tokenizer (``truncation=True`` uses it).
        length: Number of texts, if known (only for the trainer's bookkeeping).

    Returns:
        A ``PreTrainedTokenizerFast`` with ``<pad>``=0, ``<s>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=4, whose
        post-processor appends ``</s>`` to every sequence (``A </s>``, pairs ``A </s> B </s>``), and which saves with
        ``save_pretrained`` and reloads with ``AutoTokenizer.from_pretrained`` offline.

    Raises:
        ValueError: For an unknown model, a vocabulary too small for the 256 bytes and the special tokens, a
            non-positive ``min_frequency`` or ``model_max_length``, or when training produced no vocabulary.
    """
    minimum = len(SPECIAL_TOKENS) + 256
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (5 special tokens + 256 bytes), got {vocab_size}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    if model_max_length < 1:
        raise ValueError(f"model_max_length must be >= 1, got {model_max_length}")
    tokenizer, trainer = _build_trainer(model, vocab_size=vocab_size, min_frequency=min_frequency)

    counted = 0

    def counting(source: Iterable[str]) -> Iterator[str]:
        nonlocal counted
        for text in source:
            counted += 1
            yield text

    tokenizer.train_from_iterator(counting(texts), trainer=trainer, length=length)
    if counted == 0:
        raise ValueError("train_tokenizer got no texts to train on")
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        actual_id = tokenizer.token_to_id(token)
        if actual_id != expected_id:  # the trainers place special tokens first; a change there must not slip by
            raise RuntimeError(f"special token {token!r} got id {actual_id}, expected {expected_id}")
    eos_id = SPECIAL_TOKENS.index(EOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}",
        pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}",
        special_tokens=[(EOS_TOKEN, eos_id)],
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        mask_token=MASK_TOKEN,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,  # the cleanup would turn "a ." into "a." and break the round trip
    )
    logger.info(
        "trained %s tokenizer on %d texts: %d tokens (asked for %d)", model, counted, len(wrapped), vocab_size
    )
    return wrapped


def iter_corpus_texts(
    corpus: datasets.DatasetDict | datasets.Dataset,
    *,
    splits: Sequence[str] = ("train",),
    columns: Sequence[str] = ("source", "target"),
    batch_size: int = 1000,
) -> Iterator[str]:
    """Stream the texts of some splits and columns of a corpus, batch by batch (for :func:`train_tokenizer`).

    Args:
        corpus: A ``DatasetDict`` (``splits`` are read) or a single ``Dataset``.
        splits: Splits to read; the default, ``train`` only, keeps evaluation text out of the vocabulary.
        columns: Text columns to read.
        batch_size: Rows fetched at a time.

    Yields:
        The texts, column by column within each batch.

    Raises:
        KeyError: If a split or column is missing (the message lists what exists).
    """
    parts = [corpus] if isinstance(corpus, datasets.Dataset) else []
    if isinstance(corpus, datasets.DatasetDict):
        for split in splits:
            if split not in corpus:
                raise KeyError(f"split {split!r} not in the corpus; splits: {list(corpus)}")
            parts.append(corpus[split])
    for part in parts:
        missing = [column for column in columns if column not in part.column_names]
        if missing:
            raise KeyError(f"column(s) {missing} not in the dataset; columns: {part.column_names}")
        for batch in part.select_columns(list(columns)).iter(batch_size=batch_size):
            for column in columns:
                yield from batch[column]


def _tokenize_split(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    split: str,
    max_source_length: int,
    max_target_length: int,
    source_column: str,
    target_column: str,
    keep_columns: Sequence[str],
) -> datasets.Dataset:
    """Tokenize one split, keeping only the pairs within the length limits."""
    missing = [column for column in (source_column, target_column, *keep_columns) if column not in dataset.column_names]
    if missing:
        raise ValueError(f"{split}: column(s) {missing} not found; columns: {dataset.column_names}")

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        sources = tokenizer(batch[source_column])["input_ids"]
        targets = tokenizer(batch[target_column])["input_ids"]
        kept: dict[str, list[Any]] = {"input_ids": [], "attention_mask": [], "labels": []}
        kept.update({column: [] for column in keep_columns})
        for index, (source_ids, target_ids) in enumerate(zip(sources, targets)):
            if len(source_ids) > max_source_length or len(target_ids) > max_target_length:
                continue
            kept["input_ids"].append(source_ids)
            kept["attention_mask"].append([1] * len(source_ids))
            kept["labels"].append(target_ids)
            for column in keep_columns:
                kept[column].append(batch[column][index])
        return kept

    encoded = dataset.map(
        encode,
        batched=True,
        remove_columns=dataset.column_names,
        desc=f"tokenizing {split}",
    )
    dropped = dataset.num_rows - encoded.num_rows
    if dataset.num_rows and encoded.num_rows == 0:
        raise ValueError(
            f"{split}: all {dataset.num_rows} pairs are longer than max_source_length={max_source_length} or "
            f"max_target_length={max_target_length} tokens (</s> included); raise the limits"
        )
    if dropped:
        logger.info(
            "%s: dropped %d of %d pairs (%.1f%%) longer than %d source / %d target tokens",
            split,
            dropped,
            dataset.num_rows,
            100.0 * dropped / dataset.num_rows,
            max_source_length,
            max_target_length,
        )
    return encoded


def tokenize_pairs(
    dataset: datasets.DatasetDict | datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_source_length: int,
    max_target_length: int,
    source_column: str = "source",
    target_column: str = "target",
    keep_columns: Sequence[str] = (),
) -> datasets.DatasetDict | datasets.Dataset:
    """Tokenize parallel text into model inputs, dropping (not truncating) pairs over the length limits.

    Truncating a translation pair would teach the model to stop mid-sentence, so over-long pairs are removed and
    counted in the log instead.

    Args:
        dataset: A ``Dataset`` or a ``DatasetDict`` of them, with the text columns.
        tokenizer: A tokenizer whose post-processor appends ``</s>`` (as :func:`train_tokenizer` builds).
        max_source_length: Longest ``input_ids`` kept, ``</s>`` included.
        max_target_length: Longest ``labels`` kept, ``</s>`` included.
        source_column: Column with the source text.
        target_column: Column with the target text.
        keep_columns: Other columns to carry along (e.g. ``"source"``/``"target"`` for reference texts at
            evaluation); by default only the model inputs remain, as ``Trainer`` expects.

    Returns:
        The same structure with columns ``input_ids``, ``attention_mask`` (all ones, no padding yet), ``labels``
        (target ids ending in ``</s>``) and ``keep_columns``.

    Raises:
        ValueError: If a limit is not positive, a column is missing, or a non-empty split loses every pair.
    """
    if max_source_length < 1 or max_target_length < 1:
        raise ValueError(
            f"max_source_length and max_target_length must be >= 1, got {max_source_length} and {max_target_length}"
        )
    options: dict[str, Any] = {
        "max_source_length": max_source_length,
        "max_target_length": max_target_length,
        "source_column": source_column,
        "target_column": target_column,
        "keep_columns": tuple(keep_columns),
    }
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict(
            {split: _tokenize_split(part, tokenizer, split=split, **options) for split, part in dataset.items()}
        )
    return _tokenize_split(dataset, tokenizer, split="dataset", **options)


def segment_with_bpe_dropout(
    pairs: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    dropout: float,
    copies: int,
    max_source_length: int,
    max_target_length: int,
    source_column: str = "source",
    target_column: str = "target",
) -> datasets.Dataset:
    """BPE-dropout (Provilkov et al. 2020, arXiv 1910.13267): `copies` segmentations of the tokenized `pairs`, one
    after the other, each made with every BPE merge skipped with probability `dropout`, so that a model trained on
    them sees a word in many splits and learns how pieces make words. Translation still uses the tokenizer as it is.

    `pairs` is the output of :func:`tokenize_pairs` with the text columns kept. Each copy has the same pairs in the
    same order; where a noisy segmentation is longer than the limits, that side keeps its usual ids. `tokenizer` is
    not changed. The merges skipped come from the tokenizers library's own random generator, which takes no seed.

    >>> tokenizer = train_tokenizer(["the configuration file", "die Konfigurationsdatei"] * 20, vocab_size=300)
    >>> pairs = tokenize_pairs(datasets.Dataset.from_dict({"source": ["the configuration file"],
    ...     "target": ["die Konfigurationsdatei"]}), tokenizer, max_source_length=64, max_target_length=64,
    ...     keep_columns=("source", "target"))
    >>> noisy = segment_with_bpe_dropout(pairs, tokenizer, dropout=0.5, copies=3, max_source_length=64,
    ...                                  max_target_length=64)
    >>> noisy.num_rows, {tokenizer.decode(ids, skip_special_tokens=True) for ids in noisy["labels"]}
    (3, {'die Konfigurationsdatei'})

    Raises:
        ValueError: `dropout` is not in (0, 1), `copies` is below 1, `tokenizer` is not a BPE tokenizer, or `pairs`
            lacks the text columns.
    """
    if not 0.0 < dropout < 1.0:
        raise ValueError(f"BPE-dropout must be a probability between 0 and 1 (0.1 in the paper), got {dropout}")
    if copies < 1:
        raise ValueError(f"BPE-dropout needs at least one segmentation of the training pairs, got copies={copies}")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not isinstance(backend.model, models.BPE):
        kind = type(backend.model).__name__ if backend is not None else type(tokenizer).__name__
        raise ValueError(f"BPE-dropout skips BPE merges, and this tokenizer's model is {kind}; train a BPE tokenizer "
                         "(tokenizer_model='bpe', `--tokenizer-model bpe`) or leave BPE-dropout off")
    missing = [column for column in (source_column, target_column) if column not in pairs.column_names]
    if missing:
        raise ValueError(f"BPE-dropout re-tokenizes the text: column(s) {missing} not found in {pairs.column_names}; "
                         "tokenize with keep_columns=('source', 'target')")
    noisy = copy.deepcopy(tokenizer)
    noisy.backend_tokenizer.model.dropout = dropout

    def resegment(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        sources = noisy(batch[source_column])["input_ids"]
        targets = noisy(batch[target_column])["input_ids"]
        batch["input_ids"] = [new if len(new) <= max_source_length else old
                              for new, old in zip(sources, batch["input_ids"])]
        batch["labels"] = [new if len(new) <= max_target_length else old for new, old in zip(targets, batch["labels"])]
        batch["attention_mask"] = [[1] * len(ids) for ids in batch["input_ids"]]
        return batch

    segmentations = [
        pairs.map(resegment, batched=True, load_from_cache_file=False, desc=f"BPE-dropout {index + 1}/{copies}")
        for index in range(copies)
    ]
    return datasets.concatenate_datasets(segmentations)


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A short hash of the tokenizer's vocabulary (every token and its id, not the merges or normalisation): two
    tokenizers of the same size trained on other data get different ones. The training recipe saves it in the
    model's config (`tokenizer_fingerprint`), so that a swapped tokenizer, or a drafter of another tokenizer, is
    refused by name rather than decoding nonsense.

    >>> from transformers import PreTrainedTokenizerFast
    >>> from tokenizers import Tokenizer, models
    >>> def tok(vocab):
    ...     return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="a")))
    >>> tokenizer_fingerprint(tok({"a": 0, "b": 1})) == tokenizer_fingerprint(tok({"b": 1, "a": 0}))
    True
    >>> tokenizer_fingerprint(tok({"a": 0, "b": 1})) == tokenizer_fingerprint(tok({"a": 0, "c": 1}))
    False
    """
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: (item[1], item[0]))
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def check_tokenizer_matches_model(tokenizer: PreTrainedTokenizerBase, config: Any) -> None:
    """Check that a tokenizer fits a model config: vocabulary size and special-token ids.

    A tokenizer with more tokens than the embedding has rows fails only at the first rare token (an index error
    deep in the embedding), and mismatched pad/eos/start ids silently train the wrong thing; both are caught here.
    A config field that is absent or ``None`` is not checked (an encoder-only config has no decoder start). A config
    with ``tokenizer_fingerprint`` (saved by the training recipe) must also have this tokenizer's vocabulary: a
    tokenizer of the same size trained on other data is refused too.

    Args:
        tokenizer: The tokenizer.
        config: A model config with ``vocab_size`` and optionally ``pad_token_id``, ``eos_token_id`` (an int or a
            list), ``bos_token_id``, ``decoder_start_token_id``, ``mask_token_id``.

    Raises:
        ValueError: Naming the tokenizer's and the config's value, if ``len(tokenizer) > config.vocab_size`` or a
            special-token id disagrees (``decoder_start_token_id`` must equal the tokenizer's ``bos_token_id``).
    """
    problems: list[str] = []
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is not None and len(tokenizer) > vocab_size:
        problems.append(f"len(tokenizer)={len(tokenizer)} > config.vocab_size={vocab_size}")
    checks = (
        ("pad_token_id", "pad_token_id"),
        ("eos_token_id", "eos_token_id"),
        ("bos_token_id", "bos_token_id"),
        ("decoder_start_token_id", "bos_token_id"),
        ("mask_token_id", "mask_token_id"),
    )
    for config_field, tokenizer_field in checks:
        config_value = getattr(config, config_field, None)
        if config_value is None:
            continue
        tokenizer_value = getattr(tokenizer, tokenizer_field, None)
        allowed = config_value if isinstance(config_value, (list, tuple)) else [config_value]
        if tokenizer_value not in allowed:
            problems.append(f"tokenizer.{tokenizer_field}={tokenizer_value} != config.{config_field}={config_value}")
    expected = getattr(config, "tokenizer_fingerprint", None)
    found = tokenizer_fingerprint(tokenizer) if expected is not None and not problems else expected
    if found != expected:
        problems.append(
            f"the tokenizer's vocabulary (fingerprint {found}) is not the one the model was trained with "
            f"(config.tokenizer_fingerprint={expected}): load the tokenizer saved with the model; if you changed the "
            "tokenizer on purpose (added tokens, resized the embeddings), set config.tokenizer_fingerprint = "
            "hf_encdec.data.tokenizer_fingerprint(tokenizer) and save the model again"
        )
    if problems:
        raise ValueError("tokenizer does not match the model config: " + "; ".join(problems))
