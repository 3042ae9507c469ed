"""What training a non-autoregressive model draws besides the CMLM masks: the glimpses of glancing training and the
CTC variant's loss and best alignment.

Shapes: B batch, U decoder positions, L target tokens, V vocabulary.

    glimpses:  n_b = round(ratio * d_b), d_b the first pass's wrong tokens in row b; n_b positions drawn uniformly
               among the row's real ones show the reference (Qian et al. 2021, GLAT, arXiv 2008.07905)
    CTC:       -log sum over alignments a (U tokens or blanks that merge to y) of prod_u p(a_u)
               (Graves et al. 2006; for NAT, Libovický & Helcl 2018, arXiv 1811.04719)
    alignment: the single most likely such a, by Viterbi over the 2L + 1 states (blank, y_1, blank, ..., y_L, blank);
               glancing for CTC reveals its tokens (Gu & Kong 2021, arXiv 2012.15833)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def draw_glimpses(wrong: torch.Tensor, real: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B, U) positions to reveal: in each row, round(ratio x its wrong real positions) of its real positions, drawn
    uniformly at random (`wrong`, `real`: (B, U) booleans)."""
    count = torch.round((wrong & real).sum(dim=1).float() * ratio).long()  # (B,)
    scores = torch.rand(real.shape, device=real.device).masked_fill(~real, 2.0)  # padding ranks last
    ranks = scores.argsort(dim=1, stable=True).argsort(dim=1, stable=True)
    return (ranks < count[:, None]) & real


def ctc_needed_positions(targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B,) the fewest decoder positions that can write each (B, L) target of `lengths` tokens: one a token, plus a
    blank between each pair of equal neighbours (which would merge otherwise)."""
    inside = torch.arange(targets.shape[1], device=targets.device)[None, :] < lengths[:, None]
    repeats = (targets[:, 1:] == targets[:, :-1]) & inside[:, 1:]
    return lengths + repeats.sum(dim=1)


def ctc_loss(
    log_probs: torch.Tensor,
    input_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    *,
    blank: int,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean over the feasible rows of the CTC loss per target token, and the (B,) booleans of those rows.

    `log_probs` (U, B, V) float, position-major as `torch.nn.functional.ctc_loss` takes them (contiguous, so that
    the backward pass of the log-softmax before it stays fast), `targets` (B, L). A row whose target needs more
    positions than it has (`ctc_needed_positions`) has no alignment: it is left out (the loss is 0 when no row is
    feasible), never an infinite or NaN loss. With `label_smoothing` e, the loss is (1 - e) CTC + e x the mean over
    the real positions of the cross-entropy to the uniform distribution."""
    feasible = ctc_needed_positions(targets, target_lengths) <= input_lengths
    per_row = F.ctc_loss(
        log_probs, targets, input_lengths, target_lengths, blank=blank, reduction="none", zero_infinity=True
    )  # (B,), 0 for the infeasible rows
    weights = feasible.to(per_row.dtype) / target_lengths.clamp(min=1).to(per_row.dtype)
    loss = (per_row * weights).sum() / feasible.sum().clamp(min=1)
    if label_smoothing > 0:
        real = torch.arange(log_probs.shape[0], device=log_probs.device)[:, None] < input_lengths[None, :]  # (U, B)
        real = real & feasible[None, :]
        uniform = -log_probs.mean(dim=-1)  # (U, B)
        smoothing = (uniform * real).sum() / real.sum().clamp(min=1)
        loss = (1 - label_smoothing) * loss + label_smoothing * smoothing
    return loss, feasible


def ctc_best_alignment(
    log_probs: torch.Tensor, input_lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor, *, blank: int
) -> torch.Tensor:
    """(B, U) the most likely alignment of each target to its decoder positions: at each of the first U_b positions a
    token of the target or `blank`, merging (repeats merged, blanks dropped) to the target; `blank` beyond U_b. Rows
    with no alignment (see `ctc_loss`) get some path; leave them out. One pass over U, vectorised over the batch."""
    batch, width = log_probs.shape[:2]
    states = 2 * targets.shape[1] + 1
    extended = torch.full((batch, states), blank, dtype=torch.long, device=targets.device)
    extended[:, 1::2] = targets
    emit = log_probs.gather(2, extended[:, None, :].expand(batch, width, states))  # (B, U, E)
    index = torch.arange(states, device=targets.device)[None, :]
    inside = index < (2 * target_lengths + 1)[:, None]  # (B, E)
    skip = torch.zeros_like(inside)  # a token may follow the token two states back unless the two are equal
    skip[:, 2:] = (extended[:, 2:] != blank) & (extended[:, 2:] != extended[:, :-2])
    minus_inf = torch.finfo(emit.dtype).min
    score = torch.full((batch, states), minus_inf, dtype=emit.dtype, device=emit.device)
    score[:, :2] = emit[:, 0, :2]
    score = score.masked_fill(~inside, minus_inf)
    back = torch.zeros((width, batch, states), dtype=torch.long, device=emit.device)
    for u in range(1, width):
        one = F.pad(score[:, :-1], (1, 0), value=minus_inf)
        two = F.pad(score[:, :-2], (2, 0), value=minus_inf).masked_fill(~skip, minus_inf)
        best, step = torch.stack([score, one, two], dim=-1).max(dim=-1)
        active = (u < input_lengths)[:, None]
        score = torch.where(active, (best + emit[:, u]).masked_fill(~inside, minus_inf), score)
        back[u] = torch.where(active, step, 0)
    last = 2 * target_lengths  # the final blank, or the last token one state before it
    ends_on_token = score.gather(1, (last - 1).clamp(min=0)[:, None]).squeeze(1) > score.gather(1, last[:, None]).squeeze(1)
    state = torch.where(ends_on_token & (target_lengths > 0), last - 1, last)
    path = torch.full((batch, width), blank, dtype=torch.long, device=emit.device)
    rows = torch.arange(batch, device=emit.device)
    for u in range(width - 1, -1, -1):
        path[:, u] = torch.where(u < input_lengths, extended[rows, state], blank)
        state = state - back[u, rows, state]
    return path
