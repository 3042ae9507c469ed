"""Checkpoints users saved before the family-neutral core (tests/fixtures/checkpoints, written by the code of commit
1cab7bf) load with today's code and give identical outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM

import hf_encdec  # noqa: F401  (registers the families)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
FOLDERS = sorted(path for path in FIXTURES.iterdir() if (path / "config.json").is_file())
AUTO_CLASSES = {"ForConditionalGeneration": AutoModelForSeq2SeqLM, "ForCausalLM": AutoModelForCausalLM,
                "ForMaskedLM": AutoModelForMaskedLM}


def _load(folder: Path) -> torch.nn.Module:
    architecture = json.loads((folder / "config.json").read_text())["architectures"][0]
    auto_class = next(auto for suffix, auto in AUTO_CLASSES.items() if architecture.endswith(suffix))
    return auto_class.from_pretrained(folder).eval()


def test_every_family_has_a_fixture() -> None:
    model_types = {json.loads((folder / "config.json").read_text())["model_type"] for folder in FOLDERS}
    assert model_types == {"hf_encdec_transformer", "hf_encdec_pointer_generator", "hf_encdec_encoder",
                           "hf_encdec_decoder", "hf_encdec_rnn_seq2seq"}


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_a_saved_checkpoint_gives_the_outputs_it_gave_when_saved(folder: Path) -> None:
    model = _load(folder)
    saved = load_file(folder / "expected_outputs.safetensors")
    source, mask, target = saved["source"], saved["source_mask"], saved["target"]
    with torch.no_grad():
        if "greedy" not in saved:
            logits = model(input_ids=source, attention_mask=mask).logits
        elif "beam" not in saved:
            logits = model(input_ids=target).logits
            assert torch.equal(model.generate(target, max_new_tokens=6, min_new_tokens=6, do_sample=False), saved["greedy"])
        else:
            logits = model(input_ids=source, attention_mask=mask, decoder_input_ids=target).logits
            greedy = model.generate(source, attention_mask=mask, max_new_tokens=6, min_new_tokens=6, do_sample=False)
            beam = model.generate(source, attention_mask=mask, max_new_tokens=6, num_beams=3, do_sample=False)
            assert torch.equal(greedy, saved["greedy"]) and torch.equal(beam, saved["beam"])
    torch.testing.assert_close(logits, saved["logits"], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_training_settings_of_an_old_config_load_but_are_not_saved_again(folder: Path, tmp_path: Path) -> None:
    saved = json.loads((folder / "config.json").read_text())
    model = _load(folder)
    for name in model.config.training_settings:
        if name in saved:
            assert getattr(model.config, name) == saved[name]  # read as before, for a run that continues training
    model.save_pretrained(tmp_path)
    resaved = json.loads((tmp_path / "config.json").read_text())
    assert model.config.training_settings and not set(model.config.training_settings) & set(resaved)
