"""The loss fused with the output layer (speed/losses.py) against logits then `token_cross_entropy`: value and
gradients in any number of chunks, label smoothing and `num_items_in_batch`; its gradients are handed over once; a
sped-up model leaves the logits out in training unless asked, and evaluation can take the fused loss too."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import build, token_ids
from hf_encdec.models.losses import token_cross_entropy
from hf_encdec.speed import apply_speed_paths
from hf_encdec.speed.losses import linear_cross_entropy


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_linear_cross_entropy_equals_logits_then_loss(label_smoothing: float, with_bias: bool) -> None:
    hidden = torch.randn(3, 5, 8, requires_grad=True)
    weight = torch.randn(13, 8, requires_grad=True)
    bias = torch.randn(13, requires_grad=True) if with_bias else None
    labels = torch.randint(0, 13, (3, 5))
    labels[0, 3:] = -100
    # chunk_size=4 forces several chunks over the 13 labelled tokens
    fused = linear_cross_entropy(
        hidden, weight, labels, bias=bias, label_smoothing=label_smoothing, num_items_in_batch=20, chunk_size=4
    )
    fused.backward()
    fused_grads = [hidden.grad.clone(), weight.grad.clone()] + ([bias.grad.clone()] if with_bias else [])
    for tensor in [hidden, weight] + ([bias] if with_bias else []):
        tensor.grad = None
    logits = F.linear(hidden, weight, bias)
    reference = token_cross_entropy(logits, labels, label_smoothing=label_smoothing, num_items_in_batch=20)
    reference.backward()
    reference_grads = [hidden.grad, weight.grad] + ([bias.grad] if with_bias else [])
    torch.testing.assert_close(fused, reference)
    for got, expected in zip(fused_grads, reference_grads):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_fused_loss_hands_its_gradients_over_and_refuses_a_second_backward() -> None:
    hidden = torch.randn(2, 6, 8, requires_grad=True)
    weight = torch.randn(11, 8, requires_grad=True)
    labels = torch.randint(0, 11, (2, 6))
    loss = linear_cross_entropy(hidden, weight, labels, chunk_size=5)
    loss.backward(retain_graph=True)
    reference_hidden = hidden.detach().clone().requires_grad_()
    reference_weight = weight.detach().clone().requires_grad_()
    token_cross_entropy(reference_hidden @ reference_weight.T, labels).backward()
    torch.testing.assert_close(weight.grad, reference_weight.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(hidden.grad, reference_hidden.grad, atol=1e-5, rtol=1e-4)
    with pytest.raises(RuntimeError, match="cannot be backpropagated twice"):
        loss.backward()


@pytest.mark.parametrize("family", ["seq2seq", "encoder", "decoder"])  # the pointer-generator: test_copy_losses.py
def test_fused_training_skips_logits_unless_asked_and_evaluation_can_skip_them(family: str) -> None:
    model = apply_speed_paths(build(family)).train()  # tiny configs have no dropout: train and eval compute alike
    ids = token_ids()
    labels = ids.clone()
    labels[0, :2] = -100
    inputs = {"input_ids": ids, "labels": labels}
    if family == "seq2seq":
        inputs["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels)
    default = model(**inputs)
    asked = model(**inputs, skip_logits=False)
    model.eval()
    plain = model(**inputs)
    skipped = model(**inputs, skip_logits=True)
    assert default.logits is None and skipped.logits is None and plain.logits is not None
    assert not asked.logits.requires_grad  # for inspection; the fused loss carries the gradient
    torch.testing.assert_close(asked.logits, plain.logits)
    for output in (default, asked, skipped):
        torch.testing.assert_close(output.loss, plain.loss)
