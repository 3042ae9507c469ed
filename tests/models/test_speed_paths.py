"""The speed paths (models/speed_paths.py) against the plain torch / transformers path they replace: every family
gives the same outputs, losses, gradients and generated tokens with the switch on and off."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from transformers import AutoConfig
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from hf_encdec.models import speed_paths
from hf_encdec.registration import FAMILIES, Family

SOURCE = torch.randint(5, 99, (3, 7))
TARGET = torch.randint(5, 99, (3, 5))


def _model(family: Family) -> torch.nn.Module:
    torch.manual_seed(0)
    # both sides draw the same random numbers only without dropout, so training is compared at p = 0 and the
    # dropout path is tested on its own below
    fields = {f.name for f in dataclasses.fields(family.config_class)}
    no_dropout = {name: 0.0 for name in ("dropout", "attention_dropout", "activation_dropout") if name in fields}
    return family.main_class(AutoConfig.for_model(family.model_type, **family.tiny, **no_dropout))


def _inputs(family: Family) -> dict[str, torch.Tensor]:
    if family.is_seq2seq:
        return {"input_ids": SOURCE, "labels": TARGET}
    return {"input_ids": SOURCE, "labels": SOURCE}


def _run(model: torch.nn.Module, family: Family, enabled: bool) -> dict[str, object]:
    results: dict[str, object] = {}
    with speed_paths.speed_paths_enabled(enabled):
        model.train()
        model.zero_grad()
        loss = model(**_inputs(family)).loss
        loss.backward()
        results["loss"] = loss.detach()
        results["grads"] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        model.eval()
        with torch.no_grad():
            results["logits"] = model(**{k: v for k, v in _inputs(family).items() if k != "labels"},
                                      **({"decoder_input_ids": TARGET} if family.is_seq2seq else {})).logits
            if hasattr(model, "generate"):
                results["greedy"] = model.generate(SOURCE, max_new_tokens=6, do_sample=False)
                results["beam"] = model.generate(SOURCE, max_new_tokens=6, num_beams=3, do_sample=False)
    return results


@pytest.mark.parametrize("family", FAMILIES, ids=[family.name for family in FAMILIES])
def test_every_family_gives_the_same_results_on_both_paths(family: Family) -> None:
    model = _model(family)
    fast, plain = _run(model, family, True), _run(model, family, False)
    torch.testing.assert_close(fast["loss"], plain["loss"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast["logits"], plain["logits"], atol=1e-5, rtol=1e-5)
    assert len(fast["grads"]) == len(plain["grads"]) > 0
    for got, expected in zip(fast["grads"], plain["grads"]):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    for mode in ("greedy", "beam"):
        if mode in fast:
            assert torch.equal(fast[mode], plain[mode])


def test_dropout_keeps_a_bool_mask_only_on_the_speed_path() -> None:
    x = torch.randn(4, 6, requires_grad=True)
    saved: dict[bool, list[torch.dtype]] = {}
    for enabled in (True, False):
        dtypes: list[torch.dtype] = []

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            dtypes.append(tensor.dtype)
            return tensor

        with speed_paths.speed_paths_enabled(enabled), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            speed_paths.dropout(x, 0.5, training=True)
        saved[enabled] = dtypes
    assert saved[True] == [torch.bool] and torch.bool not in saved[False]


def test_the_beam_cache_is_swapped_only_on_the_speed_path() -> None:
    with speed_paths.speed_paths_enabled(False):
        plain = speed_paths.prepare_beam_cache(EncoderDecoderCache(DynamicCache(), DynamicCache()))
    fast = speed_paths.prepare_beam_cache(EncoderDecoderCache(DynamicCache(), DynamicCache()))
    assert type(plain) is EncoderDecoderCache and isinstance(fast, speed_paths.SourceSharedCache)


def test_the_environment_switches_the_speed_paths_off() -> None:
    code = "from hf_encdec.models import speed_paths; print(speed_paths.speed_paths_on())"
    for value, expected in (("0", "False"), ("1", "True")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"HF_ENCDEC_SPEED_PATHS": value, "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
        assert out.stdout.strip() == expected
