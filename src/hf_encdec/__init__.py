"""hf_encdec: the encoder-decoder family tree as Hugging Face models.

`import hf_encdec` registers every family with transformers' Auto classes. The models are plain;
`hf_encdec.apply_speed_paths(model)` makes a built or loaded one faster (hf_encdec.speed).
"""

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
from .pipelines import Seq2SeqGenerationPipeline, register_pipeline
from .registration import register
from .speed import apply_speed_paths

register()
register_pipeline()

__version__ = "0.1.0"

__all__ = [
    "DecoderConfig",
    "DecoderForCausalLM",
    "DecoderModel",
    "EncoderConfig",
    "EncoderForMaskedLM",
    "EncoderForSequenceClassification",
    "EncoderForTokenClassification",
    "EncoderModel",
    "PointerGeneratorConfig",
    "PointerGeneratorForConditionalGeneration",
    "RNNSeq2SeqConfig",
    "RNNSeq2SeqForConditionalGeneration",
    "RNNSeq2SeqModel",
    "Seq2SeqGenerationPipeline",
    "TransformerConfig",
    "TransformerForConditionalGeneration",
    "TransformerModel",
    "apply_speed_paths",
]
