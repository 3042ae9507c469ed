"""The copy mechanism of the pointer-generator (See et al. 2017, arXiv 1704.04368; Gu et al. 2016, arXiv 1603.06393).

Shapes: B batch, S source length, T target length, N labelled target tokens, D decoder hidden, E encoder hidden,
V vocabulary, V+ extended vocabulary (V + the number of source words outside the vocabulary).

    a_t,s = softmax_s(s_t^T W_a h_s / sqrt(E))                 copy attention (Luong's general score, 1508.04025)
    c_t   = sum_s a_t,s h_s                                    context vector
    p_gen = sigmoid(w_s^T s_t + w_c^T c_t + b)                 probability of generating from the vocabulary
    P(w)  = p_gen P_vocab(w) + (1 - p_gen) sum_{s: x_s = w} a_t,s

Departures from the paper, for a Transformer decoder: the copy attention is its own single head over the encoder's
last states (See et al. reuse the decoder's one attention, which a Transformer does not have), scaled like
dot-product attention; the gate reads the decoder state and the copy context (the decoder input x_t of the paper is
already inside a Transformer's s_t). Mixtures are taken in log space (`logaddexp`), so a word the vocabulary gives a
probability below float32's range keeps a finite log-probability.

One copy module serves both pointer-generator families. The Transformer's has its own copy head (`CopyMechanism`);
See et al.'s RNN reuses its decoder's attention as a_t and reads p_gen = sigmoid(w_c^T c_t + w_s^T s_t + w_x^T x_t + b)
(`CopyGate` over [c_t ; s_t ; x_t]). Both share the mixture, the sparse loss, the extended vocabulary, coverage and
what `generate()` needs (`PointerGeneratorMixin`).

Coverage (See et al. section 2.4; Tu et al. 2016, arXiv 1601.04811): c^t = sum_{t' < t} a_t' enters the attention
scores, and the loss adds lambda sum_t sum_s min(a_t,s, c^t_s) (`coverage_loss`).

Two ways to use P: `mixture_log_probs` builds the whole (B, T, V+) distribution with one vectorised `scatter_add`
(for decoding); `copy_cross_entropy` takes the training loss without building it, because the copy part is zero
outside the S source words of a row (see its docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.utils import ModelOutput

from .losses import IGNORE_INDEX, ChunkLoss, fused_linear_loss, loss_normaliser
from .rnn_attention import CoverageWeight
from .speed_paths import ProjectionLinear

# floor of a copy probability before its log: log 0 = -inf would turn gradients into NaN; e^-69 is far below anything
# the vocabulary part contributes
COPY_FLOOR = 1e-30


class CopyGate(nn.Linear):
    """The logit of p_gen from the features it reads, side by side: w^T [f_1 ; ... ; f_k] + b, (B, T, 1) in float32.
    A `Linear`, so its parameters are `weight` and `bias` (the names checkpoints have always used).

    >>> gate = CopyGate(8, 4)
    >>> tuple(gate(torch.randn(2, 3, 8), torch.randn(2, 3, 4)).shape)
    (2, 3, 1)
    """

    def __init__(self, *feature_sizes: int) -> None:
        super().__init__(sum(feature_sizes), 1)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat(features, dim=-1)).float()  # (B, T, 1)


class CopyDistribution(NamedTuple):
    """What the copy head gives for T target steps: the copy attention a (B, T, S), the gate logit (B, T, 1), and with
    coverage the coverage vector before each step c^t = sum_{t' < t} a^t' (B, T, S), else None."""

    attention: torch.Tensor
    gate_logits: torch.Tensor
    coverage: torch.Tensor | None = None


class CopyMechanism(nn.Module):
    """The Transformer pointer-generator's copy head: where to copy from and how much, as a `CopyDistribution`.

    With `coverage=True` (See et al. 2017, section 2.4; Tu et al. 2016, arXiv 1601.04811) the running sum of the
    past copy attentions c^t enters the scores, weighted per step by the decoder state (`CoverageWeight`):

        e_t,s = s_t^T W_a h_s / sqrt(E) + (w_c^T s_t + b_c) c^t_s,     c^t = sum_{t' < t} a_t'

    so each step's attention depends on the steps before it and the T steps are taken in order (a loop over T of
    (B, S) work; the projections stay batched). `coverage` in `forward` is c^1, the coverage before the first step:
    zeros for a fresh target, the sum of the cached attentions when decoding continues.

    >>> import torch
    >>> copy = CopyMechanism(hidden_size=8, encoder_hidden_size=8)
    >>> attention, gate_logits, _ = copy(torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.long))
    >>> log_probs = mixture_log_probs(torch.randn(2, 3, 11), attention, gate_logits, torch.randint(0, 11, (2, 5)))
    >>> tuple(log_probs.shape), bool(torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 3)))
    ((2, 3, 11), True)
    """

    def __init__(self, hidden_size: int, encoder_hidden_size: int, *, coverage: bool = False) -> None:
        super().__init__()
        self.query = ProjectionLinear(hidden_size, encoder_hidden_size, bias=False)  # W_a
        self.gate = CopyGate(hidden_size, encoder_hidden_size)  # [w_s; w_c], b
        self.coverage = CoverageWeight(hidden_size) if coverage else None
        self.scaling = encoder_hidden_size**-0.5

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> CopyDistribution:
        """`encoder_attention_mask` (B, S) is 1 for real tokens, 0 for padding (never copied); `coverage` (B, S) the
        coverage before the first of the T steps (only with coverage; None = zeros)."""
        query = self.query(hidden_states)  # (B, T, E)
        scores = torch.matmul(query, encoder_hidden_states.transpose(1, 2)) * self.scaling  # (B, T, S)
        if encoder_attention_mask is not None:
            padding = encoder_attention_mask[:, None, :] == 0  # (B, 1, S)
            scores = scores.masked_fill(padding, torch.finfo(scores.dtype).min)
        coverages = None
        if self.coverage is None:
            attention = scores.float().softmax(dim=-1)  # (B, T, S)
        else:
            attention, coverages = attend_with_coverage(scores.float(), self.coverage(hidden_states), coverage)
        context = torch.matmul(attention.to(encoder_hidden_states.dtype), encoder_hidden_states)  # (B, T, E)
        return CopyDistribution(attention, self.gate(hidden_states, context), coverages)


def attend_with_coverage(
    scores: torch.Tensor, weight: torch.Tensor, coverage: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention a (B, T, S) and the coverage before each step (B, T, S) of T steps taken in order from (B, T, S)
    scores (padding already at the dtype's minimum) and the per-step coverage weights (B, T, 1):
    a_t = softmax(e_t + weight_t c^t), c^{t+1} = c^t + a_t, from `coverage` c^1 (B, S) (None: zeros)."""
    coverage = scores.new_zeros(scores.shape[0], scores.shape[2]) if coverage is None else coverage.float()
    steps, before = [], []
    for t in range(scores.shape[1]):
        before.append(coverage)
        step = (scores[:, t] + weight[:, t].float() * coverage).softmax(dim=-1)  # (B, S)
        coverage = coverage + step
        steps.append(step)
    return torch.stack(steps, dim=1), torch.stack(before, dim=1)


