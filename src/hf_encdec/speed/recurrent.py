"""One decoding step of a recurrent stack as torch's cell functions, layer by layer: subclasses of the models' layered
`nn.LSTM` / `nn.GRU` / `nn.RNN` stacks (`models/rnn_layers.py`) that `apply_speed_paths` swaps in.

Shapes: B batch, I input size, H hidden size, L layers.

On CPU a one-step call of the fused kernel (mkldnn) spends most of its time setting up; `torch.lstm_cell` /
`torch.gru_cell` / `torch.rnn_*_cell` per layer do the same arithmetic without it, dropout between layers included.
Longer inputs, packed sequences, bidirectional or projected stacks and other devices run the fused kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ..models.rnn_layers import LayeredGRU, LayeredLSTM, LayeredRecurrent, LayeredRNN

#: what `nn.LSTM` / `nn.GRU` / `nn.RNN` take as input
Inputs = torch.Tensor | PackedSequence


def _cell_function(rnn: nn.RNNBase) -> Callable[..., torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(rnn, nn.LSTM):
        return torch.lstm_cell
    if isinstance(rnn, nn.GRU):
        return torch.gru_cell
    return torch.rnn_tanh_cell if rnn.nonlinearity == "tanh" else torch.rnn_relu_cell


def takes_one_step(rnn: nn.RNNBase, inputs: object) -> bool:
    """Whether a call of `rnn` on `inputs` is one step the cell functions can take: a (B, 1, I) batch-first CPU
    tensor through a unidirectional stack without projections."""
    return (
        isinstance(inputs, torch.Tensor)
        and rnn.batch_first
        and inputs.dim() == 3
        and inputs.shape[1] == 1
        and not rnn.bidirectional
        and not rnn.proj_size
        and inputs.device.type == "cpu"
    )


def cell_step(
    rnn: nn.RNNBase, inputs: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One time step of `rnn` by its cell functions: (B, 1, I) inputs and the (L, B, H) states -> (B, 1, H) top-layer
    outputs and the new (L, B, H) hidden and cell (None for GRU/RNN), as `rnn` computes them (dropout between layers
    included)."""
    function = _cell_function(rnn)
    x = inputs[:, 0]  # (B, I)
    hiddens, cells = [], []
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout > 0 and rnn.training:
            x = F.dropout(x, rnn.dropout, training=True)
        weights = [getattr(rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh")]
        biases = [getattr(rnn, f"{name}_l{layer}") for name in ("bias_ih", "bias_hh")] if rnn.bias else [None, None]
        if cell is not None:
            x, c = function(x, (hidden[layer], cell[layer]), *weights, *biases)
            cells.append(c)
        else:
            x = function(x, hidden[layer], *weights, *biases)
        hiddens.append(x)
    return x[:, None], torch.stack(hiddens), (torch.stack(cells) if cell is not None else None)


class StepLSTM(LayeredLSTM):
    """`LayeredLSTM` that takes a one-step call with initial states by its cell functions (`cell_step`)."""

    def forward(  # type: ignore[override]
        self, input: Inputs, hx: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[Inputs, tuple[torch.Tensor, torch.Tensor]]:
        if hx is None or not takes_one_step(self, input):
            return super().forward(input, hx)
        outputs, hidden, cell = cell_step(self, input, *hx)
        return outputs, (hidden, cell)


class _HiddenStateStep:
    """A one-step call with an initial state by the cell function (`cell_step`), for the stacks whose state is one
    tensor (GRU, plain RNN); other calls go to the stack's own forward."""

    def forward(  # type: ignore[override]
        self, input: Inputs, hx: torch.Tensor | None = None
    ) -> tuple[Inputs, torch.Tensor]:
        if hx is None or not takes_one_step(self, input):
            return super().forward(input, hx)  # type: ignore[misc]
        outputs, hidden, _ = cell_step(self, input, hx, None)
        return outputs, hidden


class StepGRU(_HiddenStateStep, LayeredGRU):
    """`LayeredGRU` that takes a one-step call with an initial state by its cell function (`cell_step`)."""


class StepRNN(_HiddenStateStep, LayeredRNN):
    """`LayeredRNN` that takes a one-step call with an initial state by its cell function (`cell_step`)."""


#: the plain recurrent stack -> its one-step subclass
STEP_CLASSES: dict[type[LayeredRecurrent], type[LayeredRecurrent]] = {
    LayeredLSTM: StepLSTM,
    LayeredGRU: StepGRU,
    LayeredRNN: StepRNN,
}
