"""Tokenizer training, fixed special ids, save/reload, exact decoding, pair tokenization, model-config check."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer, BartConfig, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from hf_encdec.data.gettext_corpus import build_gettext_corpus
from hf_encdec.data.synthetic import load_synthetic
from hf_encdec.data.tokenizer import (
    SPECIAL_TOKENS,
    check_tokenizer_matches_model,
    iter_corpus_texts,
    tokenizer_fingerprint,
    segment_with_bpe_dropout,
    tokenize_pairs,
    train_tokenizer,
)

SYSTEM_GERMAN = Path("/usr/share/locale/de/LC_MESSAGES")

#: Strings a UI-message tokenizer must give back unchanged.
TRICKY = [
    "--help",
    "%s",
    "%1$s: %-10.3lf%%",
    "/etc/foo.conf",
    "Größe ändern: Übergröße, Maß, süß",
    "Datei »%s« nicht gefunden\u00a0!",
    "  two  spaces and a tab\there ",
    "日本語のテキスト ✓ 😀",
    "git restore --source=%s --staged <file>...",
]


@pytest.fixture(scope="module")
def catalog_corpus() -> datasets.DatasetDict:
    """Real German catalog pairs when the machine has them, else a synthetic corpus plus the tricky strings."""
    if SYSTEM_GERMAN.is_dir() and any(SYSTEM_GERMAN.glob("*.mo")):
        corpus = build_gettext_corpus("de")
        return datasets.DatasetDict(
            {split: data.select(range(min(6000, data.num_rows))) for split, data in corpus.items()}
        )
    corpus = load_synthetic("reverse", vocab=36, train_size=3000, validation_size=300, test_size=300)
    extra = datasets.Dataset.from_dict({"source": TRICKY * 5, "target": TRICKY[::-1] * 5})
    return datasets.DatasetDict({**corpus, "train": datasets.concatenate_datasets([corpus["train"], extra])})


@pytest.fixture(scope="module")
def bpe(catalog_corpus: datasets.DatasetDict) -> PreTrainedTokenizerBase:
    return train_tokenizer(iter_corpus_texts(catalog_corpus), vocab_size=2000, model_max_length=96)


@pytest.fixture(scope="module")
def unigram(catalog_corpus: datasets.DatasetDict) -> PreTrainedTokenizerBase:
    return train_tokenizer(iter_corpus_texts(catalog_corpus), vocab_size=1500, model="unigram")


@pytest.fixture(params=["bpe", "unigram"])
def tokenizer(request: pytest.FixtureRequest) -> PreTrainedTokenizerBase:
    return request.getfixturevalue(request.param)


def test_special_tokens_have_fixed_ids(tokenizer: PreTrainedTokenizerBase) -> None:
    assert [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert (tokenizer.unk_token_id, tokenizer.mask_token_id) == (3, 4)


def test_vocabulary_size_is_bounded_by_the_request(
    bpe: PreTrainedTokenizerBase, unigram: PreTrainedTokenizerBase
) -> None:
    assert 261 < len(bpe) <= 2000
    assert 261 < len(unigram) <= 1500


def test_post_processor_appends_eos_to_single_pair_and_target(tokenizer: PreTrainedTokenizerBase) -> None:
    single = tokenizer("Open file")["input_ids"]
    assert single[-1] == 2 and single.count(2) == 1 and 1 not in single
    pair = tokenizer("Open file", "Datei öffnen")["input_ids"]
    assert pair.count(2) == 2 and pair[-1] == 2
    assert pair[: len(single)] == single
    encoded = tokenizer("Open file", text_target="Datei öffnen")
    assert encoded["labels"][-1] == 2 and encoded["input_ids"] == single


def test_decode_round_trips_tricky_and_real_strings(
    tokenizer: PreTrainedTokenizerBase, catalog_corpus: datasets.DatasetDict
) -> None:
    texts = TRICKY + list(catalog_corpus["test"]["source"][:300]) + list(catalog_corpus["test"]["target"][:300])
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids, text
        assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_save_and_reload_offline_gives_identical_ids(
    tokenizer: PreTrainedTokenizerBase,
    catalog_corpus: datasets.DatasetDict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    texts = TRICKY + list(catalog_corpus["validation"]["target"][:200])
    assert reloaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    assert len(reloaded) == len(tokenizer)
    assert reloaded.model_max_length == tokenizer.model_max_length
    assert [reloaded.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (reloaded.pad_token, reloaded.bos_token, reloaded.eos_token) == ("<pad>", "<s>", "</s>")
    assert (reloaded.unk_token, reloaded.mask_token) == ("<unk>", "<mask>")


def test_model_max_length_is_set(bpe: PreTrainedTokenizerBase) -> None:
    assert bpe.model_max_length == 96
    assert len(bpe("word " * 500, truncation=True)["input_ids"]) == 96


def test_training_consumes_a_one_shot_generator() -> None:
    def texts() -> Iterator[str]:
        for index in range(400):
            yield f"message number {index} about files and folders"

    tokenizer = train_tokenizer(texts(), vocab_size=300)
    assert tokenizer.decode(tokenizer("message about folders")["input_ids"], skip_special_tokens=True) == (
        "message about folders"
    )


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="valid models: bpe, unigram, wordpiece"):
        train_tokenizer(["a b"], model="sentencepiece")
    with pytest.raises(ValueError, match="at least 261"):
        train_tokenizer(["a b"], vocab_size=100)
    with pytest.raises(ValueError, match="no texts"):
        train_tokenizer(iter([]), vocab_size=300)


def test_iter_corpus_texts_reads_train_only_by_default() -> None:
    corpus = load_synthetic("reverse", train_size=5, validation_size=2, test_size=2)
    texts = list(iter_corpus_texts(corpus, batch_size=2))
    assert sorted(texts) == sorted([*corpus["train"]["source"], *corpus["train"]["target"]])
    with pytest.raises(KeyError, match="splits"):
        list(iter_corpus_texts(corpus, splits=("dev",)))


def test_tokenize_pairs_builds_inputs_and_drops_long_pairs(
    bpe: PreTrainedTokenizerBase, caplog: pytest.LogCaptureFixture
) -> None:
    data = datasets.Dataset.from_dict(
        {
            "source": ["Open file", "Close the window", "word " * 40, "Save"],
            "target": ["Datei öffnen", "Fenster schließen", "Wort", "Speichern " * 40],
        }
    )
    with caplog.at_level(logging.INFO, logger="hf_encdec.data.tokenizer"):
        encoded = tokenize_pairs(
            datasets.DatasetDict({"train": data}), bpe, max_source_length=20, max_target_length=20
        )["train"]
    assert encoded.column_names == ["input_ids", "attention_mask", "labels"]
    assert encoded.num_rows == 2
    assert "dropped 2 of 4 pairs" in caplog.text
    assert encoded["input_ids"][0] == bpe("Open file")["input_ids"]
    assert encoded["labels"][1] == bpe("Fenster schließen")["input_ids"]
    assert all(labels[-1] == 2 for labels in encoded["labels"])
    assert all(mask == [1] * len(ids) for mask, ids in zip(encoded["attention_mask"], encoded["input_ids"]))


def test_tokenize_pairs_limits_count_eos_and_keep_columns(bpe: PreTrainedTokenizerBase) -> None:
    data = datasets.Dataset.from_dict({"source": ["Open file"], "target": ["Datei öffnen"], "package": ["x"]})
    source_length = len(bpe("Open file")["input_ids"])  # </s> included
    exact = tokenize_pairs(data, bpe, max_source_length=source_length, max_target_length=64, keep_columns=["package"])
    assert exact.num_rows == 1 and exact["package"] == ["x"]
    with pytest.raises(ValueError, match="all 1 pairs are longer than max_source_length"):
        tokenize_pairs(data, bpe, max_source_length=source_length - 1, max_target_length=64)


def test_bpe_dropout_segments_each_copy_anew_and_keeps_the_pairs(
    catalog_corpus: datasets.DatasetDict, bpe: PreTrainedTokenizerBase
) -> None:
    pairs = tokenize_pairs(catalog_corpus["train"].select(range(300)), bpe, max_source_length=40,
                           max_target_length=40, keep_columns=("source", "target"))
    before = bpe(TRICKY)["input_ids"]
    noisy = segment_with_bpe_dropout(pairs, bpe, dropout=0.1, copies=3, max_source_length=40, max_target_length=40)
    assert noisy.num_rows == 3 * pairs.num_rows and noisy.column_names == pairs.column_names
    copies = [noisy.select(range(i * pairs.num_rows, (i + 1) * pairs.num_rows)).to_dict() for i in range(3)]
    pairs = pairs.to_dict()
    rows = len(pairs["labels"])
    for segmented in copies:
        assert segmented["source"] == pairs["source"] and segmented["target"] == pairs["target"]
        # other pieces, the same text, and never over the limits
        assert [bpe.decode(ids, skip_special_tokens=True) for ids in segmented["labels"]] == pairs["target"]
        assert [bpe.decode(ids, skip_special_tokens=True) for ids in segmented["input_ids"]] == pairs["source"]
        assert all(len(ids) <= 40 for ids in segmented["input_ids"] + segmented["labels"])
        assert all(ids[-1] == bpe.eos_token_id for ids in segmented["labels"])
        assert all(mask == [1] * len(ids) for mask, ids in zip(segmented["attention_mask"], segmented["input_ids"]))
        changed = sum(new != old for new, old in zip(segmented["labels"], pairs["labels"]))
        assert changed > rows // 4, changed
    assert copies[0]["labels"] != copies[1]["labels"]  # a new segmentation per copy
    # the tokenizer itself still segments as it was trained to
    assert bpe.backend_tokenizer.model.dropout is None and bpe(TRICKY)["input_ids"] == before


def test_bpe_dropout_refuses_what_it_cannot_do(bpe: PreTrainedTokenizerBase, unigram: PreTrainedTokenizerBase) -> None:
    data = datasets.Dataset.from_dict({"source": ["Open file"], "target": ["Datei öffnen"]})
    pairs = tokenize_pairs(data, bpe, max_source_length=20, max_target_length=20, keep_columns=("source", "target"))
    limits = {"max_source_length": 20, "max_target_length": 20}
    for dropout in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=f"between 0 and 1.*got {dropout}"):
            segment_with_bpe_dropout(pairs, bpe, dropout=dropout, copies=1, **limits)
    with pytest.raises(ValueError, match="copies=0"):
        segment_with_bpe_dropout(pairs, bpe, dropout=0.1, copies=0, **limits)
    with pytest.raises(ValueError, match="model is Unigram.*--tokenizer-model bpe"):
        segment_with_bpe_dropout(pairs, unigram, dropout=0.1, copies=1, **limits)
    with pytest.raises(ValueError, match=r"\['source', 'target'\] not found"):
        segment_with_bpe_dropout(pairs.remove_columns(["source", "target"]), bpe, dropout=0.1, copies=1, **limits)


def test_check_tokenizer_matches_model(bpe: PreTrainedTokenizerBase) -> None:
    matching = BartConfig(
        vocab_size=len(bpe), pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1
    )
    check_tokenizer_matches_model(bpe, matching)
    too_small = BartConfig(
        vocab_size=len(bpe) - 1, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1
    )
    with pytest.raises(ValueError, match=rf"len\(tokenizer\)={len(bpe)} > config.vocab_size={len(bpe) - 1}"):
        check_tokenizer_matches_model(bpe, too_small)
    bart_ids = BartConfig(vocab_size=len(bpe))  # BART: pad 1, bos 0, eos 2, decoder start 2
    with pytest.raises(ValueError) as caught:
        check_tokenizer_matches_model(bpe, bart_ids)
    message = str(caught.value)
    assert "tokenizer.pad_token_id=0 != config.pad_token_id=1" in message
    assert "tokenizer.bos_token_id=1 != config.decoder_start_token_id=2" in message
    assert "eos_token_id" not in message
    wrong_mask = BartConfig(
        vocab_size=len(bpe), pad_token_id=0, bos_token_id=1, eos_token_id=[2], decoder_start_token_id=1
    )
    wrong_mask.mask_token_id = 7  # an encoder config's field; BART has none
    with pytest.raises(ValueError, match="tokenizer.mask_token_id=4 != config.mask_token_id=7"):
        check_tokenizer_matches_model(bpe, wrong_mask)


def swapped_ids(tokenizer: PreTrainedTokenizerBase, first: int, second: int) -> PreTrainedTokenizerFast:
    """The tokenizer with the ids of two ordinary tokens exchanged: the same size and special ids, another
    vocabulary."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = state["model"]["vocab"]
    names = {index: token for token, index in vocab.items()}
    vocab[names[first]], vocab[names[second]] = second, first
    backend = Tokenizer.from_str(json.dumps(state))
    return PreTrainedTokenizerFast(tokenizer_object=backend, **tokenizer.special_tokens_map)


