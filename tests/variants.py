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

# switch -> every value it takes (DESIGN.md's switch table)
TRANSFORMER_SWITCHES: dict[str, list[Any]] = {
    "norm_type": ["layernorm", "rmsnorm"],
    "norm_position": ["post", "pre"],
    "position_type": ["sinusoidal", "learned", "rope", "alibi"],
    "hidden_act": ["relu", "gelu", "silu", "swiglu", "geglu"],
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
