"""The training loss fused with the output layer: the speed path of `models/losses.py`'s `token_cross_entropy`.

Shapes: N labelled tokens, D hidden, V vocabulary.

`linear_cross_entropy` runs over the labelled tokens in chunks, computes the gradient of each chunk's logits on the
spot and keeps only the gradients for the hidden states and the weight, so no (N, V) tensor outlives its chunk (the
idea of the fused linear-cross-entropy kernels). The result equals `token_cross_entropy(hidden @ W^T + b, labels)`.
The chunked pass itself (`fused_linear_loss`) takes any loss of a chunk's logits, so the pointer-generator's copy
loss (`copy_losses.linear_copy_cross_entropy`) shares it. `fused_logits_and_loss` is what `apply_speed_paths` puts in
place of a model's `logits_and_loss`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.losses import IGNORE_INDEX, loss_normaliser
from ..models.modeling_common import lm_head_loss

# logits elements per chunk in the fused loss: 2^21 floats = 8 MiB, a buffer that stays in the last-level cache of a
# CPU (larger chunks measured no faster on CPU and cost memory)
CHUNK_ELEMENTS = 1 << 21


ChunkLoss = Callable[[torch.Tensor, slice, bool], tuple[torch.Tensor, "torch.Tensor | None", tuple[torch.Tensor, ...]]]


class _FusedLinearLoss(torch.autograd.Function):
    """A loss of the logits `hidden @ weight^T + bias`, taken chunk by chunk over the N rows of `hidden` (N, D), whose
    gradients are computed in the forward pass: `chunk_loss(logits, rows, needs_grad)` receives a chunk's (C, V) float32
    logits (in a buffer it may overwrite) and returns the chunk's summed loss, d loss / d logits (C, V) (None without
    gradients; it may be the buffer) and the gradients of the chunk's rows of each of `row_inputs` (per-row (N, ...)
    tensors the loss also reads, such as the copy mechanism's). Only three products with the weight are taken in all
    and no (N, V) tensor outlives its chunk."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        chunk_loss: ChunkLoss,
        chunk_size: int,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *row_inputs: torch.Tensor,
    ) -> torch.Tensor:
        needs_grad = any(tensor is not None and tensor.requires_grad for tensor in (hidden, weight, bias, *row_inputs))
        grad_hidden = torch.empty_like(hidden) if needs_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if needs_grad else None
        grad_bias = torch.zeros_like(bias, dtype=torch.float32) if needs_grad and bias is not None else None
        grad_rows = [torch.zeros_like(tensor, dtype=torch.float32) for tensor in row_inputs] if needs_grad else []
        vocab = weight.shape[0]
        total = hidden.new_zeros((), dtype=torch.float32)
        # one (C, V) float32 buffer serves every chunk: a fresh logits-sized allocation per chunk costs page faults
        # on CPU and evicts the cache, and logsumexp would add a second one
        in_float32 = weight.dtype == torch.float32 and hidden.dtype == torch.float32
        buffer = hidden.new_empty((min(chunk_size, hidden.shape[0]), vocab), dtype=torch.float32) if in_float32 else None
        for start in range(0, hidden.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            chunk = hidden[rows]  # (C, D)
            if buffer is not None:
                logits = buffer[: chunk.shape[0]]  # (C, V)
                if bias is None:
                    torch.mm(chunk, weight.t(), out=logits)
                else:
                    torch.addmm(bias, chunk, weight.t(), out=logits)
            else:
                logits = F.linear(chunk, weight, bias).float()  # (C, V)
            loss, grad_logits, grad_chunk_rows = chunk_loss(logits, rows, needs_grad)
            total += loss
            if not needs_grad:
                continue
            for grad_row, grad_chunk_row in zip(grad_rows, grad_chunk_rows):
                grad_row[rows] = grad_chunk_row
            if in_float32:
                torch.mm(grad_logits, weight, out=grad_hidden[rows])
                grad_weight.addmm_(grad_logits.t(), chunk)
            else:
                grad_hidden[rows] = grad_logits.to(weight.dtype) @ weight
                grad_weight.addmm_(grad_logits.t(), chunk.float())
            if grad_bias is not None:
                grad_bias += grad_logits.sum(0)
        # kept on ctx rather than saved for backward, so that backward can hand the buffers over to autograd (which
        # then accumulates them without a copy): a second weight-sized gradient would double the memory it takes
        ctx.gradients = (grad_hidden, grad_weight, grad_bias, *grad_rows) if needs_grad else ()
        ctx.dtypes = (hidden.dtype, weight.dtype, weight.dtype, *(tensor.dtype for tensor in row_inputs))
        return total

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor):  # type: ignore[override]
        if ctx.gradients is None:
            raise RuntimeError(
                "a fused linear loss hands its precomputed gradients over at the first backward and cannot be "
                "backpropagated twice (retain_graph=True); take the loss from materialised logits for that "
                "(config.fused_loss=False)"
            )
        gradients = ctx.gradients
        ctx.gradients = None
        scale = grad_output.to(torch.float32)
        scaled = [
            None if gradient is None else gradient.mul_(scale.to(gradient.dtype)).to(dtype)
            for gradient, dtype in zip(gradients, ctx.dtypes)
        ]
        return None, None, *scaled


