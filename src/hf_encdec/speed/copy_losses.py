"""The pointer-generator's loss without the (tokens x V+) mixture: the speed path of `mixture_cross_entropy`
(models/copy_mechanism.py), whose value it equals, label smoothing over the vocabulary included.

Shapes: B batch, S source length, T target length, N labelled tokens, D decoder hidden, V vocabulary, V+ extended
vocabulary.

`copy_cross_entropy` takes the loss from the output layer's logits of the labelled tokens, because the copy part of
P is zero outside the S source words of a row (see its docstring); `linear_copy_cross_entropy` takes it fused with
the output layer in chunks (`losses.fused_linear_loss`), so no (N, V) logits outlive their chunk.
`fused_copy_logits_and_loss` is what `apply_speed_paths` puts in place of a pointer-generator's
`copy_logits_and_loss`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..models.copy_mechanism import COPY_FLOOR, CopyDistribution, mixture_log_probs
from ..models.losses import IGNORE_INDEX, loss_normaliser
from .losses import ChunkLoss, fused_linear_loss, skips_logits


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

    >>> logits, attention, gate = torch.randn(2, 3, 11), torch.softmax(torch.randn(2, 3, 5), -1), torch.randn(2, 3, 1)
    >>> source, labels = torch.randint(0, 11, (2, 5)), torch.randint(0, 11, (2, 3))
    >>> from hf_encdec.models.copy_mechanism import mixture_cross_entropy
    >>> log_probs = mixture_log_probs(logits, attention, gate, source)
    >>> dense = mixture_cross_entropy(log_probs, labels, vocab_size=11, label_smoothing=0.1)  # the plain model's
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


def fused_copy_logits_and_loss(
    self: nn.Module,
    hidden_states: torch.Tensor,
    copy: CopyDistribution,
    source_ids: torch.LongTensor,
    labels: torch.LongTensor | None,
    *,
    num_source_oovs: int,
    encoder_attention_mask: torch.Tensor | None = None,
    skip_logits: bool | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """`PointerGeneratorMixin.copy_logits_and_loss` without building P for the loss (`apply_speed_paths` binds it
    to a model): with `config.fused_loss`, training takes the loss fused with the output layer
    (`linear_copy_cross_entropy`) and by default leaves log P out of the output (`skip_logits=False` returns it);
    otherwise the loss comes from the output layer's logits of the labelled tokens (`copy_cross_entropy`)."""
    skip = skips_logits(self, skip_logits, labels)
    if skip and labels is None:
        return None, None
    vocab_logits = None if skip else self.lm_head(hidden_states)  # (B, T, V)
    loss = None
    if labels is not None:
        keep = labels != IGNORE_INDEX  # (B, T)
        settings = {
            "encoder_attention_mask": encoder_attention_mask,
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
    log_probs = None
    if vocab_logits is not None:
        log_probs = mixture_log_probs(
            vocab_logits, copy.attention, copy.gate_logits, source_ids, self.config.vocab_size + num_source_oovs
        )  # (B, T, V+)
    return log_probs, loss
