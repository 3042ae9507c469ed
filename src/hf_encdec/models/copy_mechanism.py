"""The copy mechanism of the pointer-generator (See et al. 2017, arXiv 1704.04368; Gu et al. 2016, arXiv 1603.06393):
the copy head, the output distribution it makes with the vocabulary, and its loss.

Shapes: B batch, S source length, T target length, D decoder hidden, E encoder hidden, V vocabulary, V+ extended
vocabulary (V + the number of source words outside the vocabulary).

    a_t,s = softmax_s(s_t^T W_a h_s / sqrt(E))                 copy attention (Luong's general score, 1508.04025)
    c_t   = sum_s a_t,s h_s                                    context vector
    p_gen = sigmoid(w_s^T s_t + w_c^T c_t + b)                 probability of generating from the vocabulary
    P(w)  = p_gen P_vocab(w) + (1 - p_gen) sum_{s: x_s = w} a_t,s
    loss  = 1/Z sum_t [(1 - eps) (-log P(y_t)) + eps/V sum_{w < V} -log P(w)]

Departures from the paper, for a Transformer decoder: the copy attention is its own single head over the encoder's
last states (See et al. reuse the decoder's one attention, which a Transformer does not have), scaled like
dot-product attention; the gate reads the decoder state and the copy context (the decoder input x_t of the paper is
already inside a Transformer's s_t). Mixtures are taken in log space (`logaddexp`), so a word the vocabulary gives a
probability below float32's range keeps a finite log-probability.

One copy module serves both pointer-generator families. The Transformer's has its own copy head (`CopyMechanism`);
See et al.'s RNN reuses its decoder's attention as a_t and reads p_gen = sigmoid(w_c^T c_t + w_s^T s_t + w_x^T x_t + b)
(`CopyGate` over [c_t ; s_t ; x_t]). What both heads do with it inside `forward` and `generate()` is in
pointer_generator_head.py.

Coverage (See et al. section 2.4; Tu et al. 2016, arXiv 1601.04811): c^t = sum_{t' < t} a_t' enters the attention
scores, and the loss adds lambda sum_t sum_s min(a_t,s, c^t_s) (`coverage_loss`).

`mixture_log_probs` builds the whole (B, T, V+) distribution with one vectorised `scatter_add`, and
`mixture_cross_entropy` takes the loss from it. (`hf_encdec.speed` takes the same loss without building the mixture,
fused with the output layer.)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .losses import IGNORE_INDEX, loss_normaliser
from .rnn_attention import CoverageWeight

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
        self.query = nn.Linear(hidden_size, encoder_hidden_size, bias=False)  # W_a
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


def mixture_cross_entropy(
    log_probs: torch.Tensor,
    labels: torch.LongTensor,
    *,
    vocab_size: int,
    label_smoothing: float = 0.0,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Cross-entropy of the mixture log P (B, T, V+) (`mixture_log_probs`) against `labels` (B, T) (-100 ignored,
    ids >= V allowed), label smoothing spread over the `vocab_size` V vocabulary words (not the source-only ones):

        loss_t = (1 - eps) (-log P(y_t)) + eps/V sum_{w < V} -log P(w)

    normalised per labelled token, or by `num_items_in_batch`.

    >>> log_probs = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]]))  # V = 2, one source-only word
    >>> round(float(mixture_cross_entropy(log_probs, torch.tensor([[2, -100]]), vocab_size=2)), 4)  # -log 0.25
    1.3863
    """
    labels = labels.to(log_probs.device)
    keep = labels != IGNORE_INDEX  # (B, T)
    losses = -log_probs.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)  # (B, T)
    if label_smoothing > 0:
        losses = (1 - label_smoothing) * losses - label_smoothing * log_probs[..., :vocab_size].mean(dim=-1)
    return losses.masked_fill(~keep, 0.0).sum() / loss_normaliser(labels, num_items_in_batch)