def fused_linear_loss(
    chunk_loss: ChunkLoss,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *row_inputs: torch.Tensor,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The summed loss of `_FusedLinearLoss` over the N rows of `hidden` (N, D), in chunks of `chunk_size` rows
    (default: `CHUNK_ELEMENTS` float32 logits). Backpropagates once: the gradients are handed over at the first
    backward."""
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // weight.shape[0])
    return _FusedLinearLoss.apply(chunk_loss, int(chunk_size), hidden, weight, bias, *row_inputs)


def _cross_entropy_chunks(targets: torch.Tensor, label_smoothing: float) -> ChunkLoss:
    """The chunk loss of the label-smoothed cross-entropy against `targets` (N,), for `fused_linear_loss`."""

    def chunk_loss(
        logits: torch.Tensor, rows: slice, needs_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...]]:
        vocab = logits.shape[-1]
        target = targets[rows, None]  # (C, 1)
        # log Z = max + log sum exp(logits - max); the shifted exponentials stay in the buffer
        target_logit = logits.gather(1, target).squeeze(1)  # (C,)
        mean_logit = logits.mean(dim=-1) if label_smoothing > 0 else None
        max_logit = logits.amax(dim=-1, keepdim=True)  # (C, 1)
        exponentials = logits.sub_(max_logit).exp_()
        sum_exp = exponentials.sum(dim=-1, keepdim=True)  # (C, 1)
        log_norm = (max_logit + sum_exp.log()).squeeze(1)  # (C,)
        nll = log_norm - target_logit
        if mean_logit is not None:
            loss = ((1 - label_smoothing) * nll + label_smoothing * (log_norm - mean_logit)).sum()
        else:
            loss = nll.sum()
        if not needs_grad:
            return loss, None, ()
        # d loss / d logits = softmax - (1 - eps) onehot - eps / V, built in place in the buffer
        grad_logits = exponentials.div_(sum_exp)
        if label_smoothing > 0:
            grad_logits.sub_(label_smoothing / vocab)
        grad_logits.scatter_add_(1, target, grad_logits.new_full(target.shape, -(1 - label_smoothing)))
        return loss, grad_logits, ()

    return chunk_loss


def linear_cross_entropy(
    hidden_states: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    label_smoothing: float = 0.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Cross-entropy of `hidden_states @ weight^T + bias` against `labels` without materialising all logits.

    Only labelled positions are projected, in chunks of `chunk_size` tokens (default: 8 MiB of float32 logits).

    >>> import torch
    >>> hidden, weight = torch.randn(2, 5, 8), torch.randn(11, 8)
    >>> labels = torch.tensor([[1, 2, 3, -100, -100], [4, 5, 6, 7, 8]])
    >>> fused = linear_cross_entropy(hidden, weight, labels)
    >>> from hf_encdec.models.losses import token_cross_entropy
    >>> torch.allclose(fused, token_cross_entropy(hidden @ weight.T, labels), atol=1e-5)
    True
    """
    keep = labels.reshape(-1) != IGNORE_INDEX
    hidden = hidden_states.reshape(-1, hidden_states.shape[-1])[keep]  # (N, D)
    targets = labels.reshape(-1)[keep].to(hidden.device)  # (N,)
    chunk_loss = _cross_entropy_chunks(targets, float(label_smoothing))
    total = fused_linear_loss(chunk_loss, hidden, weight, bias, chunk_size=chunk_size)
    return total / loss_normaliser(labels, num_items_in_batch)


def skips_logits(model: nn.Module, skip_logits: bool | None, labels: torch.Tensor | None) -> bool:
    """The fused kernels' switch `skip_logits`: unless given, a loss taken without the (B, T, V) logits
    (`config.fused_loss`) leaves them out in training, where only the loss is needed."""
    if skip_logits is not None:
        return skip_logits
    return bool(model.config.fused_loss) and model.training and labels is not None


def fused_logits_and_loss(
    self: nn.Module,
    hidden_states: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    head: nn.Linear | None = None,
    skip_logits: bool | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """`EncDecPreTrainedModel.logits_and_loss` with the loss fused with the output layer where `config.fused_loss`
    (`apply_speed_paths` binds it to a model): with labels, training takes the loss in chunks straight from the hidden
    states (`linear_cross_entropy`), so the (B, T, V) logits are never held for the backward pass, and by default not
    returned either. `skip_logits=False` returns logits next to the fused loss, computed without autograd (the loss's
    backward does not need them); `skip_logits=True` takes the fused loss also in evaluation."""
    head = head if head is not None else self.get_output_embeddings()
    skip = skips_logits(self, skip_logits, labels)
    settings = {"label_smoothing": self.config.label_smoothing, "num_items_in_batch": num_items_in_batch}
    if labels is None or not self.config.fused_loss or not (skip or self.training):
        return lm_head_loss(hidden_states, head, labels, skip_logits=skip, **settings)
    loss = linear_cross_entropy(hidden_states, head.weight, labels, bias=head.bias, **settings)
    if skip:
        return None, loss
    with torch.no_grad():
        return head(hidden_states), loss  # (B, T, V)