def coverage_loss(
    attention: torch.Tensor,
    coverage: torch.Tensor,
    labels: torch.LongTensor,
    *,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """See et al.'s coverage loss (their eq. 12), sum_t sum_s min(a_t,s, c^t_s) over the labelled steps (labels
    != -100), normalised like the cross-entropy (per labelled token, or by `num_items_in_batch`). It is 0 while the
    attention goes where it has not been, and charges attending twice to the same source position.

    >>> attention = torch.tensor([[[1.0, 0.0], [0.75, 0.25]]])  # step 2 attends again to position 1
    >>> coverage = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    >>> float(coverage_loss(attention, coverage, torch.tensor([[5, 6]])))  # (0 + 0.75) / 2 labelled steps
    0.375
    """
    overlap = torch.minimum(attention.float(), coverage.float()).sum(dim=-1)  # (B, T)
    keep = labels.to(overlap.device) != IGNORE_INDEX
    return (overlap * keep).sum() / loss_normaliser(labels, num_items_in_batch)


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
            return self._generate_with_coverage_penalty(inputs, float(coverage_penalty), kwargs)
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
            outputs = self._copy_trace(result.sequences, inputs, kwargs)
            result["p_gen"], result["copy_attentions"] = outputs.p_gen, outputs.copy_attentions
        return result

    def _generate_with_coverage_penalty(
        self, inputs: torch.Tensor | None, beta: float, kwargs: dict[str, Any]
    ) -> torch.LongTensor | ModelOutput:
        """Beam search's `num_beams` finished hypotheses re-ranked by Wu et al.'s score (see `generate`)."""
        config = kwargs.get("generation_config") or self.generation_config

        def setting(name: str) -> Any:
            return kwargs[name] if kwargs.get(name) is not None else getattr(config, name, None)

        beams, wanted = setting("num_beams") or 1, setting("num_return_sequences") or 1
        if not math.isfinite(beta) or beta < 0 or beams < 2 or setting("do_sample") or wanted > beams:
            raise ValueError(
                f"coverage_penalty re-ranks the finished hypotheses of beam search: it needs a finite beta >= 0, "
                f"num_beams > 1, num_return_sequences <= num_beams and do_sample=False, got coverage_penalty={beta}, "
                f"num_beams={beams}, num_return_sequences={wanted}, do_sample={setting('do_sample')}"
            )
        if (inputs if inputs is not None else kwargs.get("input_ids")) is None:
            raise ValueError("coverage_penalty reads the copy attention back by a pass over the source; pass input_ids")
        search = {**kwargs, "num_return_sequences": beams, "return_dict_in_generate": False, "output_attentions": False}
        sequences = self.generate(inputs, **search)  # (B * beams, 1 + N), each input's hypotheses side by side
        outputs = self._copy_trace(sequences, inputs, search)
        generated = sequences[:, 1:]
        eos = setting("eos_token_id")
        eos = torch.tensor([eos] if isinstance(eos, int) else list(eos or []), device=generated.device)
        is_end = torch.isin(generated, eos).int()
        valid = (is_end.cumsum(dim=1) - is_end) == 0  # up to and including the end token (R, N)
        log_probs = torch.log_softmax(outputs.logits.float(), dim=-1).gather(-1, generated[..., None]).squeeze(-1)
        length = valid.sum(dim=1).clamp(min=1).float()
        scores = (log_probs * valid).sum(dim=1) / length ** (setting("length_penalty") or 0.0)
        covered = (outputs.copy_attentions.float() * valid[..., None]).sum(dim=1)  # (R, S) attention received
        penalty = torch.log(covered.clamp(min=1e-9, max=1.0))  # 0 where covered, < 0 where under-covered
        source_mask = kwargs.get("attention_mask")
        if source_mask is not None:
            penalty = penalty * source_mask.repeat_interleave(beams, dim=0).to(penalty.device)
        scores = (scores + beta * penalty.sum(dim=1)).view(-1, beams)  # (B, beams)
        best = scores.topk(wanted, dim=1)  # sorted, best first
        rows = (best.indices + beams * torch.arange(scores.shape[0], device=scores.device)[:, None]).flatten()
        chosen = sequences[rows]
        if not setting("return_dict_in_generate"):
            return chosen
        result = ModelOutput(sequences=chosen, sequences_scores=best.values.flatten())
        if setting("output_attentions"):
            result["p_gen"], result["copy_attentions"] = outputs.p_gen[rows], outputs.copy_attentions[rows]
        return result

    @torch.no_grad()
    def _copy_trace(self, sequences: torch.LongTensor, inputs: torch.Tensor | None, kwargs: dict[str, Any]) -> ModelOutput:
        """The model's outputs (logits, p_gen, copy attention) at every generated token of `sequences` (R, 1 + N),
        by one teacher-forced pass over the sources repeated to R rows."""
        source = inputs if inputs is not None else kwargs["input_ids"]
        repeats = sequences.shape[0] // source.shape[0]

        def rows(value: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else value.repeat_interleave(repeats, dim=0)

        return self(
            input_ids=rows(source),
            attention_mask=rows(kwargs.get("attention_mask")),
            decoder_input_ids=sequences[:, :-1],
            source_ids=rows(kwargs["source_ids"] if kwargs.get("source_ids") is not None else source),
            num_source_oovs=kwargs.get("num_source_oovs", 0),
            use_cache=False,
        )

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
        skip_logits: bool,
        num_items_in_batch: torch.Tensor | int | None,
    ) -> PointerGeneratorOutput:
        """The head's output from the base model's `outputs`: `logits` are log P over V + num_source_oovs words
        (B, T, V+) (None with `skip_logits`), read by the output layer from `outputs.last_hidden_state` (B, T, D); the
        loss is the copy cross-entropy (never building P), plus the coverage loss weighted by
        `config.coverage_loss_weight` when `copy` carries coverage; `p_gen` and `copy_attentions` come along."""
        hidden_states = outputs.last_hidden_state
        source_ids = source_ids.to(hidden_states.device)
        vocab_logits = None if skip_logits else self.lm_head(hidden_states)  # (B, T, V)
        loss = None
        if labels is not None:
            labels = labels.to(hidden_states.device)
            keep = labels != IGNORE_INDEX  # (B, T)
            settings = {
                "encoder_attention_mask": attention_mask,
                "label_smoothing": self.config.label_smoothing,
                "num_items_in_batch": num_items_in_batch,
            }
            if vocab_logits is None and self.config.fused_loss:  # the output layer fused with the loss, in chunks
                loss = linear_copy_cross_entropy(
                    hidden_states[keep], self.lm_head.weight, self.lm_head.bias, copy.attention, copy.gate_logits,
                    source_ids, labels, **settings,
                )
            else:
                labelled_logits = self.lm_head(hidden_states[keep]) if vocab_logits is None else vocab_logits[keep]
                loss = copy_cross_entropy(labelled_logits, copy.attention, copy.gate_logits, source_ids, labels, **settings)
            loss = add_coverage_loss(loss, self.config, copy.attention, copy.coverage, labels, num_items_in_batch)
        log_probs = None
        if vocab_logits is not None:
            log_probs = mixture_log_probs(
                vocab_logits, copy.attention, copy.gate_logits, source_ids, self.config.vocab_size + num_source_oovs
            )  # (B, T, V+)
        return self.seq2seq_lm_output(
            outputs,
            loss=loss,
            logits=log_probs,
            output_class=PointerGeneratorOutput,
            p_gen=torch.sigmoid(copy.gate_logits),
            copy_attentions=copy.attention,
        )

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


def add_coverage_loss(
    loss: torch.Tensor,
    config: Any,
    attention: torch.Tensor | None,
    coverage: torch.Tensor | None,
    labels: torch.LongTensor,
    num_items_in_batch: torch.Tensor | int | None,
) -> torch.Tensor:
    """`loss` plus `config.coverage_loss_weight` times the coverage loss, when the attention carries coverage."""
    if coverage is None or not config.coverage_loss_weight:
        return loss
    return loss + config.coverage_loss_weight * coverage_loss(
        attention, coverage, labels, num_items_in_batch=num_items_in_batch
    )


def mixture_log_probs(
    vocab_logits: torch.Tensor,
    attention: torch.Tensor,
    gate_logits: torch.Tensor,
    source_ids: torch.LongTensor,
    extended_vocab_size: int | None = None,
) -> torch.Tensor:
    """log P (B, T, V+) from the output layer's (B, T, V) logits, the copy attention (B, T, S), the gate logits
    (B, T, 1) and the source ids (B, S) in the extended vocabulary (ids >= V: source words outside the vocabulary;
    `extended_vocab_size` V+ defaults to V)."""
    vocab_size = vocab_logits.shape[-1]
    extended_vocab_size = vocab_size if extended_vocab_size is None else extended_vocab_size
    log_vocab = F.log_softmax(vocab_logits.float(), dim=-1)  # (B, T, V)
    if extended_vocab_size > vocab_size:  # the vocabulary gives source-only words probability 0
        log_vocab = F.pad(log_vocab, (0, extended_vocab_size - vocab_size), value=-math.inf)  # (B, T, V+)
    batch, target_length, source_length = attention.shape
    index = source_ids[:, None, :].expand(batch, target_length, source_length)  # (B, T, S)
    copy = attention.new_zeros(batch, target_length, extended_vocab_size).scatter_add_(2, index, attention)
    return torch.logaddexp(
        F.logsigmoid(gate_logits) + log_vocab, F.logsigmoid(-gate_logits) + copy.clamp_min(COPY_FLOOR).log()
    )  # (B, T, V+)


def copy_cross_entropy(
    vocab_logits: torch.Tensor,
    attention: torch.Tensor,
    gate_logits: torch.Tensor,
    source_ids: torch.LongTensor,
    labels: torch.LongTensor,
    *,
    encoder_attention_mask: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Cross-entropy of P against `labels` (B, T) (-100 ignored, ids >= V allowed), label smoothing spread over the
    V vocabulary words, without building P. `vocab_logits` (N, V) are the output layer's logits of the labelled
    positions only (in the order of `labels != -100`); the other arguments are as in `mixture_log_probs`.

    Outside the source words P(w) = p_gen P_vocab(w), so with log P_vocab(w) = z_w - log Z:

        sum_w log P(w) = V log p_gen + sum_w z_w - V log Z + sum_{w in source} [log P(w) - log p_gen - log P_vocab(w)]

    which needs the logits only through log Z, their sum and S gathered values: the same passes over (N, V) as the
    plain cross-entropy, where the full mixture would take about six more.

    >>> import torch
    >>> logits, attention, gate = torch.randn(2, 3, 11), torch.softmax(torch.randn(2, 3, 5), -1), torch.randn(2, 3, 1)
    >>> source, labels = torch.randint(0, 11, (2, 5)), torch.randint(0, 11, (2, 3))
    >>> log_probs = mixture_log_probs(logits, attention, gate, source)
    >>> dense = 0.9 * -log_probs.gather(2, labels[..., None]).mean() + 0.1 * -log_probs.mean()
    >>> sparse = copy_cross_entropy(logits.reshape(6, 11), attention, gate, source, labels, label_smoothing=0.1)
    >>> bool(torch.allclose(sparse, dense))
    True
    """
    vocab_size = vocab_logits.shape[-1]
    copy = _copy_rows(
        attention, gate_logits, source_ids, labels, vocab_size=vocab_size,
        encoder_attention_mask=encoder_attention_mask, label_smoothing=label_smoothing,
    )
    logits = vocab_logits.float()  # (N, V)
    smoothing = label_smoothing > 0
    losses = _copy_row_losses(
        torch.logsumexp(logits, dim=-1),
        logits.gather(1, copy.targets.clamp(max=vocab_size - 1)[:, None]),
        copy.gate,
        copy.copy_at_target,
        (copy.targets < vocab_size)[:, None],
        vocab_size=vocab_size,
        label_smoothing=label_smoothing,
        logit_sum=logits.sum(dim=-1) if smoothing else None,
        source_logit=logits.gather(1, copy.source.clamp(max=vocab_size - 1)) if smoothing else None,
        copy_at_source=copy.copy_at_source,
        source_in_vocab=copy.source < vocab_size,
        source_weight=copy.source_weight,
    )  # (N,)
    return losses.sum() / loss_normaliser(labels, num_items_in_batch)


class _CopyRows(NamedTuple):
    """The copy side of the loss per labelled token (N of them, in the order of `labels != -100`): the targets (N,)
    and the source ids of their rows (N, S) in the extended vocabulary; the differentiable inputs the loss reads
    besides the logits, all float32: the gate logit (N,), the copy probability of the target (N, 1) and, with label
    smoothing, of each source position's word (N, S); and the smoothing weight of each source position (N, S):
    1 / (the count of its word in the source) for in-vocabulary words, 0 for the rest and for padding."""

    targets: torch.Tensor
    source: torch.Tensor
    gate: torch.Tensor
    copy_at_target: torch.Tensor
    copy_at_source: torch.Tensor | None
    source_weight: torch.Tensor | None


def _copy_rows(
    attention: torch.Tensor,
    gate_logits: torch.Tensor,
    source_ids: torch.LongTensor,
    labels: torch.LongTensor,
    *,
    vocab_size: int,
    encoder_attention_mask: torch.Tensor | None,
    label_smoothing: float,
) -> _CopyRows:
    """The copy side of `copy_cross_entropy` for its labelled tokens (see `_CopyRows`); O(N S) work."""
    batch, target_length, _ = attention.shape
    attention = attention.float()
    keep = labels != IGNORE_INDEX  # (B, T)
    row = torch.arange(batch, device=labels.device)[:, None].expand(batch, target_length)[keep]  # (N,) batch row
    targets = labels[keep]  # (N,)
    source = source_ids[row]  # (N, S)
    copy_at_target = (attention[keep] * (source == targets[:, None])).sum(dim=-1, keepdim=True)  # (N, 1)
    copy_at_source, source_weight = None, None
    if label_smoothing > 0:
        # copy probability of each source position's word: attention summed over the positions holding the same word
        same_word = (source_ids[:, :, None] == source_ids[:, None, :]).float()  # (B, S, S)
        copy_at_source = torch.matmul(attention, same_word)[keep]  # (N, S)
        valid = source_ids < vocab_size
        if encoder_attention_mask is not None:
            valid = valid & (encoder_attention_mask != 0)
        source_weight = (valid / (same_word * valid[:, None, :]).sum(dim=-1).clamp(min=1))[row]  # (N, S)
    return _CopyRows(targets, source, gate_logits[keep][:, 0].float(), copy_at_target, copy_at_source, source_weight)


def _copy_row_losses(
    log_norm: torch.Tensor,
    target_logit: torch.Tensor,
    gate: torch.Tensor,
    copy_at_target: torch.Tensor,
    target_in_vocab: torch.Tensor,
    *,
    vocab_size: int,
    label_smoothing: float = 0.0,
    logit_sum: torch.Tensor | None = None,
    source_logit: torch.Tensor | None = None,
    copy_at_source: torch.Tensor | None = None,
    source_in_vocab: torch.Tensor | None = None,
    source_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The (C,) losses of C labelled tokens from the statistics of their logits z (log Z (C,), z at the target (C, 1);
    with label smoothing sum_w z_w (C,) and z at the S source words (C, S)) and the copy side (`_CopyRows`); the
    formula of `copy_cross_entropy`. Gathered logits of words outside the vocabulary (`*_in_vocab` False) are
    ignored, and get gradient 0."""
    log_gen, log_copy = F.logsigmoid(gate), F.logsigmoid(-gate)  # (C,)

    def log_mixture(
        logit: torch.Tensor, in_vocab: torch.Tensor, copy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log P, log P_vocab) of (C, K) words from their logits and copy probabilities."""
        log_vocab = torch.where(in_vocab, logit - log_norm[:, None], -math.inf)
        mixture = torch.logaddexp(log_gen[:, None] + log_vocab, log_copy[:, None] + copy.clamp_min(COPY_FLOOR).log())
        return mixture, log_vocab

    nll = -log_mixture(target_logit, target_in_vocab, copy_at_target)[0][:, 0]  # (C,)
    if label_smoothing > 0:
        log_p_source, log_vocab_source = log_mixture(source_logit, source_in_vocab, copy_at_source)  # (C, S)
        excess = torch.where(source_weight > 0, log_p_source - log_gen[:, None] - log_vocab_source, 0.0)  # (C, S)
        sum_log_p = (
            vocab_size * log_gen + logit_sum - vocab_size * log_norm + (source_weight * excess).sum(dim=-1)
        )  # (C,)
        nll = (1 - label_smoothing) * nll - label_smoothing * sum_log_p / vocab_size
    return nll


def _copy_chunks(
    copy: _CopyRows, vocab_size: int, label_smoothing: float
) -> tuple[ChunkLoss, tuple[torch.Tensor, ...]]:
    """The chunk loss of the copy cross-entropy for `fused_linear_loss` and its row inputs: the gate logit, the copy
    probability of the target and (with label smoothing) of the source words."""
    target_in_vocab = (copy.targets < vocab_size)[:, None]  # (N, 1)
    target_index = copy.targets.clamp(max=vocab_size - 1)[:, None]  # (N, 1)
    source_in_vocab = copy.source < vocab_size  # (N, S)
    source_index = copy.source.clamp(max=vocab_size - 1)  # (N, S)
    smoothing = label_smoothing > 0
    row_inputs = (copy.gate, copy.copy_at_target) + ((copy.copy_at_source,) if smoothing else ())

    def chunk_loss(
        logits: torch.Tensor, rows: slice, needs_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...]]:
        target, source = target_index[rows], source_index[rows]  # (C, 1), (C, S)
        statistics = [logits.gather(1, target)]  # z at the target (C, 1)
        if smoothing:
            statistics += [logits.sum(dim=-1), logits.gather(1, source)]  # (C,), (C, S)
        # log Z = max + log sum exp(logits - max); the shifted exponentials stay in the buffer
        max_logit = logits.amax(dim=-1, keepdim=True)  # (C, 1)
        exponentials = logits.sub_(max_logit).exp_()
        sum_exp = exponentials.sum(dim=-1, keepdim=True)  # (C, 1)
        statistics.insert(0, (max_logit + sum_exp.log()).squeeze(1))  # log Z (C,)
        copy_side = [tensor[rows].detach() for tensor in row_inputs]
        with torch.enable_grad():
            # the loss's partial derivatives w.r.t. the statistics and the copy side: O(C S) work
            leaves = [tensor.requires_grad_(needs_grad) for tensor in statistics + copy_side]
            log_norm, target_logit, *smoothing_statistics = leaves[: len(statistics)]
            logit_sum, source_logit = smoothing_statistics if smoothing else (None, None)
            gate, copy_at_target, *smoothing_copy = leaves[len(statistics) :]
            losses = _copy_row_losses(
                log_norm, target_logit, gate, copy_at_target, target_in_vocab[rows],
                vocab_size=vocab_size, label_smoothing=label_smoothing, logit_sum=logit_sum, source_logit=source_logit,
                copy_at_source=smoothing_copy[0] if smoothing else None, source_in_vocab=source_in_vocab[rows],
                source_weight=copy.source_weight[rows] if smoothing else None,
            )  # (C,)
            loss = losses.sum()
            if not needs_grad:
                return loss, None, ()
            gradients = torch.autograd.grad(loss, leaves)
        grad_log_norm, grad_target, *grad_smoothing = gradients[: len(statistics)]
        # d loss / d z = d/dlogZ softmax(z) + d/dsum 1 + the gathered partials scattered back, in the buffer
        grad_logits = exponentials.mul_(grad_log_norm[:, None] / sum_exp)  # (C, V)
        if smoothing:
            grad_sum, grad_source = grad_smoothing
            grad_logits.add_(grad_sum[:, None]).scatter_add_(1, source, grad_source)
        grad_logits.scatter_add_(1, target, grad_target)
        return loss.detach(), grad_logits, tuple(gradients[len(statistics) :])

    return chunk_loss, row_inputs


def linear_copy_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    attention: torch.Tensor,
    gate_logits: torch.Tensor,
    source_ids: torch.LongTensor,
    labels: torch.LongTensor,
    *,
    encoder_attention_mask: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    num_items_in_batch: torch.Tensor | int | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """`copy_cross_entropy` of the logits z = hidden W^T + b, fused with the output layer like the plain Transformer's
    `losses.linear_cross_entropy`: `hidden` (N, D) are the decoder states of the labelled positions (in the order of
    `labels != -100`), `weight` (V, D) and `bias` (V,) or None the output layer's; the other arguments are as in
    `copy_cross_entropy`, whose value and gradients (for hidden, weight, bias, attention and gate_logits) it equals.

    The loss of a token reads its logits only through log Z, sum_w z_w (label smoothing), z_y at the target and
    z_{x_s} at the S source words (`copy_cross_entropy`), so for each chunk of C tokens, with those statistics in hand,

        d loss / d z_w = (d loss / d log Z) softmax(z)_w + d loss / d sum_z
                         + [w = y] d loss / d z_y + sum_s [w = x_s] d loss / d z_{x_s}

    is built in one reused (C, V) float32 buffer and turned at once into the gradients of hidden, W and b
    (`losses.fused_linear_loss`): three products with W in all, and no (N, V) tensor outlives its chunk. The copy
    side (the gate, the copy probabilities of the target and of the source words: O(N S)) stays in autograd, so the
    gradients reach the copy attention and the gate through it. Backpropagates once (no retain_graph).

    >>> import torch
    >>> hidden, weight, bias = torch.randn(6, 8), torch.randn(11, 8), torch.randn(11)
    >>> attention, gate = torch.softmax(torch.randn(2, 3, 5), -1), torch.randn(2, 3, 1)
    >>> source, labels = torch.randint(0, 11, (2, 5)), torch.randint(0, 11, (2, 3))
    >>> fused = linear_copy_cross_entropy(hidden, weight, bias, attention, gate, source, labels, label_smoothing=0.1)
    >>> unfused = copy_cross_entropy(hidden @ weight.T + bias, attention, gate, source, labels, label_smoothing=0.1)
    >>> bool(torch.allclose(fused, unfused, atol=1e-6))
    True
    """
    vocab_size = weight.shape[0]
    labels = labels.to(attention.device)
    copy = _copy_rows(
        attention, gate_logits, source_ids, labels, vocab_size=vocab_size,
        encoder_attention_mask=encoder_attention_mask, label_smoothing=label_smoothing,
    )
    if hidden.shape[0] != copy.targets.shape[0]:
        raise ValueError(
            f"hidden has {hidden.shape[0]} rows but labels have {copy.targets.shape[0]} labelled tokens: pass the "
            "decoder states of the labelled positions only (hidden_states[labels != -100])"
        )
    chunk_loss, row_inputs = _copy_chunks(copy, vocab_size, float(label_smoothing))
    total = fused_linear_loss(chunk_loss, hidden, weight, bias, *row_inputs, chunk_size=chunk_size)
    return total / loss_normaliser(labels, num_items_in_batch)
