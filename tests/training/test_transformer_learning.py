"""A tiny encoder-decoder Transformer learns sequence reversal on CPU (held-out sequences, exact match)."""

from __future__ import annotations

import pytest
import torch

from hf_encdec import TransformerConfig, TransformerForConditionalGeneration

PAD, BOS, EOS, FIRST_SYMBOL, SYMBOLS = 0, 1, 2, 5, 10


def reversal_batch(count: int, generator: torch.Generator, *, min_len: int = 3, max_len: int = 8):
    """Random symbol sequences (ids 5..14) right-padded: (input_ids, attention_mask, labels with -100)."""
    lengths = torch.randint(min_len, max_len + 1, (count,), generator=generator)
    symbols = torch.randint(FIRST_SYMBOL, FIRST_SYMBOL + SYMBOLS, (count, max_len), generator=generator)
    positions = torch.arange(max_len + 1)
    real = positions[None, :max_len] < lengths[:, None]
    source = torch.full((count, max_len + 1), PAD)
    source[:, :max_len] = symbols.masked_fill(~real, PAD)
    source[torch.arange(count), lengths] = EOS
    # reverse the real part: position i takes symbol length-1-i
    index = (lengths[:, None] - 1 - positions[None, :max_len]).clamp(min=0)
    reversed_symbols = symbols.gather(1, index).masked_fill(~real, -100)
    labels = torch.full((count, max_len + 1), -100)
    labels[:, :max_len] = reversed_symbols
    labels[torch.arange(count), lengths] = EOS
    return source, (source != PAD).long(), labels


@pytest.mark.slow
def test_tiny_transformer_learns_reversal_to_99_percent_exact_match() -> None:
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=FIRST_SYMBOL + SYMBOLS, hidden_size=64, num_attention_heads=4, intermediate_size=128,
        encoder_layers=2, decoder_layers=2, dropout=0.0, max_position_embeddings=32,
    )
    model = TransformerForConditionalGeneration(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.98), weight_decay=0.0)
    steps, warmup = 900, 100
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.05, (steps - s) / (steps - warmup)))
    )
    train_gen, test_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    test_source, test_mask, test_labels = reversal_batch(500, test_gen, min_len=5)
    model.train()
    held_out = {tuple(row) for row in test_source.tolist()}
    for _ in range(steps):
        source, mask, labels = reversal_batch(64, train_gen)
        fresh = torch.tensor([tuple(row) not in held_out for row in source.tolist()])  # test sequences never trained on
        source, mask, labels = source[fresh], mask[fresh], labels[fresh]
        loss = model(input_ids=source, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.eval()
    generated = model.generate(test_source, attention_mask=test_mask, max_new_tokens=10, do_sample=False)
    correct = 0
    for row, labels in zip(generated[:, 1:].tolist(), test_labels.tolist()):
        target = [t for t in labels if t != -100]
        correct += row[: len(target)] == target
    exact_match = correct / len(test_labels)
    assert exact_match >= 0.99, f"exact match {exact_match:.3f}"
