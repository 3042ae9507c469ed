"""The Transformer pointer-generator: the encoder-decoder Transformer whose output layer can copy source tokens
(See et al. 2017, arXiv 1704.04368; the mechanism and its formulas are in copy_mechanism.py).

Shapes: B batch, S source length, T target length, D hidden, V vocabulary, V+ extended vocabulary.

    s_t = Decoder(y_<t, h)                                        as in the Transformer
    log P(y_t | y_<t, x) = log(p_gen softmax(W s_t) + (1 - p_gen) copy_t)      returned as `logits`, width V+

`logits` are normalised log-probabilities, which greedy search, beam search (its log_softmax leaves them unchanged)
and sampling all take as they are. Training with labels takes the loss without building them (`copy_cross_entropy`)
and returns `logits=None`, as the plain Transformer's fused loss does; `skip_logits=False` returns them too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.utils import ModelOutput

from .configuration_pointer_generator import PointerGeneratorConfig
from .copy_mechanism import CopyMechanism, copy_cross_entropy, mixture_log_probs
from .losses import IGNORE_INDEX
from .modeling_common import model_forward, resolve_skip_logits
from .modeling_transformer import TransformerForConditionalGeneration
from .transformers_contract import resolve_cache


@dataclass
class PointerGeneratorOutput(Seq2SeqLMOutput):
    """`Seq2SeqLMOutput` plus the copy mechanism's generation probability p_gen (B, T, 1) and copy attention (B, T, S)."""

    p_gen: torch.FloatTensor | None = None
    copy_attentions: torch.FloatTensor | None = None


class PointerGeneratorForConditionalGeneration(TransformerForConditionalGeneration):
    """The Transformer with a copy mechanism in its output layer: training with `labels` and `generate()`.

    The source tokens to copy are `source_ids` (B, S), by default `input_ids`. With a vocabulary that cannot spell
    every source word, pass `source_ids` in an extended vocabulary (word k outside it = id V + k) and
    `num_source_oovs` (an int, the largest k + 1 in the batch): the output then has width V + num_source_oovs, labels
    may use those ids, and ids >= V fed back to the decoder become `config.unk_token_id`. A byte-level BPE vocabulary
    spells everything, so the default (no extended ids) is what `hf-encdec train` uses.

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
        self.copy_mechanism = CopyMechanism(config.hidden_size, config.hidden_size)
        self.copy_mechanism.apply(self._init_weights)  # added after the parent's post_init

    def generate(self, inputs: torch.Tensor | None = None, **kwargs: object) -> torch.LongTensor | ModelOutput:
        """`GenerationMixin.generate`, with the source ids kept for copying (generate otherwise hands the decoder only
        the encoder's states); `source_ids` and `num_source_oovs` may be given as in `forward`."""
        if kwargs.get("source_ids") is None:
            source = inputs if inputs is not None else kwargs.get("input_ids")
            if source is None:
                raise ValueError(
                    "the pointer-generator copies source tokens, so generate() needs input_ids (or source_ids next "
                    "to inputs_embeds / encoder_outputs)"
                )
            kwargs["source_ids"] = source
        return super().generate(inputs, **kwargs)

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
        # as a fused loss: training takes the loss without building the logits (copy_cross_entropy)
        skip_logits = resolve_skip_logits(kwargs.pop("skip_logits", None), fused=True, training=self.training, labels=labels)
        source_ids = input_ids if source_ids is None else source_ids
        if source_ids is None:
            raise ValueError("the pointer-generator needs source_ids (or input_ids) to copy from")
        if num_source_oovs < 0:
            raise ValueError(f"num_source_oovs must be >= 0, got {num_source_oovs}")
        vocab_size = self.config.vocab_size
        decoder_input_ids, use_cache = self.teacher_forcing(
            labels, decoder_input_ids, kwargs.get("decoder_inputs_embeds"), use_cache
        )
        if num_source_oovs > 0 and decoder_input_ids is not None:
            if self.config.unk_token_id is None:
                raise ValueError("num_source_oovs > 0 needs config.unk_token_id: extended ids are fed back as unknown")
            decoder_input_ids = decoder_input_ids.masked_fill(decoder_input_ids >= vocab_size, self.config.unk_token_id)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            encoder_outputs=encoder_outputs,
            cache=resolve_cache(cache, past_key_values),
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state  # (B, T, D)
        source_ids = source_ids.to(hidden_states.device)
        copy_attentions, gate_logits = self.copy_mechanism(
            hidden_states, outputs.encoder_last_hidden_state, attention_mask
        )  # (B, T, S), (B, T, 1)
        vocab_logits = None if skip_logits else self.lm_head(hidden_states)  # (B, T, V)
        loss = None
        if labels is not None:
            keep = labels.to(hidden_states.device) != IGNORE_INDEX  # (B, T)
            labelled_logits = self.lm_head(hidden_states[keep]) if vocab_logits is None else vocab_logits[keep]
            loss = copy_cross_entropy(
                labelled_logits,
                copy_attentions,
                gate_logits,
                source_ids,
                labels.to(hidden_states.device),
                encoder_attention_mask=attention_mask,
                label_smoothing=self.config.label_smoothing,
                num_items_in_batch=num_items_in_batch,
            )
        log_probs = None
        if vocab_logits is not None:
            log_probs = mixture_log_probs(
                vocab_logits, copy_attentions, gate_logits, source_ids, vocab_size + num_source_oovs
            )  # (B, T, V+)
        return self.seq2seq_lm_output(
            outputs,
            loss=loss,
            logits=log_probs,
            output_class=PointerGeneratorOutput,
            p_gen=torch.sigmoid(gate_logits),
            copy_attentions=copy_attentions,
        )
