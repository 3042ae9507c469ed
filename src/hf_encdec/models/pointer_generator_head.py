"""What the two pointer-generator families (the Transformer's and See et al.'s RNN) share above the copy
distribution of copy_mechanism.py: the output with its loss, the source ids `generate()` keeps for copying, the copy
attentions a cached decoder keeps for coverage, and transition scores over the extended vocabulary.

Shapes: B batch, S source length, T target length, D decoder hidden, V vocabulary, V+ extended vocabulary; R returned
sequences, N generated tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.utils import ModelOutput

from .copy_decoding import copy_trace, generate_with_coverage_penalty
from .copy_mechanism import CopyDistribution, add_coverage_loss, mixture_cross_entropy, mixture_log_probs


@dataclass
class PointerGeneratorOutput(Seq2SeqLMOutput):
    """`Seq2SeqLMOutput` plus the copy mechanism's generation probability p_gen (B, T, 1) and copy attention (B, T, S)."""

    p_gen: torch.FloatTensor | None = None
    copy_attentions: torch.FloatTensor | None = None


def copy_history(cache: Cache | None, index: int) -> DynamicLayer | None:
    """The cache layer that keeps the copy attentions of the steps decoded so far, (B, 1, T, S) as its keys: one layer
    past the decoder's in the self-attention cache, so beam search reorders it with them. The coverage vector is the
    sum of its steps. None without a cache."""
    if cache is None:
        return None
    self_attention = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
    if not isinstance(self_attention, DynamicCache):
        raise ValueError(
            f"decoding with coverage keeps the past copy attentions in a dynamic cache, got {type(self_attention).__name__}"
            " (cache_implementation='static' is not supported with coverage; use the default cache)"
        )
    while len(self_attention.layers) <= index:
        self_attention.layers.append(DynamicLayer())
    return self_attention.layers[index]


