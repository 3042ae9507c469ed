"""The non-autoregressive Transformer: the whole target in parallel, its length predicted from the source, refined by
mask-predict (Gu et al. 2018, arXiv 1711.02281; Ghazvininejad et al. 2019, Mask-Predict, arXiv 1904.09324).

Shapes: B batch, S source length, T target length (tokens + EOS), D hidden, V vocabulary, l length candidates.

    encoder:   h = Encoder(x_1..x_S)
    length:    p(T | x) = softmax(W_len mean(h))                            classes 0 .. max_position_embeddings
    decoder:   s_1..s_T = Decoder(z_1..z_T, h)       no causal mask: every position sees every other one
               z_t = <mask> where y_t is to be predicted, y_t where it is given       (decoder_input_type="mask")
               z_t = e(x_round(t S / T))                                             (decoder_input_type="copy_source")
               z_u = e(x_floor(u / k)), u = 1 .. k S, no length needed       (decoder_input_type="upsampled_source")
    output:    p(y_t | z, x) = softmax(W s_t), for all t at once; for "upsampled_source" a token or the blank
               at each of the k S positions, merged by CTC (repeats merged, blanks dropped)

Training (CMLM): for each target, k ~ U{1..T} positions are masked at random; the loss is the cross-entropy on the
masked positions plus `length_loss_weight` times the length classifier's cross-entropy. Evaluation masks every
position, so the loss is deterministic.

Decoding (`generate`): the l most likely lengths, all positions masked, predicted at once; then for t = 1 .. N - 1
the n = T (N - t) / N least confident tokens are masked again and re-predicted (the paper's linear schedule); the
candidate with the best mean log-probability is kept (or, given an autoregressive `rescorer`, the candidate it
scores best in one teacher-forced pass: noisy parallel decoding, Gu et al. 2018). N = 1 is one-pass NAT;
`deduplicate` merges repeated neighbouring tokens. The CTC variant decodes in one pass: the most likely token at each
position, repeats merged, blanks dropped. Trained with glancing, it can also refine: round t of N shows the decoder
its own tokens at the U t / N most confident positions, as glancing showed it the best alignment's (in the spirit of
the Imputer, Chan et al. 2020, arXiv 2002.08926), and predicts the others again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.generation import GenerateEncoderDecoderOutput, GenerationConfig
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

from .configuration_nat import NATConfig
from .losses import IGNORE_INDEX
from .modeling_common import Seq2SeqLMHeadMixin, TransformerPreTrainedModel, model_forward
from .modeling_transformer import TransformerModel, output_layer_tie
from .transformers_contract import CheckedGenerationMixin

from .nat_decoding import (
    Canvas,
    Choices,
    DecodingSettings,
    Predict,
    as_continuation,
    as_sequences,
    best_candidates,
    check_kwargs,
    check_no_sampling,
    check_rescorer,
    choose_tokens,
    ctc_collapse,
    ctc_shown_positions,
    cut_at_first_eos,
    decoding_settings,
    drop_repeats,
    end_only_draft,
    given_lengths,
    lengths_from_classifier,
    mask_predict,
    prefix_tokens,
    scatter_choices,
    setting,
)
from .nat_training import ctc_best_alignment, ctc_loss, draw_glimpses


@dataclass
class NATOutput(Seq2SeqLMOutput):
    """`Seq2SeqLMOutput` plus the length classifier's logits (B, max_position_embeddings + 1; None for CTC)."""

    length_logits: torch.FloatTensor | None = None


@dataclass
class DecoderInputs:
    """What the decoder reads: token ids or embeddings (B, W), the (B, W) mask of its positions, and the positions
    the token loss is taken on (None: all of `mask`)."""

    ids: torch.Tensor | None
    embeds: torch.Tensor | None
    mask: torch.Tensor
    predicted: torch.Tensor | None = None


class NATModel(TransformerModel):
    """The Transformer encoder-decoder with a non-causal decoder (no output layer, no length classifier)."""

    config_class = NATConfig
    decoder_is_causal = False


