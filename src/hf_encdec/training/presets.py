"""Named model sizes for `hf-encdec train --preset NAME`, and JSON config files for anything else.

A preset is a model type plus config values; the vocabulary size and special-token ids always come from the
tokenizer. A config file is a JSON object with `model_type` (one of the seq2seq families) and any config fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import AutoConfig, PreTrainedConfig

from ..models.configuration_transformer import TransformerBlockConfig

SEQ2SEQ_MODEL_TYPES = ("hf_encdec_transformer", "hf_encdec_pointer_generator", "hf_encdec_rnn_seq2seq")

# d_model 256, 3 + 3 pre-LN layers: fits a useful model into ~20 minutes of 2 CPU cores
SMALL: dict[str, Any] = {
    "hidden_size": 256,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "encoder_layers": 3,
    "decoder_layers": 3,
    "norm_position": "pre",
}

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # a few seconds a step-hundred on CPU: smoke tests and the quick mode
    "transformer-tiny": (
        "hf_encdec_transformer",
        {"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256, "encoder_layers": 2, "decoder_layers": 2},
    ),
    "transformer-small": ("hf_encdec_transformer", SMALL),
    # transformer-small with the copy mechanism of the pointer-generator (See et al. 2017) in its output layer
    "pointer-generator-small": ("hf_encdec_pointer_generator", SMALL),
    # Vaswani et al. 2017, Transformer-base
    "transformer-base": ("hf_encdec_transformer", {}),
    # the Llama-3 block in an encoder-decoder: pre-RMSNorm, RoPE, SwiGLU, GQA
    "transformer-small-llama": (
        "hf_encdec_transformer",
        {
            **TransformerBlockConfig.llama_kwargs(),
            "hidden_size": 256,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 704,
            "encoder_layers": 3,
            "decoder_layers": 3,
            "tie_word_embeddings": True,
            "dropout": 0.1,
        },
    ),
    # Bahdanau et al. 2015: bidirectional GRU encoder, additive attention feeding the recurrent input
    "rnn-gru-bahdanau": (
        "hf_encdec_rnn_seq2seq",
        {
            "rnn_type": "gru", "attention_type": "bahdanau", "input_feeding": False, "embedding_size": 256,
            "hidden_size": 256, "encoder_layers": 1, "decoder_layers": 1, "dropout": 0.2,
            "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True,
        },
    ),
    # Luong et al. 2015: stacked LSTMs, general score, attentional state with input feeding
    "rnn-lstm-luong": (
        "hf_encdec_rnn_seq2seq",
        {
            "rnn_type": "lstm", "attention_type": "luong_general", "input_feeding": True, "embedding_size": 256,
            "hidden_size": 256, "encoder_layers": 2, "decoder_layers": 2, "dropout": 0.2,
            "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True,
        },
    ),
    # the Transformer-encoder / RNN-decoder hybrid
    "hybrid-transformer-lstm": (
        "hf_encdec_rnn_seq2seq",
        {
            "encoder_type": "transformer", "rnn_type": "lstm", "attention_type": "luong_general",
            "input_feeding": True, "embedding_size": 256, "hidden_size": 256, "encoder_layers": 3,
            "decoder_layers": 1, "transformer_attention_heads": 4, "bridge": "zero", "dropout": 0.1,
            "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True,
        },
    ),
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def build_config(
    *,
    preset: str | None = None,
    config_file: str | Path | None = None,
    vocab_size: int,
    special_tokens: dict[str, int],
    overrides: dict[str, Any] | None = None,
) -> PreTrainedConfig:
    """The seq2seq config of a preset or a JSON file, sized to the tokenizer (`vocab_size`, special-token ids)."""
    if (preset is None) == (config_file is None):
        raise ValueError("give exactly one of preset and config_file")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(preset_names())}")
        model_type, values = PRESETS[preset]
        values = dict(values)
    else:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"config file {path} is not valid JSON: {error}") from error
        if not isinstance(values, dict) or "model_type" not in values:
            raise ValueError(f"config file {path} must be a JSON object with a 'model_type' field")
        model_type = values.pop("model_type")
        if model_type not in SEQ2SEQ_MODEL_TYPES:
            raise ValueError(
                f"config file {path}: model_type {model_type!r} is not a seq2seq family; valid: {SEQ2SEQ_MODEL_TYPES}"
            )
    values.update(overrides or {})
    values.update(vocab_size=vocab_size, **special_tokens)
    return AutoConfig.for_model(model_type, **values)
