"""The decoder-only member of the family: a causal Transformer language model (GPT-2, Radford et al. 2019; with
`DecoderConfig.llama(...)` the Llama-3 block, arXiv 2407.21783).

Shapes: B batch, T length, D hidden, V vocabulary.

    s_t = Decoder(x_<=t)                       N causal layers
    p(x_{t+1} | x_<=t) = softmax(W s_t)        W tied to the input embedding when asked
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_decoder import DecoderConfig
from .modeling_common import TokenEmbedding, TransformerPreTrainedModel, model_forward, next_token_labels
from .transformer_layers import TransformerStack
from .transformers_contract import CheckedGenerationMixin, cache_field, output_cache, resolve_cache


class DecoderModel(TransformerPreTrainedModel):
    """A causal Transformer stack with a KV cache.

    >>> import torch
    >>> from hf_encdec import DecoderConfig, DecoderModel
    >>> config = DecoderConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
    ...                        num_hidden_layers=2)
    >>> DecoderModel(config)(input_ids=torch.tensor([[1, 6, 7]])).last_hidden_state.shape
    torch.Size([1, 3, 32])
    """

    config_class = DecoderConfig

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__(config)
        config.check_switches()
        self.decoder = TransformerStack(
            config,
            embed_tokens=TokenEmbedding.for_config(config),
            num_layers=config.num_hidden_layers,
            causal=True,
            cross_attention=False,
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.decoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.decoder.embed_tokens = value

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: object,
    ) -> BaseModelOutputWithPast:
        """`cache` is the `DynamicCache` of earlier steps; `past_key_values` is its name before transformers 5.24."""
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        outputs = self.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=resolve_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        return BaseModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            **cache_field(output_cache(outputs)),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class DecoderForCausalLM(TransformerPreTrainedModel, CheckedGenerationMixin):
    """Next-token prediction: `labels` are the input ids themselves (shifted inside), -100 ignored. `shift_labels`
    are targets already aligned with the logits (position t predicts shift_labels[t]); when given they replace
    `labels` in the loss, as transformers' causal LMs do: under sequence or context parallelism each rank holds a
    slice of the sequence, and only the pre-shifted targets are correct at the slice edges.

    >>> import torch
    >>> from hf_encdec import DecoderConfig, DecoderForCausalLM
    >>> config = DecoderConfig.llama(hidden_size=32, num_attention_heads=4, num_hidden_layers=2, vocab_size=99)
    >>> model = DecoderForCausalLM(config).eval()
    >>> model.generate(torch.tensor([[1, 6, 7]]), max_new_tokens=3, do_sample=False).shape
    torch.Size([1, 6])
    """

    config_class = DecoderConfig

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__(config)
        self.model = DecoderModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def tied_weights(self) -> dict[str, str]:
        return {"lm_head.weight": "model.decoder.embed_tokens.weight"} if self.config.tie_word_embeddings else {}

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def get_decoder(self, modality: str | None = None) -> nn.Module:
        return self.model

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int = 0,
        skip_logits: bool | None = None,
        **kwargs: object,
    ) -> CausalLMOutputWithPast:
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        # shift_labels comes through **kwargs, as in transformers' causal LMs: a second *label* parameter in the
        # signature would make the Trainer wait for both before it computes an evaluation loss (find_labels)
        shift_labels = kwargs.pop("shift_labels", None)
        targets = shift_labels if shift_labels is not None else (next_token_labels(labels) if labels is not None else None)
        if targets is not None:
            use_cache = False
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=resolve_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if targets is None and logits_to_keep:
            hidden_states = hidden_states[:, -logits_to_keep:]  # generate only needs the last position
        logits, loss = self.logits_and_loss(
            hidden_states,
            targets,
            skip_logits=skip_logits,
            num_items_in_batch=num_items_in_batch,
        )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **cache_field(output_cache(outputs)),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
