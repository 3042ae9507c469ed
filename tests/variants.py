"""Every value of every variant switch, as parametrisation tables for the property tests.

Tiny sizes are odd and all different (batch 3, source 7, target 5, vocab 99, hidden 32, heads 4, kv heads 2,
ffn 37) so that a transposed axis fails loudly.
"""

from __future__ import annotations

from typing import Any

import pytest

BATCH, SOURCE_LEN, TARGET_LEN, VOCAB = 3, 7, 5, 99

TINY_TRANSFORMER: dict[str, Any] = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
    "dropout": 0.0,
    "attention_dropout": 0.0,
}

# switch -> every value it takes (the switch table of docs/variants.md)
TRANSFORMER_SWITCHES: dict[str, list[Any]] = {
    "norm_type": ["layernorm", "rmsnorm"],
    "norm_position": ["post", "pre"],
    "position_type": ["sinusoidal", "learned", "rope", "alibi"],
    "hidden_act": ["relu", "gelu", "gelu_new", "silu", "swiglu", "geglu"],
    "num_key_value_heads": [4, 2, 1],
    "attn_implementation": ["sdpa", "eager"],
}


def _one_at_a_time(switches: dict[str, list[Any]]) -> list[Any]:
    params = []
    for switch, values in switches.items():
        for value in values:
            params.append(pytest.param({switch: value}, id=f"{switch}={value}"))
    return params


# each switch value on its own, plus whole presets
TRANSFORMER_VARIANTS = _one_at_a_time(TRANSFORMER_SWITCHES) + [
    pytest.param(
        {"norm_type": "rmsnorm", "norm_position": "pre", "position_type": "rope", "hidden_act": "swiglu",
         "num_key_value_heads": 1, "attention_bias": False, "mlp_bias": False, "scale_embedding": False},
        id="llama-block",
    ),
    pytest.param(
        {"position_type": "alibi", "norm_position": "pre", "attn_implementation": "eager", "num_key_value_heads": 1},
        id="alibi-pre-mqa-eager",
    ),
    pytest.param(
        {"position_type": "learned", "embedding_norm": True, "hidden_act": "gelu", "layer_norm_eps": 1e-12},
        id="bert-block",
    ),
]


def split_attn(overrides: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(config kwargs, attn_implementation) from a variant's overrides."""
    overrides = dict(overrides)
    return overrides, overrides.pop("attn_implementation", "sdpa")


# ---- RNN seq2seq family ---------------------------------------------------------------------------------------------
# embedding 24 != hidden 32 (a bidirectional encoder gives 16 per direction), 2 encoder vs 3 decoder layers
TINY_RNN: dict[str, Any] = {
    "vocab_size": VOCAB,
    "embedding_size": 24,
    "hidden_size": 32,
    "encoder_layers": 2,
    "decoder_layers": 3,
    "dropout": 0.0,
    "max_position_embeddings": 64,
}
# the Transformer encoder of the hybrid rows (encoder_type="transformer")
TINY_RNN_ENCODER: dict[str, Any] = {"num_attention_heads": 4, "intermediate_size": 37}

# switch -> every value it takes (the switch table of docs/variants.md; defaults: lstm, luong_general + input
# feeding, linear)
RNN_SWITCHES: dict[str, list[Any]] = {
    "rnn_type": ["rnn", "gru", "lstm"],
    "attention_type": ["none", "bahdanau", "luong_dot", "luong_general", "luong_concat"],
    "input_feeding": [True, False],
    "bridge": ["zero", "last", "linear"],
    "bidirectional_encoder": [True, False],
    "encoder_type": ["rnn", "transformer"],
    "tie_word_embeddings": [True, False],
    "share_encoder_decoder_embeddings": [True, False],
    "copy_mechanism": [True, False],
    "coverage": [True, False],
}


def _rnn_row(overrides: dict[str, Any]) -> dict[str, Any]:
    """Complete a row with what its switch value implies: input feeding only with Luong attention, bridge='last'
    only with as many decoder as encoder layers."""
    row = dict(overrides)
    if row.get("encoder_type") == "transformer":
        row["encoder_config"] = {**TINY_RNN_ENCODER, **row.get("encoder_config", {})}
    if not str(row.get("attention_type", "luong")).startswith("luong"):
        row.setdefault("input_feeding", False)
    if row.get("bridge") == "last":
        row.setdefault("decoder_layers", TINY_RNN["encoder_layers"])
    return row


RNN_VARIANTS = [
    pytest.param(_rnn_row({switch: value}), id=f"{switch}={value}")
    for switch, values in RNN_SWITCHES.items()
    for value in values
] + [
    pytest.param(
        {"rnn_type": "gru", "attention_type": "none", "input_feeding": False, "bidirectional_encoder": False,
         "encoder_layers": 1, "decoder_layers": 1},
        id="cho-2014",
    ),
    pytest.param(
        {"rnn_type": "gru", "attention_type": "bahdanau", "input_feeding": False, "encoder_layers": 1, "decoder_layers": 1},
        id="bahdanau-2015",
    ),
    pytest.param(
        {"rnn_type": "lstm", "attention_type": "luong_general", "bridge": "last", "decoder_layers": 2},
        id="luong-2015-last-bridge",
    ),
    pytest.param(
        {"rnn_type": "rnn", "attention_type": "luong_concat", "input_feeding": False, "tie_word_embeddings": True,
         "bidirectional_encoder": False},
        id="elman-concat-tied-projection",
    ),
    pytest.param(
        _rnn_row({"encoder_type": "transformer", "rnn_type": "gru", "attention_type": "bahdanau", "input_feeding": False,
                  "encoder_config": {"norm_position": "pre", "position_type": "rope"}, "attn_implementation": "eager"}),
        id="transformer-gru-bahdanau-eager",
    ),
    pytest.param(
        {"rnn_type": "lstm", "attention_type": "bahdanau", "input_feeding": False, "encoder_layers": 1,
         "decoder_layers": 1, "share_encoder_decoder_embeddings": True, "copy_mechanism": True, "coverage": True},
        id="see-2017",
    ),
    pytest.param(
        {"rnn_type": "gru", "attention_type": "luong_dot", "input_feeding": False, "copy_mechanism": True,
         "coverage": True},
        id="gru-dot-copy-coverage",
    ),
    pytest.param(
        {"rnn_type": "rnn", "attention_type": "luong_concat", "copy_mechanism": True, "coverage": True,
         "tie_word_embeddings": True},
        id="elman-concat-copy-coverage-feeding",
    ),
    pytest.param(
        _rnn_row({"encoder_type": "transformer", "attention_type": "none", "input_feeding": False, "bridge": "zero",
                  "embedding_size": 32, "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True}),
        id="transformer-lstm-context-shared",
    ),
]
