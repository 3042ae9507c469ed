"""Named model sizes for `hf-encdec train --preset NAME`, and JSON config files for anything else.

A preset is a model type plus config values (listed in the family's row of `hf_encdec.registration.FAMILIES`); the
vocabulary size and special-token ids always come from the tokenizer. A config file is a JSON object with
`model_type` (one of the seq2seq families) and any config fields.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from ..registration import presets, seq2seq_model_types

#: preset name -> (model_type, config values) of the seq2seq families (the ones `hf-encdec train` trains); each
#: family's presets are in its row of the registration table, the encoder/decoder ones serve examples/run_*.py
SEQ2SEQ_MODEL_TYPES = seq2seq_model_types()
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    name: row for name, row in presets().items() if row[0] in SEQ2SEQ_MODEL_TYPES
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
        # a run's config.json records its tokenizer: a run trained from that config records its own
        values.pop("tokenizer_fingerprint", None)
        if model_type not in SEQ2SEQ_MODEL_TYPES:
            raise ValueError(
                f"config file {path}: model_type {model_type!r} is not a seq2seq family; valid: {SEQ2SEQ_MODEL_TYPES}"
            )
    values.update(overrides or {})
    # each family takes the special tokens it declares (mask_token_id is the NAT family's)
    declared = {field.name for field in dataclasses.fields(CONFIG_MAPPING[model_type])}
    values.update(vocab_size=vocab_size, **{k: v for k, v in special_tokens.items() if k in declared})
    return AutoConfig.for_model(model_type, **values)
