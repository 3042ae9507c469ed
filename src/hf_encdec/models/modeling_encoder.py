"""The encoder-only member of the family (BERT-like; Devlin et al. 2018, arXiv 1810.04805) and its task heads.

Shapes: B batch, T length, D hidden, V vocabulary, L labels.

    h = Encoder(x_1..x_T)                                      N bidirectional layers
    masked LM:       p(x_t | x_masked) = softmax(W g(h_t) + b)  g = Dense -> act -> Norm, W tied to the embedding
    classification:  p(c | x) = softmax(U tanh(P h_1))          pooled first token
    token labels:    p(c_t | x) = softmax(U h_t)
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .configuration_encoder import EncoderConfig
from .feed_forward import GATED_ACTIVATIONS
from .losses import token_cross_entropy
from .modeling_common import TokenEmbedding, TransformerPreTrainedModel, model_forward
from .norms import build_norm
from .transformer_layers import TransformerStack


class EncoderModel(TransformerPreTrainedModel):
    """A bidirectional Transformer stack returning contextual token states.

    >>> import torch
    >>> from hf_encdec import EncoderConfig, EncoderModel
    >>> config = EncoderConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
    ...                        num_hidden_layers=2)
    >>> EncoderModel(config)(input_ids=torch.tensor([[5, 6, 7, 2]])).last_hidden_state.shape
    torch.Size([1, 4, 32])
    """

    config_class = EncoderConfig

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        config.check_switches()
        self.encoder = TransformerStack(
            config,
            embed_tokens=TokenEmbedding.for_config(config),
            num_layers=config.num_hidden_layers,
            causal=False,
            cross_attention=False,
            type_vocab_size=config.type_vocab_size,
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embed_tokens = value

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: object,
    ) -> BaseModelOutput:
        outputs = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        return BaseModelOutput(
            last_hidden_state=outputs.last_hidden_state,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class MaskedLMHead(nn.Module):
    """BERT's prediction head: a dense transform with activation and norm, then the output layer with a bias."""

    def __init__(self, hidden_size: int, vocab_size: int, activation: str, norm: nn.Module) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.act = ACT2FN[activation]
        self.norm = norm
        self.decoder = nn.Linear(hidden_size, vocab_size)

    def transform(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.dense(hidden_states)))


class EncoderForMaskedLM(TransformerPreTrainedModel):
    """Masked language modelling: `labels` hold the original ids at masked positions and -100 elsewhere.

    >>> import torch
    >>> from hf_encdec import EncoderConfig, EncoderForMaskedLM
    >>> config = EncoderConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, intermediate_size=37,
    ...                        num_hidden_layers=2)
    >>> EncoderForMaskedLM(config).eval()(input_ids=torch.tensor([[5, 4, 7, 2]])).logits.shape
    torch.Size([1, 4, 99])
    """

    config_class = EncoderConfig

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.model = EncoderModel(config)
        self.lm_head = MaskedLMHead(
            config.hidden_size,
            config.vocab_size,
            GATED_ACTIVATIONS.get(config.hidden_act, config.hidden_act),
            build_norm(config.norm_type, config.hidden_size, config.layer_norm_eps),
        )
        self.post_init()

    def tied_weights(self) -> dict[str, str]:
        return {"lm_head.decoder.weight": "model.encoder.embed_tokens.weight"} if self.config.tie_word_embeddings else {}

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head.decoder = value

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        skip_logits: bool | None = None,
        **kwargs: object,
    ) -> MaskedLMOutput:
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        logits, loss = self.logits_and_loss(
            self.lm_head.transform(outputs.last_hidden_state),
            labels,
            head=self.lm_head.decoder,
            skip_logits=skip_logits,
            num_items_in_batch=num_items_in_batch,
        )
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class EncoderForSequenceClassification(TransformerPreTrainedModel):
    """Sentence-level labels from the pooled first token (`config.num_labels`; `problem_type` regression,
    single- or multi-label classification as in transformers)."""

    config_class = EncoderConfig

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.model = EncoderModel(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.dropout
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: object,
    ) -> SequenceClassifierOutput:
        kwargs.pop("num_items_in_batch", None)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        pooled = torch.tanh(self.pooler(outputs.last_hidden_state[:, 0]))  # (B, D)
        logits = self.classifier(self.dropout(pooled))  # (B, L)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class EncoderForTokenClassification(TransformerPreTrainedModel):
    """A label per token (tagging, NER); labels of -100 are ignored."""

    config_class = EncoderConfig

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.model = EncoderModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.dropout
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @model_forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: object,
    ) -> TokenClassifierOutput:
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))  # (B, T, L)
        loss = None
        if labels is not None:
            loss = token_cross_entropy(logits, labels, num_items_in_batch=num_items_in_batch)
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
