"""The pointer-generator's loss on the speed path (speed/copy_losses.py) against the plain model's: the sparse loss
(no mixture built) equals `mixture_cross_entropy` of the mixture in value and gradients, label smoothing over the
vocabulary and extended ids included; the fused loss equals the sparse one in any number of chunks, in bfloat16, and
keeps no logits-sized tensor for backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from copy_cases import HIDDEN, copy_head, copy_inputs, copy_loss_case
from hf_encdec.models.copy_mechanism import mixture_cross_entropy, mixture_log_probs
from hf_encdec.speed.copy_losses import copy_cross_entropy, linear_copy_cross_entropy
from variants import BATCH, TARGET_LEN, VOCAB


@pytest.mark.parametrize("extra", [0, 3], ids=["vocabulary", "extended-vocabulary"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_loss_without_the_mixture_equals_the_loss_of_the_mixture(extra: int, label_smoothing: float) -> None:
    """copy_cross_entropy never builds P; its value and gradients equal those of the plain model's loss, the
    cross-entropy of the whole P (`mixture_cross_entropy`, label smoothing spread over the V vocabulary words)."""
    inputs = copy_inputs()
    if extra:
        inputs["source_ids"][2, 3] = VOCAB + 2  # a source word outside the vocabulary
    labels = torch.randint(0, VOCAB, (BATCH, TARGET_LEN))
    labels[0, 0] = inputs["source_ids"][0, 1]  # the word that is twice in its source
    labels[2, 1] = inputs["source_ids"][2, 3]  # the source-only word when extended
    labels[1, 3:] = -100
    losses, gradients = [], []
    for sparse in (True, False):
        copy = copy_head()
        logits = inputs["vocab_logits"].clone().requires_grad_()
        attention, gate_logits, _ = copy(inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["encoder_attention_mask"])
        if sparse:
            loss = copy_cross_entropy(
                logits[labels != -100], attention, gate_logits, inputs["source_ids"], labels,
                encoder_attention_mask=inputs["encoder_attention_mask"], label_smoothing=label_smoothing,
            )
        else:
            log_probs = mixture_log_probs(logits, attention, gate_logits, inputs["source_ids"], VOCAB + extra)
            loss = mixture_cross_entropy(log_probs, labels, vocab_size=VOCAB, label_smoothing=label_smoothing)
        loss.backward()
        losses.append(loss)
        gradients.append([logits.grad, copy.query.weight.grad, copy.gate.weight.grad, copy.gate.bias.grad])
    torch.testing.assert_close(losses[0], losses[1])
    for sparse_gradient, dense_gradient in zip(*gradients):
        torch.testing.assert_close(sparse_gradient, dense_gradient, atol=1e-6, rtol=1e-4)


def _copy_losses(case: dict, fused: bool, dtype: torch.dtype = torch.float32, **kwargs) -> tuple[torch.Tensor, list]:
    """The fused or unfused loss of `case` and the gradients of the states, the output layer, the copy attention and
    the gate logits."""
    copy = copy_head()
    hidden_states = case["hidden_states"].to(dtype, copy=True).requires_grad_()
    weight = case["weight"].to(dtype, copy=True).requires_grad_()
    bias = None if case["bias"] is None else case["bias"].to(dtype, copy=True).requires_grad_()
    attention, gate_logits, _ = copy.to(dtype)(
        hidden_states, case["encoder_hidden_states"].to(dtype), case["encoder_attention_mask"]
    )
    attention.retain_grad()
    gate_logits.retain_grad()
    keep = case["labels"] != -100
    arguments = (attention, gate_logits, case["source_ids"], case["labels"])
    kwargs = {"encoder_attention_mask": case["encoder_attention_mask"], **kwargs}
    if fused:
        loss = linear_copy_cross_entropy(hidden_states[keep], weight, bias, *arguments, **kwargs)
    else:
        loss = copy_cross_entropy(F.linear(hidden_states[keep], weight, bias), *arguments, **kwargs)
    loss.backward()
    gradients = [hidden_states.grad, weight.grad, attention.grad, gate_logits.grad]
    return loss, gradients + ([] if bias is None else [bias.grad])


@pytest.mark.parametrize("num_items_in_batch", [None, 20], ids=["per-token", "num-items"])
@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("extra", [0, 3], ids=["vocabulary", "extended-vocabulary"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1], ids=["no-smoothing", "smoothing"])
def test_fused_copy_loss_equals_the_unfused_loss_in_value_and_every_gradient(
    label_smoothing: float, extra: int, with_bias: bool, num_items_in_batch: int | None
) -> None:
    """linear_copy_cross_entropy (the output layer fused with the loss, chunk by chunk) == copy_cross_entropy of the
    logits, in value and in the gradients of the decoder states (through the output layer and the copy head), the
    output layer, the copy attention and the gate; chunk_size=4 takes the 13 labelled tokens in four chunks."""
    case = copy_loss_case(extra, with_bias)
    kwargs = {"label_smoothing": label_smoothing, "num_items_in_batch": num_items_in_batch}
    fused, fused_gradients = _copy_losses(case, fused=True, chunk_size=4, **kwargs)
    unfused, unfused_gradients = _copy_losses(case, fused=False, **kwargs)
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=1e-5)
    names = ["states", "weight", "attention", "gate", "bias"]
    for name, got, expected in zip(names, fused_gradients, unfused_gradients):
        assert expected.abs().sum() > 0, name
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4, msg=name)


def test_fused_copy_loss_is_the_same_in_any_number_of_chunks_and_without_gradients() -> None:
    case = copy_loss_case(3, with_bias=True)
    one, one_gradients = _copy_losses(case, fused=True, label_smoothing=0.1)  # the default: one chunk of 13 tokens
    for chunk_size in (1, 5):
        several, several_gradients = _copy_losses(case, fused=True, label_smoothing=0.1, chunk_size=chunk_size)
        torch.testing.assert_close(several, one)
        for got, expected in zip(several_gradients, one_gradients):
            torch.testing.assert_close(got, expected)
    keep = case["labels"] != -100
    with torch.no_grad():
        attention, gate_logits, _ = copy_head()(
            case["hidden_states"], case["encoder_hidden_states"], case["encoder_attention_mask"]
        )
        evaluated = linear_copy_cross_entropy(
            case["hidden_states"][keep], case["weight"], case["bias"], attention, gate_logits, case["source_ids"],
            case["labels"], encoder_attention_mask=case["encoder_attention_mask"], label_smoothing=0.1, chunk_size=5,
        )
    torch.testing.assert_close(evaluated, one)


def test_fused_copy_loss_saves_no_logits_sized_tensor_for_backward() -> None:
    """The unfused loss keeps (N, V) logits for backward; the fused one keeps nothing of N * V elements or more."""
    case = copy_loss_case(3, with_bias=True)
    tokens = int((case["labels"] != -100).sum())
    for fused in (True, False):
        saved: list[tuple[int, ...]] = []

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            saved.append(tuple(tensor.shape))
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            _copy_losses(case, fused=fused, label_smoothing=0.1)
        largest = max(saved, key=lambda shape: torch.Size(shape).numel())
        assert (torch.Size(largest).numel() >= tokens * VOCAB) == (not fused), (fused, largest)


def test_fused_copy_loss_takes_only_the_labelled_states() -> None:
    case = copy_loss_case(0, with_bias=False)
    attention, gate_logits, _ = copy_head()(case["hidden_states"], case["encoder_hidden_states"])
    with pytest.raises(ValueError, match="hidden has 15 rows but labels have 13 labelled tokens"):
        linear_copy_cross_entropy(
            case["hidden_states"].reshape(-1, HIDDEN), case["weight"], None, attention, gate_logits,
            case["source_ids"], case["labels"],
        )


def test_fused_copy_loss_in_bfloat16_matches_the_unfused_loss() -> None:
    """bfloat16 states and output layer: the logits are taken in bfloat16 and the loss in float32, as unfused."""
    case = copy_loss_case(3, with_bias=True)
    fused, fused_gradients = _copy_losses(case, fused=True, dtype=torch.bfloat16, label_smoothing=0.1, chunk_size=4)
    unfused, unfused_gradients = _copy_losses(case, fused=False, dtype=torch.bfloat16, label_smoothing=0.1)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, unfused, atol=1e-4, rtol=1e-4)
    for got, expected in zip(fused_gradients, unfused_gradients):
        assert got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, atol=2e-2, rtol=2e-2)
