"""transformers' own common model tests (`ModelTesterMixin`, `ConfigTester`), run on every family.

The test files come from the source distribution of the installed transformers release, fetched and cached by
`scripts/setup.sh` (`scripts/fetch_transformers_tests.py`), so a new release's new expectations show up here the day
it is installed. A test that does not apply to a family is deselected by name in `NOT_APPLICABLE`, with the reason;
`test_every_deselected_test_exists` keeps that table honest when transformers renames or drops a test.
"""

from __future__ import annotations

import sys
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM,
                          AutoModelForSequenceClassification, AutoModelForTokenClassification)
from transformers.models.auto import modeling_auto

from hf_encdec.registration import FAMILIES, Family

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from fetch_transformers_tests import package_dir  # noqa: E402

_CACHED = package_dir()
if not (_CACHED / "complete").is_file():
    raise RuntimeError(
        f"transformers {transformers.__version__}'s common tests are not in {_CACHED}: run `bash scripts/setup.sh` "
        "(it fetches them from the package index) or `python scripts/fetch_transformers_tests.py`"
    )
sys.path.insert(0, str(_CACHED))
from transformers_tests.test_configuration_common import ConfigTester  # noqa: E402
from transformers_tests.test_modeling_common import ModelTesterMixin, ids_tensor  # noqa: E402

pytestmark = pytest.mark.contract

BATCH, LENGTH, VOCAB, HIDDEN, HEADS, LAYERS = 3, 7, 99, 32, 4, 2
SPECIAL = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}

# test name -> why it does not apply; each family adds its own on top of COMMON_NOT_APPLICABLE
COMMON_NOT_APPLICABLE = {
    "test_generation_tester_mixin_inheritance": "the generation contract is tested by this library's own "
    "generate() tests (tests/models/test_transformers_contract.py, tests/properties/, the family tests); "
    "transformers' GenerationTesterMixin is not in its source distribution",
}


class FamilyTester:
    """The `model_tester` that ModelTesterMixin reads: sizes and `prepare_config_and_inputs_for_common`."""

    __test__ = False

    def __init__(self, parent: unittest.TestCase, config: Any, *, encoder_decoder: bool, **extra_inputs: Any) -> None:
        self.parent = parent
        self.config = config
        self.encoder_decoder = encoder_decoder
        self.extra_inputs = extra_inputs
        self.batch_size, self.seq_length, self.vocab_size = BATCH, LENGTH, VOCAB
        self.encoder_seq_length = self.decoder_seq_length = self.key_length = LENGTH
        self.hidden_size, self.num_attention_heads, self.num_hidden_layers = HIDDEN, HEADS, LAYERS
        self.is_training = True
        self.num_labels = 3

    def get_config(self) -> Any:
        return self.config

    def prepare_config_and_inputs_for_common(self) -> tuple[Any, dict[str, torch.Tensor]]:
        input_ids = ids_tensor([BATCH, LENGTH], VOCAB - 3) + 3  # no special tokens inside
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if self.encoder_decoder:
            decoder_ids = ids_tensor([BATCH, LENGTH], VOCAB - 3) + 3
            inputs.update(decoder_input_ids=decoder_ids, decoder_attention_mask=torch.ones_like(decoder_ids))
        inputs.update(self.extra_inputs)
        return self.config, inputs


# Auto class -> the name table of transformers that the common tests read to decide what applies to a class (which
# head gets labels, which class the inputs_embeds test checks). The tables list transformers' own classes; the
# fixture below adds this library's for the duration of the module, as registering with the Auto classes does not.
NAME_TABLES = {
    AutoModel: modeling_auto.MODEL_MAPPING_NAMES,
    AutoModelForSeq2SeqLM: modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    AutoModelForCausalLM: modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    AutoModelForMaskedLM: modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    AutoModelForSequenceClassification: modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    AutoModelForTokenClassification: modeling_auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
}


@pytest.fixture(scope="module", autouse=True)
def _our_classes_in_transformers_name_tables() -> Iterator[None]:
    added = []
    for family in FAMILIES:
        for auto_class, model_class in family.models.items():
            key = f"hf_encdec_test:{model_class.__name__}"  # not a model_type: Auto lookups never reach it
            NAME_TABLES[auto_class][key] = model_class.__name__
            added.append((auto_class, key))
    yield
    for auto_class, key in added:
        del NAME_TABLES[auto_class][key]


TINY_BLOCK = {"vocab_size": VOCAB, "hidden_size": HIDDEN, "num_attention_heads": HEADS, "intermediate_size": 37,
              "max_position_embeddings": 64, "dropout": 0.0, "attention_dropout": 0.0, **SPECIAL}
TINY_SEQ2SEQ = {**TINY_BLOCK, "encoder_layers": LAYERS, "decoder_layers": LAYERS, "decoder_start_token_id": 1}


def family_test(
    name: str,
    family_name: str,
    config_values: dict[str, Any],
    *,
    common_properties: list[str] | None = None,
    not_applicable: dict[str, str] | None = None,
    config_steps_not_applicable: dict[str, str] | None = None,
    attentions: bool = True,
) -> type[unittest.TestCase]:
    """A TestCase running ModelTesterMixin and ConfigTester on every model class of one family (the registration
    table's row), with its deselected tests removed."""
    family: Family = next(family for family in FAMILIES if family.name == family_name)
    config_class, encoder_decoder = family.config_class, family.is_seq2seq

    class FamilyTest(ModelTesterMixin, unittest.TestCase):
        all_model_classes = tuple(family.models.values())
        is_encoder_decoder = encoder_decoder
        has_attentions = attentions

        def setUp(self) -> None:
            self.model_tester = FamilyTester(self, config_class(**config_values), encoder_decoder=encoder_decoder)
            self.config_tester = ConfigTester(
                self, config_class=config_class, common_properties=common_properties, **config_values
            )

        def test_config(self) -> None:
            for step in config_steps_not_applicable or {}:
                setattr(self.config_tester, step, lambda: None)
            self.config_tester.run_common_tests()

    deselected = {**COMMON_NOT_APPLICABLE, **(not_applicable or {})}
    for test in deselected:
        setattr(FamilyTest, test, None)  # not callable: unittest's loader does not collect it
    FamilyTest.deselected = deselected
    FamilyTest.__name__ = FamilyTest.__qualname__ = name
    return FamilyTest


