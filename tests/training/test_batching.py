"""Token batches: every example once, the padded size within budget, a fixed batch count, a seeded order."""

from __future__ import annotations

import random

import pytest

from hf_encdec.training import TokenBatchSampler


def test_batches_cover_every_example_once_within_the_token_budget() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 40) for _ in range(500)]
    sampler = TokenBatchSampler(lengths, max_tokens=120, seed=3)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    assert all(len(batch) * max(lengths[i] for i in batch) <= 120 for batch in batches)
    assert len(batches) == len(sampler)
    # sorting keeps padding low: on average under 10% of the batch
    padding = sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)
    assert padding / sum(lengths) < 0.1


def test_order_is_reproducible_per_epoch_and_changes_between_epochs() -> None:
    lengths = [1 + i % 50 for i in range(200)]
    first, second = TokenBatchSampler(lengths, max_tokens=64, seed=1), TokenBatchSampler(lengths, max_tokens=64, seed=1)
    assert list(first) == list(second)
    epoch0 = list(first)
    first.set_epoch(1)
    assert list(first) != epoch0 and sorted(map(tuple, first)) == sorted(map(tuple, epoch0))


def test_max_sentences_caps_the_batch() -> None:
    assert max(len(b) for b in TokenBatchSampler([1] * 50, max_tokens=1000, max_sentences=8)) == 8


def test_too_long_or_empty_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="more than max_tokens=10"):
        TokenBatchSampler([3, 11], max_tokens=10)
    with pytest.raises(ValueError, match="empty"):
        TokenBatchSampler([], max_tokens=10)
