"""Learning: RNN seq2seq models with attention solve sequence reversal on held-out sources, and a model without
attention (Cho et al.'s fixed context) is clearly worse on long sources with the same budget, the claim that
motivated attention (Bahdanau et al. 2015). Reuses examples/rnn_attention_vs_context.py, which reports the same
comparison in full."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rnn_attention_vs_context.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rnn_attention_vs_context", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


example = _load_example()


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # tiny models gain nothing from two threads, and results then do not depend on the machine's core count
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_gru_with_attention_solves_reversal_and_beats_a_fixed_context_on_long_sources() -> None:
    task = example.ReversalTask(min_length=3, max_length=16)
    attention = example.train_model(task, {"rnn_type": "gru", "attention_type": "bahdanau", "input_feeding": False}, steps=1000)
    attention_scores = example.exact_match_by_bucket(attention, task)
    assert attention_scores["all"] >= 0.99, attention_scores

    context = example.train_model(task, {"rnn_type": "gru", "attention_type": "none", "input_feeding": False}, steps=1000)
    context_scores = example.exact_match_by_bucket(context, task)
    long = "long (12-16)"
    assert context_scores[long] <= attention_scores[long] - 0.5, (context_scores, attention_scores)
    assert context_scores[long] < context_scores["short (3-6)"], context_scores  # it degrades with length


@pytest.mark.slow
def test_lstm_with_luong_attention_and_input_feeding_solves_reversal() -> None:
    task = example.ReversalTask(min_length=3, max_length=12)
    model = example.train_model(task, {"rnn_type": "lstm", "attention_type": "luong_general", "input_feeding": True}, steps=1000)
    scores = example.exact_match_by_bucket(model, task)
    assert scores["all"] >= 0.99, scores
