"""The encoder-decoder Transformer (Vaswani et al. 2017, arXiv 1706.03762) and its variants.

Shapes: B batch, S source length, T target length, D hidden, V target vocabulary.

    encoder:  h = Encoder(x_1..x_S)                         N bidirectional layers
    decoder:  s_t = Decoder(y_<t, h)                        N causal layers with cross-attention over h
    output:   p(y_t | y_<t, x) = softmax(W s_t)             W tied to the decoder's embedding when asked
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

from .configuration_transformer import TransformerConfig
from .modeling_common import AutoregressiveLMHeadMixin, TokenEmbedding, TransformerPreTrainedModel, model_forward
from .transformer_layers import TransformerStack
from .transformers_contract import CheckedGenerationMixin, cache_field, output_cache, resolve_cache


class TransformerModel(TransformerPreTrainedModel):
    """Encoder and decoder stacks without the output layer; returns the decoder's last hidden states.

    >>> import torch
    >>> from hf_encdec import TransformerConfig, TransformerModel
    >>> config = TransformerConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
    ...                            encoder_layers=2, decoder_layers=2)
    >>> model = TransformerModel(config).eval()
    >>> out = model(input_ids=torch.tensor([[5, 6, 7, 2]]), decoder_input_ids=torch.tensor([[1, 8, 9]]))
    >>> tuple(out.last_hidden_state.shape), tuple(out.encoder_last_hidden_state.shape)
    ((1, 3, 32), (1, 4, 32))
    """

    config_class = TransformerConfig
    #: the decoder's self-attention sees only the past (autoregressive); a non-autoregressive family sets False
    decoder_is_causal = True

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        config.check_switches()
        encoder_embeddings = TokenEmbedding.for_config(config)
        decoder_embeddings = TokenEmbedding.for_config(config, config.decoder_vocab_size)
        self.encoder = TransformerStack(
            config, embed_tokens=encoder_embeddings, num_layers=config.encoder_layers, causal=False, cross_attention=False
        )
        self.decoder = TransformerStack(
            config,
            embed_tokens=decoder_embeddings,
            num_layers=config.decoder_layers,
            causal=self.decoder_is_causal,
            cross_attention=True,
        )
        self.post_init()

    def tied_weights(self) -> dict[str, str]:
        if self.config.share_encoder_decoder_embeddings:
            return {"decoder.embed_tokens.weight": "encoder.embed_tokens.weight"}
        return {}

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embed_tokens = value
        if self.config.share_encoder_decoder_embeddings:
            self.decoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> TransformerStack:
        return self.encoder

    def get_decoder(self, modality: str | None = None) -> TransformerStack:
        return self.decoder

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: object,
    ) -> Seq2SeqModelOutput:
        """`cache` is the decoder's `EncoderDecoderCache`; `past_key_values` is its name before transformers 5.24."""
        cache = resolve_cache(cache, past_key_values)
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                **kwargs,
            )
        elif isinstance(encoder_outputs, tuple):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            inputs_embeds=decoder_inputs_embeds,
            position_ids=decoder_position_ids,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            cache=cache,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            **cache_field(output_cache(decoder_outputs)),
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )


def output_layer_tie(config: TransformerConfig) -> dict[str, str]:
    """`lm_head` tied to the decoder's input embedding (the root of the tie chain: the encoder's when shared)."""
    if not config.tie_word_embeddings:
        return {}
    source = "encoder" if config.share_encoder_decoder_embeddings else "decoder"
    return {"lm_head.weight": f"model.{source}.embed_tokens.weight"}


class TransformerForConditionalGeneration(
    AutoregressiveLMHeadMixin, TransformerPreTrainedModel, CheckedGenerationMixin
):
    """The Transformer with its output layer: training with `labels` (-100 ignored) and `generate()`.

    The loss is the cross-entropy of the logits (`logits_and_loss`); `skip_logits=True` leaves the logits out of the
    output. (`hf_encdec.speed` takes it fused with the output layer.)

    >>> import torch
    >>> from hf_encdec import TransformerConfig, TransformerForConditionalGeneration
    >>> config = TransformerConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
    ...                            encoder_layers=2, decoder_layers=2)
    >>> model = TransformerForConditionalGeneration(config).eval()
    >>> model.generate(torch.tensor([[5, 6, 7, 2]]), max_new_tokens=4, do_sample=False).shape[0]
    1
    """

    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.model = TransformerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.decoder_vocab_size, bias=False)
        self.post_init()

    def tied_weights(self) -> dict[str, str]:
        return output_layer_tie(self.config)

    def encode_once(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        encoder_outputs: BaseModelOutput | tuple | None,
    ) -> BaseModelOutput:
        """The encoder's outputs, computed here when not given, so that several decoder passes share one encoding
        (and its gradient)."""
        if encoder_outputs is None:
            return self.get_encoder()(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, return_dict=True
            )
        return BaseModelOutput(*encoder_outputs) if isinstance(encoder_outputs, tuple) else encoder_outputs

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        skip_logits: bool | None = None,
        **kwargs: object,
    ) -> Seq2SeqLMOutput:
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        decoder_input_ids, use_cache = self.teacher_forcing(labels, decoder_input_ids, decoder_inputs_embeds, use_cache)
        if self.samples_own_predictions(labels):
            encoder_outputs = self.encode_once(input_ids, attention_mask, inputs_embeds, encoder_outputs)

            def predict(inputs: torch.Tensor) -> torch.Tensor:
                states = self.model(
                    attention_mask=attention_mask, decoder_input_ids=inputs, encoder_outputs=encoder_outputs,
                    decoder_attention_mask=decoder_attention_mask, use_cache=False,
                ).last_hidden_state
                return self.lm_head(states)  # (B, T, V)

            decoder_input_ids = self.scheduled_sampling_inputs(decoder_input_ids, labels, predict)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=resolve_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            decoder_position_ids=decoder_position_ids,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        logits, loss = self.logits_and_loss(
            outputs.last_hidden_state, labels, skip_logits=skip_logits, num_items_in_batch=num_items_in_batch
        )
        return self.seq2seq_lm_output(outputs, loss=loss, logits=logits)
