"""The one table of the model families: which Auto class loads which model, what each family is, its presets and its
smallest config. Everything that lists the families derives from `FAMILIES`: registration with the Auto classes
(applied once when `hf_encdec` is imported), `hf-encdec train --preset`, the model card's family line, the tests'
family lists and the README's family table (`readme_table`, checked by tests/test_readme.py).

Registering makes `AutoConfig.for_model("hf_encdec_transformer")`, `AutoModelForSeq2SeqLM.from_config(...)` and
`from_pretrained(...)` work in this process; marking the classes for auto classes makes `save_pretrained` /
`push_to_hub` write `auto_map` and copy the model code, so a checkpoint also loads with `trust_remote_code=True`
where hf_encdec is not installed.

Adding a family: its `configuration_<family>.py` and `modeling_<family>.py` in `models/`, and one `Family` row here
(CONTRIBUTING.md walks through it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM,
                          AutoModelForSequenceClassification, AutoModelForTokenClassification)

from .models.configuration_decoder import DecoderConfig
from .models.configuration_encoder import EncoderConfig
from .models.configuration_nat import NATConfig
from .models.configuration_pointer_generator import PointerGeneratorConfig
from .models.configuration_rnn_seq2seq import RNNSeq2SeqConfig
from .models.configuration_transformer import TransformerBlockConfig, TransformerConfig
from .models.modeling_decoder import DecoderForCausalLM, DecoderModel
from .models.modeling_encoder import (
    EncoderForMaskedLM,
    EncoderForSequenceClassification,
    EncoderForTokenClassification,
    EncoderModel,
)
from .models.modeling_nat import NATForConditionalGeneration, NATModel
from .models.modeling_pointer_generator import PointerGeneratorForConditionalGeneration
from .models.modeling_rnn_seq2seq import RNNSeq2SeqForConditionalGeneration, RNNSeq2SeqModel
from .models.modeling_transformer import TransformerForConditionalGeneration, TransformerModel


@dataclass(frozen=True)
class Family:
    """One row of the family table.

    `models` maps each Auto class to the family's model class, the main head first (the class a checkpoint of the
    family is usually saved from); `presets` are named configs for `hf-encdec train --preset` (vocabulary and
    special-token ids come from the tokenizer); `tiny` is the smallest config worth building (tests, smoke runs).
    """

    name: str
    config_class: type
    models: dict[type, type]
    summary: str
    tiny: dict[str, Any]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_model: type | None = None  # the base model class when it is another family's (no AutoModel entry)

    @property
    def model_type(self) -> str:
        return self.config_class.model_type

    @property
    def main_class(self) -> type:
        return next(iter(self.models.values()))

    @property
    def main_auto_class(self) -> type:
        return next(iter(self.models))

    @property
    def is_seq2seq(self) -> bool:
        return AutoModelForSeq2SeqLM in self.models


# d_model 256, 3 + 3 pre-LN layers: the main job's 4000 steps took 24.6 min on 2 AMD EPYC cores (2026-11-21)
SMALL: dict[str, Any] = {
    "hidden_size": 256,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "encoder_layers": 3,
    "decoder_layers": 3,
    "norm_position": "pre",
}
TINY_TRANSFORMER: dict[str, Any] = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
}

FAMILIES: tuple[Family, ...] = (
    Family(
        name="transformer",
        config_class=TransformerConfig,
        models={AutoModelForSeq2SeqLM: TransformerForConditionalGeneration, AutoModel: TransformerModel},
        summary="encoder-decoder Transformer (Vaswani et al. 2017) with switchable norms, positions, activations "
        "and attention heads",
        tiny={**TINY_TRANSFORMER, "encoder_layers": 2, "decoder_layers": 2},
        presets={
            # a few seconds a step-hundred on CPU: smoke tests and the quick mode
            "transformer-tiny": {"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256,
                                 "encoder_layers": 2, "decoder_layers": 2},
            "transformer-small": SMALL,
            # Vaswani et al. 2017, Transformer-base
            "transformer-base": {},
            # the Llama-3 block in an encoder-decoder: pre-RMSNorm, RoPE, SwiGLU, GQA
            "transformer-small-llama": {
                **TransformerBlockConfig.llama_kwargs(), "hidden_size": 256, "num_attention_heads": 4,
                "num_key_value_heads": 2, "intermediate_size": 704, "encoder_layers": 3, "decoder_layers": 3,
                "tie_word_embeddings": True, "dropout": 0.1,
            },
        },
    ),
    Family(
        name="pointer_generator",
        config_class=PointerGeneratorConfig,
        models={AutoModelForSeq2SeqLM: PointerGeneratorForConditionalGeneration},
        summary="Transformer pointer-generator (See et al. 2017): the output layer mixes generating from the "
        "vocabulary with copying source tokens",
        tiny={**TINY_TRANSFORMER, "encoder_layers": 2, "decoder_layers": 2},
        # transformer-small with the copy mechanism in its output layer
        presets={"pointer-generator-small": SMALL},
        base_model=TransformerModel,
    ),
    Family(
        name="nat",
        config_class=NATConfig,
        models={AutoModelForSeq2SeqLM: NATForConditionalGeneration, AutoModel: NATModel},
        summary="non-autoregressive Transformer (Gu et al. 2018; Mask-Predict, Ghazvininejad et al. 2019): the whole "
        "target in parallel, its length predicted, refined by mask-predict",
        tiny={**TINY_TRANSFORMER, "encoder_layers": 2, "decoder_layers": 2, "mask_token_id": 4},
        # transformer-small with a non-causal decoder and a length classifier; targets of up to 127 tokens + EOS
        presets={
            "nat-small": {**SMALL, "max_position_embeddings": 128},
            # glancing training (GLAT, Qian et al. 2021) with the CMLM decoder
            "nat-glat-small": {**SMALL, "max_position_embeddings": 128, "glancing_ratio": 0.5},
            # CTC over the source upsampled 2x, with glancing through the best alignment (Gu & Kong 2021)
            "nat-ctc-small": {**SMALL, "max_position_embeddings": 256, "decoder_input_type": "upsampled_source",
                              "upsample_factor": 2, "glancing_ratio": 0.5},
        },
    ),
    Family(
        name="encoder",
        config_class=EncoderConfig,
        models={
            AutoModelForMaskedLM: EncoderForMaskedLM,
            AutoModel: EncoderModel,
            AutoModelForSequenceClassification: EncoderForSequenceClassification,
            AutoModelForTokenClassification: EncoderForTokenClassification,
        },
        summary="encoder-only Transformer (BERT-like, Devlin et al. 2018): masked LM and classification heads",
        tiny={**TINY_TRANSFORMER, "num_hidden_layers": 2},
        # BERT's block at the size of the side-by-side runs (examples/run_mlm.py, README)
        presets={"encoder-small": {"hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024,
                                   "num_hidden_layers": 4, "max_position_embeddings": 128}},
    ),
    Family(
        name="decoder",
        config_class=DecoderConfig,
        models={AutoModelForCausalLM: DecoderForCausalLM, AutoModel: DecoderModel},
        summary="decoder-only Transformer (GPT-2-like, or the Llama-3 block with DecoderConfig.llama): causal LM",
        tiny={**TINY_TRANSFORMER, "num_hidden_layers": 2},
        presets={
            # GPT-2's block at the size of the side-by-side runs (examples/run_clm.py, README)
            "decoder-small": {"hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024,
                              "num_hidden_layers": 4, "max_position_embeddings": 256},
            # the Llama-3 block at the same size: pre-RMSNorm, RoPE, SwiGLU, GQA (4 query heads, 1 key/value head)
            "decoder-small-llama": {
                **TransformerBlockConfig.llama_kwargs(), "hidden_size": 256, "num_attention_heads": 4,
                "num_key_value_heads": 1, "intermediate_size": 704, "num_hidden_layers": 4,
                "max_position_embeddings": 256,
            },
        },
    ),
    Family(
        name="rnn_seq2seq",
        config_class=RNNSeq2SeqConfig,
        models={AutoModelForSeq2SeqLM: RNNSeq2SeqForConditionalGeneration, AutoModel: RNNSeq2SeqModel},
        summary="RNN encoder-decoder (Cho et al. 2014, Sutskever et al. 2014) with Bahdanau or Luong attention, or "
        "a Transformer encoder behind the RNN decoder; optionally See et al. 2017's pointer-generator with coverage",
        tiny={"vocab_size": 99, "embedding_size": 24, "hidden_size": 32, "encoder_layers": 2, "decoder_layers": 2},
        presets={
            # Bahdanau et al. 2015: bidirectional GRU encoder, additive attention feeding the recurrent input
            "rnn-gru-bahdanau": {
                "rnn_type": "gru", "attention_type": "bahdanau", "input_feeding": False, "embedding_size": 256,
                "hidden_size": 256, "encoder_layers": 1, "decoder_layers": 1, "dropout": 0.2,
                "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True,
            },
            # Luong et al. 2015: stacked LSTMs, general score, attentional state with input feeding
            "rnn-lstm-luong": {
                "rnn_type": "lstm", "attention_type": "luong_general", "input_feeding": True, "embedding_size": 256,
                "hidden_size": 256, "encoder_layers": 2, "decoder_layers": 2, "dropout": 0.2,
                "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True,
            },
            # See et al. 2017's pointer-generator with coverage: one bidirectional LSTM layer of 256 units a direction,
            # Bahdanau attention reused as the copy distribution, 128-wide embeddings shared by encoder and decoder, no
            # dropout. Departures for a ~30-minute CPU budget: the decoder has 512 units (the concatenated encoder
            # state, where See et al. reduce it to 256) and coverage is on from the first step (they add it at the end)
            "see-2017": {
                "rnn_type": "lstm", "attention_type": "bahdanau", "input_feeding": False, "embedding_size": 128,
                "hidden_size": 512, "encoder_layers": 1, "decoder_layers": 1, "bidirectional_encoder": True,
                "bridge": "linear", "dropout": 0.0, "share_encoder_decoder_embeddings": True,
                "copy_mechanism": True, "coverage": True,
            },
            # the Transformer-encoder / RNN-decoder hybrid
            "hybrid-transformer-lstm": {
                "encoder_type": "transformer", "rnn_type": "lstm", "attention_type": "luong_general",
                "input_feeding": True, "embedding_size": 256, "hidden_size": 256, "encoder_layers": 3,
                "decoder_layers": 1, "encoder_config": {"num_attention_heads": 4}, "bridge": "zero", "dropout": 0.1,
                "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True,
            },
        },
    ),
)

#: config class -> {Auto class: model class}
AUTO_CLASSES: dict[type, dict[type, type]] = {family.config_class: family.models for family in FAMILIES}


def family_of(model_type: str) -> Family:
    """The row of `model_type` (e.g. "hf_encdec_transformer")."""
    for family in FAMILIES:
        if family.model_type == model_type:
            return family
    raise ValueError(f"{model_type!r} is not a model type of hf_encdec; valid: {[f.model_type for f in FAMILIES]}")


def seq2seq_model_types() -> tuple[str, ...]:
    """The model types `hf-encdec train` can train (the families registered with AutoModelForSeq2SeqLM)."""
    return tuple(family.model_type for family in FAMILIES if family.is_seq2seq)


def presets() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every preset of every family: name -> (model_type, config values)."""
    return {name: (family.model_type, values) for family in FAMILIES for name, values in family.presets.items()}


