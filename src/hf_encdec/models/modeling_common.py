"""Pieces every model family shares: the library's pre-trained base class (`EncDecPreTrainedModel`), the base of the
families built from Transformer blocks, the helpers of the seq2seq heads (`Seq2SeqLMHeadMixin`,
`AutoregressiveLMHeadMixin`), token embeddings, label shifting and the LM-head loss.

Shapes: B batch, T length, D hidden, V vocabulary.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.utils import can_return_tuple

from .configuration_transformer import TransformerBlockConfig, check_attention_implementation
from .losses import IGNORE_INDEX, token_cross_entropy
from .positions import AlibiBias, RotaryEmbedding, SinusoidalPositionalEmbedding
from .transformers_contract import ModelHooks, cache_field, output_cache


class TokenEmbedding(nn.Embedding):
    """Token embedding table that applies the embedding scale itself: sqrt(D) with `config.scale_embedding`
    (Vaswani et al. 2017, section 3.4), else 1. The scale is inside the module, as in transformers' own v5 models, so
    `model(inputs_embeds=model.get_input_embeddings()(ids))` computes what `model(input_ids=ids)` does (soft prompts,
    prompt tuning). It is not a weight: checkpoints are the same as when the stack multiplied. Initialisation gives
    the table std D^-1/2 when it is scaled, which makes the scaled embeddings unit-variance.

    >>> embedding = TokenEmbedding(10, 4, padding_idx=0, embed_scale=2.0)
    >>> bool((embedding(torch.tensor([3])) == 2.0 * embedding.weight[3]).all())
    True
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, *,
                 embed_scale: float = 1.0) -> None:
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.embed_scale = embed_scale

    @classmethod
    def for_config(cls, config: TransformerBlockConfig, vocab_size: int | None = None) -> TokenEmbedding:
        """The table of a Transformer stack: `vocab_size` (default `config.vocab_size`) x hidden size, scaled by
        sqrt(hidden size) when `config.scale_embedding`."""
        return cls(
            config.vocab_size if vocab_size is None else vocab_size,
            config.hidden_size,
            padding_idx=config.pad_token_id,
            embed_scale=math.sqrt(config.hidden_size) if config.scale_embedding else 1.0,
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embedded = super().forward(input_ids)
        return embedded if self.embed_scale == 1.0 else embedded * self.embed_scale


OUTPUT_FLAGS = ("output_attentions", "output_hidden_states")


def config_output_flags(forward: Callable) -> Callable:
    """A forward whose `output_attentions` / `output_hidden_states`, when not given, come from `self.config`, as in
    transformers' own models (pipelines, feature extraction and probing code set them on the config)."""

    @functools.wraps(forward)
    def wrapper(self: nn.Module, *args: object, **kwargs: object) -> object:
        for flag in OUTPUT_FLAGS:
            if kwargs.get(flag) is None:
                kwargs[flag] = bool(getattr(self.config, flag, False))
        return forward(self, *args, **kwargs)

    return wrapper


def model_forward(forward: Callable) -> Callable:
    """The decorator of every model's forward: output flags from the config when not given, and a tuple instead of
    the output class with `return_dict=False` (transformers' `can_return_tuple`)."""
    return can_return_tuple(config_output_flags(forward))


def seed_auto_map(config: object) -> None:
    """Write every Auto class of the family into `config.auto_map` before saving, so the checkpoint loads with any
    of them under `trust_remote_code=True`. The entries come from the registration table (`default_auto_map` on the
    config class); a config loaded as remote code already carries its `auto_map` from the saved file."""
    defaults = getattr(type(config), "default_auto_map", None)
    if defaults:
        config.auto_map = {**defaults, **(getattr(config, "auto_map", None) or {})}


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None) -> torch.Tensor:
    """Teacher-forcing decoder inputs: (B, T) labels -> [start, y_1 .. y_{T-1}], with -100 replaced by the pad id."""
    if decoder_start_token_id is None:
        raise ValueError("config.decoder_start_token_id must be set to build decoder_input_ids from labels")
    if pad_token_id is None:
        raise ValueError("config.pad_token_id must be set to build decoder_input_ids from labels")
    shifted = labels.new_full(labels.shape, pad_token_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad_token_id)


