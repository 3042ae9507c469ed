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

Two ways to use P: `mixture_log_probs` builds the whole (B, T, V+) distribution with one vectorised `scatter_add`
(for decoding); `copy_cross_entropy` takes the training loss without building it, because the copy part is zero
outside the S source words of a row (see its docstring).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .losses import IGNORE_INDEX, loss_normaliser
from .speed_paths import ProjectionLinear

# floor of a copy probability before its log: log 0 = -inf would turn gradients into NaN; e^-69 is far below anything
# the vocabulary part contributes
COPY_FLOOR = 1e-30


class CopyMechanism(nn.Module):
    """Where to copy from and how much: the copy attention a (B, T, S) and the gate logit (B, T, 1), p_gen =
    sigmoid(gate logit).

    >>> import torch
    >>> copy = CopyMechanism(hidden_size=8, encoder_hidden_size=8)
    >>> attention, gate_logits = copy(torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.long))
    >>> log_probs = mixture_log_probs(torch.randn(2, 3, 11), attention, gate_logits, torch.randint(0, 11, (2, 5)))
    >>> tuple(log_probs.shape), bool(torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 3)))
    ((2, 3, 11), True)
    """

    def __init__(self, hidden_size: int, encoder_hidden_size: int) -> None:
        super().__init__()
        self.query = ProjectionLinear(hidden_size, encoder_hidden_size, bias=False)  # W_a
        self.gate = nn.Linear(hidden_size + encoder_hidden_size, 1)  # [w_s; w_c], b
        self.scaling = encoder_hidden_size**-0.5

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`encoder_attention_mask` (B, S) is 1 for real tokens, 0 for padding (never copied)."""
        query = self.query(hidden_states)  # (B, T, E)
        scores = torch.matmul(query, encoder_hidden_states.transpose(1, 2)) * self.scaling  # (B, T, S)
        if encoder_attention_mask is not None:
            padding = encoder_attention_mask[:, None, :] == 0  # (B, 1, S)
            scores = scores.masked_fill(padding, torch.finfo(scores.dtype).min)
        attention = scores.float().softmax(dim=-1)  # (B, T, S)
        context = torch.matmul(attention.to(encoder_hidden_states.dtype), encoder_hidden_states)  # (B, T, E)
        gate_logits = self.gate(torch.cat([hidden_states, context], dim=-1)).float()  # (B, T, 1)
        return attention, gate_logits


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
    batch, target_length, source_length = attention.shape
    keep = labels != IGNORE_INDEX  # (B, T)
    row = torch.arange(batch, device=labels.device)[:, None].expand(batch, target_length)[keep]  # (N,) batch row
    targets = labels[keep]  # (N,)
    logits = vocab_logits.float()  # (N, V)
    log_norm = torch.logsumexp(logits, dim=-1)  # (N,)
    gate = gate_logits[keep][:, 0]  # (N,)
    log_gen, log_copy = F.logsigmoid(gate), F.logsigmoid(-gate)  # (N,)
    source = source_ids[row]  # (N, S)

    def log_mixture(words: torch.Tensor, copy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log P, log P_vocab) of (N, K) words with copy probabilities `copy`."""
        in_vocab = words < vocab_size
        gathered = logits.gather(1, words.clamp(max=vocab_size - 1)) - log_norm[:, None]
        log_vocab = torch.where(in_vocab, gathered, -math.inf)
        mixture = torch.logaddexp(log_gen[:, None] + log_vocab, log_copy[:, None] + copy.clamp_min(COPY_FLOOR).log())
        return mixture, log_vocab

    copy_at_target = (attention[keep] * (source == targets[:, None])).sum(dim=-1, keepdim=True)  # (N, 1)
    nll = -log_mixture(targets[:, None], copy_at_target)[0][:, 0]  # (N,)
    if label_smoothing > 0:
        # copy probability of each source position's word: attention summed over the positions holding the same word
        same_word = (source_ids[:, :, None] == source_ids[:, None, :]).to(attention.dtype)  # (B, S, S)
        copy_at_source = torch.matmul(attention, same_word)[keep]  # (N, S)
        log_p_source, log_vocab_source = log_mixture(source, copy_at_source)  # (N, S)
        # each distinct in-vocabulary source word once: weight 1 / (its count in the source), padding 0
        valid = source_ids < vocab_size
        if encoder_attention_mask is not None:
            valid = valid & (encoder_attention_mask != 0)
        weight = valid / (same_word * valid[:, None, :]).sum(dim=-1).clamp(min=1)  # (B, S)
        weight = weight[row]  # (N, S)
        excess = torch.where(weight > 0, log_p_source - log_gen[:, None] - log_vocab_source, 0.0)  # (N, S)
        sum_log_p = (
            vocab_size * log_gen + logits.sum(dim=-1) - vocab_size * log_norm + (weight * excess).sum(dim=-1)
        )  # (N,)
        nll = (1 - label_smoothing) * nll - label_smoothing * sum_log_p / vocab_size
    return nll.sum() / loss_normaliser(labels, num_items_in_batch)
