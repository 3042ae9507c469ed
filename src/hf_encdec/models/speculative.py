"""Lossless speculative decoding for the autoregressive families, through transformers' public assisted generation
(`model.generate(input_ids, assistant_model=drafter)`, greedy, one source at a time).

A drafter proposes the next tokens of the current prefix; the target scores them all in one teacher-forced pass and
keeps the longest run equal to its own greedy choices, plus its own token at the first mismatch (transformers'
`_assisted_decoding`). The output is the target's greedy output, token for token, whatever the drafter proposes:
a poor drafter only makes decoding slower. Two drafters:

- an `hf_encdec_nat` model with the target's vocabulary: one parallel pass over the prefix and masked positions
  after it (`NATForConditionalGeneration.generate(decoder_input_ids=...)`);
- `SourceLookupDrafter`, no second model: when the last generated tokens match an n-gram of the source, it proposes
  the source tokens that follow (messages copy option names, placeholders, paths);
- `HypothesisLookupDrafter`: a NAT (any variant, the one-pass CTC one included) translates the source once, and that
  translation is looked up like the source: after the last generated n-gram, or at the position reached. One NAT
  pass a sentence instead of one a draft.

>>> import torch
>>> from hf_encdec.models.configuration_transformer import TransformerConfig
>>> from hf_encdec.models.modeling_transformer import TransformerForConditionalGeneration
>>> config = TransformerConfig(vocab_size=50, hidden_size=16, num_attention_heads=2, intermediate_size=24,
...                            encoder_layers=1, decoder_layers=1)
>>> torch.manual_seed(0) and None
>>> target = TransformerForConditionalGeneration(config).eval()
>>> source = torch.tensor([[7, 8, 9, 10, 2]])
>>> greedy = target.generate(source, max_new_tokens=6)
>>> drafted = target.generate(source, max_new_tokens=6, assistant_model=SourceLookupDrafter.for_target(target))
>>> torch.equal(greedy, drafted)
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import GenerationConfig, PretrainedConfig, PreTrainedModel
from transformers.generation import GenerateEncoderDecoderOutput, GenerationMixin
from transformers.modeling_outputs import BaseModelOutput

#: the model types a target accepts as `assistant_model`: a draft must come from the target's own vocabulary
DRAFTER_MODEL_TYPES = ("hf_encdec_nat", "hf_encdec_source_lookup", "hf_encdec_hypothesis_lookup")
#: the ids a drafter and its target must agree on, besides the vocabulary size
SHARED_TOKEN_IDS = ("pad_token_id", "eos_token_id", "decoder_start_token_id")


def target_vocab_size(config: Any) -> int:
    """The target's output vocabulary (without a pointer-generator's per-batch source words)."""
    return int(getattr(config, "decoder_vocab_size", None) or config.vocab_size)


def check_drafter(target: nn.Module, drafter: Any, *, batch: int | None, do_sample: bool) -> None:
    """Refuse a drafter that would make speculative decoding wrong or fail late: another model type, vocabulary or
    special ids than the target's; sampling (the drafts are argmax choices, not samples of a distribution, so
    transformers' speculative sampling would not reproduce the target's distribution); more than one source."""
    model_type = getattr(getattr(drafter, "config", None), "model_type", None)
    name, target_name = type(drafter).__name__, type(target).__name__
    if model_type not in DRAFTER_MODEL_TYPES:
        raise ValueError(
            f"{target_name} drafts with an hf_encdec drafter ({', '.join(DRAFTER_MODEL_TYPES)}), got {name} "
            f"(model_type {model_type!r})"
        )
    input_type = getattr(drafter.config, "decoder_input_type", "mask")
    if input_type != "mask":
        raise ValueError(
            f"the drafter {name} has decoder_input_type={input_type!r}: only a CMLM NAT (decoder_input_type='mask', "
            "e.g. --preset nat-small or nat-glat-small) continues a given prefix; draft with this one through its "
            "translation instead: HypothesisLookupDrafter.for_target(target, drafter)"
        )
    check_shared_vocabulary(target, drafter)
    if do_sample:
        raise ValueError(
            f"speculative decoding with {name} is lossless for greedy search only (do_sample=False): its drafts are "
            "argmax choices, not samples, so speculative sampling would change the target's distribution"
        )
    if batch is not None and batch != 1:
        raise ValueError(
            f"speculative decoding with {name} takes one source at a time (transformers' assisted generation), got a "
            f"batch of {batch}: loop over the sources, or decode the batch without assistant_model"
        )


def check_shared_vocabulary(target: nn.Module, drafter: Any) -> None:
    """Refuse a drafter (or the NAT behind one) whose vocabulary size, special ids or tokenizer (the configs'
    `tokenizer_fingerprint`, which the training recipe saves) differ from the target's."""
    name, target_name = type(drafter).__name__, type(target).__name__
    ours, theirs = target_vocab_size(target.config), target_vocab_size(drafter.config)
    if ours != theirs:
        raise ValueError(
            f"the drafter {name} has a vocabulary of {theirs} tokens and the target {target_name} one of {ours}: a "
            "drafter must use the target's tokenizer (make one with `hf-encdec distill` from the target's run)"
        )
    ours, theirs = (getattr(model.config, "tokenizer_fingerprint", None) for model in (target, drafter))
    if ours is not None and theirs is not None and ours != theirs:
        raise ValueError(
            f"the drafter {name} was trained with another tokenizer (tokenizer_fingerprint {theirs}) than the target "
            f"{target_name} ({ours}), of the same size: a drafter must use the target's tokenizer (make one with "
            "`hf-encdec distill` from the target's run)"
        )
    for key in SHARED_TOKEN_IDS:
        if getattr(target.config, key, None) != getattr(drafter.config, key, None):
            raise ValueError(
                f"the drafter {name} has {key}={getattr(drafter.config, key, None)} and the target {target_name} "
                f"{key}={getattr(target.config, key, None)}: a drafter must use the target's tokenizer"
            )


