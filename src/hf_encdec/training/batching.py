"""Batches by tokens with little padding (the fairseq recipe).

Examples are sorted by length once and cut into batches whose padded size `n * max_len` stays under `max_tokens`;
the batches keep their composition and only their order is shuffled each epoch. A fixed batch count per epoch is
what lets the Trainer resume exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class TokenBatchSampler(Sampler[list[int]]):
    """Index batches of at most `max_tokens` padded tokens (and at most `max_sentences` examples).

    >>> sampler = TokenBatchSampler([3, 9, 4, 8, 3], max_tokens=16, shuffle=False)
    >>> list(sampler)
    [[0, 4, 2], [3], [1]]
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        max_tokens: int,
        max_sentences: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if not lengths:
            raise ValueError("cannot batch an empty dataset")
        longest = max(lengths)
        if longest > max_tokens:
            raise ValueError(
                f"an example has {longest} tokens, more than max_tokens={max_tokens}; raise max_tokens or drop "
                "long examples (max source/target length)"
            )
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        self.batches: list[list[int]] = []
        batch: list[int] = []
        for index in order:
            # sorted ascending, so the new example is the longest of the batch
            too_many = max_sentences is not None and len(batch) >= max_sentences
            if batch and ((len(batch) + 1) * lengths[index] > max_tokens or too_many):
                self.batches.append(batch)
                batch = []
            batch.append(index)
        self.batches.append(batch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        if not self.shuffle:
            yield from self.batches
            return
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        for position in torch.randperm(len(self.batches), generator=generator).tolist():
            yield self.batches[position]

    def __len__(self) -> int:
        return len(self.batches)
