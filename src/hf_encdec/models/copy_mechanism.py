"""The copy mechanism of the pointer-generator (See et al. 2017, arXiv 1704.04368; Gu et al. 2016, arXiv 1603.06393).

Shapes: B batch, S source length, T target length, D decoder hidden, E encoder hidden, V vocabulary,
V+ extended vocabulary (V + the number of source words outside the vocabulary).

    a_t,s = softmax_s(s_t^T W_a h_s / sqrt(E))                 copy attention (Luong's general score, 1508.04025)
    c_t   = sum_s a_t,s h_s                                    context vector
    p_gen = sigmoid(w_s^T s_t + w_c^T c_t + b)                 probability of generating from the vocabulary
    P(w)  = p_gen P_vocab(w) + (1 - p_gen) sum_{s: x_s = w} a_t,s

Departures from the paper, for a Transformer decoder: the copy attention is its own single head over the encoder's
last states (See et al. reuse the decoder's one attention, which a Transformer does not have), scaled like
dot-product attention; the gate reads the decoder state and the copy context (the decoder input x_t of the paper is
already inside a Transformer's s_t). The sum over source positions is one vectorised `scatter_add` into (B, T, V+),
and the mixture is taken in log space (`logaddexp`), so a word the vocabulary gives a probability below float32's
range keeps a finite log-probability.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .linear import Linear

# floor of the copy probability of a word that is not in the source: its log must stay finite (log 0 = -inf would
# turn the gradient into NaN), and e^-69 is far below anything the vocabulary part contributes
COPY_FLOOR = 1e-30


class CopyMechanism(nn.Module):
    """Mixes a vocabulary distribution with a copy distribution over the source tokens; returns log-probabilities.

    >>> import torch
    >>> copy = CopyMechanism(hidden_size=8, encoder_hidden_size=8)
    >>> log_probs, p_gen, attention = copy(
    ...     torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 3, 11),
    ...     source_ids=torch.randint(0, 11, (2, 5)), encoder_attention_mask=torch.ones(2, 5, dtype=torch.long),
    ... )
    >>> tuple(log_probs.shape), bool(torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 3)))
    ((2, 3, 11), True)
    """

    def __init__(self, hidden_size: int, encoder_hidden_size: int) -> None:
        super().__init__()
        self.query = Linear(hidden_size, encoder_hidden_size, bias=False)  # W_a
        self.gate = nn.Linear(hidden_size + encoder_hidden_size, 1)  # [w_s; w_c], b
        self.scaling = encoder_hidden_size**-0.5

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        vocab_logits: torch.Tensor,
        *,
        source_ids: torch.LongTensor,
        encoder_attention_mask: torch.Tensor | None = None,
        extended_vocab_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log P (B, T, V+), p_gen (B, T, 1), copy attention a (B, T, S)).

        `source_ids` (B, S) are the source tokens in the extended vocabulary (ids >= V are source words outside it);
        `extended_vocab_size` is V+ (default V). `encoder_attention_mask` (B, S) is 1 for real tokens, 0 for padding.
        """
        vocab_size = vocab_logits.shape[-1]
        extended_vocab_size = vocab_size if extended_vocab_size is None else extended_vocab_size
        query = self.query(hidden_states)  # (B, T, E)
        scores = torch.matmul(query, encoder_hidden_states.transpose(1, 2)) * self.scaling  # (B, T, S)
        if encoder_attention_mask is not None:
            padding = encoder_attention_mask[:, None, :] == 0  # (B, 1, S)
            scores = scores.masked_fill(padding, torch.finfo(scores.dtype).min)
        attention = scores.float().softmax(dim=-1)  # (B, T, S)
        context = torch.matmul(attention.to(encoder_hidden_states.dtype), encoder_hidden_states)  # (B, T, E)
        gate = self.gate(torch.cat([hidden_states, context], dim=-1)).float()  # (B, T, 1)

        log_vocab = F.log_softmax(vocab_logits.float(), dim=-1)  # (B, T, V)
        if extended_vocab_size > vocab_size:  # the vocabulary gives source-only words probability 0
            log_vocab = F.pad(log_vocab, (0, extended_vocab_size - vocab_size), value=-math.inf)  # (B, T, V+)
        batch, target_length, source_length = attention.shape
        index = source_ids[:, None, :].expand(batch, target_length, source_length)  # (B, T, S)
        copy = attention.new_zeros(batch, target_length, extended_vocab_size).scatter_add_(2, index, attention)
        log_probs = torch.logaddexp(
            F.logsigmoid(gate) + log_vocab, F.logsigmoid(-gate) + copy.clamp_min(COPY_FLOOR).log()
        )  # (B, T, V+)
        return log_probs, torch.sigmoid(gate), attention
