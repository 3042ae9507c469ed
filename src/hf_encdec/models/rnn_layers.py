"""Recurrent blocks of the RNN encoder-decoder: encoder, bridge, readout, decoder and the decoder's state.

Shapes: B batch, S source length, T target steps, E embedding size, H hidden size (encoder output = decoder state),
L layers, V vocabulary. States are kept batch-first, (B, L, H), and transposed to torch's (L, B, H) only around the
`nn.RNN`/`nn.GRU`/`nn.LSTM` call, so `generate` can expand and beam-reorder them on dim 0.

Encoder (Schuster & Paliwal 1997; Bahdanau et al. 2015, arXiv 1409.0473, section 3.2):

    h^l_j = [h->^l_j ; h<-^l_j]    layer l over layer l-1's states (l = 1..L, h^0 = the embeddings), one call of
                                   torch's recurrent kernel per layer over a packed batch; padding is never read

The stacks are `nn.RNN`/`nn.GRU`/`nn.LSTM` with their weights under torch's names (`weight_ih_l0`, ...), run layer
by layer (`LayeredRecurrent`): each layer is a `RecurrentLayer`, so every layer's states can be returned
(`output_hidden_states`) and transformers' `gradient_checkpointing_enable()` checkpoints each layer
(GradientCheckpointingLayer).

Bridge, the decoder's initial state from the encoder's final states (h->_N, h<-_1 per layer):

    zero    s_0 = 0
    last    s_0 = h_N                                      (Sutskever et al. 2014, arXiv 1409.3215)
    linear  s_0 = tanh(W [h_N^1 ; ... ; h_N^L] + b)        (Cho et al. 2014, arXiv 1406.1078; Bahdanau eq. in A.2.2)

Decoder, one step per target token (e_t = E y_{t-1}):

    none (Cho 2014):         s_t = f(s_{t-1}, [e_t ; c]),  c = h_N^top fixed for the whole output
                             t_t = maxout(U_o s_t + V_o e_t + C_o c)
    bahdanau (2015):         c_t = Attend(s_{t-1}, h),  s_t = f(s_{t-1}, [e_t ; c_t])
                             t_t = maxout(U_o s_t + V_o e_t + C_o c_t)
    luong_* (2015):          s_t = f(s_{t-1}, [e_t ; h~_{t-1}])   (input feeding; without it f(s_{t-1}, e_t))
                             c_t = Attend(s_t, h),  h~_t = tanh(W_c [c_t ; s_t])
    output:                  p(y_t | y_<t, x) = softmax(W_o t_t)  (t_t = h~_t for Luong)

With coverage (Tu et al. 2016, arXiv 1601.04811; See et al. 2017, 1704.04368) the state also carries the coverage
vector c^t = sum_{t' < t} a_t' (B, S), which the attention reads (rnn_attention.py) and which makes every style step
one token at a time. The decoder also returns what a copy mechanism reads per step: the context c_t, the input x_t,
the attention a_t and, with coverage, c^t.

The maxout readout (pool 2) is the deep output of Cho et al. (appendix A.1.1) and Bahdanau et al. (appendix A.2.2,
written there with s_{t-1}; the model equation 4 and common implementations use s_t, as here). Without attention and
without input feeding nothing feeds back, so the decoder runs the whole target in one call; otherwise it steps.

Gradient checkpointing (`model.gradient_checkpointing_enable()`, `TrainingArguments(gradient_checkpointing=True)`):
every recurrent layer that runs over a whole sequence (the encoder's, and the decoder's when it runs the target in
one call) is a checkpointed segment of its own; a decoder that steps checkpoints chunks of
`RNNDecoder.checkpoint_steps` steps (every layer, the attention and the readout of those steps), carrying the state
between chunks. The backward pass recomputes each segment from its inputs instead of keeping its activations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput

from .rnn_attention import GlobalAttention

RNN_TYPES = ("rnn", "gru", "lstm")
BRIDGES = ("zero", "last", "linear")
DECODER_STYLES = ("context", "bahdanau", "luong")

#: torch's recurrent kernel of each `nn.RNNBase.mode`: what `nn.RNN`/`nn.GRU`/`nn.LSTM` call, here for one layer
RECURRENT_KERNELS: dict[str, Callable[..., tuple[torch.Tensor, ...]]] = {
    "LSTM": torch.lstm,
    "GRU": torch.gru,
    "RNN_TANH": torch.rnn_tanh,
    "RNN_RELU": torch.rnn_relu,
}


def real_tokens_first(mask: torch.Tensor) -> torch.Tensor | None:
    """For a (B, S) mask, the (B, S) gather index that moves each row's real tokens to the front in order, or None if
    the mask is already right-padded (the common case, which needs no gather)."""
    lengths = mask.sum(-1, keepdim=True)
    if torch.equal(mask, torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths):
        return None
    return torch.argsort((~mask).to(torch.int8), dim=1, stable=True)


@dataclass
class SequencePadding:
    """Where the real tokens of a padded (B, S) batch are, for packing it: `lengths` (B,) on the CPU, and `order`,
    the (B, S) gather index that moves each row's real tokens to the front where some row's padding is not at its
    end (None for a right-padded batch)."""

    lengths: torch.Tensor
    order: torch.Tensor | None

    @classmethod
    def of(cls, attention_mask: torch.Tensor) -> SequencePadding:
        """The padding of a (B, S) attention mask (1 = real token); a row without a real token raises."""
        mask = attention_mask.bool()
        lengths = mask.sum(-1)
        if bool((lengths == 0).any()):
            raise ValueError(
                "every source sequence needs at least one real token, but attention_mask has an all-padding row"
            )
        return cls(lengths=lengths.cpu(), order=real_tokens_first(mask))

    def to_front(self, values: torch.Tensor) -> torch.Tensor:
        """(B, S, D) in the batch's positions -> each row's real tokens first."""
        return values if self.order is None else values.gather(1, self.order[..., None].expand_as(values))

    def to_positions(self, values: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_front` for (B, S, D) values that are zero after each row's real tokens."""
        if self.order is None:
            return values
        return torch.zeros_like(values).scatter(1, self.order[..., None].expand_as(values), values)


