"""Learning the toy tasks from scratch with a small NAT: the shared training loop of the NAT family's learning tests
(tests/models/test_nat.py for mask-predict, tests/models/test_nat_ctc_learning.py for the CTC variant)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from hf_encdec.models.configuration_nat import NATConfig
from hf_encdec.models.modeling_nat import NATForConditionalGeneration
from variants import TINY_TRANSFORMER

MASK, PAD, EOS = 4, 0, 2


def learn_from_scratch(
    task: str, steps: int = 350, warmup: int = 0, lr: float = 2e-3, **overrides: Any
) -> dict[str, float]:
    """Train a small NAT (CMLM masking, or the variant of `overrides`) on `task` ("copy" or "reverse") over 4-10
    tokens of 19 symbols, at learning rate `lr` (reached linearly over the first `warmup` steps); return the
    exact-match rate of mask-predict (T=4; one pass for CTC) on 300 unseen rows, its token accuracy and its length
    accuracy."""
    torch.manual_seed(0)
    config = NATConfig(**{
        **TINY_TRANSFORMER, "vocab_size": 24, "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
        "intermediate_size": 128, "encoder_layers": 2, "decoder_layers": 2, "norm_position": "pre", "dropout": 0.0,
        "mask_token_id": MASK, "max_position_embeddings": 32, **overrides,
    })
    model = NATForConditionalGeneration(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(warmup, 1)))
    positions = torch.arange(11)[None, :]

    def batch(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lengths = torch.randint(4, 11, (size,), generator=generator)
        tokens = torch.randint(5, 24, (size, 10), generator=generator)
        inside = positions[:, :10] < lengths[:, None]
        if task == "reverse":  # position i of the target is token (length - 1 - i) of the source
            index = (lengths[:, None] - 1 - positions[:, :10]).clamp(min=0)
            target_tokens = tokens.gather(1, index)
        else:
            target_tokens = tokens
        end = torch.zeros(size, 1, dtype=torch.long)

        def sentence(row: torch.Tensor) -> torch.Tensor:
            row = torch.cat([row.masked_fill(~inside, PAD), end], 1)
            return torch.where(positions < lengths[:, None], row, torch.where(positions == lengths[:, None], EOS, PAD))

        source, target = sentence(tokens), sentence(target_tokens)
        mask = (positions <= lengths[:, None]).long()
        return source, mask, target.masked_fill(mask == 0, -100)

    train_generator = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        source, mask, labels = batch(64, train_generator)
        model(input_ids=source, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.eval()
    source, mask, labels = batch(300, torch.Generator().manual_seed(2))
    out = model.generate(source, attention_mask=mask, num_iterations=1 if config.is_ctc else 4)[:, 1:]
    expected = labels.masked_fill(labels == -100, PAD)
    width = max(out.shape[1], expected.shape[1])
    out, expected = F.pad(out, (0, width - out.shape[1])), F.pad(expected, (0, width - expected.shape[1]))
    inside = expected != PAD
    return {
        "exact": (out == expected).all(1).float().mean().item(),
        "tokens": ((out == expected) & inside).sum().item() / inside.sum().item(),
        "length": ((out != PAD).sum(1) == inside.sum(1)).float().mean().item(),
    }