class SourceLookupConfig(PretrainedConfig):
    """The settings of `SourceLookupDrafter`: the target's vocabulary and special ids, the longest n-gram matched
    (`max_ngram_size`) and the most tokens proposed at once (`num_assistant_tokens` of its generation config)."""

    model_type = "hf_encdec_source_lookup"

    def __init__(
        self,
        vocab_size: int = 32000,
        max_ngram_size: int = 3,
        pad_token_id: int | None = 0,
        eos_token_id: int | None = 2,
        decoder_start_token_id: int | None = 1,
        **kwargs: Any,
    ) -> None:
        if max_ngram_size < 1:
            raise ValueError(f"max_ngram_size must be >= 1, got {max_ngram_size}")
        self.vocab_size = vocab_size
        self.max_ngram_size = max_ngram_size
        kwargs.setdefault("is_encoder_decoder", True)
        super().__init__(
            pad_token_id=pad_token_id, eos_token_id=eos_token_id, decoder_start_token_id=decoder_start_token_id,
            **kwargs,
        )


class SourceIdsEncoder(nn.Module):
    """The drafter's "encoder": keeps the source ids (transformers runs an assistant's encoder once per call)."""

    main_input_name = "input_ids"

    def forward(self, input_ids: torch.Tensor | None = None, **kwargs: Any) -> BaseModelOutput:
        if input_ids is None:
            raise ValueError("source lookup drafts from the source: pass input_ids")
        # the ids travel as the output's only tensor; the lookup reads them back as integers
        return BaseModelOutput(last_hidden_state=input_ids[..., None])


def lookup(
    source: list[int], generated: list[int], *, max_ngram: int, count: int, unmatched: int | None = None
) -> list[int]:
    """Up to `count` source tokens after the latest occurrence of the longest suffix of `generated` (at most
    `max_ngram` tokens) found in `source`; with no match, up to `unmatched` (default `count`) source tokens from the
    position that `generated` has reached (a copied message is often aligned with its source)."""
    for size in range(min(max_ngram, len(generated)), 0, -1):
        tail = generated[-size:]
        for start in range(len(source) - size - 1, -1, -1):  # the latest match: the copy usually moves forward
            if source[start : start + size] == tail:
                return source[start + size : start + size + count]
    return source[len(generated) : len(generated) + (count if unmatched is None else min(count, unmatched))]