def test_a_tokenizer_of_the_same_size_with_another_vocabulary_is_refused_by_its_fingerprint(
    bpe: PreTrainedTokenizerBase,
) -> None:
    other = swapped_ids(bpe, 300, 301)
    assert len(other) == len(bpe) and other.convert_ids_to_tokens(300) == bpe.convert_ids_to_tokens(301)
    config = BartConfig(vocab_size=len(bpe), pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    check_tokenizer_matches_model(other, config)  # no fingerprint recorded (a run of an older version): not checked
    config.tokenizer_fingerprint = tokenizer_fingerprint(bpe)
    check_tokenizer_matches_model(bpe, config)
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(bpe)
    with pytest.raises(ValueError, match=rf"fingerprint {tokenizer_fingerprint(other)}\) is not the one the model was "
                                         rf"trained with \(config.tokenizer_fingerprint={tokenizer_fingerprint(bpe)}"):
        check_tokenizer_matches_model(other, config)


def test_wordpiece_is_bert_style_with_fixed_special_ids_and_reloads(
    catalog_corpus: datasets.DatasetDict, tmp_path: Path
) -> None:
    wordpiece = train_tokenizer(iter_corpus_texts(catalog_corpus), vocab_size=1200, model="wordpiece")
    assert [wordpiece.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert 261 < len(wordpiece) <= 1200
    vocabulary = wordpiece.get_vocab()
    continuations = [token for token in vocabulary if token.startswith("##")]
    assert continuations, "WordPiece learns ## continuation pieces"
    text = "Open the configuration file --help"
    tokens = wordpiece.convert_ids_to_tokens(wordpiece(text)["input_ids"])
    assert tokens[-1] == "</s>" and "-" in tokens  # split at punctuation, </s> appended
    # cased, words come back; spaces around punctuation do not (documented)
    decoded = wordpiece.decode(wordpiece(text)["input_ids"], skip_special_tokens=True)
    assert decoded.replace(" ", "") == text.replace(" ", "") and decoded.startswith("Open")
    wordpiece.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(TRICKY)["input_ids"] == wordpiece(TRICKY)["input_ids"]