class RecurrentLayer(GradientCheckpointingLayer):
    """One layer of a stacked RNN/GRU/LSTM (`LayeredRecurrent`), run over a whole sequence by torch's own kernel.

    It holds no weights: they stay in the stack under torch's names (`weight_ih_l{k}`, `weight_hh_l{k}`, biases,
    `_reverse` for the backward direction), so checkpoints, initialisation and the one-step path are those of
    `nn.LSTM`. It is a module of its own so that transformers' `gradient_checkpointing_enable()` checkpoints each layer
    (a GradientCheckpointingLayer): the backward pass recomputes the layer from its inputs and initial states.
    """

    def __init__(self, mode: str, *, bidirectional: bool, bias: bool) -> None:
        super().__init__()
        if mode not in RECURRENT_KERNELS:
            raise ValueError(f"recurrent mode {mode!r} is not one of {tuple(RECURRENT_KERNELS)}")
        self.mode = mode
        self.bidirectional = bidirectional
        self.bias = bias

    def forward(
        self,
        inputs: torch.Tensor,
        hidden: torch.Tensor,
        cell: torch.Tensor | None = None,
        *,
        weights: list[torch.Tensor],
        padding: SequencePadding | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(B, S, I) inputs and the initial states (dirs, B, Hd) (`cell` for an LSTM) -> (B, S, dirs * Hd) outputs, zero
        on padding, and the final states (dirs, B, Hd), each direction's at its last real token. With `padding` the
        batch is packed, so padding is never read. (Inputs and states are positional: a reentrant checkpoint
        reconnects only positional tensors.)"""
        kernel = RECURRENT_KERNELS[self.mode]
        state = hidden if cell is None else (hidden, cell)
        settings = (self.bias, 1, 0.0, self.training, self.bidirectional)  # has_biases, layers, dropout, train, bidir.
        if padding is None:
            outputs, *final = kernel(inputs, state, weights, *settings, True)  # batch first
            return outputs, final[0], (final[1] if cell is not None else None)
        packed = pack_padded_sequence(padding.to_front(inputs), padding.lengths, batch_first=True, enforce_sorted=False)
        state = tuple(value.index_select(1, packed.sorted_indices) for value in (hidden, cell) if value is not None)
        data, *final = kernel(packed.data, packed.batch_sizes, state if cell is not None else state[0], weights, *settings)
        outputs, _ = pad_packed_sequence(
            PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
            batch_first=True,
            total_length=inputs.shape[1],
        )
        final = [value.index_select(1, packed.unsorted_indices) for value in final]
        return padding.to_positions(outputs), final[0], (final[1] if cell is not None else None)


class LayeredRecurrent(nn.RNNBase):
    """An `nn.RNN`/`nn.GRU`/`nn.LSTM` (mixed in before it) that can run layer by layer through its `layers`, one
    `RecurrentLayer` each, with dropout between layers as the fused call applies it (Zaremba et al. 2014).

    Its parameters, their names and `forward` are the torch module's; `run_layers` is the layer-by-layer call, which
    also returns every layer's states.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if self.proj_size:
            raise ValueError("a layered recurrent stack does not take proj_size")
        self.layers = nn.ModuleList(
            RecurrentLayer(self.mode, bidirectional=self.bidirectional, bias=self.bias) for _ in range(self.num_layers)
        )

    def layer_weights(self, layer: int) -> list[torch.Tensor]:
        """The weights of `layer` in the order torch's kernel takes them (per direction: W_ih, W_hh, b_ih, b_hh)."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.bias else ("weight_ih", "weight_hh")
        suffixes = ("", "_reverse") if self.bidirectional else ("",)
        return [getattr(self, f"{name}_l{layer}{suffix}") for suffix in suffixes for name in names]

    def run_layers(
        self,
        inputs: torch.Tensor,
        hidden: torch.Tensor | None = None,
        cell: torch.Tensor | None = None,
        *,
        padding: SequencePadding | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """(B, S, I) batch-first inputs and torch's initial states (L * dirs, B, Hd), zeros when None -> the outputs of
        every layer, each (B, S, dirs * Hd) and the next layer's input, and the final states (L * dirs, B, Hd) (cell
        None for GRU/RNN), as the fused call computes them."""
        directions = 2 if self.bidirectional else 1
        if hidden is None:
            hidden = inputs.new_zeros(self.num_layers * directions, inputs.shape[0], self.hidden_size)
            cell = torch.zeros_like(hidden) if isinstance(self, nn.LSTM) else None
        outputs: list[torch.Tensor] = []
        finals: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        layer_input = inputs
        for index, layer in enumerate(self.layers):
            if index > 0 and self.dropout > 0 and self.training:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
            rows = slice(index * directions, (index + 1) * directions)
            layer_input, final_hidden, final_cell = layer(
                layer_input,
                hidden[rows],
                cell[rows] if cell is not None else None,
                weights=self.layer_weights(index),
                padding=padding,
            )
            outputs.append(layer_input)
            finals.append((final_hidden, final_cell))
        final_hidden = torch.cat([final[0] for final in finals])
        final_cell = torch.cat([final[1] for final in finals]) if cell is not None else None
        return outputs, final_hidden, final_cell


class LayeredRNN(LayeredRecurrent, nn.RNN):
    """`nn.RNN` that can run layer by layer (`LayeredRecurrent`)."""


class LayeredGRU(LayeredRecurrent, nn.GRU):
    """`nn.GRU` that can run layer by layer (`LayeredRecurrent`)."""


class LayeredLSTM(LayeredRecurrent, nn.LSTM):
    """`nn.LSTM` that can run layer by layer (`LayeredRecurrent`)."""


RECURRENT_MODULES: dict[str, type[LayeredRecurrent]] = {"rnn": LayeredRNN, "gru": LayeredGRU, "lstm": LayeredLSTM}


def build_recurrent(
    rnn_type: str, input_size: int, hidden_size: int, num_layers: int, *, dropout: float, bidirectional: bool = False
) -> LayeredRecurrent:
    """A batch-first RNN/GRU/LSTM stack; `dropout` acts between stacked layers (Zaremba et al. 2014)."""
    if rnn_type not in RECURRENT_MODULES:
        raise ValueError(f"rnn_type={rnn_type!r} is not supported; valid values: {RNN_TYPES}")
    return RECURRENT_MODULES[rnn_type](
        input_size,
        hidden_size,
        num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
    )


def batch_first_state(state: torch.Tensor, num_layers: int) -> torch.Tensor:
    """torch's final state (L * dirs, B, Hd) -> (B, L, dirs * Hd), the directions of a layer side by side."""
    directions = state.shape[0] // num_layers
    batch, size = state.shape[1], state.shape[2]
    state = state.view(num_layers, directions, batch, size)  # (L, dirs, B, Hd)
    return state.permute(2, 0, 1, 3).reshape(batch, num_layers, directions * size)  # (B, L, dirs * Hd)