class SourceLookupDrafter(PreTrainedModel, GenerationMixin):
    """A drafter without weights: proposes the source tokens that follow the last generated n-gram in the source.

    Pass it as `assistant_model` to a target of the same tokenizer; `for_target` builds one. A pointer-generator
    target hands its extended `source_ids` (its copied source words included), which are then looked up instead.
    """

    config_class = SourceLookupConfig
    main_input_name = "input_ids"
    #: tokens proposed where no n-gram matches: a source position is a poor guess of a translation's next token, and
    #: each drafted token widens the target's verification pass (ten there ran source lookup at 0.84x plain greedy,
    #: one at 0.93x; 1,060 test sentences, 1.31 and 1.26 tokens a pass: bench/speculative.py --unmatched-tokens)
    unmatched_tokens: int | None = 1

    def __init__(self, config: SourceLookupConfig) -> None:
        super().__init__(config)
        self.encoder = SourceIdsEncoder()
        # no weights: an empty buffer says which device the drafter is on (moved with .to())
        self.register_buffer("anchor", torch.zeros(0), persistent=False)
        self.generation_config = GenerationConfig(
            eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
            decoder_start_token_id=config.decoder_start_token_id, num_assistant_tokens=10,
            num_assistant_tokens_schedule="constant",
        )
        self.post_init()

    @classmethod
    def for_target(cls, target: nn.Module, *, max_ngram_size: int = 3, num_assistant_tokens: int = 10) -> SourceLookupDrafter:
        """A drafter with `target`'s vocabulary and special ids."""
        drafter = cls(cls.lookup_config(target, max_ngram_size))
        drafter.generation_config.num_assistant_tokens = num_assistant_tokens
        return drafter

    @classmethod
    def lookup_config(cls, target: nn.Module, max_ngram_size: int) -> SourceLookupConfig:
        """The drafter's config (of `cls.config_class`) with `target`'s vocabulary and special ids."""
        config = target.config
        return cls.config_class(
            vocab_size=target_vocab_size(config), max_ngram_size=max_ngram_size, pad_token_id=config.pad_token_id,
            eos_token_id=config.eos_token_id, decoder_start_token_id=config.decoder_start_token_id,
        )

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    def get_encoder(self, *args: Any, **kwargs: Any) -> nn.Module:
        return self.encoder

    def _init_weights(self, module: nn.Module) -> None:
        pass  # no weights

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        decoder_input_ids: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | None = None,
        attention_mask: torch.Tensor | None = None,
        source_ids: torch.Tensor | None = None,
        num_source_oovs: int = 0,
        max_new_tokens: int | None = None,
        generation_config: GenerationConfig | None = None,
        **kwargs: Any,
    ) -> GenerateEncoderDecoderOutput:
        """The prefix `decoder_input_ids` (1, 1 + p) and at most `max_new_tokens` proposed tokens, with one-hot
        `scores`. Other arguments of an assisted-generation call (logits processors, min_new_tokens, ...) are
        the target's to apply when it checks the draft."""
        if decoder_input_ids is None:
            raise ValueError("SourceLookupDrafter continues a prefix: pass decoder_input_ids (it is a drafter)")
        if decoder_input_ids.shape[0] != 1:
            raise ValueError(f"{type(self).__name__} drafts for one source at a time, got {decoder_input_ids.shape[0]}")
        reference = self.reference(input_ids, encoder_outputs, attention_mask, source_ids)
        count = max_new_tokens or int(self.generation_config.num_assistant_tokens)
        proposal = lookup(
            reference, [int(t) for t in decoder_input_ids[0, 1:]], max_ngram=self.config.max_ngram_size, count=count,
            unmatched=self.unmatched_tokens,
        )
        eos = self.config.eos_token_id
        if not proposal:
            proposal = [eos]  # the reference is used up: propose the end (transformers needs one token a draft)
        tokens = torch.tensor([proposal], dtype=decoder_input_ids.dtype, device=decoder_input_ids.device)
        width = max(self.config.vocab_size + int(num_source_oovs), max(proposal) + 1)
        scores = torch.full((len(proposal), width), float("-inf"), device=decoder_input_ids.device)
        scores[torch.arange(len(proposal)), tokens[0]] = 0.0
        return GenerateEncoderDecoderOutput(
            sequences=torch.cat([decoder_input_ids, tokens], dim=1),
            scores=tuple(scores[i : i + 1] for i in range(len(proposal))),
        )  # no cache field set (`past_key_values` in transformers 5.23, `cache` from 5.25): it reads as None

    def reference(
        self,
        input_ids: torch.Tensor | None,
        encoder_outputs: BaseModelOutput | None,
        attention_mask: torch.Tensor | None,
        source_ids: torch.Tensor | None,
    ) -> list[int]:
        """The token ids drafts are looked up in: the source (a pointer-generator's extended `source_ids` when
        given), without padding and EOS."""
        if source_ids is None:
            source_ids = encoder_outputs.last_hidden_state[..., 0] if encoder_outputs is not None else input_ids
        if source_ids is None:
            raise ValueError("source lookup needs the source: input_ids, encoder_outputs or source_ids")
        if source_ids.shape[0] != 1:
            raise ValueError(f"source lookup drafts for one source at a time, got {source_ids.shape[0]}")
        source = source_ids[0]
        if attention_mask is not None:
            source = source[attention_mask[0].bool()]
        eos, pad = self.config.eos_token_id, self.config.pad_token_id
        return [int(t) for t in source if int(t) not in (eos, pad)]


