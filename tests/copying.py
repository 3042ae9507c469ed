"""A tiny pointer-generator trained to copy its source: its hypotheses keep directives when its n-best list is
searched, so the catalog and translate() tests see the protections work on a real model."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from hf_encdec import PointerGeneratorConfig, PointerGeneratorForConditionalGeneration
from hf_encdec.data.tokenizer import train_tokenizer
from variants import TINY_TRANSFORMER

#: English interface words for a byte-level BPE: its merges join ASCII letters only, so an accented, typographic or
#: CJK character is spelled with two to four byte tokens, as a model trained on English text meets it, and a model
#: can write a lead byte without the rest of its character (which decodes to U+FFFD).
ENGLISH_TEXTS = ["Open the file", "Close the window", "Save the document as", "Cannot read the file", "Print the page",
                 "Quit the program", "Show the settings", "Delete the selected files", "Find and replace text"] * 2


def copying_model(tokenizer: PreTrainedTokenizerFast, *, steps: int = 150) -> PreTrainedModel:
    """A tiny pointer-generator trained for `steps` steps to copy word sequences of `tokenizer` (a few seconds)."""
    torch.manual_seed(0)
    # a byte-level tokenizer has more tokens than the tiny vocabulary: the model gets room for all of them
    vocab_size = max(TINY_TRANSFORMER["vocab_size"], len(tokenizer))
    config = PointerGeneratorConfig(**{**TINY_TRANSFORMER, "vocab_size": vocab_size, "encoder_layers": 2, "decoder_layers": 2,
                                       "num_key_value_heads": 4})
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


def save_byte_level_copier(folder: Path, *, steps: int = 100) -> Path:
    """A model folder that :func:`hf_encdec.inference.load_translator` and the CLI read: :func:`copying_model` with
    the library's byte-level BPE (:func:`hf_encdec.data.tokenizer.train_tokenizer`) trained on :data:`ENGLISH_TEXTS`."""
    tokenizer = train_tokenizer(ENGLISH_TEXTS, vocab_size=300, min_frequency=2)
    model = copying_model(tokenizer, steps=steps)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class LoneLeadByte(LogitsProcessor):
    """A `generate()` setting for the tests of U+FFFD: the byte-level token of the UTF-8 lead byte 0xC3 (``Ã`` in the
    byte-level alphabet), which decodes to U+FFFD unless a continuation byte follows it.

    * `every_step=False`: at the first step it scores a little (`margin`) above the best token, so the best hypothesis
      starts with it, and the hypotheses that start with the model's own first token stay in the beam behind it;
    * `every_step=True`: it wins every step (every other token is pushed down by a large finite amount rather than
      masked, so that beam search still fills its n-best list): each hypothesis holds it more than once and at most one
      other token.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, *, every_step: bool, margin: float = 3.0) -> None:
        self.token_id = tokenizer.convert_tokens_to_ids("\u00c3")
        self.every_step, self.margin = every_step, margin

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        if self.every_step:
            boost = torch.full_like(scores, -1e4)
            boost[:, self.token_id] = 0.0
            return scores + boost
        if input_ids.shape[-1] == 1:  # only the decoder's start token so far: the first step
            scores[:, self.token_id] = scores.max(dim=-1).values + self.margin
        return scores