class PointerGeneratorMixin:
    """What the two pointer-generator families (the Transformer's and the RNN's) share above the copy distribution:
    the source ids that `generate()` keeps for copying, extended ids fed back as unknown, the output distribution and
    its loss (with coverage), the copy outputs of `generate()`, and transition scores over the extended vocabulary.

    A model sets `copies_source` (whether its config turns the copy mechanism on) and has `lm_head` and a config with
    `vocab_size`, `unk_token_id`, `label_smoothing` and the coverage settings.
    """

    @property
    def copies_source(self) -> bool:
        return True

    def generate(
        self, inputs: torch.Tensor | None = None, *, coverage_penalty: float | None = None, **kwargs: Any
    ) -> torch.LongTensor | ModelOutput:
        """`GenerationMixin.generate`, with the source ids kept for copying (generate otherwise hands the decoder only
        the encoder's states); `source_ids` and `num_source_oovs` may be given as in `forward`. With
        `output_attentions=True` and `return_dict_in_generate=True` the result also has `p_gen` (R, N, 1) and
        `copy_attentions` (R, N, S) of the N generated tokens of each of the R returned sequences: the values the
        model gave while decoding them, read back by one teacher-forced pass (positions after a sequence's end are
        padding and meaningless).

        `coverage_penalty` beta > 0 (beam search only) ranks the finished hypotheses by Wu et al.'s score (2016,
        arXiv 1609.08144, section 7) with the copy attention as the alignment:

            s(Y, X) = log P(Y | X) / |Y|^length_penalty + beta * sum_s log(min(sum_t a_t,s, 1))

        which charges a hypothesis for every source position its attention left less than fully covered. Like Wu et
        al. it judges complete hypotheses: beam search runs as usual, returns all `num_beams` of them, and these are
        re-ranked (it does not steer the search; logits processors that reshape scores, such as
        `repetition_penalty`, are not re-applied to log P). Returns the best `num_return_sequences`; as a dict,
        `sequences_scores` holds s(Y, X).
        """
        if not self.copies_source:
            if coverage_penalty:
                raise ValueError("coverage_penalty reads the copy attention; this model's config has copy_mechanism=False")
            return super().generate(inputs, **kwargs)
        if coverage_penalty:
            return generate_with_coverage_penalty(self, inputs, float(coverage_penalty), kwargs)
        if kwargs.get("source_ids") is None:
            source = inputs if inputs is not None else kwargs.get("input_ids")
            if source is None:
                raise ValueError(
                    "the pointer-generator copies source tokens, so generate() needs input_ids (or source_ids next "
                    "to inputs_embeds / encoder_outputs)"
                )
            kwargs["source_ids"] = source
        result = super().generate(inputs, **kwargs)
        config = kwargs.get("generation_config") or self.generation_config
        if all(kwargs.get(name, getattr(config, name, False)) for name in ("output_attentions", "return_dict_in_generate")):
            if inputs is None and kwargs.get("input_ids") is None:
                raise ValueError(
                    "the copy outputs of generate() (output_attentions=True) are read back by a pass over the source, "
                    "which needs input_ids; pass input_ids instead of inputs_embeds / encoder_outputs"
                )
            outputs = copy_trace(self, result.sequences, inputs, kwargs)
            result["p_gen"], result["copy_attentions"] = outputs.p_gen, outputs.copy_attentions
        return result

    def copy_decoder_inputs(self, decoder_input_ids: torch.Tensor | None, num_source_oovs: int) -> torch.Tensor | None:
        """Decoder inputs with extended ids (>= V: source words outside the vocabulary) replaced by the unknown id."""
        if num_source_oovs < 0:
            raise ValueError(f"num_source_oovs must be >= 0, got {num_source_oovs}")
        if num_source_oovs == 0 or decoder_input_ids is None:
            return decoder_input_ids
        if self.config.unk_token_id is None:
            raise ValueError("num_source_oovs > 0 needs config.unk_token_id: extended ids are fed back as unknown")
        return decoder_input_ids.masked_fill(decoder_input_ids >= self.config.vocab_size, self.config.unk_token_id)

    def copy_lm_output(
        self,
        outputs: ModelOutput,
        copy: CopyDistribution,
        source_ids: torch.LongTensor,
        labels: torch.LongTensor | None,
        *,
        attention_mask: torch.Tensor | None,
        num_source_oovs: int,
        skip_logits: bool | None,
        num_items_in_batch: torch.Tensor | int | None,
    ) -> PointerGeneratorOutput:
        """The head's output from the base model's `outputs`: `logits` are log P over V + num_source_oovs words
        (B, T, V+), read by the output layer from `outputs.last_hidden_state` (B, T, D) (see `copy_logits_and_loss`);
        the loss is the mixture's cross-entropy, plus the coverage loss weighted by `config.coverage_loss_weight` when
        `copy` carries coverage; `p_gen` and `copy_attentions` come along."""
        hidden_states = outputs.last_hidden_state
        labels = labels.to(hidden_states.device) if labels is not None else None
        log_probs, loss = self.copy_logits_and_loss(
            hidden_states,
            copy,
            source_ids.to(hidden_states.device),
            labels,
            num_source_oovs=num_source_oovs,
            encoder_attention_mask=attention_mask,
            skip_logits=skip_logits,
            num_items_in_batch=num_items_in_batch,
        )
        if loss is not None:
            loss = add_coverage_loss(loss, self.config, copy.attention, copy.coverage, labels, num_items_in_batch)
        return self.seq2seq_lm_output(
            outputs,
            loss=loss,
            logits=log_probs,
            output_class=PointerGeneratorOutput,
            p_gen=torch.sigmoid(copy.gate_logits),
            copy_attentions=copy.attention,
        )

    def copy_logits_and_loss(
        self,
        hidden_states: torch.Tensor,
        copy: CopyDistribution,
        source_ids: torch.LongTensor,
        labels: torch.LongTensor | None,
        *,
        num_source_oovs: int,
        encoder_attention_mask: torch.Tensor | None = None,
        skip_logits: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(log P (B, T, V+), loss) from the decoder states (B, T, D) and the copy distribution: the output layer's
        logits mixed with the copy attention (`mixture_log_probs`), and with labels their cross-entropy
        (`mixture_cross_entropy`, label smoothing over the vocabulary). `skip_logits=True` leaves log P out of the
        result. `encoder_attention_mask` is unused here (the copy attention is already 0 on padding); the speed
        paths' loss reads it. `hf_encdec.speed` replaces this method on a model instance by one
        that takes the same loss without building P, fused with the output layer (`config.fused_loss`)."""
        if skip_logits and labels is None:
            return None, None
        vocab_logits = self.lm_head(hidden_states)  # (B, T, V)
        log_probs = mixture_log_probs(
            vocab_logits, copy.attention, copy.gate_logits, source_ids, self.config.vocab_size + num_source_oovs
        )  # (B, T, V+)
        loss = None
        if labels is not None:
            loss = mixture_cross_entropy(
                log_probs,
                labels,
                vocab_size=vocab_logits.shape[-1],
                label_smoothing=self.config.label_smoothing,
                num_items_in_batch=num_items_in_batch,
            )
        return (None if skip_logits else log_probs), loss

    def compute_transition_scores(
        self,
        sequences: torch.Tensor,
        scores: tuple[torch.Tensor, ...],
        beam_indices: torch.Tensor | None = None,
        normalize_logits: bool = False,
    ) -> torch.Tensor:
        """`GenerationMixin.compute_transition_scores` for scores of any width: transformers' own reshapes them by
        `config.vocab_size`, which fails (or picks wrong entries) on the extended vocabulary V + num_source_oovs.
        Returns the (R, N) score of each generated token (0 after a beam's end)."""
        steps = torch.stack(scores, dim=1)  # (R', N, V+)
        if normalize_logits:
            steps = torch.log_softmax(steps.float(), dim=-1)
        if beam_indices is None:
            beam_indices = torch.arange(steps.shape[0], device=sequences.device)[:, None].expand(-1, steps.shape[1])
        finished = beam_indices < 0  # (R, N)
        length = int((~finished).sum(-1).max())
        beams, finished = beam_indices[:, :length].clamp(min=0), finished[:, :length]
        tokens = sequences[:, sequences.shape[-1] - length :]  # (R, length)
        step_index = torch.arange(length, device=tokens.device)[None, :].expand_as(tokens)
        picked = steps.to(tokens.device)[beams, step_index, tokens]  # (R, length)
        return picked.masked_fill(finished, 0.0)