@dataclass
class RNNEncoderOutput(BaseModelOutput):
    """Encoder states (B, S, H) plus the final state of every layer, batch first: `final_hidden_state` (B, L, H) and,
    for an LSTM, `final_cell_state` (B, L, H). A Transformer encoder gives one summary vector, (B, 1, H)."""

    final_hidden_state: torch.FloatTensor | None = None
    final_cell_state: torch.FloatTensor | None = None


class RNNEncoder(nn.Module):
    """Embeddings and a (bi)directional recurrent stack over a packed batch, layer by layer.

    Accepts what `generate` sends an encoder. Any padding side works: a row whose padding is not at the end is
    gathered to the front before packing and scattered back after. Padding positions of the outputs are zero.
    `hidden_states` (when asked) are the embeddings and the states of every layer, L + 1 tensors (B, S, *), each the
    tensor the next layer read (so `retain_grad()` on them sees the gradient of anything computed from them).
    """

    main_input_name = "input_ids"

    def __init__(self, *, embed_tokens: nn.Embedding, rnn: LayeredRecurrent, dropout: float) -> None:
        super().__init__()
        self.embed_tokens = embed_tokens
        self.rnn = rnn
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: object,
    ) -> RNNEncoderOutput | tuple:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, S, E)
        embedded = self.dropout(inputs_embeds)
        padding = SequencePadding.of(attention_mask) if attention_mask is not None else None
        layers, hidden, cell = self.rnn.run_layers(embedded, padding=padding)  # L x (B, S, H)
        result = RNNEncoderOutput(
            last_hidden_state=layers[-1],
            hidden_states=(embedded, *layers) if output_hidden_states else None,
            final_hidden_state=batch_first_state(hidden, self.rnn.num_layers),
            final_cell_state=batch_first_state(cell, self.rnn.num_layers) if cell is not None else None,
        )
        return result if return_dict is not False else result.to_tuple()