class HypothesisLookupConfig(SourceLookupConfig):
    """The settings of `HypothesisLookupDrafter` (those of `SourceLookupConfig`); the NAT it holds has its own."""

    model_type = "hf_encdec_hypothesis_lookup"

    def __init__(self, **kwargs: Any) -> None:
        # transformers wraps each config class's __init__: an inherited one would lose the encoder-decoder default
        super().__init__(**{"is_encoder_decoder": True, **kwargs})


class HypothesisEncoder(nn.Module):
    """The hypothesis drafter's "encoder": the NAT's translation of the source (its own generation settings), made
    once per `generate` call of the target, as transformers runs an assistant's encoder once."""

    main_input_name = "input_ids"

    def __init__(self, nat: nn.Module) -> None:
        super().__init__()
        self.nat = nat

    def forward(
        self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> BaseModelOutput:
        if input_ids is None:
            raise ValueError("the hypothesis drafter translates the source: pass input_ids")
        hypothesis = self.nat.generate(input_ids, attention_mask=attention_mask)  # (B, 1 + L): start, tokens, EOS
        return BaseModelOutput(last_hidden_state=hypothesis[:, 1:, None])


class HypothesisLookupDrafter(SourceLookupDrafter):
    """A drafter that translates each source once with a NAT and proposes, at every step, what follows the last
    generated n-gram in that translation (or, with no match, its tokens from the position reached). The NAT's
    one pass is paid once a sentence, not once a draft, and any NAT variant serves, the CTC one included, since
    nothing has to continue a prefix. `for_target(target, nat)` builds one."""

    config_class = HypothesisLookupConfig
    #: the translation is in the target's language, so its position reached is a real guess: a full draft there
    unmatched_tokens = None

    def __init__(self, config: HypothesisLookupConfig, nat: nn.Module | None = None) -> None:
        super().__init__(config)
        if nat is None:
            raise ValueError("HypothesisLookupDrafter needs the NAT that translates: HypothesisLookupDrafter.for_target("
                             "target, nat)")
        self.encoder = HypothesisEncoder(nat)

    @classmethod
    def for_target(  # type: ignore[override]
        cls, target: nn.Module, nat: nn.Module, *, max_ngram_size: int = 3, num_assistant_tokens: int = 10
    ) -> HypothesisLookupDrafter:
        """A drafter with `target`'s vocabulary and special ids over `nat`'s translations; `nat` is refused when it
        is not an hf_encdec NAT of the target's vocabulary and special ids."""
        if getattr(getattr(nat, "config", None), "model_type", None) != "hf_encdec_nat":
            raise ValueError(f"HypothesisLookupDrafter translates with an hf_encdec_nat model, got {type(nat).__name__}")
        check_shared_vocabulary(target, nat)
        drafter = cls(cls.lookup_config(target, max_ngram_size), nat=nat.eval())
        drafter.generation_config.num_assistant_tokens = num_assistant_tokens
        return drafter

    def reference(
        self,
        input_ids: torch.Tensor | None,
        encoder_outputs: BaseModelOutput | None,
        attention_mask: torch.Tensor | None,
        source_ids: torch.Tensor | None,
    ) -> list[int]:
        """The NAT's translation up to and with its EOS (so that a draft can end the sentence); a pointer-generator's
        `source_ids` are not read."""
        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("the hypothesis drafter needs the source (input_ids) or its encoder_outputs")
            encoder_outputs = self.encoder(input_ids, attention_mask=attention_mask)
        hypothesis = encoder_outputs.last_hidden_state[..., 0]
        if hypothesis.shape[0] != 1:
            raise ValueError(f"the hypothesis drafter drafts for one source at a time, got {hypothesis.shape[0]}")
        tokens = [int(t) for t in hypothesis[0] if int(t) != self.config.pad_token_id]
        eos = self.config.eos_token_id
        return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


__all__ = [
    "HypothesisLookupConfig", "HypothesisLookupDrafter", "SourceLookupConfig", "SourceLookupDrafter", "check_drafter",
    "check_shared_vocabulary", "lookup",
]
