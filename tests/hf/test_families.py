"""Every family of the registration table (hf_encdec.registration.FAMILIES) through the Hugging Face contract: each
Auto class of each family builds, saves and loads back with the same outputs, and each family's main class loads as
remote code where hf_encdec is not installed. A family added as a row of the table is covered here without a line
of test code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from hf_encdec.registration import FAMILIES, Family
from helpers import run_without_hf_encdec

pytestmark = pytest.mark.contract

SOURCE = torch.tensor([[5, 6, 7, 8, 9, 2], [10, 11, 12, 2, 0, 0]])
SOURCE_MASK = (SOURCE != 0).long()
TARGET = torch.tensor([[1, 13, 14, 15], [1, 16, 17, 18]])
PAIRS = [(family, auto_class) for family in FAMILIES for auto_class in family.models]
_BY_NAME = {family.name: family for family in FAMILIES}
#: (family, tiny config values): every family's tiny config, plus the switches that add modules of their own
REMOTE_ROWS = [pytest.param(family, family.tiny, id=family.name) for family in FAMILIES] + [
    pytest.param(
        _BY_NAME["rnn_seq2seq"],
        {**_BY_NAME["rnn_seq2seq"].tiny, "attention_type": "bahdanau", "input_feeding": False, "copy_mechanism": True,
         "coverage": True},
        id="rnn_seq2seq-copy-coverage",
    ),
    pytest.param(_BY_NAME["pointer_generator"], {**_BY_NAME["pointer_generator"].tiny, "coverage": True},
                 id="pointer_generator-coverage"),
]


def _inputs(family: Family) -> dict[str, torch.Tensor]:
    inputs = {"input_ids": SOURCE, "attention_mask": SOURCE_MASK}
    if family.is_seq2seq:
        inputs["decoder_input_ids"] = TARGET
    return inputs


def _output(outputs: object) -> torch.Tensor:
    logits = getattr(outputs, "logits", None)
    return logits if logits is not None else outputs.last_hidden_state


@pytest.mark.parametrize(("family", "auto_class"), PAIRS, ids=[f"{f.name}-{a.__name__}" for f, a in PAIRS])
def test_each_auto_class_builds_saves_and_loads_back(family: Family, auto_class: type, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = auto_class.from_config(AutoConfig.for_model(family.model_type, **family.tiny)).eval()
    assert type(model) is family.models[auto_class]
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == family.model_type
    assert set(saved["auto_map"]) == {"AutoConfig", *(auto.__name__ for auto in family.models)}
    loaded = auto_class.from_pretrained(tmp_path).eval()
    with torch.no_grad():  # equal weights; a loaded tensor's memory layout may move the last float bit
        expected, got = _output(model(**_inputs(family))), _output(loaded(**_inputs(family)))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


REMOTE_SCRIPT = """
import json, sys
sys.modules["hf_encdec"] = None  # hf_encdec must not be importable here
import torch
import transformers
model = getattr(transformers, sys.argv[2]).from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
inputs = {k: torch.tensor(v) for k, v in json.loads(sys.argv[3]).items()}
with torch.no_grad():
    result = {"logits": model(**inputs).logits.tolist()}
    if hasattr(model, "generate"):
        beams = {} if getattr(model, "generation_cache", "") == "none" else {"num_beams": 2}  # parallel: no beams
        result["generated"] = model.generate(inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                             max_new_tokens=4, do_sample=False, **beams).tolist()
print(json.dumps(result))
"""


@pytest.mark.parametrize(("family", "tiny"), REMOTE_ROWS)
def test_each_family_loads_as_remote_code_without_hf_encdec(family: Family, tiny: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = family.main_class(AutoConfig.for_model(family.model_type, **tiny)).eval()
    model.save_pretrained(tmp_path / "model")
    inputs = _inputs(family)
    result = run_without_hf_encdec(REMOTE_SCRIPT, str(tmp_path / "model"), family.main_auto_class.__name__,
                                   json.dumps({k: v.tolist() for k, v in inputs.items()}), home=tmp_path / "hf_home")
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(result["logits"]), model(**inputs).logits, atol=1e-5, rtol=1e-5)
        if "generated" in result:
            beams = {} if getattr(model, "generation_cache", "") == "none" else {"num_beams": 2}
            expected = model.generate(SOURCE, attention_mask=SOURCE_MASK, max_new_tokens=4, do_sample=False, **beams)
            assert result["generated"] == expected.tolist()


def test_the_seq2seq_families_are_the_ones_hf_encdec_train_offers() -> None:
    from hf_encdec.training.presets import PRESETS, SEQ2SEQ_MODEL_TYPES

    assert set(SEQ2SEQ_MODEL_TYPES) == {f.model_type for f in FAMILIES if AutoModelForSeq2SeqLM in f.models}
    assert {model_type for model_type, _ in PRESETS.values()} <= set(SEQ2SEQ_MODEL_TYPES)


SEQ2SEQ = [family for family in FAMILIES if family.is_seq2seq]


@pytest.mark.parametrize("family", SEQ2SEQ, ids=[family.name for family in SEQ2SEQ])
def test_a_resized_model_with_one_shared_vocabulary_saves_a_config_that_loads(family: Family, tmp_path: Path) -> None:
    """resize_token_embeddings sets only config.vocab_size; with shared embeddings the target vocabulary follows,
    or the saved config (vocab_size != decoder_vocab_size) would be refused on loading."""
    config = AutoConfig.for_model(family.model_type, **{**family.tiny, "share_encoder_decoder_embeddings": True})
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(config).eval()
    new_size = config.vocab_size + 7
    model.resize_token_embeddings(new_size, mean_resizing=False)
    assert (model.config.vocab_size, model.config.decoder_vocab_size) == (new_size, new_size)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    inputs = {**_inputs(family), "input_ids": SOURCE.masked_fill(SOURCE == 9, new_size - 1)}  # a new token
    with torch.no_grad():
        torch.testing.assert_close(_output(loaded(**inputs)), _output(model(**inputs)), rtol=0, atol=1e-6)


HEADS = [(family, model) for family in FAMILIES for auto, model in family.models.items() if auto.__name__ != "AutoModel"]


@pytest.mark.parametrize(("family", "model_class"), HEADS, ids=[m.__name__ for _, m in HEADS])
def test_the_trainer_finds_exactly_labels_so_it_reports_an_evaluation_loss(family: Family, model_class: type) -> None:
    # Trainer.prediction_step computes a loss only when every parameter it found with "label" in its name is in the
    # batch: a second one (DecoderForCausalLM's shift_labels did) silently drops eval_loss and perplexity.
    from transformers.utils import find_labels

    assert find_labels(model_class) == ["labels"]