def lm_head_loss(
    hidden_states: torch.Tensor,
    head: nn.Linear,
    labels: torch.Tensor | None,
    *,
    skip_logits: bool | None = None,
    label_smoothing: float = 0.0,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(logits, loss) of an output layer: the (B, T, V) logits `head(hidden_states)` and, with labels, their
    cross-entropy (`token_cross_entropy`: label smoothing, -100 ignored, `num_items_in_batch` for the Trainer).
    `skip_logits=True` leaves the logits out of the result (the loss still reads them).
    """
    if skip_logits and labels is None:
        return None, None
    logits = head(hidden_states)  # (B, T, V)
    loss = None
    if labels is not None:
        loss = token_cross_entropy(
            logits, labels, num_items_in_batch=num_items_in_batch, label_smoothing=label_smoothing
        )
    return (None if skip_logits else logits), loss


def next_token_labels(labels: torch.Tensor) -> torch.Tensor:
    """Causal-LM targets: position t predicts labels[t + 1]; the last position predicts nothing."""
    return F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]


def draw_tokens(scores: torch.Tensor, mode: str) -> torch.Tensor:
    """Scheduled sampling's choice of a token from (..., V) scores (logits or log-probabilities; -inf for
    impossible tokens): `argmax`, or `sample` from softmax(scores). Sampling inverts the cumulative distribution
    with one uniform draw per row (searchsorted), which draws exactly as `torch.multinomial` does and on CPU
    takes about a tenth of its time at (1024, 8000) rows: multinomial was half of a scheduled-sampling step.

    >>> draw_tokens(torch.tensor([[0.0, float("-inf"), 5.0]]), "argmax").tolist()
    [2]
    >>> draw_tokens(torch.tensor([[float("-inf"), 0.0, float("-inf")]]), "sample").tolist()
    [1]
    """
    if mode == "argmax":
        return scores.argmax(dim=-1)
    cumulative = torch.softmax(scores.float().reshape(-1, scores.shape[-1]), dim=-1).cumsum(dim=-1)  # (N, V)
    draw = torch.rand(cumulative.shape[0], 1, device=scores.device) * cumulative[:, -1:]  # in [0, total)
    # side="right": the first token whose cumulative probability exceeds the draw, never one of probability 0
    tokens = torch.searchsorted(cumulative, draw, right=True).clamp_max_(scores.shape[-1] - 1)
    return tokens.view(scores.shape[:-1])


class EncDecPreTrainedModel(ModelHooks, PreTrainedModel):
    """Base of every family: config-driven weight tying, `auto_map` written on save, the output layer's loss.

    Families declare `tied_weights()` (target -> source parameter names) from their config. Unlike transformers'
    default, the encoder/decoder embedding sharing does not depend on `tie_word_embeddings`, which here means only
    "output layer = decoder input embedding".
    """

    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _skip_keys_device_placement = ["cache", "past_key_values"]

    def tied_weights(self) -> dict[str, str]:
        return {}

    def post_init(self) -> None:
        super().post_init()
        # tied copies are not saved; listing them lets the Trainer re-tie instead of warning about missing keys
        # when it reloads the best checkpoint
        self._keys_to_ignore_on_save = set(self._keys_to_ignore_on_save or ()) | set(self.all_tied_weights_keys)

    def save_pretrained(self, save_directory: str, *args: object, **kwargs: object) -> None:
        seed_auto_map(self.config)
        return super().save_pretrained(save_directory, *args, **kwargs)

    @property
    def _tied_weights_keys(self) -> dict[str, str]:  # type: ignore[override]
        return self.tied_weights()

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        if all_submodels:
            return super().get_expanded_tied_weights_keys(all_submodels=True)
        return dict(self.tied_weights())

    def logits_and_loss(
        self,
        hidden_states: torch.Tensor,
        labels: torch.Tensor | None,
        *,
        head: nn.Linear | None = None,
        skip_logits: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(logits, loss) of the output layer (`head`, default `get_output_embeddings()`) with the config's label
        smoothing; see `lm_head_loss`. `hf_encdec.speed` replaces this method on a model instance
        by one that takes the same loss fused with the output layer (`config.fused_loss`)."""
        return lm_head_loss(
            hidden_states,
            head if head is not None else self.get_output_embeddings(),
            labels,
            skip_logits=skip_logits,
            label_smoothing=self.config.label_smoothing,
            num_items_in_batch=num_items_in_batch,
        )


