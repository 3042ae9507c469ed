"""Fixtures for the evaluation tests: a real word-level tokenizer built in memory (no network, no files)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

CORPUS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the bird sang a song",
    "my friend reads the book",
    "we walk to the old house",
]


@pytest.fixture(scope="session")
def word_tokenizer() -> PreTrainedTokenizerFast:
    """WordLevel tokenizer over CORPUS with `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", "<s>", "</s>", "<unk>"])
    tokenizer.train_from_iterator(CORPUS, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    assert (wrapped.pad_token_id, wrapped.bos_token_id, wrapped.eos_token_id, wrapped.unk_token_id) == (0, 1, 2, 3)
    return wrapped