class Bridge(nn.Module):
    """The decoder's initial state from the encoder's final states: `zero`, `last` (copy, layer by layer) or `linear`
    (s_0 = tanh(W [h_N ; c_N] + b) over all encoder layers; for an LSTM decoder one map gives both s_0 and its cell)."""

    def __init__(
        self,
        kind: str,
        *,
        encoder_state_size: int,
        decoder_layers: int,
        hidden_size: int,
        with_cell: bool,
    ) -> None:
        super().__init__()
        if kind not in BRIDGES:
            raise ValueError(f"bridge={kind!r} is not supported; valid values: {BRIDGES}")
        self.kind = kind
        self.decoder_layers = decoder_layers
        self.hidden_size = hidden_size
        self.with_cell = with_cell
        states = 2 if with_cell else 1
        self.linear = (
            nn.Linear(encoder_state_size, states * decoder_layers * hidden_size) if kind == "linear" else None
        )

    def forward(
        self, final_hidden: torch.Tensor, final_cell: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, L_enc, H) encoder final states -> decoder (hidden, cell), each (B, L_dec, H) (cell None for GRU/RNN)."""
        batch = final_hidden.shape[0]
        shape = (batch, self.decoder_layers, self.hidden_size)
        if self.kind == "zero":
            zeros = final_hidden.new_zeros(shape)
            return zeros, (zeros.clone() if self.with_cell else None)
        if self.kind == "last":
            cell = None
            if self.with_cell:
                cell = final_cell if final_cell is not None else torch.zeros_like(final_hidden)
            return final_hidden, cell
        features = final_hidden.flatten(1)  # (B, L_enc * H)
        if final_cell is not None:
            features = torch.cat([features, final_cell.flatten(1)], dim=-1)
        states = torch.tanh(self.linear(features)).view(batch, -1, self.decoder_layers, self.hidden_size)
        return states[:, 0], (states[:, 1] if self.with_cell else None)


class MaxoutReadout(nn.Module):
    """Deep output of Cho et al. 2014 / Bahdanau et al. 2015: t = max-out_2(U_o s + V_o e + C_o c), pool 2, width
    `output_size`."""

    def __init__(self, *, state_size: int, embedding_size: int, context_size: int, output_size: int) -> None:
        super().__init__()
        self.output_size = output_size
        self.linear = nn.Linear(state_size + embedding_size + context_size, 2 * output_size)

    def forward(self, state: torch.Tensor, embedded: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        pre = self.linear(torch.cat([state, embedded, context], dim=-1))  # (B, T, 2 O)
        return pre.view(*pre.shape[:-1], self.output_size, 2).amax(dim=-1)  # (B, T, O)


@dataclass
class RNNDecoderState:
    """Everything a decoding step needs from the past, batch first so `generate` can beam-reorder it on dim 0.

    hidden, cell: (B, L, H) recurrent state (cell for LSTM); attentional: (B, H) Luong's h~_{t-1} (input feeding);
    projected_keys: (B, S, A) the key-only part of the attention score, computed once per source; coverage: (B, S)
    the attention paid so far to each source position (with coverage); length: the number of target tokens
    consumed, which `get_seq_length` reports as a key/value cache reports its length.
    """

    hidden: torch.Tensor
    cell: torch.Tensor | None = None
    attentional: torch.Tensor | None = None
    projected_keys: torch.Tensor | None = None
    coverage: torch.Tensor | None = None
    length: int = 0

    # read by transformers' generation loop for Cache objects; a recurrent state cannot be cropped
    is_croppable = False

    def _map_tensors(self, function: Callable[[torch.Tensor], torch.Tensor]) -> RNNDecoderState:
        return dataclasses.replace(
            self,
            **{
                field.name: function(value)
                for field in dataclasses.fields(self)
                for value in [getattr(self, field.name)]
                if isinstance(value, torch.Tensor)
            },
        )

    def index_select(self, index: torch.Tensor) -> RNNDecoderState:
        """The state of the rows `index` (beam reordering, batch expansion)."""
        return self._map_tensors(lambda value: value.index_select(0, index.to(value.device)))

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        """In-place beam reordering, the `Cache.reorder_cache` interface."""
        reordered = self.index_select(beam_idx)
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(reordered, field.name))

    def get_seq_length(self) -> int:
        """Target tokens consumed so far, the `Cache.get_seq_length` interface."""
        return self.length

    def to(self, *args: object, **kwargs: object) -> RNNDecoderState:
        return self._map_tensors(lambda value: value.to(*args, **kwargs))


@dataclass
class RNNDecoderOutput:
    """Decoder features (B, T, D) for the output layer, the state after the last step, attention weights (B, T, S)
    (None without attention), the top recurrent layer's states s_t (B, T, H), the context vectors c_t (B, T, H), the
    embeddings x_t fed to the recurrence (B, T, E), with coverage the coverage before each step (B, T, S), and when
    asked the states of every layer, L x (B, T, H) (`layer_states`)."""

    features: torch.Tensor
    state: RNNDecoderState
    attention_weights: torch.Tensor | None
    recurrent_states: torch.Tensor
    contexts: torch.Tensor | None = None
    inputs: torch.Tensor | None = None
    coverages: torch.Tensor | None = None
    layer_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class DecoderSteps:
    """What `RNNDecoder._advance` gives for T steps (see `RNNDecoderOutput`)."""

    features: torch.Tensor
    state: RNNDecoderState
    weights: torch.Tensor | None
    outputs: torch.Tensor
    contexts: torch.Tensor | None
    inputs: torch.Tensor
    coverages: torch.Tensor | None
    layers: tuple[torch.Tensor, ...] = ()  # every layer's states, L x (B, T, H)


def join_steps(values: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """(B, T_i, *) tensors of consecutive steps -> (B, sum T_i, *), or None where the steps have none. One tensor is
    returned as it is, not copied: it stays the tensor the output was computed from."""
    if values[0] is None:
        return None
    return values[0] if len(values) == 1 else torch.cat(list(values), dim=1)


#: (gold input ids (B,), the previous step (`DecoderSteps` of one step)) -> the ids to feed at this step (B,); scheduled
#: sampling. The sampler draws without gradient, so the previous step is handed over as it is, not through checkpoints.
InputSampler = Callable[[torch.Tensor, "DecoderSteps"], torch.Tensor]


class RNNDecoder(nn.Module):
    """The recurrent decoder in one of three styles (see the module docstring): `context` (Cho et al.'s fixed
    context, `attention_type="none"`), `bahdanau`, or `luong` (any Luong score, optional input feeding).

    Parts are built by the family: `rnn` takes [e_t ; c_t] (context, bahdanau), [e_t ; h~_{t-1}] (luong with input
    feeding) or e_t; `readout` (maxout) serves context/bahdanau, `attentional_layer` (W_c, no bias) serves luong;
    `output_projection` (optional, luong) maps h~_t to the embedding size when the output layer is tied to it.
    """

    gradient_checkpointing = False  # set by transformers' gradient_checkpointing_enable(), with the checkpoint function
    checkpoint_steps = 8  # steps per checkpointed segment when the decoder steps

    def __init__(
        self,
        *,
        style: str,
        embed_tokens: nn.Embedding,
        rnn: LayeredRecurrent,
        bridge: Bridge,
        attention: GlobalAttention | None,
        readout: MaxoutReadout | None,
        attentional_layer: nn.Linear | None,
        output_projection: nn.Linear | None,
        input_feeding: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        if style not in DECODER_STYLES:
            raise ValueError(f"decoder style {style!r} is not one of {DECODER_STYLES}")
        if (style == "context") != (attention is None):
            raise ValueError("the context style has no attention; bahdanau and luong need one")
        if input_feeding and style != "luong":
            raise ValueError("input feeding is Luong's: it needs a luong decoder")
        self.style = style
        self.embed_tokens = embed_tokens
        self.rnn = rnn
        self.bridge = bridge
        self.attention = attention
        self.readout = readout
        self.attentional_layer = attentional_layer
        self.output_projection = output_projection
        self.input_feeding = input_feeding
        self.dropout = nn.Dropout(dropout)

    @property
    def uses_coverage(self) -> bool:
        return self.attention is not None and self.attention.uses_coverage

    @property
    def steps_one_at_a_time(self) -> bool:
        """Whether each step needs the previous one's output (Bahdanau's query s_{t-1}, Luong's input feeding, the
        coverage of the steps before)."""
        return self.style == "bahdanau" or self.input_feeding or self.uses_coverage

    def initial_state(
        self,
        encoder_hidden_states: torch.Tensor,
        encoder_final_hidden: torch.Tensor,
        encoder_final_cell: torch.Tensor | None,
    ) -> RNNDecoderState:
        hidden, cell = self.bridge(encoder_final_hidden, encoder_final_cell)
        attentional = None
        if self.input_feeding:
            attentional = encoder_hidden_states.new_zeros(hidden.shape[0], self.rnn.hidden_size)  # h~_0 = 0
        projected_keys = None
        if self.attention is not None and self.attention.projects_keys:
            projected_keys = self.attention.project_keys(encoder_hidden_states)  # (B, S, A)
        coverage = None
        if self.uses_coverage:
            coverage = encoder_hidden_states.new_zeros(encoder_hidden_states.shape[:2], dtype=torch.float32)  # (B, S)
        return RNNDecoderState(
            hidden=hidden, cell=cell, attentional=attentional, projected_keys=projected_keys, coverage=coverage
        )

    def _recur(
        self, rnn_input: torch.Tensor, state: RNNDecoderState
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...]]:
        """T steps of the recurrent stack from `state`: the top layer's outputs (B, T, H), the new hidden and cell
        (B, L, H), and the outputs of every layer, L x (B, T, H)."""
        hidden = state.hidden.transpose(0, 1).contiguous()  # (L, B, H)
        cell = state.cell.transpose(0, 1).contiguous() if state.cell is not None else None
        if rnn_input.shape[1] == 1:
            # one step (a stepping decoder, which checkpoints its chunks of steps itself): the stack's own call
            if cell is None:
                outputs, hidden = self.rnn(rnn_input, hidden)  # (B, 1, H), (L, B, H)
            else:
                outputs, (hidden, cell) = self.rnn(rnn_input, (hidden, cell))
            layers = tuple(hidden[:, :, None].unbind(0))  # after one step a layer's output is its new hidden state
        else:
            layers, hidden, cell = self.rnn.run_layers(rnn_input, hidden, cell)  # L x (B, T, H), (L, B, H)
            outputs = layers[-1]
        return outputs, hidden.transpose(0, 1), (cell.transpose(0, 1) if cell is not None else None), tuple(layers)

    def _advance(
        self,
        embedded: torch.Tensor,
        state: RNNDecoderState,
        keys: torch.Tensor,
        mask: torch.Tensor | None,
        context: torch.Tensor | None,
    ) -> DecoderSteps:
        """Run T steps from `state` (T = 1 whenever `steps_one_at_a_time`)."""
        weights = None
        coverage = state.coverage[:, None, :] if state.coverage is not None else None  # c^t, (B, 1, S)
        if self.style == "bahdanau":
            query = state.hidden[:, -1:]  # s_{t-1} of the top layer, (B, 1, H)
            step_context, weights = self.attention(query, keys, mask, state.projected_keys, coverage)  # (B, 1, H/S)
            rnn_input = torch.cat([embedded, step_context], dim=-1)
        elif self.style == "context":
            step_context = context[:, None, :].expand(-1, embedded.shape[1], -1)  # (B, T, H)
            rnn_input = torch.cat([embedded, step_context], dim=-1)
        elif self.input_feeding:
            rnn_input = torch.cat([embedded, state.attentional[:, None, :]], dim=-1)
        else:
            rnn_input = embedded
        outputs, hidden, cell, layers = self._recur(rnn_input, state)  # (B, T, H)
        attentional = None
        if self.style == "luong":
            # (B, T, H), (B, T, S)
            step_context, weights = self.attention(outputs, keys, mask, state.projected_keys, coverage)
            attentional = self.dropout(torch.tanh(self.attentional_layer(torch.cat([step_context, outputs], dim=-1))))
            features = attentional if self.output_projection is None else self.output_projection(attentional)
        else:
            features = self.dropout(self.readout(outputs, embedded, step_context))  # (B, T, E)
        new_state = dataclasses.replace(
            state,
            hidden=hidden,
            cell=cell,
            attentional=attentional[:, -1] if self.input_feeding else None,
            coverage=state.coverage + weights[:, -1].float() if coverage is not None else None,
            length=state.length + embedded.shape[1],
        )
        return DecoderSteps(features, new_state, weights, outputs, step_context, embedded, coverage, layers)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        *,
        encoder_hidden_states: torch.Tensor,
        encoder_final_hidden: torch.Tensor,
        encoder_final_cell: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        state: RNNDecoderState | None = None,
        inputs_embeds: torch.Tensor | None = None,
        input_sampler: InputSampler | None = None,
        output_hidden_states: bool = False,
    ) -> RNNDecoderOutput:
        """Decode T tokens from `state` (a cached state) or, if None, from the encoder through the bridge;
        `output_hidden_states` also returns the states of every layer (`layer_states`).

        What a backward pass reaches: `inputs` (the embeddings), and in a decoder that runs the target in one call
        (`steps_one_at_a_time` False, no scheduled sampling) every layer's states and the attention weights, are the
        tensors the output was computed from. A decoder that steps computes each step from the one before, so its
        per-layer states and attention weights are the steps' tensors joined afterwards: the same values, outside
        the autograd graph of the output (`retain_grad()` on them gets no gradient)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of decoder input_ids and inputs_embeds")
        if input_sampler is not None and input_ids is None:
            raise ValueError("scheduled sampling replaces decoder input ids and needs decoder_input_ids")
        if state is None:
            state = self.initial_state(encoder_hidden_states, encoder_final_hidden, encoder_final_cell)
        mask = encoder_attention_mask.bool() if encoder_attention_mask is not None else None
        context = encoder_final_hidden[:, -1] if self.style == "context" else None  # c = h_N^top, (B, H)
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        embedded = self.dropout(inputs_embeds)  # (B, T, E)

        stepping = input_sampler is not None or self.steps_one_at_a_time
        # a decoder that runs the target in one call is checkpointed by its layers (RecurrentLayer); one that steps
        # checkpoints chunks of steps here, each step's attention and readout included
        checkpointing = self.gradient_checkpointing and self.training and stepping
        if not stepping:
            segments = [(0, embedded.shape[1])]
        else:
            step = self.checkpoint_steps if checkpointing else embedded.shape[1]
            segments = [(start, min(start + step, embedded.shape[1])) for start in range(0, embedded.shape[1], step)]
        pieces: list[tuple[torch.Tensor | None, ...]] = []
        for start, end in segments:
            previous = None  # the last step of the segment before, for the input sampler (read without gradient)
            if pieces:
                last = [None if piece is None else piece[:, -1:].detach() for piece in pieces[-1]]
                previous = DecoderSteps(last[0], state, last[1], last[2], last[3], last[4], last[5])
            # every tensor that carries a gradient goes in as an argument (a reentrant checkpoint only detaches and
            # reconnects those); what is bound here carries none
            segment = partial(self._segment, state=state, mask=mask, input_ids=input_ids, input_sampler=input_sampler,
                              start=start, previous=previous, with_layers=output_hidden_states)
            tensors = (embedded[:, start:end], state.hidden, state.cell, state.attentional, state.projected_keys,
                       state.coverage, context, encoder_hidden_states)
            hidden, cell, attentional, coverage, *per_step = (
                self._gradient_checkpointing_func(segment, *tensors) if checkpointing else segment(*tensors)
            )
            state = dataclasses.replace(state, hidden=hidden, cell=cell, attentional=attentional, coverage=coverage,
                                        length=state.length + end - start)
            pieces.append(tuple(per_step))
        # features, weights, outputs, contexts, inputs, coverages, then (when asked) each layer's states
        features, weights, outputs, contexts, inputs, coverages, *layers = (join_steps(piece) for piece in zip(*pieces))
        if input_sampler is None:
            inputs = embedded  # the same values; this one is the tensor every step read its input from
        return RNNDecoderOutput(features, state, weights, outputs, contexts, inputs, coverages,
                                layer_states=tuple(layers) if output_hidden_states else None)

    def _segment(
        self,
        embedded: torch.Tensor,
        hidden: torch.Tensor,
        cell: torch.Tensor | None,
        attentional: torch.Tensor | None,
        projected_keys: torch.Tensor | None,
        coverage: torch.Tensor | None,
        context: torch.Tensor | None,
        keys: torch.Tensor,
        *,
        state: RNNDecoderState,
        mask: torch.Tensor | None,
        input_ids: torch.Tensor | None,
        input_sampler: InputSampler | None,
        start: int,
        previous: DecoderSteps | None,
        with_layers: bool = False,
    ) -> tuple[torch.Tensor | None, ...]:
        """Target steps start .. start + T of the (B, T, E) `embedded` from the given state tensors, in one call or
        one step at a time: the state tensors after them (hidden, cell, attentional, coverage), then the per-step
        tensors (features, weights, top-layer outputs, contexts, inputs, coverages) and, `with_layers`, each layer's
        states. Tensors in, tensors out, so a checkpoint can recompute it (reentrant or not)."""
        state = dataclasses.replace(state, hidden=hidden, cell=cell, attentional=attentional,
                                    projected_keys=projected_keys, coverage=coverage)
        if input_sampler is None and not self.steps_one_at_a_time:
            steps = [self._advance(embedded, state, keys, mask, context)]
        else:
            steps = []
            for t in range(embedded.shape[1]):
                step_input = embedded[:, t : t + 1]  # (B, 1, E)
                last = steps[-1] if steps else previous
                if input_sampler is not None and last is not None:
                    fed = input_sampler(input_ids[:, start + t], last)  # (B,)
                    step_input = self.dropout(self.embed_tokens(fed))[:, None]
                steps.append(self._advance(step_input, state, keys, mask, context))
                state = steps[-1].state
        state = steps[-1].state
        per_step = [join_steps([getattr(step, name) for step in steps])
                    for name in ("features", "weights", "outputs", "contexts", "inputs", "coverages")]
        if with_layers:
            per_step += [join_steps(layer) for layer in zip(*(step.layers for step in steps))]
        return (state.hidden, state.cell, state.attentional, state.coverage, *per_step)