class TransformerPreTrainedModel(EncDecPreTrainedModel):
    """Base of the families built from Transformer blocks: kernel flags, the ALiBi/flash check, and the
    initialisation of scaled embeddings and of the position tables."""

    config_class = TransformerBlockConfig
    _no_split_modules = ["TransformerLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def check_attention_implementation(self, attn_implementation: str | None) -> None:
        check_attention_implementation(self.config.position_type, attn_implementation)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, (SinusoidalPositionalEmbedding, RotaryEmbedding, AlibiBias)):
            module.reset_buffers()  # non-persistent buffers come back uninitialised from meta-device loading
        elif getattr(module, "residual_output", False) and self.config.scale_residual_init:
            # marked on the leaf: transformers skips the init of custom-code modules without parameters of their own
            std = self.config.initializer_range / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, TokenEmbedding) and self.config.scale_embedding:
            init.normal_(module.weight, mean=0.0, std=self.config.hidden_size**-0.5)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])


class Seq2SeqLMHeadMixin:
    """What the seq2seq heads (`*ForConditionalGeneration`: `self.model` with an encoder and a decoder, `self.lm_head`)
    share: the accessors and the output assembly. Autoregressive heads add `AutoregressiveLMHeadMixin`."""

    def get_encoder(self, modality: str | None = None) -> nn.Module:
        return self.model.get_encoder()

    def get_decoder(self, modality: str | None = None) -> nn.Module:
        return self.model.get_decoder()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @staticmethod
    def seq2seq_lm_output(
        outputs: Seq2SeqModelOutput,
        *,
        loss: torch.Tensor | None,
        logits: torch.Tensor | None,
        output_class: type[Seq2SeqLMOutput] = Seq2SeqLMOutput,
        **extra: object,
    ) -> Seq2SeqLMOutput:
        """The head's output: its loss and logits next to everything the base model returned."""
        return output_class(
            loss=loss,
            logits=logits,
            **cache_field(output_cache(outputs)),
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            **extra,
        )


class AutoregressiveLMHeadMixin(Seq2SeqLMHeadMixin):
    """Teacher forcing of the autoregressive seq2seq heads: decoder inputs are the labels shifted right.
    `DataCollatorForSeq2Seq(tokenizer, model=model)` calls `prepare_decoder_input_ids_from_labels` when it exists."""

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def teacher_forcing(
        self,
        labels: torch.Tensor | None,
        decoder_input_ids: torch.Tensor | None,
        decoder_inputs_embeds: torch.Tensor | None,
        use_cache: bool | None,
    ) -> tuple[torch.Tensor | None, bool | None]:
        """(decoder_input_ids, use_cache) for a forward: with labels, the labels shifted right (unless decoder inputs
        are given) and no cache, since the whole target is decoded in one pass."""
        if labels is None:
            return decoder_input_ids, use_cache
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        return decoder_input_ids, False

    def samples_own_predictions(self, labels: torch.Tensor | None) -> bool:
        """Whether this forward feeds the decoder its own predictions (scheduled sampling): training with labels and
        `config.scheduled_sampling_probability` > 0."""
        return labels is not None and self.training and self.config.scheduled_sampling_probability > 0.0

    def scheduled_sampling_inputs(
        self,
        decoder_input_ids: torch.Tensor | None,
        labels: torch.Tensor,
        predict: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Scheduled sampling for a decoder that reads the whole target at once (Mihaylova & Martins 2019, arXiv
        1906.07651): `config.scheduled_sampling_passes` - 1 passes without gradient, each `predict(inputs)` -> (B, T,
        V) scores of every position; input t > 0 becomes the last pass's prediction for position t - 1 with
        probability p = `config.scheduled_sampling_probability`, drawn once per token (inputs whose label is -100
        stay as they are). Returns the (B, T) inputs of the pass that carries the loss. The prediction passes run in
        the model's mode (in training, with dropout), as the last pass does.

            y~_t = argmax or sample of P(. | y^_<t, x)     (previous pass's inputs y^)
            y^_t = y~_{t-1} with probability p, else the gold y_{t-1}
        """
        if decoder_input_ids is None:
            raise ValueError("scheduled sampling replaces decoder input ids and needs labels or decoder_input_ids")
        config = self.config
        gold = decoder_input_ids
        replace = torch.rand(gold.shape, device=gold.device) < config.scheduled_sampling_probability  # (B, T)
        replace[:, 0] = False  # the start token is never predicted
        replace[:, 1:] &= labels[:, :-1].to(gold.device) != IGNORE_INDEX  # a padded position's input stays padding
        inputs = gold
        with torch.no_grad():
            for _ in range(config.scheduled_sampling_passes - 1):
                predicted = draw_tokens(predict(inputs), config.scheduled_sampling_mode)  # (B, T)
                shifted = torch.cat([gold[:, :1], predicted[:, :-1]], dim=1)  # prediction for t - 1 at input t
                inputs = torch.where(replace, shifted, gold)
        return inputs
