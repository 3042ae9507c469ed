"""Every preset builds a seq2seq model sized to the tokenizer; config files are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from hf_encdec.training import build_config, preset_names

SPECIAL = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1, "mask_token_id": 4}


@pytest.mark.parametrize("preset", [name for name in preset_names() if name != "transformer-base"])
def test_preset_builds_and_trains_a_step(preset: str) -> None:
    config = build_config(preset=preset, vocab_size=301, special_tokens=SPECIAL, overrides={"label_smoothing": 0.1})
    assert config.vocab_size == 301 and config.label_smoothing == 0.1
    model = AutoModelForSeq2SeqLM.from_config(config).train()
    ids = torch.randint(5, 301, (2, 6))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss)


def test_transformer_base_is_vaswani_base() -> None:
    config = build_config(preset="transformer-base", vocab_size=301, special_tokens=SPECIAL)
    assert (config.hidden_size, config.encoder_layers, config.intermediate_size, config.norm_position) == (512, 6, 2048, "post")


def test_config_files(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"model_type": "hf_encdec_rnn_seq2seq", "rnn_type": "gru", "attention_type": "bahdanau",
                                "input_feeding": False, "hidden_size": 32, "embedding_size": 24}))
    config = build_config(config_file=path, vocab_size=301, special_tokens=SPECIAL)
    assert config.rnn_type == "gru" and config.vocab_size == 301
    path.write_text(json.dumps({"model_type": "hf_encdec_decoder"}))
    with pytest.raises(ValueError, match="not a seq2seq family"):
        build_config(config_file=path, vocab_size=301, special_tokens=SPECIAL)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        build_config(config_file=path, vocab_size=301, special_tokens=SPECIAL)
    with pytest.raises(ValueError, match="unknown preset 'huge'.*transformer-small"):
        build_config(preset="huge", vocab_size=301, special_tokens=SPECIAL)
    with pytest.raises(FileNotFoundError):
        build_config(config_file=tmp_path / "missing.json", vocab_size=301, special_tokens=SPECIAL)
