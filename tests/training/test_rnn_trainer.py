"""The RNN seq2seq family inside transformers' Trainer: labels with -100, `num_items_in_batch`, the same loss and
update with gradient accumulation and with two processes, and Seq2SeqTrainer with predict_with_generate."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from helpers import reverse_digits, train_on_reversal
from rnn_helpers import build_rnn, padded_sources, token_ids
from variants import TARGET_LEN

# the loss/update equality under gradient accumulation and two processes is tested for every family in
# tests/training/test_transformer_trainer.py (trainer_loss_probe.py)


def test_labels_minus_100_are_ignored_and_the_training_loss_is_the_cross_entropy_of_the_logits() -> None:
    model = build_rnn({"attention_type": "bahdanau", "input_feeding": False}).train()
    ids, mask = padded_sources()
    labels = token_ids(length=TARGET_LEN)
    ignored = labels.clone()
    ignored[:, 3:] = -100
    partial = model(input_ids=ids, attention_mask=mask, labels=ignored).loss  # the training loss
    model.eval()
    logits = model(input_ids=ids, attention_mask=mask, labels=ignored).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :3].reshape(-1, 99), ignored[:, :3].reshape(-1))
    torch.testing.assert_close(partial, expected, atol=1e-5, rtol=1e-5)
    # only the first three steps matter: later labels cannot change them (the decoder is causal)
    assert torch.equal(logits[:, :3], model(input_ids=ids, attention_mask=mask, labels=labels).logits[:, :3])


def test_num_items_in_batch_normalises_the_summed_loss() -> None:
    model = build_rnn()
    ids, mask = padded_sources()
    labels = token_ids(length=TARGET_LEN)
    labels[0, 2:] = -100
    mean = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    total = model(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=torch.tensor(1)).loss
    torch.testing.assert_close(total, mean * (labels != -100).sum())
    smoothed = build_rnn(label_smoothing=0.1)
    assert smoothed(input_ids=ids, attention_mask=mask, labels=labels).loss > mean


def test_seq2seq_trainer_trains_and_predicts_with_generate(tmp_path: Path) -> None:
    words = [str(i) for i in range(10)]
    vocab = {token: i for i, token in enumerate(["<pad>", "<s>", "</s>", "<unk>", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))

    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    dataset = reverse_digits(tokenizer, 96)
    model = build_rnn(
        {"rnn_type": "gru", "attention_type": "bahdanau", "input_feeding": False}, vocab_size=len(tokenizer),
        encoder_layers=1, decoder_layers=1,
    ).train()
    _, predictions = train_on_reversal(
        model, tokenizer, dataset, tmp_path, max_steps=60, learning_rate=2e-2, logging_steps=10,
        lr_scheduler_type="constant", generation_num_beams=2,
    )
    assert (predictions[:, 0] == model.config.decoder_start_token_id).all()
