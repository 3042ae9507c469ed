"""Copy-mechanism problems shared by the pointer-generator's tests and the speed paths' copy-loss tests: decoder
and encoder states, logits, source ids with a repeated word and padding, and labels that exercise the copy part."""

from __future__ import annotations

import torch

from hf_encdec.models.copy_mechanism import CopyMechanism
from variants import BATCH, SOURCE_LEN, TARGET_LEN, VOCAB

HIDDEN = 32


def copy_inputs(seed: int = 0, vocab: int = VOCAB) -> dict[str, torch.Tensor]:
    """Decoder and encoder states, output-layer logits, source ids (one word twice) and a mask (row 1 padded)."""
    generator = torch.Generator().manual_seed(seed)
    source_ids = torch.randint(0, vocab, (BATCH, SOURCE_LEN), generator=generator)
    source_ids[0, 1] = source_ids[0, 4]  # a token twice in one source: its copy probabilities add up
    mask = torch.ones(BATCH, SOURCE_LEN, dtype=torch.long)
    mask[1, 5:] = 0
    return {
        "hidden_states": torch.randn(BATCH, TARGET_LEN, HIDDEN, generator=generator),
        "encoder_hidden_states": torch.randn(BATCH, SOURCE_LEN, HIDDEN, generator=generator),
        "vocab_logits": torch.randn(BATCH, TARGET_LEN, VOCAB, generator=generator),
        "source_ids": source_ids,
        "encoder_attention_mask": mask,
    }


def copy_head(gate_bias: float | None = None) -> CopyMechanism:
    torch.manual_seed(0)
    copy = CopyMechanism(HIDDEN, HIDDEN)
    if gate_bias is not None:
        with torch.no_grad():
            copy.gate.weight.zero_()
            copy.gate.bias.fill_(gate_bias)
    return copy


def copy_loss_case(extra: int, with_bias: bool) -> dict:
    """A copy loss problem with its differentiable parts: decoder states (B, T, D) feeding both the output layer and
    the copy head, the output layer (V, D) and (V,), labels with -100, the word twice in its source, padding in row 1's
    source, and with `extra` a source-only word (V + 2, in a source and a label) and a label in no source (V + 1)."""
    inputs = copy_inputs()
    if extra:
        inputs["source_ids"][2, 3] = VOCAB + 2
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(0, VOCAB, (BATCH, TARGET_LEN), generator=generator)
    labels[0, 0] = inputs["source_ids"][0, 1]  # the word that is twice in its source
    labels[1, 1] = inputs["source_ids"][1, 6]  # a word only at a padded source position
    labels[2, 1] = inputs["source_ids"][2, 3]  # the source-only word when extended
    if extra:
        labels[2, 4] = VOCAB + 1  # outside the vocabulary and in no source: only the copy floor gives it mass
    labels[1, 3:] = -100
    return {
        **inputs,
        "labels": labels,
        "weight": torch.randn(VOCAB, HIDDEN, generator=generator) / HIDDEN**0.5,
        "bias": torch.randn(VOCAB, generator=generator) if with_bias else None,
    }