def masked_mean(states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, S, D) -> (B, D), the mean over the real positions."""
    if attention_mask is None:
        return states.mean(dim=1)
    keep = attention_mask.to(states.dtype)[..., None]  # (B, S, 1)
    return (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


def draw_cmlm_masks(target: torch.Tensor) -> torch.Tensor:
    """For each row of `target` (B, T; True at the T_b real positions), mask k ~ U{1..T_b} of them at random."""
    lengths = target.sum(dim=1)  # (B,)
    count = (torch.rand(lengths.shape, device=target.device) * lengths).long() + 1  # (B,) in 1..T_b
    scores = torch.rand(target.shape, device=target.device).masked_fill(~target, 2.0)  # padding ranks last
    ranks = scores.argsort(dim=1, stable=True).argsort(dim=1, stable=True)  # (B, T)
    return (ranks < count[:, None]) & target


def uniform_copy_indices(source_lengths: torch.Tensor, target_lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Gu et al. 2018's uniform copy: target position t of a length-T target reads source position floor(t S / T),
    (B, width), clamped to the source."""
    positions = torch.arange(width, device=source_lengths.device)[None, :]  # (1, T)
    scaled = positions * source_lengths[:, None] // target_lengths.clamp(min=1)[:, None]
    return torch.minimum(scaled, (source_lengths - 1).clamp(min=0)[:, None])  # (B, T)


