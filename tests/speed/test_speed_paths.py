"""`apply_speed_paths` against the plain model it speeds up: for every family of the registration table (and the
switches that add modules of their own), the same loss, gradients and logits, and the same tokens from
`generate()` in greedy, beam and sampling mode with and without the cache; a checkpoint saved from a sped-up model
is the plain model (no speed code, loads as remote code without hf_encdec); the entry points' switch."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoConfig

from helpers import word_level_tokenizer
from hf.test_families import REMOTE_SCRIPT
from hf_encdec.models.attention import MultiHeadAttention
from hf_encdec.models.feed_forward import GatedFeedForward
from hf_encdec.models.rnn_layers import LayeredLSTM
from hf_encdec.models.transformer_layers import TransformerStack
from hf_encdec.registration import FAMILIES, Family
from hf_encdec.speed import SPEED_PATHS, apply_speed_paths, speed_up
from hf_encdec.speed.cache import KeptMaskStack
from hf_encdec.speed.projections import ProjectionLinear
from hf_encdec.speed.recurrent import StepLSTM
from hf_encdec.speed.training import BoolDropoutAttention, Dropout, GatedProductFeedForward

SOURCE = torch.randint(5, 99, (3, 7))
SOURCE_MASK = torch.tensor([[1] * 7, [1] * 7, [1] * 4 + [0] * 3])
TARGET = torch.randint(5, 99, (3, 5))
_BY_NAME = {family.name: family for family in FAMILIES}
#: every family's tiny config, plus the switches that add modules or losses of their own
ROWS = [pytest.param(family, family.tiny, id=family.name) for family in FAMILIES] + [
    pytest.param(_BY_NAME["pointer_generator"], {**_BY_NAME["pointer_generator"].tiny, "coverage": True},
                 id="pointer_generator-coverage"),
    pytest.param(
        _BY_NAME["rnn_seq2seq"],
        {**_BY_NAME["rnn_seq2seq"].tiny, "attention_type": "bahdanau", "rnn_type": "gru", "copy_mechanism": True,
         "coverage": True},
        id="rnn_seq2seq-gru-copy-coverage",
    ),
    pytest.param(
        _BY_NAME["decoder"],
        {**_BY_NAME["decoder"].tiny, "hidden_act": "swiglu", "norm_type": "rmsnorm", "norm_position": "pre",
         "position_type": "rope"},
        id="decoder-llama-block",
    ),
]


def _plain_model(family: Family, tiny: dict) -> nn.Module:
    # both sides draw the same random numbers only without dropout, so training is compared at p = 0 (the
    # dropout module is tested on its own in test_training_paths.py); label smoothing reaches every loss path
    fields = {f.name for f in dataclasses.fields(family.config_class)}
    settings = {name: 0.0 for name in ("dropout", "attention_dropout", "activation_dropout") if name in fields}
    if "label_smoothing" in fields:
        settings["label_smoothing"] = 0.1
    torch.manual_seed(0)
    return family.main_class(AutoConfig.for_model(family.model_type, **{**tiny, **settings}))


def _inputs(family: Family) -> dict[str, torch.Tensor]:
    labels = TARGET.clone() if family.is_seq2seq else SOURCE.masked_fill(SOURCE_MASK == 0, -100)
    labels[0, -2:] = -100
    return {"input_ids": SOURCE, "attention_mask": SOURCE_MASK, "labels": labels}


GENERATE_MODES = {
    "greedy": {"do_sample": False},
    "beam": {"do_sample": False, "num_beams": 3},
    "sampling": {"do_sample": True, "top_k": 0},
}


def _run(model: nn.Module, family: Family) -> dict[str, object]:
    results: dict[str, object] = {}
    model.train()
    model.zero_grad()
    torch.manual_seed(0)  # the same random draws on both sides (the NAT family masks targets at random)
    loss = model(**_inputs(family)).loss
    loss.backward()
    results["loss"] = loss.detach()
    results["grads"] = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.eval()
    inputs = {k: v for k, v in _inputs(family).items() if k != "labels"}
    with torch.no_grad():
        results["logits"] = model(**inputs, **({"decoder_input_ids": TARGET} if family.is_seq2seq else {})).logits
        if not hasattr(model, "generate"):
            return results
        parallel = getattr(model, "generation_cache", "") == "none"  # a parallel decoder: greedy only
        for mode, settings in GENERATE_MODES.items():
            for use_cache in (True, False):
                if parallel and (mode != "greedy" or not use_cache):
                    continue
                torch.manual_seed(1)
                results[f"{mode}, cache={use_cache}"] = model.generate(
                    **inputs, max_new_tokens=6, use_cache=use_cache, **settings
                )
    return results


@pytest.mark.contract
@pytest.mark.parametrize(("family", "tiny"), ROWS)
def test_every_family_gives_the_plain_models_results_with_the_speed_paths(family: Family, tiny: dict) -> None:
    plain = _plain_model(family, tiny)
    fast = apply_speed_paths(copy.deepcopy(plain))
    expected, got = _run(plain, family), _run(fast, family)
    torch.testing.assert_close(got["loss"], expected["loss"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["logits"], expected["logits"], atol=1e-5, rtol=1e-5)
    assert got["grads"].keys() == expected["grads"].keys() and len(expected["grads"]) > 0
    for name, gradient in expected["grads"].items():
        torch.testing.assert_close(got["grads"][name], gradient, atol=1e-5, rtol=1e-4, msg=name)
    generated = [key for key in expected if "cache=" in key]
    assert len(generated) == (6 if family.name not in ("encoder", "nat") else 0 if family.name == "encoder" else 1)
    for key in generated:
        assert torch.equal(got[key], expected[key]), key


@pytest.mark.parametrize("product_way", ["swapped", "blocked", "rowsum"])
def test_each_fixed_product_way_generates_the_plain_models_tokens(product_way: str) -> None:
    family = _BY_NAME["transformer"]
    plain = _plain_model(family, family.tiny).eval()
    fast = apply_speed_paths(copy.deepcopy(plain), product_way=product_way)
    assert {module.product_way for module in fast.modules() if isinstance(module, ProjectionLinear)} == {product_way}
    for settings in GENERATE_MODES.values():
        torch.manual_seed(1)
        expected = plain.generate(SOURCE, max_new_tokens=8, **settings)
        torch.manual_seed(1)
        assert torch.equal(fast.generate(SOURCE, max_new_tokens=8, **settings), expected)


def test_the_modules_are_swapped_in_place_and_the_parameters_stay() -> None:
    decoder = _plain_model(_BY_NAME["decoder"], {**_BY_NAME["decoder"].tiny, "hidden_act": "swiglu", "dropout": 0.1})
    rnn = _plain_model(_BY_NAME["rnn_seq2seq"], _BY_NAME["rnn_seq2seq"].tiny)
    for model in (decoder, rnn):
        parameters = dict(model.named_parameters())
        kinds = {name: type(module) for name, module in model.named_modules()}
        assert apply_speed_paths(model) is model
        assert dict(model.named_parameters()) == parameters  # the same tensors under the same names
        for name, module in model.named_modules():
            expected = {nn.Linear: ProjectionLinear, nn.Dropout: Dropout, GatedFeedForward: GatedProductFeedForward,
                        LayeredLSTM: StepLSTM, MultiHeadAttention: BoolDropoutAttention,
                        TransformerStack: KeptMaskStack}.get(kinds[name], kinds[name])
            assert type(module) is expected, name
    assert any(isinstance(module, GatedProductFeedForward) for module in decoder.modules())
    assert any(isinstance(module, StepLSTM) for module in rnn.modules())
    assert decoder.lm_head.weight is decoder.get_input_embeddings().weight  # tying survives


def test_only_the_named_paths_are_applied_and_unknown_names_are_refused() -> None:
    model = _plain_model(_BY_NAME["transformer"], _BY_NAME["transformer"].tiny)
    apply_speed_paths(model, paths=["generation_cache"])
    assert model.generation_cache_factory is not None
    assert not any(isinstance(module, ProjectionLinear) for module in model.modules())
    assert "logits_and_loss" not in vars(model)  # the class's plain loss
    with pytest.raises(ValueError, match=r"unknown speed paths \['projection'\]; valid names: \('projections'"):
        apply_speed_paths(model, paths=["projection"])
    with pytest.raises(ValueError, match="product_way='fast' is not one of"):
        apply_speed_paths(model, product_way="fast")


def test_a_plain_model_returns_its_training_logits_and_a_sped_up_one_skips_them() -> None:
    family = _BY_NAME["pointer_generator"]
    plain = _plain_model(family, family.tiny).train()
    fast = apply_speed_paths(copy.deepcopy(plain))
    inputs = _inputs(family)
    assert plain(**inputs).logits is not None and fast(**inputs).logits is None  # the fused loss builds no logits
    torch.manual_seed(0)
    torch.testing.assert_close(fast(**inputs, skip_logits=False).logits, plain(**inputs).logits)
    assert plain(**inputs, skip_logits=True).logits is None


@pytest.mark.contract
def test_a_checkpoint_saved_from_a_sped_up_model_is_the_plain_model(tmp_path: Path) -> None:
    family = _BY_NAME["pointer_generator"]
    plain = _plain_model(family, {**family.tiny, "coverage": True}).eval()
    fast = apply_speed_paths(copy.deepcopy(plain))
    fast.save_pretrained(tmp_path / "model")
    files = sorted(path.name for path in (tmp_path / "model").iterdir())
    assert "modeling_pointer_generator.py" in files and not [name for name in files if "speed" in name]
    for path in (tmp_path / "model").glob("*.py"):  # no module of the payload imports anything of the speed paths
        imports = [line for line in path.read_text().splitlines() if line.startswith(("from ", "import "))]
        assert not [line for line in imports if "speed" in line or "hf_encdec" in line], path.name
    inputs = {"input_ids": SOURCE, "attention_mask": SOURCE_MASK, "decoder_input_ids": TARGET}
    completed = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(tmp_path / "model"), family.main_auto_class.__name__,
         json.dumps({k: v.tolist() for k, v in inputs.items()})],
        capture_output=True, text=True, timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf_home")},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(result["logits"]), plain(**inputs).logits, atol=1e-5, rtol=1e-5)
        expected = plain.generate(SOURCE, attention_mask=SOURCE_MASK, max_new_tokens=4, do_sample=False, num_beams=2)
    assert result["generated"] == expected.tolist()


def test_the_entry_points_switch_turns_the_speed_paths_off(monkeypatch: pytest.MonkeyPatch) -> None:
    family = _BY_NAME["transformer"]
    monkeypatch.setenv("HF_ENCDEC_SPEED_PATHS", "0")
    assert type(speed_up(_plain_model(family, family.tiny)).lm_head) is nn.Linear
    monkeypatch.delenv("HF_ENCDEC_SPEED_PATHS")
    assert type(speed_up(_plain_model(family, family.tiny)).lm_head) is ProjectionLinear
    assert os.environ.get("HF_ENCDEC_SPEED_PATHS") is None and set(SPEED_PATHS) >= {"projections", "fused_loss"}


@pytest.mark.parametrize("switch", ["1", "0"])
def test_the_library_loads_and_builds_models_with_the_speed_paths(
    switch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`load_translator` (translate, evaluate, translate-po, distill) and `training.scripts.build_model` (the
    example scripts) hand out sped-up models, the plain ones under `HF_ENCDEC_SPEED_PATHS=0`; a sped-up model
    translates as the plain one does."""
    from hf_encdec.inference import load_translator, translate
    from hf_encdec.training.scripts import ModelArguments, build_model

    monkeypatch.setenv("HF_ENCDEC_SPEED_PATHS", switch)
    family = _BY_NAME["transformer"]
    plain = _plain_model(family, family.tiny).eval()
    tokenizer = word_level_tokenizer([f"w{i}" for i in range(plain.config.vocab_size - 5)])
    plain.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = load_translator(tmp_path, device="cpu")
    built = build_model(type(plain), ModelArguments(model_name_or_path=str(tmp_path)), tokenizer, seed=0)
    for model in (loaded, built):
        assert isinstance(model.lm_head, ProjectionLinear) == (switch == "1")
        assert (model.generation_cache_factory is not None) == (switch == "1")
    texts = ["w1 w2 w3", "w4 w5"]
    assert translate(loaded, tokenizer, texts, num_beams=2, max_new_tokens=5, progress=False, protect=False) == (
        translate(plain, tokenizer, texts, num_beams=2, max_new_tokens=5, progress=False, protect=False)
    )
