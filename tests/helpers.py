"""Small real objects the tests share: tiny model builders and a word-level tokenizer built with `tokenizers`."""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hf_encdec import (
    DecoderConfig,
    DecoderForCausalLM,
    EncoderConfig,
    EncoderForMaskedLM,
    PointerGeneratorConfig,
    PointerGeneratorForConditionalGeneration,
    TransformerConfig,
    TransformerForConditionalGeneration,
)
from variants import BATCH, SOURCE_LEN, TARGET_LEN, TINY_TRANSFORMER, VOCAB, split_attn

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]


def word_level_tokenizer(words: list[str], *, add_eos: bool = True) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer: <pad>=0 <s>=1 </s>=2 <unk>=3 <mask>=4, then `words`."""
    vocab = {token: i for i, token in enumerate(SPECIALS + [w for w in words if w not in SPECIALS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if add_eos:
        backend.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 2)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def build(family: str, overrides: dict[str, Any] | None = None, **extra: Any) -> torch.nn.Module:
    """A tiny eval-mode model of `family` ('seq2seq', 'pointer_generator', 'encoder', 'decoder') with a variant's
    overrides."""
    kwargs, attn = split_attn(overrides or {})
    kwargs = {**TINY_TRANSFORMER, **kwargs, **extra}
    if family == "seq2seq":
        config = TransformerConfig(encoder_layers=2, decoder_layers=2, **kwargs)
        model_class = TransformerForConditionalGeneration
    elif family == "pointer_generator":
        config = PointerGeneratorConfig(encoder_layers=2, decoder_layers=2, **kwargs)
        model_class = PointerGeneratorForConditionalGeneration
    elif family == "encoder":
        config = EncoderConfig(num_hidden_layers=2, **kwargs)
        model_class = EncoderForMaskedLM
    elif family == "decoder":
        config = DecoderConfig(num_hidden_layers=2, **kwargs)
        model_class = DecoderForCausalLM
    else:
        raise ValueError(family)
    torch.manual_seed(0)
    return model_class._from_config(config, attn_implementation=attn).eval()


def token_ids(batch: int = BATCH, length: int = SOURCE_LEN, low: int = 5) -> torch.Tensor:
    """Random ids above the special tokens."""
    return torch.randint(low, VOCAB, (batch, length))


__all__ = ["TARGET_LEN", "build", "token_ids", "word_level_tokenizer"]
