"""The RNN encoder-decoder family: Cho et al. 2014 (arXiv 1406.1078), Sutskever et al. 2014 (1409.3215), Bahdanau et
al. 2015 (1409.0473), Luong et al. 2015 (1508.04025), and the Transformer-encoder / RNN-decoder hybrid (Chen et al.
2018, 1804.09849).

Shapes: B batch, S source length, T target length, E embedding size, H hidden size, L layers, V target vocabulary.

    encoder:  h_1..h_S, final states h_N = RNNEncoder(x)         (or a Transformer encoder, h_N = mean of h_j)
    bridge:   s_0 = bridge(h_N)
    decoder:  t_t, s_t = RNNDecoder(y_<t, s_{t-1}, h)            attention_type: none | bahdanau | luong_*
    output:   p(y_t | y_<t, x) = softmax(W_o t_t)
    copy:     P(w) = p_gen softmax(W_o t_t)_w + (1 - p_gen) sum_{j: x_j = w} a_tj      (copy_mechanism=True)
              p_gen = sigmoid(w_c^T c_t + w_s^T s_t + w_x^T x_t + b)                  (See et al. 2017, 1704.04368)

The blocks and their formulas are in `rnn_layers.py` (encoder, bridge, readout, decoder, state) and
`rnn_attention.py` (scores). Generation carries an `RNNDecoderState` as the cache (`cache`, or `past_key_values`
before transformers 5.24): batch first, reordered in place by its `reorder_cache` under beam search; without a cache
every step re-runs the decoder over the whole prefix from s_0, which gives the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

from .configuration_rnn_seq2seq import RNNSeq2SeqConfig
from .configuration_transformer import TransformerBlockConfig, check_attention_implementation
from .copy_mechanism import CopyDistribution, CopyGate, add_coverage_loss, mixture_log_probs
from .modeling_common import (
    AutoregressiveLMHeadMixin,
    EncDecPreTrainedModel,
    TokenEmbedding,
    TransformerPreTrainedModel,
    config_output_flags,
    draw_tokens,
    model_forward,
)
from .pointer_generator_head import PointerGeneratorMixin, PointerGeneratorOutput
from .rnn_attention import build_scorer
from .rnn_layers import (
    Bridge,
    DecoderSteps,
    InputSampler,
    MaxoutReadout,
    RNNDecoder,
    RNNDecoderState,
    RNNEncoder,
    RNNEncoderOutput,
    build_recurrent,
)
from .transformer_layers import TransformerStack
from .transformers_contract import CheckedGenerationMixin, cache_field, resolve_cache

#: generate() settings (keywords or GenerationConfig fields) that turn on assisted decoding in transformers: a draft
#: model, prompt lookup, early exit as the draft, multi-token-prediction heads
ASSISTED_DECODING_SETTINGS = ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit", "use_mtp")

#: attention_type -> decoder style (how the context enters the recurrence; see rnn_layers.py)
DECODER_STYLE = {
    "none": "context",
    "bahdanau": "bahdanau",
    "luong_dot": "luong",
    "luong_general": "luong",
    "luong_concat": "luong",
}


class TransformerSourceEncoder(TransformerPreTrainedModel):
    """The Transformer family's encoder stack behind an RNN decoder, returning an `RNNEncoderOutput` whose final state
    is the mean of the states of the real tokens, (B, 1, H).

    A model of its own, with `RNNSeq2SeqConfig.encoder_config` as its config: transformers hands a sub-config the
    attention implementation chosen for the whole model, and initialises a sub-model with its own `_init_weights`.
    """

    config_class = TransformerBlockConfig

    def __init__(self, config: TransformerBlockConfig, num_layers: int) -> None:
        super().__init__(config)
        self.stack = TransformerStack(
            config,
            embed_tokens=TokenEmbedding.for_config(config),
            num_layers=num_layers,
            causal=False,
            cross_attention=False,
        )
        self.post_init()

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.stack.embed_tokens

    def get_input_embeddings(self) -> nn.Embedding:
        return self.stack.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.stack.embed_tokens = value

    @config_output_flags
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: object,
    ) -> RNNEncoderOutput | tuple:
        outputs = self.stack(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        states = outputs.last_hidden_state  # (B, S, H)
        if attention_mask is None:
            summary = states.mean(dim=1)
        else:
            keep = attention_mask.to(states.dtype)[..., None]  # (B, S, 1)
            summary = (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        result = RNNEncoderOutput(
            last_hidden_state=states,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            final_hidden_state=summary[:, None, :],  # (B, 1, H)
        )
        return result if return_dict is not False else result.to_tuple()


class RNNSeq2SeqPreTrainedModel(EncDecPreTrainedModel):
    """Base of the RNN family: uniform initialisation of the recurrent parts (a Transformer encoder is a sub-model and
    initialises itself). The kernel flags are for that encoder's attention; the recurrent parts have none."""

    config_class = RNNSeq2SeqConfig
    _no_split_modules = ["RNNEncoder", "RNNDecoder", "TransformerLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True

    def check_attention_implementation(self, attn_implementation: str | None) -> None:
        if self.config.encoder_config is not None:  # checked here too: transformers checks the parent model first
            check_attention_implementation(self.config.encoder_config.position_type, attn_implementation)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        bound = self.config.uniform_init_range
        if isinstance(module, (nn.RNNBase, nn.Linear)):
            for parameter in module.parameters(recurse=False):
                init.uniform_(parameter, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.uniform_(module.weight, -bound, bound)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])


