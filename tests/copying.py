"""A tiny pointer-generator trained to copy its source: its hypotheses keep directives when its n-best list is
searched, so the catalog and translate() tests see the protections work on a real model."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from hf_encdec import PointerGeneratorConfig, PointerGeneratorForConditionalGeneration
from variants import TINY_TRANSFORMER


def copying_model(tokenizer: PreTrainedTokenizerFast, *, steps: int = 150) -> PreTrainedModel:
    """A tiny pointer-generator trained for `steps` steps to copy word sequences of `tokenizer` (a few seconds)."""
    torch.manual_seed(0)
    config = PointerGeneratorConfig(**{**TINY_TRANSFORMER, "encoder_layers": 2, "decoder_layers": 2, "num_key_value_heads": 4})
    model = PointerGeneratorForConditionalGeneration(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        lengths = torch.randint(1, 7, (32,), generator=generator)
        words = torch.randint(5, len(tokenizer), (32, 7), generator=generator)
        positions = torch.arange(7)
        ids = torch.where(positions < lengths[:, None], words, 0)  # padded with <pad>
        ids[torch.arange(32), lengths] = tokenizer.eos_token_id
        mask = (positions <= lengths[:, None]).long()
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.generation_config.num_beams = 2
    model.generation_config.max_new_tokens = 10
    return model.eval()
