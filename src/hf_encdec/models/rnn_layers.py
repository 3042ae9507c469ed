"""Recurrent blocks of the RNN encoder-decoder: encoder, bridge, readout, decoder and the decoder's state.

Shapes: B batch, S source length, T target steps, E embedding size, H hidden size (encoder output = decoder state),
L layers, V vocabulary. States are kept batch-first, (B, L, H), and transposed to torch's (L, B, H) only around the
`nn.RNN`/`nn.GRU`/`nn.LSTM` call, so `generate` can expand and beam-reorder them on dim 0.

Encoder (Schuster & Paliwal 1997; Bahdanau et al. 2015, arXiv 1409.0473, section 3.2):

    h_j = [h->_j ; h<-_j]          one cuDNN-style call over a packed batch; padding is never read

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
the encoder's recurrent call is one checkpointed segment; the decoder checkpoints its whole call when it runs the
target in one call, and chunks of `RNNDecoder.checkpoint_steps` steps when it steps, carrying the state between
chunks. The backward pass recomputes each segment from its inputs instead of keeping its activations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers.modeling_outputs import BaseModelOutput

from .rnn_attention import GlobalAttention

RNN_TYPES = ("rnn", "gru", "lstm")
RECURRENT_MODULES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
BRIDGES = ("zero", "last", "linear")
DECODER_STYLES = ("context", "bahdanau", "luong")


def build_recurrent(
    rnn_type: str, input_size: int, hidden_size: int, num_layers: int, *, dropout: float, bidirectional: bool = False
) -> nn.RNNBase:
    """A batch-first `nn.RNN`/`nn.GRU`/`nn.LSTM`; `dropout` acts between stacked layers (Zaremba et al. 2014)."""
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


def real_tokens_first(mask: torch.Tensor) -> torch.Tensor | None:
    """For a (B, S) mask, the (B, S) gather index that moves each row's real tokens to the front in order, or None if
    the mask is already right-padded (the common case, which needs no gather)."""
    lengths = mask.sum(-1, keepdim=True)
    if torch.equal(mask, torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths):
        return None
    return torch.argsort((~mask).to(torch.int8), dim=1, stable=True)


class RNNEncoder(nn.Module):
    """Embeddings and a (bi)directional recurrent stack over a packed batch.

    Accepts what `generate` sends an encoder. Any padding side works: a row whose padding is not at the end is
    gathered to the front before packing and scattered back after. Padding positions of the output are zero.
    `hidden_states` (when asked) are the embeddings and the top layer's states: the stack is one fused module.
    """

    main_input_name = "input_ids"
    gradient_checkpointing = False  # set by transformers' gradient_checkpointing_enable(), with the checkpoint function

    def __init__(self, *, embed_tokens: nn.Embedding, rnn: nn.RNNBase, dropout: float) -> None:
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
        if self.gradient_checkpointing and self.training:
            outputs, hidden, cell = self._gradient_checkpointing_func(self._encode, embedded, attention_mask)
        else:
            outputs, hidden, cell = self._encode(embedded, attention_mask)
        result = RNNEncoderOutput(
            last_hidden_state=outputs,
            hidden_states=(inputs_embeds, outputs) if output_hidden_states else None,
            final_hidden_state=batch_first_state(hidden, self.rnn.num_layers),
            final_cell_state=batch_first_state(cell, self.rnn.num_layers) if cell is not None else None,
        )
        return result if return_dict is not False else result.to_tuple()

    def _encode(
        self, embedded: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The recurrent stack over (B, S, E) embeddings: outputs (B, S, H), final hidden and cell (torch layout)."""
        length = embedded.shape[1]
        if attention_mask is None:
            outputs, state = self.rnn(embedded)  # (B, S, H)
        else:
            mask = attention_mask.bool()
            lengths = mask.sum(-1)
            if bool((lengths == 0).any()):
                raise ValueError(
                    "every source sequence needs at least one real token, but attention_mask has an all-padding row"
                )
            order = real_tokens_first(mask)
            if order is not None:
                embedded = embedded.gather(1, order[..., None].expand_as(embedded))
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_outputs, state = self.rnn(packed)
            outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=length)  # (B, S, H)
            if order is not None:
                outputs = torch.zeros_like(outputs).scatter(1, order[..., None].expand_as(outputs), outputs)
        hidden, cell = state if isinstance(state, tuple) else (state, None)
        return outputs, hidden, cell


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
    inputs x_t fed to the recurrence (B, T, E), and with coverage the coverage before each step (B, T, S)."""

    features: torch.Tensor
    state: RNNDecoderState
    attention_weights: torch.Tensor | None
    recurrent_states: torch.Tensor
    contexts: torch.Tensor | None = None
    inputs: torch.Tensor | None = None
    coverages: torch.Tensor | None = None


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
        rnn: nn.RNNBase,
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
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        hidden = state.hidden.transpose(0, 1).contiguous()  # (L, B, H)
        cell = state.cell.transpose(0, 1).contiguous() if state.cell is not None else None
        if cell is None:
            outputs, hidden = self.rnn(rnn_input, hidden)  # (B, T, H), (L, B, H)
            return outputs, hidden.transpose(0, 1), None
        outputs, (hidden, cell) = self.rnn(rnn_input, (hidden, cell))
        return outputs, hidden.transpose(0, 1), cell.transpose(0, 1)

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
        outputs, hidden, cell = self._recur(rnn_input, state)  # (B, T, H)
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
        return DecoderSteps(features, new_state, weights, outputs, step_context, embedded, coverage)

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
    ) -> RNNDecoderOutput:
        """Decode T tokens from `state` (a cached state) or, if None, from the encoder through the bridge."""
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

        checkpointing = self.gradient_checkpointing and self.training
        if input_sampler is None and not self.steps_one_at_a_time:
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
                              start=start, previous=previous)
            tensors = (embedded[:, start:end], state.hidden, state.cell, state.attentional, state.projected_keys,
                       state.coverage, context, encoder_hidden_states)
            hidden, cell, attentional, coverage, *per_step = (
                self._gradient_checkpointing_func(segment, *tensors) if checkpointing else segment(*tensors)
            )
            state = dataclasses.replace(state, hidden=hidden, cell=cell, attentional=attentional, coverage=coverage,
                                        length=state.length + end - start)
            pieces.append(tuple(per_step))
        # features, weights, outputs, contexts, inputs, coverages: each (B, T, *) or None throughout
        joined = [None if piece[0] is None else torch.cat(piece, dim=1) for piece in zip(*pieces)]
        features, weights, outputs, contexts, inputs, coverages = joined
        return RNNDecoderOutput(features, state, weights, outputs, contexts, inputs, coverages)

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
    ) -> tuple[torch.Tensor | None, ...]:
        """Target steps start .. start + T of the (B, T, E) `embedded` from the given state tensors, in one call or
        one step at a time: the state tensors after them (hidden, cell, attentional, coverage), then the per-step
        tensors (features, weights, top-layer outputs, contexts, inputs, coverages). Tensors in, tensors out, so a
        checkpoint can recompute it (reentrant or not)."""
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

        def joined(name: str) -> torch.Tensor | None:
            values = [getattr(step, name) for step in steps]
            return None if values[0] is None else torch.cat(values, dim=1)

        per_step = ("features", "weights", "outputs", "contexts", "inputs", "coverages")
        return (state.hidden, state.cell, state.attentional, state.coverage, *(joined(name) for name in per_step))
