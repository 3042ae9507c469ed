"""The Transformer pointer-generator: the encoder-decoder Transformer whose output layer can copy source tokens
(See et al. 2017, arXiv 1704.04368; the mechanism and its formulas are in copy_mechanism.py, what both
pointer-generator families share in pointer_generator_head.py).

Shapes: B batch, S source length, T target length, D hidden, V vocabulary, V+ extended vocabulary.

    s_t = Decoder(y_<t, h)                                        as in the Transformer
    log P(y_t | y_<t, x) = log(p_gen softmax(W s_t) + (1 - p_gen) copy_t)      returned as `logits`, width V+

`logits` are normalised log-probabilities, which greedy search, beam search (its log_softmax leaves them unchanged)
and sampling all take as they are. The loss is their cross-entropy (`mixture_cross_entropy`); `skip_logits=True`
leaves them out of the output.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutput

from .configuration_pointer_generator import PointerGeneratorConfig
from .copy_mechanism import CopyMechanism, mixture_log_probs
from .modeling_common import model_forward
from .modeling_transformer import TransformerForConditionalGeneration
from .pointer_generator_head import PointerGeneratorMixin, PointerGeneratorOutput, copy_history
from .transformers_contract import output_cache, resolve_cache

__all__ = ["PointerGeneratorForConditionalGeneration", "PointerGeneratorOutput"]


class PointerGeneratorForConditionalGeneration(PointerGeneratorMixin, TransformerForConditionalGeneration):
    """The Transformer with a copy mechanism in its output layer: training with `labels` and `generate()`.

    The source tokens to copy are `source_ids` (B, S), by default `input_ids`. With a vocabulary that cannot spell
    every source word, pass `source_ids` in an extended vocabulary (word k outside it = id V + k) and
    `num_source_oovs` (an int, the largest k + 1 in the batch): the output then has width V + num_source_oovs, labels
    may use those ids, and ids >= V fed back to the decoder become `config.unk_token_id`. A byte-level BPE vocabulary
    spells everything, so the default (no extended ids) is what `hf-encdec train` uses.

    With `config.coverage`, the copy attentions of the decoded steps ride in the self-attention cache as one layer
    past the decoder's (`copy_history`), so cached decoding and beam search carry the coverage vector.

    >>> import torch
    >>> from hf_encdec import PointerGeneratorConfig, PointerGeneratorForConditionalGeneration
    >>> config = PointerGeneratorConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
    ...                                 encoder_layers=2, decoder_layers=2)
    >>> model = PointerGeneratorForConditionalGeneration(config).eval()
    >>> out = model(input_ids=torch.tensor([[5, 6, 7, 2]]), decoder_input_ids=torch.tensor([[1, 8, 9]]))
    >>> tuple(out.logits.shape), tuple(out.p_gen.shape), tuple(out.copy_attentions.shape)
    ((1, 3, 99), (1, 3, 1), (1, 3, 4))
    >>> model.generate(torch.tensor([[5, 6, 7, 2]]), max_new_tokens=4, num_beams=2).shape[0]
    1
    """

    config_class = PointerGeneratorConfig

    def __init__(self, config: PointerGeneratorConfig) -> None:
        super().__init__(config)
        self.copy_mechanism = CopyMechanism(config.hidden_size, config.hidden_size, coverage=config.coverage)
        self.copy_mechanism.apply(self._init_weights)  # added after the parent's post_init

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        past_key_values: Cache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        source_ids: torch.LongTensor | None = None,
        num_source_oovs: int = 0,
        **kwargs: object,
    ) -> PointerGeneratorOutput:
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        skip_logits = kwargs.pop("skip_logits", None)
        source_ids = input_ids if source_ids is None else source_ids
        if source_ids is None:
            raise ValueError("the pointer-generator needs source_ids (or input_ids) to copy from")
        decoder_input_ids, use_cache = self.teacher_forcing(
            labels, decoder_input_ids, kwargs.get("decoder_inputs_embeds"), use_cache
        )
        decoder_input_ids = self.copy_decoder_inputs(decoder_input_ids, num_source_oovs)
        if self.samples_own_predictions(labels):
            encoder_outputs = self.encode_once(input_ids, attention_mask, kwargs.get("inputs_embeds"), encoder_outputs)

            def predict(inputs: torch.Tensor) -> torch.Tensor:
                inputs = self.copy_decoder_inputs(inputs, num_source_oovs)  # a copied unknown word is read as unk
                states = self.model(
                    attention_mask=attention_mask, decoder_input_ids=inputs, encoder_outputs=encoder_outputs,
                    decoder_attention_mask=kwargs.get("decoder_attention_mask"), use_cache=False,
                ).last_hidden_state  # (B, T, D)
                copy = self.copy_mechanism(states, encoder_outputs.last_hidden_state, attention_mask)
                return mixture_log_probs(
                    self.lm_head(states), copy.attention, copy.gate_logits, source_ids.to(states.device),
                    self.config.vocab_size + num_source_oovs,
                )  # (B, T, V+): the model's own output distribution

            decoder_input_ids = self.copy_decoder_inputs(
                self.scheduled_sampling_inputs(decoder_input_ids, labels, predict), num_source_oovs
            )
        cache = resolve_cache(cache, past_key_values)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            encoder_outputs=encoder_outputs,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state  # (B, T, D)
        history, coverage = None, None
        if self.config.coverage:
            # the cache the decoder used (built by it when none was passed in), None without caching
            history = copy_history(output_cache(outputs), self.config.decoder_layers)
            if history is not None and history.get_seq_length() > 0:
                coverage = history.keys.sum(dim=-2)[:, 0]  # (B, S): the copy attentions of the cached steps
        copy = self.copy_mechanism(hidden_states, outputs.encoder_last_hidden_state, attention_mask, coverage)
        if history is not None:
            steps = copy.attention[:, None]  # (B, 1, T, S)
            history.update(steps, steps)
        return self.copy_lm_output(
            outputs,
            copy,
            source_ids,
            labels,
            attention_mask=attention_mask,
            num_source_oovs=num_source_oovs,
            skip_logits=skip_logits,
            num_items_in_batch=num_items_in_batch,
        )
