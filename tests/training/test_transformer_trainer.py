"""The Transformer families inside transformers' Trainer: labels with -100, loss normalisation across gradient
accumulation and processes, activation checkpointing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from helpers import build, token_ids, word_level_tokenizer, reverse_digits, train_on_reversal

PROBE = Path(__file__).with_name("trainer_loss_probe.py")


def probe(tmp_path: Path, family: str, batch_size: int, accumulation: int, processes: int = 1) -> dict:
    """Run trainer_loss_probe.py (one Trainer step) and return its JSON line."""
    name = f"{family}-{batch_size}-{accumulation}-{processes}"
    command = [sys.executable, str(PROBE), family, str(tmp_path / name), str(batch_size), str(accumulation)]
    if processes > 1:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
        command = [torchrun, "--nproc_per_node", str(processes), "--master_port", "29533", *command[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads([line for line in completed.stdout.splitlines() if line.startswith('{"loss"')][-1])
    assert result["world_size"] == processes
    return result


@pytest.mark.slow
@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_loss_and_update_are_the_same_with_accumulation_and_two_processes(tmp_path: Path, family: str) -> None:
    one_batch = probe(tmp_path, family, batch_size=4, accumulation=1)
    accumulated = probe(tmp_path, family, batch_size=2, accumulation=2)
    two_processes = probe(tmp_path, family, batch_size=2, accumulation=1, processes=2)
    for other in (accumulated, two_processes):
        assert other["loss"] == pytest.approx(one_batch["loss"], rel=1e-5)
        assert other["weights"] == pytest.approx(one_batch["weights"], rel=1e-6)


def test_labels_minus_100_are_ignored_in_training_mode() -> None:
    model = build("seq2seq").train()
    source, labels = token_ids(), token_ids(length=5)
    loss = model(input_ids=source, labels=labels).loss
    ignored = labels.clone()
    ignored[:, 3:] = -100
    partial = model(input_ids=source, labels=ignored).loss
    # the fused training loss equals the eval-mode loss computed from full logits
    model.eval()
    logits = model(input_ids=source, labels=ignored).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :3].reshape(-1, 99), ignored[:, :3].reshape(-1))
    torch.testing.assert_close(partial, expected, atol=1e-5, rtol=1e-5)
    assert not torch.isclose(loss, partial)


@pytest.mark.parametrize("family", ["seq2seq", "decoder", "encoder"])
def test_activation_checkpointing_gives_the_same_gradients(family: str) -> None:
    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        model = build(family).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        ids = token_ids()
        kwargs = {"labels": ids[:, :5]} if family == "seq2seq" else {"labels": ids}
        model(input_ids=ids, **kwargs).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5, msg=name)


WORDS = [str(i) for i in range(10)]


@pytest.mark.contract
def test_seq2seq_trainer_trains_and_evaluates_with_generate(tmp_path: Path) -> None:
    tokenizer = word_level_tokenizer(WORDS)
    dataset = reverse_digits(tokenizer, 64)
    model = build("seq2seq", vocab_size=len(tokenizer)).train()
    train_on_reversal(model, tokenizer, dataset, tmp_path, max_steps=30, learning_rate=3e-3, logging_steps=5)


def test_causal_and_masked_lm_train_with_trainer(tmp_path: Path) -> None:
    for family in ("decoder", "encoder"):
        ids = token_ids(batch=32, length=9)
        labels = ids.clone()
        if family == "encoder":
            labels[:, ::2] = -100
        dataset = Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels.tolist()})
        args = TrainingArguments(
            output_dir=str(tmp_path / family), per_device_train_batch_size=8, max_steps=12, learning_rate=3e-3,
            logging_steps=4, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
        )
        trainer = Trainer(model=build(family).train(), args=args, train_dataset=dataset)
        trainer.train()
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        assert losses[-1] < losses[0], (family, losses)
