"""The one-step recurrent stacks (speed/recurrent.py) against the models' layered stacks: the same outputs, states and
gradients for one step, dropout between layers in training, and torch's fused kernel for every other call."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from hf_encdec.models.rnn_layers import LayeredGRU, LayeredLSTM, LayeredRNN
from hf_encdec.speed.recurrent import STEP_CLASSES, StepGRU, cell_step, takes_one_step


@pytest.mark.parametrize(
    ("module", "kwargs"),
    [
        (LayeredLSTM, {}),
        (LayeredGRU, {}),
        (LayeredRNN, {"nonlinearity": "tanh"}),
        (LayeredRNN, {"nonlinearity": "relu", "bias": False}),
    ],
    ids=["lstm", "gru", "rnn-tanh", "rnn-relu-no-bias"],
)
def test_one_recurrent_step_by_cells_equals_the_fused_stack(module: type, kwargs: dict) -> None:
    torch.manual_seed(0)
    rnn = module(11, 13, num_layers=3, batch_first=True, dropout=0.5, **kwargs).eval()
    inputs = torch.randn(5, 1, 11, requires_grad=True)
    hidden = torch.randn(3, 5, 13)
    cell = torch.randn(3, 5, 13) if module is LayeredLSTM else None
    assert takes_one_step(rnn, inputs)
    results = {}
    for step in (True, False):
        rnn.__class__ = STEP_CLASSES[module] if step else module
        states = hidden if cell is None else (hidden, cell)
        outputs, new_states = rnn(inputs, states)
        new_hidden, new_cell = (new_states, None) if cell is None else new_states
        (gradient,) = torch.autograd.grad(outputs.sum() + new_hidden.sum(), inputs)
        results[step] = (outputs, new_hidden, new_cell, gradient)
    for fast, plain in zip(results[True], results[False]):
        if plain is None:
            assert fast is None
        else:
            torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-5)
    assert results[True][0].shape == (5, 1, 13)
    # in training, dropout acts between layers on both paths: the expectation of the top output is the same, and a
    # dropped-out run differs from the eval run
    rnn.__class__ = STEP_CLASSES[module]
    rnn.train()
    torch.manual_seed(1)
    dropped, _, _ = cell_step(rnn, inputs, hidden, cell)
    assert not torch.allclose(dropped, results[True][0])


def test_other_calls_run_the_fused_stack() -> None:
    torch.manual_seed(0)
    gru = StepGRU(5, 6, num_layers=2, batch_first=True)
    assert takes_one_step(gru, torch.randn(2, 1, 5))
    assert not takes_one_step(gru, torch.randn(2, 3, 5))  # several steps
    packed = pack_padded_sequence(torch.randn(2, 3, 5), torch.tensor([3, 2]), batch_first=True)
    assert not takes_one_step(gru, packed)
    outputs, hidden = gru(packed)  # a packed call and a call without states go to torch's kernel as they are
    assert hidden.shape == (2, 2, 6)
    layers, hidden, _ = gru.run_layers(torch.randn(2, 3, 5))  # the layer-by-layer call stays the plain stack's
    assert len(layers) == 2 and layers[-1].shape == (2, 3, 6) and hidden.shape == (2, 2, 6)
    bidirectional = StepGRU(5, 6, batch_first=True, bidirectional=True)
    assert not takes_one_step(bidirectional, torch.randn(2, 1, 5))
