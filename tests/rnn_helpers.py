"""Tiny RNN seq2seq models and batches shared by the RNN family's tests."""

from __future__ import annotations

from typing import Any

import torch

from hf_encdec import RNNSeq2SeqConfig, RNNSeq2SeqForConditionalGeneration
from variants import BATCH, SOURCE_LEN, TARGET_LEN, TINY_RNN, VOCAB, split_attn

SOURCE_LENGTHS = (7, 4, 2)  # real tokens per row of the padded test batch (batch 3, source 7)


def build_rnn(overrides: dict[str, Any] | None = None, **extra: Any) -> RNNSeq2SeqForConditionalGeneration:
    """A tiny eval-mode RNN seq2seq model with a variant's overrides (seeded, so two calls give equal weights)."""
    kwargs, attn = split_attn(overrides or {})
    config = RNNSeq2SeqConfig(**{**TINY_RNN, **kwargs, **extra})
    torch.manual_seed(0)
    return RNNSeq2SeqForConditionalGeneration._from_config(config, attn_implementation=attn).eval()


def token_ids(batch: int = BATCH, length: int = SOURCE_LEN, low: int = 5, vocab: int = VOCAB) -> torch.Tensor:
    """Random ids above the special tokens (pad 0, start 1, eos 2)."""
    return torch.randint(low, vocab, (batch, length))


def padded_sources(lengths: tuple[int, ...] = SOURCE_LENGTHS, *, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask) of random sources with `lengths` real tokens, padded with id 0 on `side`."""
    width = max(lengths)
    ids = token_ids(batch=len(lengths), length=width)
    positions = torch.arange(width)[None, :]
    real = torch.tensor(lengths)[:, None]
    mask = positions < real if side == "right" else positions >= width - real
    return ids.masked_fill(~mask, 0), mask.long()


__all__ = ["TARGET_LEN", "build_rnn", "padded_sources", "token_ids"]
