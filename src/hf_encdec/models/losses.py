"""Token-level cross-entropy for the LM heads, with label smoothing and Trainer-aware normalisation.

Shapes: V vocabulary.

    loss = 1/Z * sum_{t: y_t != -100} [(1 - eps) * -log p(y_t) + eps/V * sum_v -log p(v)]

(label smoothing: Szegedy et al. 2016, arXiv 1512.00567). Z is `num_items_in_batch` when the Trainer passes it (so
gradient accumulation and data parallelism log the same loss as one big batch), else the number of labelled tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def loss_normaliser(labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None) -> torch.Tensor | int:
    """Z of the module docstring: `num_items_in_batch` when given, else the number of labelled tokens."""
    if num_items_in_batch is None:
        return (labels != IGNORE_INDEX).sum().clamp(min=1)
    if torch.is_tensor(num_items_in_batch):
        return num_items_in_batch.to(labels.device)
    return num_items_in_batch


def token_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_items_in_batch: torch.Tensor | int | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of (..., V) logits against (...) labels, -100 ignored (no shifting).

    >>> logits, labels = torch.tensor([[0.0, 0.0], [5.0, -5.0]]), torch.tensor([0, -100])
    >>> round(float(token_cross_entropy(logits, labels)), 4)  # log 2, one labelled token
    0.6931
    """
    total = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.reshape(-1).to(logits.device),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
        label_smoothing=label_smoothing,
    )
    return total / loss_normaliser(labels, num_items_in_batch)
