"""The one table of which Auto class loads which model, applied once when `hf_encdec` is imported.

Registering makes `AutoConfig.for_model("hf_encdec_transformer")`, `AutoModelForSeq2SeqLM.from_config(...)` and
`from_pretrained(...)` work in this process; marking the classes for auto classes makes `save_pretrained` /
`push_to_hub` write `auto_map` and copy the model code, so a checkpoint also loads with `trust_remote_code=True`
where hf_encdec is not installed.
"""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .models.configuration_decoder import DecoderConfig
from .models.configuration_encoder import EncoderConfig
from .models.configuration_pointer_generator import PointerGeneratorConfig
from .models.configuration_rnn_seq2seq import RNNSeq2SeqConfig
from .models.configuration_transformer import TransformerConfig
from .models.modeling_decoder import DecoderForCausalLM, DecoderModel
from .models.modeling_encoder import (
    EncoderForMaskedLM,
    EncoderForSequenceClassification,
    EncoderForTokenClassification,
    EncoderModel,
)
from .models.modeling_pointer_generator import PointerGeneratorForConditionalGeneration
from .models.modeling_rnn_seq2seq import RNNSeq2SeqForConditionalGeneration, RNNSeq2SeqModel
from .models.modeling_transformer import TransformerForConditionalGeneration, TransformerModel

AUTO_CLASSES: dict[type, dict[type, type]] = {
    TransformerConfig: {
        AutoModel: TransformerModel,
        AutoModelForSeq2SeqLM: TransformerForConditionalGeneration,
    },
    # the base model is the plain Transformer's (TransformerModel, registered above); only the output layer differs
    PointerGeneratorConfig: {
        AutoModelForSeq2SeqLM: PointerGeneratorForConditionalGeneration,
    },
    EncoderConfig: {
        AutoModel: EncoderModel,
        AutoModelForMaskedLM: EncoderForMaskedLM,
        AutoModelForSequenceClassification: EncoderForSequenceClassification,
        AutoModelForTokenClassification: EncoderForTokenClassification,
    },
    DecoderConfig: {
        AutoModel: DecoderModel,
        AutoModelForCausalLM: DecoderForCausalLM,
    },
    RNNSeq2SeqConfig: {
        AutoModel: RNNSeq2SeqModel,
        AutoModelForSeq2SeqLM: RNNSeq2SeqForConditionalGeneration,
    },
}


def auto_map_for(config_class: type) -> dict[str, str]:
    """The `auto_map` a checkpoint of this family carries: every Auto class of the table, as `module.Class`."""
    entries = {"AutoConfig": f"{config_class.__module__.rsplit('.', 1)[-1]}.{config_class.__name__}"}
    for auto_class, model_class in AUTO_CLASSES[config_class].items():
        entries[auto_class.__name__] = f"{model_class.__module__.rsplit('.', 1)[-1]}.{model_class.__name__}"
    return entries


def register() -> None:
    """Register every family with the Auto classes (idempotent)."""
    for config_class, models in AUTO_CLASSES.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class()
        config_class.default_auto_map = auto_map_for(config_class)
        for auto_class, model_class in models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_class.__name__)
