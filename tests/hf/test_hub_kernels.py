"""Loading never reaches the Hub for compute kernels.

From transformers 5.25 `from_pretrained` turns `use_kernels` on unless told otherwise: on a GPU it swaps layers such
as transformers' GELU and SiLU activations for kernels downloaded from the Hub at load. Every load of this library
passes `no_hub_kernels()` (models/transformers_contract.py). A model's `use_kernels` says whether transformers
kernelized it; on a CPU no Hub kernel applies, so what these tests can show here is that flag, on the same model
where a plain load sets it, and that the loads succeed with the Hub unreachable.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from packaging.version import Version
from transformers import AutoModelForSeq2SeqLM

from helpers import build, word_level_tokenizer
from hf_encdec.inference import load_translator
from hf_encdec.models.transformers_contract import no_hub_kernels
from hf_encdec.training.scripts import ModelArguments, build_model

pytestmark = pytest.mark.contract

#: whether a plain `from_pretrained` of the installed transformers kernelizes (5.25 on, with `kernels` installed)
PLAIN_LOAD_KERNELIZES = (
    Version(transformers.__version__) >= Version("5.25") and importlib.util.find_spec("kernels") is not None
)
WORDS = [f"w{i}" for i in range(94)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved seq2seq folder whose feed-forward layers use transformers' GELU, a layer Hub kernels replace."""
    folder = tmp_path_factory.mktemp("gelu-model")
    model = build("seq2seq", {"hidden_act": "gelu"})
    assert any(type(module).__name__ == "GELUActivation" for module in model.modules())
    model.save_pretrained(folder)
    word_level_tokenizer(WORDS).save_pretrained(folder)
    return folder


def test_no_hub_kernels_unless_the_user_turns_them_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    assert no_hub_kernels() == {"use_kernels": False}
    for value, expected in (("1", True), ("yes", True), ("0", False), ("off", False)):
        monkeypatch.setenv("USE_HUB_KERNELS", value)
        assert no_hub_kernels() == {"use_kernels": expected}


def test_the_librarys_loads_do_not_kernelize(model_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    plain = AutoModelForSeq2SeqLM.from_pretrained(model_folder)
    assert plain.use_kernels is PLAIN_LOAD_KERNELIZES  # transformers' own default on this release
    translator, tokenizer = load_translator(model_folder, device="cpu")
    assert translator.use_kernels is False
    fine_tuned = build_model(AutoModelForSeq2SeqLM, ModelArguments(model_name_or_path=str(model_folder)), tokenizer,
                             seed=0)
    assert fine_tuned.use_kernels is False
    with torch.no_grad():  # the same weights as the plain load, whatever transformers did to its layers
        source = tokenizer(["w5 w6 w7"], return_tensors="pt")
        assert torch.equal(translator.generate(**source, max_new_tokens=4), plain.generate(**source, max_new_tokens=4))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


def test_translating_works_with_the_hub_unreachable(model_folder: Path, tmp_path: Path) -> None:
    """`hf-encdec translate` with the Hub at a closed port and the offline switch off: loading needs no network."""
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "USE_HUB_KERNELS")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", PYTHONPATH=str(ROOT / "src"))
    (tmp_path / "input.txt").write_text("w5 w6 w7\nw8 w9\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "hf_encdec", "translate", str(model_folder), "--input", str(tmp_path / "input.txt"),
         "--max-new-tokens", "4"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 2