def build_encoder(config: RNNSeq2SeqConfig) -> RNNEncoder | TransformerSourceEncoder:
    """The encoder of `config.encoder_type`: a recurrent stack, or the Transformer family's encoder stack."""
    if config.encoder_type == "transformer":
        return TransformerSourceEncoder(config.encoder_config, num_layers=config.encoder_layers)
    directions = 2 if config.bidirectional_encoder else 1
    return RNNEncoder(
        embed_tokens=nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id),
        rnn=build_recurrent(
            config.rnn_type,
            config.embedding_size,
            config.hidden_size // directions,
            config.encoder_layers,
            dropout=config.dropout,
            bidirectional=config.bidirectional_encoder,
        ),
        dropout=config.dropout,
    )


def build_decoder(config: RNNSeq2SeqConfig) -> RNNDecoder:
    """The decoder of `config.attention_type`, with the bridge from the encoder's final states."""
    style = DECODER_STYLE[config.attention_type]
    hidden, embedding = config.hidden_size, config.embedding_size
    recurrent_input = embedding + (hidden if style != "luong" or config.input_feeding else 0)
    if config.encoder_type == "transformer":
        encoder_state_size = hidden  # one summary vector
    else:
        encoder_state_size = config.encoder_layers * hidden * (2 if config.rnn_type == "lstm" else 1)
    tie_needs_projection = style == "luong" and config.tie_word_embeddings and hidden != embedding
    return RNNDecoder(
        style=style,
        embed_tokens=nn.Embedding(config.decoder_vocab_size, embedding, padding_idx=config.pad_token_id),
        rnn=build_recurrent(config.rnn_type, recurrent_input, hidden, config.decoder_layers, dropout=config.dropout),
        bridge=Bridge(
            config.bridge,
            encoder_state_size=encoder_state_size,
            decoder_layers=config.decoder_layers,
            hidden_size=hidden,
            with_cell=config.rnn_type == "lstm",
        ),
        attention=build_scorer(config.attention_type, query_size=hidden, key_size=hidden, coverage=config.coverage),
        readout=(
            MaxoutReadout(state_size=hidden, embedding_size=embedding, context_size=hidden, output_size=embedding)
            if style != "luong"
            else None
        ),
        attentional_layer=nn.Linear(2 * hidden, hidden, bias=False) if style == "luong" else None,
        output_projection=nn.Linear(hidden, embedding, bias=False) if tie_needs_projection else None,
        input_feeding=config.input_feeding,
        dropout=config.dropout,
    )


def decoder_output_size(config: RNNSeq2SeqConfig) -> int:
    """Width of the features the output layer reads: the maxout readout (E), or Luong's h~_t (H, projected to E when
    the output layer is tied to the E-wide embedding)."""
    if DECODER_STYLE[config.attention_type] != "luong" or config.tie_word_embeddings:
        return config.embedding_size
    return config.hidden_size