def readme_table() -> str:
    """The README's table of the families, one row a family (tests/test_readme.py checks the README holds it)."""
    lines = ["| `model_type` | classes | Auto classes |", "|---|---|---|"]
    for family in FAMILIES:
        classes = [family.config_class.__name__] + sorted(
            {model.__name__ for model in family.models.values()},
            key=lambda name: (not name.endswith("Model"), name),
        )
        names = ", ".join(f"`{name}`" for name in classes)
        if family.base_model is not None:
            names += f" (base model: `{family.base_model.__name__}`)"
        autos = ", ".join(["AutoConfig", *sorted(auto.__name__ for auto in family.models)])
        lines.append(f"| `{family.model_type}` | {names} | {autos} |")
    return "\n".join(lines)


def auto_map_for(config_class: type) -> dict[str, str]:
    """The `auto_map` a checkpoint of this family carries: every Auto class of the table, as `module.Class`."""
    entries = {"AutoConfig": f"{config_class.__module__.rsplit('.', 1)[-1]}.{config_class.__name__}"}
    for auto_class, model_class in AUTO_CLASSES[config_class].items():
        entries[auto_class.__name__] = f"{model_class.__module__.rsplit('.', 1)[-1]}.{model_class.__name__}"
    return entries


def register() -> None:
    """Register every family with the Auto classes (idempotent)."""
    for family in FAMILIES:
        config_class = family.config_class
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class()
        config_class.default_auto_map = auto_map_for(config_class)
        for auto_class, model_class in family.models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_class.__name__)
