"""Warm start from a finished run (`hf-encdec train --init-from RUN`) and the glancing-ratio schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TrainerState

from hf_encdec.models.configuration_nat import NATConfig
from hf_encdec.models.configuration_pointer_generator import PointerGeneratorConfig
from hf_encdec.models.modeling_nat import NATForConditionalGeneration
from hf_encdec.models.modeling_pointer_generator import PointerGeneratorForConditionalGeneration
from hf_encdec.training.recipe import GlancingScheduleCallback
from hf_encdec.training.warm_start import WarmStartError, warm_start
from helpers import word_level_tokenizer
from variants import TINY_TRANSFORMER

WORDS = [str(i) for i in range(40)]


def _teacher_run(folder: Path) -> Path:
    tokenizer = word_level_tokenizer(WORDS)
    torch.manual_seed(0)
    config = PointerGeneratorConfig(**{**TINY_TRANSFORMER, "vocab_size": len(tokenizer), "encoder_layers": 2,
                                       "decoder_layers": 2})
    PointerGeneratorForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _nat(decoder_layers: int = 2, **overrides: object) -> NATForConditionalGeneration:
    tokenizer = word_level_tokenizer(WORDS)
    torch.manual_seed(1)
    config = NATConfig(**{**TINY_TRANSFORMER, "vocab_size": len(tokenizer), "encoder_layers": 2,
                          "decoder_layers": decoder_layers, "mask_token_id": tokenizer.mask_token_id, **overrides})
    return NATForConditionalGeneration(config)


def test_a_nat_takes_every_weight_of_its_teacher_that_fits_and_keeps_the_rest(tmp_path: Path) -> None:
    run = _teacher_run(tmp_path / "teacher")
    teacher = PointerGeneratorForConditionalGeneration.from_pretrained(run).state_dict()
    model = _nat(decoder_layers=3)
    fresh_length_head = model.length_head.weight.clone()
    report = warm_start(model, run, word_level_tokenizer(WORDS))
    own = model.state_dict()
    for name in ("model.encoder.embed_tokens.weight", "model.encoder.layers.1.self_attn.q_proj.weight",
                 "model.decoder.layers.1.cross_attn.v_proj.weight", "lm_head.weight"):
        assert torch.equal(own[name], teacher[name]), name
    assert torch.equal(model.lm_head.weight, model.model.encoder.embed_tokens.weight)  # still tied
    assert torch.equal(model.length_head.weight, fresh_length_head)
    assert "length_head.weight" in report["fresh"] and "model.decoder.layers.2.self_attn.q_proj.weight" in report["fresh"]
    assert "lm_head.weight" not in report["fresh"]  # taken with the embeddings it is tied to
    assert report["unused"] == sorted(name for name in teacher if name.startswith("copy_mechanism."))


def test_warm_start_refuses_another_tokenizer_a_missing_run_and_a_model_of_no_shared_shape(tmp_path: Path) -> None:
    run = _teacher_run(tmp_path / "teacher")
    with pytest.raises(WarmStartError, match="trained with another tokenizer \\(45 tokens\\) than this run's \\(50"):
        warm_start(_nat(), run, word_level_tokenizer(WORDS + [f"x{i}" for i in range(5)]))
    with pytest.raises(WarmStartError, match="model.safetensors does not exist"):
        warm_start(_nat(), tmp_path / "nothing", word_level_tokenizer(WORDS))
    with pytest.raises(WarmStartError, match="no weight of .* has a name and shape"):
        warm_start(_nat(hidden_size=48, intermediate_size=41), run, word_level_tokenizer(WORDS))


def test_the_glancing_ratio_anneals_linearly_over_the_run_from_the_configs() -> None:
    model = _nat(glancing_ratio=0.5)
    callback = GlancingScheduleCallback(0.3)
    ratios = []
    for step in (0, 50, 100, 120):
        callback.on_step_begin(None, TrainerState(global_step=step, max_steps=100), None, model=model)
        ratios.append(round(model.glancing_ratio, 6))
    assert ratios == [0.5, 0.4, 0.3, 0.3]
    with pytest.raises(ValueError, match="glancing_ratio_end must lie in \\[0, 1\\], got 2"):
        GlancingScheduleCallback(2)