@dataclass
class RNNSeq2SeqModelOutput(Seq2SeqModelOutput):
    """`Seq2SeqModelOutput` plus what the decoder computed per step for a copy mechanism and coverage: the attention
    weights a_t `alignments` (B, T, S), the context vectors c_t `contexts` (B, T, H), the top layer's states s_t
    `decoder_states` (B, T, H), the inputs x_t `decoder_inputs` (B, T, E), and with coverage the coverage vector
    before each step `coverages` (B, T, S). None where the decoder has no attention."""

    alignments: torch.FloatTensor | None = None
    contexts: torch.FloatTensor | None = None
    decoder_states: torch.FloatTensor | None = None
    decoder_inputs: torch.FloatTensor | None = None
    coverages: torch.FloatTensor | None = None


class RNNSeq2SeqModel(RNNSeq2SeqPreTrainedModel):
    """Encoder, bridge and decoder without the output layer; returns the decoder's features (B, T, D).

    `cross_attentions` (with `output_attentions=True`) is a one-layer tuple holding the alignment weights as
    (B, 1, T, S), the layout of transformers' cross-attentions with one head, ready for alignment plots (`alignments`
    holds them as (B, T, S)). `encoder_hidden_states` / `decoder_hidden_states` (with `output_hidden_states=True`)
    hold the embeddings and the states of every recurrent layer, L + 1 tensors a side (a Transformer encoder's: its
    embeddings and every layer's output). Which of them a backward pass reaches: `RNNDecoder.forward`.

    >>> import torch
    >>> from hf_encdec import RNNSeq2SeqConfig, RNNSeq2SeqModel
    >>> config = RNNSeq2SeqConfig(vocab_size=99, embedding_size=24, hidden_size=32, encoder_layers=2, decoder_layers=2)
    >>> model = RNNSeq2SeqModel(config).eval()
    >>> out = model(input_ids=torch.tensor([[5, 6, 7, 2]]), decoder_input_ids=torch.tensor([[1, 8, 9]]))
    >>> tuple(out.last_hidden_state.shape), tuple(out.encoder_last_hidden_state.shape)
    ((1, 3, 32), (1, 4, 32))
    """

    def __init__(self, config: RNNSeq2SeqConfig) -> None:
        super().__init__(config)
        config.check_switches()
        self.encoder = build_encoder(config)
        self.decoder = build_decoder(config)
        self.post_init()

    @property
    def encoder_embedding_key(self) -> str:
        if self.config.encoder_type == "transformer":
            return "encoder.stack.embed_tokens.weight"
        return "encoder.embed_tokens.weight"

    def tied_weights(self) -> dict[str, str]:
        if self.config.share_encoder_decoder_embeddings:
            return {"decoder.embed_tokens.weight": self.encoder_embedding_key}
        return {}

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        if self.config.encoder_type == "transformer":
            self.encoder.stack.embed_tokens = value
        else:
            self.encoder.embed_tokens = value
        if self.config.share_encoder_decoder_embeddings:
            self.decoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> nn.Module:
        return self.encoder

    def get_decoder(self, modality: str | None = None) -> RNNDecoder:
        return self.decoder

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: RNNEncoderOutput | tuple | None = None,
        cache: RNNDecoderState | None = None,
        past_key_values: RNNDecoderState | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        decoder_input_sampler: InputSampler | None = None,
        **kwargs: object,
    ) -> RNNSeq2SeqModelOutput:
        """`decoder_attention_mask` is accepted and unused: the decoder is causal, so right padding of the target
        cannot change earlier steps. `decoder_input_sampler` (scheduled sampling) picks each step's input from the
        gold token and the previous step's features; it makes the decoder step one token at a time. `cache` (or
        `past_key_values`, its name before transformers 5.24) is the `RNNDecoderState` after the previous step."""
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        elif isinstance(encoder_outputs, tuple):
            encoder_outputs = RNNEncoderOutput(*encoder_outputs)
        elif not isinstance(encoder_outputs, RNNEncoderOutput):
            encoder_outputs = RNNEncoderOutput(**encoder_outputs)
        if encoder_outputs.final_hidden_state is None:
            raise ValueError("encoder_outputs needs final_hidden_state (the encoder's final states, batch first)")
        decoded = self.decoder(
            decoder_input_ids,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_final_hidden=encoder_outputs.final_hidden_state,
            encoder_final_cell=encoder_outputs.final_cell_state,
            encoder_attention_mask=attention_mask,
            state=resolve_cache(cache, past_key_values),
            inputs_embeds=decoder_inputs_embeds,
            input_sampler=decoder_input_sampler,
            output_hidden_states=bool(output_hidden_states),
        )
        cross_attentions = None
        if output_attentions and decoded.attention_weights is not None:
            cross_attentions = (decoded.attention_weights[:, None],)  # one layer, one head: (B, 1, T, S)
        return RNNSeq2SeqModelOutput(
            last_hidden_state=decoded.features,
            **cache_field(decoded.state if use_cache else None),
            decoder_hidden_states=(decoded.inputs, *decoded.layer_states) if output_hidden_states else None,
            cross_attentions=cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            alignments=decoded.attention_weights,
            contexts=decoded.contexts,
            decoder_states=decoded.recurrent_states,
            decoder_inputs=decoded.inputs,
            coverages=decoded.coverages,
        )


