"""The dropout block: inverted dropout whose backward pass keeps a one-byte mask on CPU."""

from __future__ import annotations

import pytest
import torch

from hf_encdec.models.speed_paths import Dropout, dropout


def _saved_dtypes(function) -> list[torch.dtype]:
    dtypes: list[torch.dtype] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        dtypes.append(tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return dtypes


def test_outside_training_or_without_probability_it_is_the_identity() -> None:
    x = torch.randn(3, 5)
    assert dropout(x, 0.3, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    assert Dropout(0.3).eval()(x) is x


def test_kept_entries_are_scaled_and_the_rest_zeroed_at_rate_p() -> None:
    x = torch.rand(200, 500) + 0.5  # no zeros of its own
    y = dropout(x, 0.25, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert abs((~kept).float().mean().item() - 0.25) < 0.01
    # a second draw is a different mask
    assert not torch.equal(kept, dropout(x, 0.25, training=True) != 0)


def test_gradient_is_the_mask_over_keep_probability() -> None:
    x = (torch.rand(7, 9) + 0.5).requires_grad_()
    y = dropout(x, 0.4, training=True)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.6)


def test_backward_keeps_a_bool_mask_not_a_float_one() -> None:
    x = torch.randn(4, 6, requires_grad=True)
    ours = _saved_dtypes(lambda: dropout(x, 0.1, training=True))
    assert ours == [torch.bool]
    # torch's own CPU dropout keeps a mask of the input's dtype: what this block avoids
    assert torch.float32 in _saved_dtypes(lambda: torch.nn.functional.dropout(x, 0.1, training=True))


@pytest.mark.parametrize("p", [1.0])
def test_probability_one_drops_everything(p: float) -> None:
    assert torch.count_nonzero(dropout(torch.randn(3, 4), p, training=True)) == 0