class NATForConditionalGeneration(Seq2SeqLMHeadMixin, TransformerPreTrainedModel, CheckedGenerationMixin):
    """Parallel decoding with length prediction; training with `labels` draws the CMLM masking itself.

    `labels` are formatted as for the autoregressive families: target tokens, EOS, then -100. Each batch's loss is a
    mean (over its masked tokens, and over its sentences for the length), so the Trainer averages accumulated
    batches itself (`accepts_loss_kwargs = False`).

    >>> import torch
    >>> from hf_encdec.models.configuration_nat import NATConfig
    >>> from hf_encdec.models.modeling_nat import NATForConditionalGeneration
    >>> config = NATConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
    ...                    encoder_layers=2, decoder_layers=2, mask_token_id=4, max_position_embeddings=32)
    >>> model = NATForConditionalGeneration(config).eval()
    >>> out = model(input_ids=torch.tensor([[5, 6, 7, 2]]), labels=torch.tensor([[8, 9, 2]]))
    >>> tuple(out.logits.shape), tuple(out.length_logits.shape)
    ((1, 3, 99), (1, 33))
    >>> model.generate(torch.tensor([[5, 6, 7, 2]]), target_length=5, num_iterations=2).shape
    torch.Size([1, 6])
    """

    config_class = NATConfig
    accepts_loss_kwargs = False
    generation_cache = "none"  # every position in parallel; generate() is this class's own

    def __init__(self, config: NATConfig) -> None:
        super().__init__(config)
        self.model = NATModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.decoder_vocab_size, bias=False)
        # CTC finds the length itself: no classifier
        self.length_head = None if config.is_ctc else nn.Linear(config.hidden_size, config.max_position_embeddings + 1)
        self.post_init()
        #: the glancing ratio of the next training step (a training schedule may anneal it from the config's)
        self.glancing_ratio = config.glancing_ratio
        #: CTC: training pairs left out of the loss so far, their target longer than the upsampled source allows
        self.ctc_skipped_pairs = 0
        self.generation_config = GenerationConfig(
            decoder_start_token_id=config.decoder_start_token_id,
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            **({} if config.is_ctc else {"num_iterations": 10, "length_beam_size": 1}),
        )

    def tied_weights(self) -> dict[str, str]:
        return output_layer_tie(self.config)

    def length_logits(self, encoder_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """(B, max_position_embeddings + 1) scores of each target length (tokens + EOS); None for CTC."""
        if self.length_head is None:
            return None
        return self.length_head(masked_mean(encoder_states, attention_mask))

    @staticmethod
    def _source_lengths(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if attention_mask is not None:
            return attention_mask.sum(dim=1)
        return torch.full_like(input_ids[:, 0], input_ids.shape[1])

    def copied_source(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
        """The decoder inputs of `decoder_input_type="copy_source"`: the scaled source embeddings copied uniformly to
        each target's length, zero beyond it; (B, T, D)."""
        embeddings = self.model.encoder.embed_tokens(input_ids)  # (B, S, D), scaled
        index = uniform_copy_indices(self._source_lengths(input_ids, attention_mask), target.sum(dim=1), target.shape[1])
        copied = embeddings.gather(1, index[..., None].expand(-1, -1, embeddings.shape[-1]))
        return copied * target[..., None].to(copied.dtype)

    def upsampled_source(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None) -> DecoderInputs:
        """The decoder inputs of the CTC variant: each source embedding `upsample_factor` times in a row,
        (B, k S, D), and the mask of the k S_b real positions of each row."""
        if input_ids is None:
            raise ValueError("decoder_input_type='upsampled_source' (CTC) reads the source: pass input_ids")
        factor = self.config.ctc_upsample_factor
        lengths = self._source_lengths(input_ids, attention_mask) * factor  # (B,)
        width = input_ids.shape[1] * factor
        mask = torch.arange(width, device=input_ids.device)[None, :] < lengths[:, None]  # (B, kS)
        embeddings = self.model.encoder.embed_tokens(input_ids).repeat_interleave(factor, dim=1)  # (B, kS, D)
        return DecoderInputs(ids=None, embeds=embeddings * mask[..., None].to(embeddings.dtype), mask=mask)

    def _encode(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, **kwargs: Any) -> BaseModelOutput:
        return self.model.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def _decode(
        self, inputs: DecoderInputs, encoder_outputs: BaseModelOutput, attention_mask: torch.Tensor | None, **kwargs: Any
    ) -> Any:
        return self.model(
            attention_mask=attention_mask,
            decoder_input_ids=inputs.ids,
            decoder_inputs_embeds=inputs.embeds,
            decoder_attention_mask=inputs.mask.long(),
            encoder_outputs=encoder_outputs,
            use_cache=False,
            **kwargs,
        )

    def _training_inputs(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor,
        encoder_outputs: BaseModelOutput,
    ) -> DecoderInputs:
        """The decoder inputs of a batch with `labels`: the masked target, the copied or the upsampled source; in
        training, with a random CMLM masking or the glimpses of glancing training."""
        config = self.config
        target = labels != IGNORE_INDEX  # (B, T): target tokens and EOS
        gold = labels.masked_fill(~target, config.pad_token_id)
        if config.is_ctc:
            inputs = self.upsampled_source(input_ids, attention_mask)
        elif config.decoder_input_type == "copy_source":
            if input_ids is None:
                raise ValueError("decoder_input_type='copy_source' copies the source: forward needs input_ids")
            inputs = DecoderInputs(ids=None, embeds=self.copied_source(input_ids, attention_mask, target), mask=target)
        else:
            masked = draw_cmlm_masks(target) if self.training and not self.glancing_ratio else target
            inputs = DecoderInputs(
                ids=gold.masked_fill(masked, config.mask_token_id), embeds=None, mask=target, predicted=masked
            )
        if self.training and self.glancing_ratio > 0:
            inputs = self._glance(inputs, encoder_outputs, attention_mask, gold, target)
        return inputs

    def _glance(
        self,
        inputs: DecoderInputs,
        encoder_outputs: BaseModelOutput,
        attention_mask: torch.Tensor | None,
        gold: torch.Tensor,
        target: torch.Tensor,
    ) -> DecoderInputs:
        """Glancing training: decode without gradient, then show the reference at round(ratio x wrong) random
        positions (the tokens of the best CTC alignment for CTC); the loss is taken on the positions not shown."""
        config = self.config
        with torch.no_grad():
            logits = self.lm_head(self._decode(inputs, encoder_outputs, attention_mask).last_hidden_state)
            if config.is_ctc:
                lengths = target.sum(dim=1) - 1  # CTC writes the tokens; EOS follows them
                reference = ctc_best_alignment(
                    logits.float().log_softmax(dim=-1), inputs.mask.sum(dim=1), gold, lengths,
                    blank=config.mask_token_id,
                )
            else:
                reference = gold
            shown = draw_glimpses(logits.argmax(dim=-1) != reference, inputs.mask, self.glancing_ratio)
        if inputs.ids is not None:
            ids = torch.where(shown, reference, inputs.ids)
            return DecoderInputs(ids=ids, embeds=None, mask=inputs.mask, predicted=inputs.mask & ~shown)
        embeds = torch.where(shown[..., None], self.model.decoder.embed_tokens(reference), inputs.embeds)
        return DecoderInputs(ids=None, embeds=embeds, mask=inputs.mask, predicted=inputs.mask & ~shown)

    def _ctc_loss(self, logits: torch.Tensor, inputs: DecoderInputs, labels: torch.Tensor) -> torch.Tensor:
        """The CTC loss of the target tokens (EOS excluded: decoding appends it); pairs the upsampled source is too
        short for are left out and counted in `ctc_skipped_pairs`."""
        target = labels != IGNORE_INDEX
        loss, feasible = ctc_loss(
            logits.float().transpose(0, 1).contiguous().log_softmax(dim=-1), inputs.mask.sum(dim=1),
            labels.masked_fill(~target, self.config.pad_token_id), target.sum(dim=1) - 1,
            blank=self.config.mask_token_id, label_smoothing=self.config.label_smoothing if self.training else 0.0,
        )
        if self.training:
            self.ctc_skipped_pairs += int((~feasible).sum())
        return loss

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        skip_logits: bool | None = None,
        **kwargs: object,
    ) -> NATOutput:
        """Without labels, `decoder_input_ids` (`mask_token_id` where a token is to be predicted, pad beyond each
        target) or `decoder_inputs_embeds` are required. With labels, the decoder inputs come from them: in training
        a random CMLM masking (or glancing), in evaluation every position masked (or the copied or upsampled
        source)."""
        for unused in ("num_items_in_batch", "cache", "past_key_values", "use_cache"):
            kwargs.pop(unused, None)  # one parallel pass: no cache; each batch's loss is its own mean
        config = self.config
        if encoder_outputs is None:
            encoder_outputs = self.model.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
            )
        elif isinstance(encoder_outputs, tuple):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        length_logits = self.length_logits(encoder_outputs.last_hidden_state, attention_mask)  # (B, max + 1)

        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            inputs = self._training_inputs(input_ids, attention_mask, labels, encoder_outputs)
        elif decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError(
                "a NAT forward needs labels, or decoder_input_ids (mask_token_id at the positions to predict) or "
                "decoder_inputs_embeds; generate() builds them for decoding"
            )
        else:
            if decoder_attention_mask is None:
                if labels is not None:
                    decoder_attention_mask = labels != IGNORE_INDEX
                elif decoder_input_ids is not None:
                    decoder_attention_mask = decoder_input_ids != config.pad_token_id
                else:
                    decoder_attention_mask = torch.ones(decoder_inputs_embeds.shape[:2], dtype=torch.bool,
                                                        device=decoder_inputs_embeds.device)
            predicted = None
            if labels is not None and decoder_input_ids is not None:
                predicted = (labels != IGNORE_INDEX) & (decoder_input_ids == config.mask_token_id)
            inputs = DecoderInputs(decoder_input_ids, decoder_inputs_embeds, decoder_attention_mask.bool(), predicted)

        outputs = self._decode(
            inputs, encoder_outputs, attention_mask,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, **kwargs,
        )
        loss = None
        if config.is_ctc:
            logits = self.lm_head(outputs.last_hidden_state)
            if labels is not None:
                loss = self._ctc_loss(logits, inputs, labels)
        else:
            token_labels = None
            if labels is not None:
                predicted = inputs.predicted if inputs.predicted is not None else labels != IGNORE_INDEX
                token_labels = labels.masked_fill(~predicted, IGNORE_INDEX)
            logits, token_loss = self.logits_and_loss(outputs.last_hidden_state, token_labels, skip_logits=skip_logits)
            if labels is not None:
                lengths = (labels != IGNORE_INDEX).sum(dim=1).clamp(max=config.max_position_embeddings)  # (B,)
                length_loss = F.cross_entropy(length_logits.float(), lengths)
                loss = token_loss + config.length_loss_weight * length_loss
        return self.seq2seq_lm_output(
            outputs, loss=loss, logits=logits, output_class=NATOutput, length_logits=length_logits
        )

    # ---- decoding ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        num_iterations: int | None = None,
        length_beam_size: int | None = None,
        target_length: int | torch.Tensor | None = None,
        fixed_length: int | None = None,
        max_new_tokens: int | None = None,
        encoder_outputs: BaseModelOutput | None = None,
        generation_config: GenerationConfig | None = None,
        do_sample: bool = False,
        num_return_sequences: int = 1,
        num_beams: int | None = None,
        max_length: int | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        return_dict_in_generate: bool | None = None,
        output_scores: bool | None = None,
        deduplicate: bool | None = None,
        rescorer: Any = None,
        **kwargs: Any,
    ) -> torch.LongTensor | GenerateEncoderDecoderOutput:
        """Decode every position in parallel and refine with mask-predict (the steps: `nat_decoding`).

        - `num_iterations` (default `generation_config.num_iterations`, 10): rounds of mask-predict; 1 is one pass.
        - `length_beam_size` (default `generation_config.length_beam_size`, 1): the l most likely lengths are decoded
          side by side; the candidate with the best mean log-probability is kept.
        - `target_length`: an int or a (B,) tensor of lengths (tokens + EOS) in place of the length classifier.
        - `fixed_length`: decode that many positions and cut each output at its first EOS (one long length for every
          sentence instead of a predicted one).
        - `max_new_tokens` (or `max_length`, counting the start token): the longest length the classifier may choose.
        - `decoder_input_ids` (B, 1 + p): a prefix to continue, as speculative decoding hands its drafter (the
          target's `generate(assistant_model=...)`): its tokens are given, the rest is predicted (one pass by
          default, `draft_num_iterations` in the config), and the continuation is cut after `max_new_tokens`.
        - `deduplicate` (default `generation_config.deduplicate`, False): merge each run of identical neighbouring
          tokens of the output into one, unless the source repeats that token too (length-predicting variants; CTC
          merges repeats by construction).
        - `rescorer`: an autoregressive seq2seq model with the same vocabulary that scores every length candidate in
          one teacher-forced pass; the candidate it gives the best mean log-probability is kept (noisy parallel
          decoding, Gu et al. 2018). Without it the NAT's own confidence chooses.

        The CTC variant (`decoder_input_type="upsampled_source"`) decodes in one pass and takes none of the length
        settings; trained with glancing (`glancing_ratio` > 0), it takes `num_iterations` (default 1) to refine its
        output, showing the decoder its most confident tokens.

        Returns (B, 1 + L): the decoder start token, the tokens, EOS, then padding, as the autoregressive families'
        `generate()`; with `return_dict_in_generate`, an output with `sequences` (and `scores`, the log-probabilities
        each new token was chosen from, with `output_scores`). Deterministic: no sampling.
        """
        config = self.config
        generation_config = generation_config or self.generation_config
        has_prefix = decoder_input_ids is not None
        check_kwargs(kwargs, has_prefix=has_prefix)
        check_no_sampling(do_sample, num_return_sequences, num_beams)
        deduplicate = bool(setting("deduplicate", deduplicate, generation_config, self.generation_config, False))
        if has_prefix and (deduplicate or rescorer is not None):
            raise ValueError("deduplicate and rescorer choose whole outputs; a draft (decoder_input_ids) takes neither")
        if rescorer is not None:
            check_rescorer(rescorer, config)
        prefix = prefix_tokens(decoder_input_ids, config) if has_prefix else None
        prefix_length = prefix.shape[1] if prefix is not None else None
        settings = decoding_settings(
            config, generation_config, self.generation_config,
            prefix_length=prefix_length, num_iterations=num_iterations, length_beam_size=length_beam_size,
            target_length=target_length, fixed_length=fixed_length, max_new_tokens=max_new_tokens,
            max_length=max_length, return_dict_in_generate=return_dict_in_generate, output_scores=output_scores,
        )
        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("generate() needs input_ids (or encoder_outputs)")
            encoder_outputs = self.model.encoder(input_ids=input_ids, attention_mask=attention_mask)
        if config.is_ctc:
            return self._generate_ctc(input_ids, attention_mask, encoder_outputs, settings, deduplicate, rescorer)
        states = encoder_outputs.last_hidden_state  # (B, S, D)
        batch = states.shape[0]
        if prefix is not None and prefix.shape[0] != batch:
            raise ValueError(f"decoder_input_ids has {prefix.shape[0]} rows for {batch} sources")
        lowest = (prefix_length or 0) + 1  # the prefix, then at least EOS
        if prefix is not None and lowest > config.max_position_embeddings:
            sequences, scores = end_only_draft(decoder_input_ids, config.decoder_vocab_size, config.eos_token_id)
            return self._generate_output(sequences, scores, settings)
        lengths = self._draft_lengths(states, attention_mask, settings, lowest=lowest)
        canvas = Canvas.build(
            prefix if prefix is not None else states.new_zeros((batch, 0), dtype=torch.long),
            lengths, mask_token_id=config.mask_token_id, pad_token_id=config.pad_token_id,
            eos_at_end=settings.fixed_length is None,
        )
        predict = self._predictor(input_ids, states, attention_mask, canvas, lengths.shape[1], settings.output_scores)
        if config.decoder_input_type == "copy_source":
            choices = predict(None, canvas.target)
        else:
            choices = mask_predict(predict, canvas, settings.num_iterations, config.mask_token_id)
        if rescorer is not None and lengths.shape[1] > 1:
            rows = self._rescored_candidates(rescorer, input_ids, attention_mask, choices.tokens, lengths.shape[1])
        else:
            rows = best_candidates(choices, canvas, lengths.shape[1])
        choices = Choices(*(part[rows] if part is not None else None for part in choices))
        if prefix is not None:
            sequences, scores = as_continuation(
                decoder_input_ids, choices, prefix_length=prefix_length, cut=settings.cut,
                confidence_threshold=settings.confidence_threshold, pad_token_id=config.pad_token_id,
            )
            return self._generate_output(sequences, scores, settings)
        tokens = choices.tokens
        if settings.fixed_length is not None:
            tokens = cut_at_first_eos(tokens, config.eos_token_id, config.pad_token_id)
        if deduplicate:
            if choices.scores is not None:
                raise ValueError("output_scores gives one score per decoded position; deduplicate merges positions: "
                                 "use one of them")
            source = input_ids
            if source is not None and attention_mask is not None:
                source = source.masked_fill(attention_mask == 0, -1)  # padding repeats nothing
            tokens = drop_repeats(tokens, config.pad_token_id, source)
        sequences = as_sequences(tokens, config.decoder_start_token_id, config.pad_token_id)
        scores = None
        if choices.scores is not None:
            scores = tuple(choices.scores[:, i] for i in range(sequences.shape[1] - 1))
        return self._generate_output(sequences, scores, settings)

    def _generate_ctc(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        encoder_outputs: BaseModelOutput,
        settings: DecodingSettings,
        deduplicate: bool,
        rescorer: Any,
    ) -> torch.LongTensor | GenerateEncoderDecoderOutput:
        """The CTC variant: the most likely token or blank at each upsampled position, repeats merged, blanks
        dropped, EOS appended. With N > 1 iterations (a model trained with glancing only), round t = 1 .. N - 1 shows
        the decoder its own tokens (or blanks) at the floor(U t / N) most confident of its U positions, in place of
        the source embeddings there, as glancing training showed it the best alignment's, and predicts the others
        again; shown positions keep their tokens."""
        config = self.config
        if deduplicate or rescorer is not None or settings.output_scores:
            raise ValueError(
                "CTC decoding (decoder_input_type='upsampled_source') merges repeats itself and writes one output "
                "per source: deduplicate, rescorer and output_scores are not available"
            )
        inputs = self.upsampled_source(input_ids, attention_mask)
        forbidden = [i for i in {config.pad_token_id, config.decoder_start_token_id, config.bos_token_id,
                                 config.eos_token_id} if i is not None and i != config.mask_token_id]
        refining = settings.num_iterations > 1
        # the cross-attention keys/values of the encoder states, projected in the first pass and reused by the others
        cross_cache = EncoderDecoderCache(DynamicCache(), DynamicCache()) if refining else None

        def predict(embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            hidden = self.model(
                attention_mask=attention_mask, decoder_inputs_embeds=embeds, decoder_attention_mask=inputs.mask.long(),
                encoder_outputs=encoder_outputs, cache=cross_cache, use_cache=refining,
            ).last_hidden_state
            logits = self.lm_head(hidden).float()
            logits[..., forbidden] = float("-inf")
            # (B, U) confidence and token; one pass needs the tokens only, the same argmax without the softmax
            return (logits.log_softmax(dim=-1) if refining else logits).max(dim=-1)

        confidence, tokens = predict(inputs.embeds)
        shown = torch.zeros_like(inputs.mask)
        positions = inputs.mask.sum(dim=1)  # (B,)
        for t in range(1, settings.num_iterations):
            shown = ctc_shown_positions(confidence, inputs.mask, shown, positions * t // settings.num_iterations)
            embeds = torch.where(shown[..., None], self.model.decoder.embed_tokens(tokens), inputs.embeds)
            new_confidence, new_tokens = predict(embeds)
            tokens = torch.where(shown, tokens, new_tokens)
            confidence = torch.where(shown, confidence, new_confidence)
        tokens = ctc_collapse(
            tokens, inputs.mask, blank=config.mask_token_id, eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id, longest=settings.longest,
        )
        return self._generate_output(as_sequences(tokens, config.decoder_start_token_id, config.pad_token_id), None, settings)

    @torch.no_grad()
    def _rescored_candidates(
        self,
        rescorer: Any,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        tokens: torch.Tensor,
        candidates: int,
    ) -> torch.Tensor:
        """(B,) the row of each source's candidate that `rescorer` gives the best mean log-probability per token,
        all (R, W) candidates in one teacher-forced pass."""
        if input_ids is None:
            raise ValueError("rescoring with an autoregressive model needs input_ids")
        labels = tokens.masked_fill(tokens == self.config.pad_token_id, IGNORE_INDEX)
        logits = rescorer(
            input_ids=input_ids.repeat_interleave(candidates, dim=0),
            attention_mask=attention_mask.repeat_interleave(candidates, dim=0) if attention_mask is not None else None,
            labels=labels,
        ).logits.float()
        real = labels != IGNORE_INDEX
        chosen = logits.log_softmax(dim=-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)  # (R, W)
        mean = ((chosen * real).sum(dim=1) / real.sum(dim=1).clamp(min=1)).view(-1, candidates)
        return torch.arange(mean.shape[0], device=mean.device) * candidates + mean.argmax(dim=1)

    def _draft_lengths(
        self, states: torch.Tensor, attention_mask: torch.Tensor | None, settings: DecodingSettings, *, lowest: int
    ) -> torch.Tensor:
        """(B, l) target lengths to decode: given, fixed, or the l most likely of the length classifier."""
        given = settings.target_length if settings.target_length is not None else settings.fixed_length
        if given is not None:
            name = "target_length" if settings.target_length is not None else "fixed_length"
            return given_lengths(
                given, name, batch=states.shape[0], lowest=lowest, limit=self.config.max_position_embeddings,
                device=states.device,
            )
        return lengths_from_classifier(
            self.length_logits(states, attention_mask), lowest=lowest, longest=max(settings.longest, lowest),
            beam=settings.length_beam_size,
        )

    def _predictor(
        self,
        input_ids: torch.Tensor | None,
        states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        canvas: Canvas,
        candidates: int,
        keep_scores: bool,
    ) -> Predict:
        """One decoder pass over the canvas's rows: the tokens and log-probabilities at the positions asked for."""
        expanded = BaseModelOutput(last_hidden_state=states.repeat_interleave(candidates, dim=0))
        source_mask = attention_mask.repeat_interleave(candidates, dim=0) if attention_mask is not None else None
        # the cross-attention keys/values of the encoder states, projected in the first pass and reused by the others
        cross_cache = EncoderDecoderCache(DynamicCache(), DynamicCache())

        def predict(tokens: torch.Tensor | None, positions: torch.Tensor) -> Choices:
            embeds = None
            if tokens is None:  # copy_source: the first (and only) pass reads the copied source
                if input_ids is None:
                    raise ValueError("decoder_input_type='copy_source' decodes from input_ids: pass them")
                embeds = self.copied_source(input_ids.repeat_interleave(candidates, dim=0), source_mask, canvas.target)
            hidden = self.model(
                attention_mask=source_mask,
                decoder_input_ids=tokens,
                decoder_inputs_embeds=embeds,
                decoder_attention_mask=canvas.target.long(),
                encoder_outputs=expanded,
                cache=cross_cache,
                use_cache=True,
            ).last_hidden_state
            at_end = canvas.last[positions] if canvas.last is not None else None
            tokens, log_probs, scores = choose_tokens(
                self.lm_head(hidden[positions]), at_end, self.config, keep_scores=keep_scores
            )
            return scatter_choices(positions, tokens, log_probs, scores, self.config.pad_token_id)

        return predict

    @staticmethod
    def _generate_output(
        sequences: torch.Tensor, scores: tuple[torch.Tensor, ...] | None, settings: DecodingSettings
    ) -> torch.LongTensor | GenerateEncoderDecoderOutput:
        if not settings.return_dict:
            return sequences
        # no cache field set: a drafter keeps none between calls (each draft is one pass over the prefix); the field is
        # `past_key_values` in transformers 5.23 and `cache` from 5.25, and either reads as None when left out
        return GenerateEncoderDecoderOutput(
            sequences=sequences, scores=scores if settings.output_scores else None
        )