class RNNSeq2SeqForConditionalGeneration(
    PointerGeneratorMixin, AutoregressiveLMHeadMixin, RNNSeq2SeqPreTrainedModel, CheckedGenerationMixin
):
    """The RNN encoder-decoder with its output layer: training with `labels` (-100 ignored), scheduled sampling, and
    `generate()` (greedy, beam, sampling, logits processors) with a beam-reorderable recurrent state.

    With `config.copy_mechanism` it is See et al.'s pointer-generator: `logits` are the log-probabilities of the
    mixture (width V + `num_source_oovs`), the output carries `p_gen` and `copy_attentions` (the decoder's attention),
    and `source_ids` / `num_source_oovs` work as in `PointerGeneratorForConditionalGeneration`. With
    `config.coverage` the recurrent state carries the coverage vector and the loss adds the coverage loss.

    >>> import torch
    >>> from hf_encdec import RNNSeq2SeqConfig, RNNSeq2SeqForConditionalGeneration
    >>> config = RNNSeq2SeqConfig(vocab_size=99, embedding_size=24, hidden_size=32, attention_type="bahdanau",
    ...                           rnn_type="gru")
    >>> model = RNNSeq2SeqForConditionalGeneration(config).eval()
    >>> model.generate(torch.tensor([[5, 6, 7, 2]]), max_new_tokens=4, num_beams=3).shape[0]
    1
    """

    generation_cache = "recurrent"

    def __init__(self, config: RNNSeq2SeqConfig) -> None:
        super().__init__(config)
        self.model = RNNSeq2SeqModel(config)
        self.lm_head = nn.Linear(decoder_output_size(config), config.decoder_vocab_size, bias=False)
        # p_gen from [c_t ; s_t ; x_t]
        self.copy_gate = (
            CopyGate(config.hidden_size, config.hidden_size, config.embedding_size) if config.copy_mechanism else None
        )
        self.post_init()

    @property
    def copies_source(self) -> bool:
        return self.config.copy_mechanism

    def generate(self, inputs: torch.Tensor | None = None, **kwargs: Any) -> Any:
        """`generate()` of transformers (greedy, beam search, sampling, logits processors), refusing assisted
        decoding up front: it checks a draft's tokens in one forward and rolls the cache back to the last accepted
        one, and a recurrent state holds no per-token history to roll back to."""
        given = kwargs.get("generation_config") or self.generation_config
        asked = [
            name
            for name in ASSISTED_DECODING_SETTINGS
            if kwargs.get(name) not in (None, False) or getattr(given, name, None) not in (None, False)
        ]
        if asked:
            raise ValueError(
                f"{type(self).__name__} cannot decode with {', '.join(f'`{name}`' for name in asked)}: assisted "
                "(speculative) decoding rolls the decoding cache back to the last accepted draft token, and the RNN "
                "decoder's state holds no per-token history to roll back to. Decode with greedy search, beam search "
                "or sampling (num_beams, do_sample) instead."
            )
        return super().generate(inputs, **kwargs)

    def tied_weights(self) -> dict[str, str]:
        if not self.config.tie_word_embeddings:
            return {}
        # point at the root of a chain of ties: with shared embeddings the decoder's is itself tied to the encoder's
        if self.config.share_encoder_decoder_embeddings:
            return {"lm_head.weight": f"model.{self.model.encoder_embedding_key}"}
        return {"lm_head.weight": "model.decoder.embed_tokens.weight"}

    def scheduled_sampler(
        self, probability: float, source_ids: torch.Tensor | None = None, num_source_oovs: int = 0
    ) -> InputSampler:
        """Bengio et al. 2015: feed the model's own prediction for the previous token with probability `probability`
        (per token), else the gold token. Predictions are drawn without gradient, as in the paper, from what the
        model outputs: the vocabulary distribution, or with the copy mechanism the mixture over the extended
        vocabulary of `source_ids` (a copied word outside the vocabulary is fed back as unknown)."""
        mode = self.config.scheduled_sampling_mode

        def choose(gold: torch.Tensor, previous: DecoderSteps) -> torch.Tensor:
            with torch.no_grad():
                scores = self.lm_head(previous.features[:, -1]).float()  # (B, V)
                if self.copies_source:
                    gate = self.copy_gate(previous.contexts[:, -1:], previous.outputs[:, -1:], previous.inputs[:, -1:])
                    scores = mixture_log_probs(
                        scores[:, None], previous.weights[:, -1:], gate, source_ids.to(scores.device),
                        self.config.vocab_size + num_source_oovs,
                    )[:, 0]  # (B, V+) log-probabilities
                predicted = draw_tokens(scores, mode)
                if self.copies_source:
                    predicted = self.copy_decoder_inputs(predicted, num_source_oovs)
            use_prediction = torch.rand(gold.shape, device=gold.device) < probability
            return torch.where(use_prediction, predicted, gold)

        return choose

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: RNNDecoderState | None = None,
        past_key_values: RNNDecoderState | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        skip_logits: bool | None = None,
        source_ids: torch.LongTensor | None = None,
        num_source_oovs: int = 0,
        **kwargs: object,
    ) -> Seq2SeqLMOutput | PointerGeneratorOutput:
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        decoder_input_ids, use_cache = self.teacher_forcing(labels, decoder_input_ids, decoder_inputs_embeds, use_cache)
        if self.copies_source:
            source_ids = input_ids if source_ids is None else source_ids
            if source_ids is None:
                raise ValueError("the pointer-generator needs source_ids (or input_ids) to copy from")
            decoder_input_ids = self.copy_decoder_inputs(decoder_input_ids, num_source_oovs)
        elif source_ids is not None or num_source_oovs:
            raise ValueError(
                "source_ids and num_source_oovs are the copy mechanism's inputs; this model has copy_mechanism=False"
            )
        sampler = None
        if self.samples_own_predictions(labels):
            sampler = self.scheduled_sampler(self.config.scheduled_sampling_probability, source_ids, num_source_oovs)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=resolve_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            decoder_input_sampler=sampler,
            **kwargs,
        )
        if self.copies_source:
            gate_logits = self.copy_gate(outputs.contexts, outputs.decoder_states, outputs.decoder_inputs)  # (B, T, 1)
            return self.copy_lm_output(
                outputs,
                CopyDistribution(outputs.alignments, gate_logits, outputs.coverages),
                source_ids,
                labels,
                attention_mask=attention_mask,
                num_source_oovs=num_source_oovs,
                skip_logits=skip_logits,
                num_items_in_batch=num_items_in_batch,
            )
        logits, loss = self.logits_and_loss(
            outputs.last_hidden_state, labels, skip_logits=skip_logits, num_items_in_batch=num_items_in_batch
        )
        if loss is not None:
            loss = add_coverage_loss(loss, self.config, outputs.alignments, outputs.coverages, labels, num_items_in_batch)
        return self.seq2seq_lm_output(outputs, loss=loss, logits=logits)