TransformerSeq2SeqTest = family_test("TransformerSeq2SeqTest", "transformer", TINY_SEQ2SEQ)
TransformerRopeGQATest = family_test(
    "TransformerRopeGQATest", "transformer",
    {**TINY_SEQ2SEQ, "position_type": "rope", "num_key_value_heads": 2, "norm_type": "rmsnorm", "norm_position": "pre",
     "hidden_act": "swiglu", "scale_embedding": False},
)
EXTRA_OUTPUTS = (
    "counts the fields of a plain Seq2SeqLMOutput; this head returns {} as well (the attentions themselves are "
    "checked by test_retain_grad_hidden_states_attentions)"
)
PointerGeneratorTest = family_test(
    "PointerGeneratorTest", "pointer_generator", TINY_SEQ2SEQ,
    not_applicable={
        "test_attention_outputs": EXTRA_OUTPUTS.format("p_gen and the copy distribution"),
        "test_encoder_decoder_loss_no_double_shift": "differentiates the loss with respect to `logits`; the "
        "pointer-generator's loss is the negative log of the mixed vocabulary and copy probabilities, computed from "
        "the parts (tests/models/test_pointer_generator.py checks it against the mixture)",
    },
)
NATTest = family_test(
    "NATTest", "nat", {**TINY_SEQ2SEQ, "mask_token_id": 3},
    not_applicable={
        "test_attention_outputs": EXTRA_OUTPUTS.format("the length logits"),
        "test_encoder_decoder_loss_no_double_shift": "expects the cross-entropy of every target position; the CMLM "
        "loss is taken on the masked positions plus the weighted length loss (tests/models/test_nat.py)",
    },
    config_steps_not_applicable={
        step: "builds a config without mask_token_id, which NATConfig requires (a NAT without its placeholder token "
        "is refused, not guessed)"
        for step in ("check_config_arguments_init", "check_config_can_be_init_without_params")
    },
)
EncoderTest = family_test("EncoderTest", "encoder", {**TINY_BLOCK, "num_hidden_layers": LAYERS})
DecoderTest = family_test("DecoderTest", "decoder", {**TINY_BLOCK, "num_hidden_layers": LAYERS})
# embedding_size = hidden_size: transformers' test_hidden_states_output reads every hidden state, the embeddings
# included, at hidden_size (E != H is covered by tests/models/test_rnn_seq2seq.py)
TINY_RNN_SEQ2SEQ = {"vocab_size": VOCAB, "embedding_size": HIDDEN, "hidden_size": HIDDEN, "encoder_layers": LAYERS,
                    "decoder_layers": LAYERS, "dropout": 0.0, **SPECIAL, "decoder_start_token_id": 1}
RNNSeq2SeqTest = family_test(
    "RNNSeq2SeqTest", "rnn_seq2seq", {**TINY_RNN_SEQ2SEQ, "share_encoder_decoder_embeddings": True},
    # num_attention_heads does not apply: one attention over the encoder states (see RNNSeq2SeqConfig.attribute_map)
    common_properties=["hidden_size", "num_hidden_layers"],
    # attentions=False skips test_attention_outputs, which counts the self-attention layers of encoder and decoder: a
    # recurrent model has none. The decoder's one attention over the source is cross_attentions, (B, 1, T, S), and
    # alignments, (B, T, S) (tests/models/test_rnn_seq2seq.py, tests/properties/test_rnn_properties.py)
    attentions=False,
)
RNNSeq2SeqSeparateEmbeddingsTest = family_test(
    "RNNSeq2SeqSeparateEmbeddingsTest", "rnn_seq2seq",
    {**TINY_RNN_SEQ2SEQ, "share_encoder_decoder_embeddings": False, "attention_type": "bahdanau", "rnn_type": "gru"},
    common_properties=["hidden_size", "num_hidden_layers"],
    attentions=False,
    not_applicable={
        "test_inputs_embeds_matches_input_ids": "embeds the decoder's ids with get_input_embeddings(), the encoder's "
        "table; with separate tables the decoder reads its own (get_decoder().embed_tokens), and "
        "decoder_inputs_embeds from that table equal decoder_input_ids (tests/models/test_rnn_seq2seq.py, every "
        "sharing and tying setting)",
    },
)

FAMILY_TESTS = (TransformerSeq2SeqTest, TransformerRopeGQATest, PointerGeneratorTest, NATTest, EncoderTest, DecoderTest,
                RNNSeq2SeqTest, RNNSeq2SeqSeparateEmbeddingsTest)


@pytest.mark.parametrize("family", FAMILY_TESTS, ids=lambda family: family.__name__)
def test_every_deselected_test_exists(family: type[unittest.TestCase]) -> None:
    """A deselected name that transformers no longer has would hide nothing; drop it from the table."""
    upstream = {name for name in dir(ModelTesterMixin) if name.startswith("test_")}
    assert set(family.deselected) <= upstream, sorted(set(family.deselected) - upstream)


def test_every_family_is_tested() -> None:
    tested = {test.all_model_classes for test in FAMILY_TESTS}
    assert all(tuple(family.models.values()) in tested for family in FAMILIES)
