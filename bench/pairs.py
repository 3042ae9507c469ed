"""Matched model pairs: each hf_encdec family next to the transformers model a user would otherwise pick.

Every pair is built from configs with the same shapes (hidden size, heads, feed-forward width, layers, vocabulary,
max positions), the same dropouts, tied embeddings on both sides and the same special token ids, so both sides do the
same work on the same batches. `parameter_report` prints what still differs (e.g. BART's learned positions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    BartConfig,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    MarianConfig,
    PreTrainedModel,
)

from hf_encdec import DecoderConfig, EncoderConfig, RNNSeq2SeqConfig, TransformerConfig

PAD, BOS, EOS, MASK = 0, 1, 2, 4
# dropout as in training, identical on both sides of a pair (the references' own defaults for that family)
SEQ2SEQ_DROPOUT = {"dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0}  # Transformer-base, Marian
BERT_DROPOUT = {"hidden": 0.1, "attention": 0.1}  # BERT defaults
GPT2_DROPOUT = {"hidden": 0.1, "attention": 0.1}  # GPT-2 defaults (resid, embd and attn pdrop)


@dataclass(frozen=True)
class Size:
    """Shapes of one benchmark size, and the batches it runs on."""

    name: str
    hidden: int
    heads: int
    ffn: int
    seq2seq_layers: int  # encoder layers = decoder layers
    stack_layers: int  # layers of the encoder-only and decoder-only models
    vocab: int
    max_positions: int
    # training batches: sentences per batch and mean length (lengths vary +-50 %, right padding)
    seq2seq_batch: int
    seq2seq_length: int
    stack_batch: int
    stack_length: int
    # generation: sources/prompts per call, new tokens (forced), beams, and the length of the per-token-cost run
    generate_batch: int
    new_tokens: int
    beams: int
    growth_tokens: int


SIZES: dict[str, Size] = {
    "tiny": Size("tiny", 32, 4, 64, 1, 2, 211, 128, 4, 8, 4, 12, 2, 6, 2, 12),
    "small": Size("small", 256, 4, 1024, 3, 6, 8000, 512, 32, 24, 16, 64, 8, 64, 4, 192),
    "base": Size("base", 512, 8, 2048, 6, 12, 32000, 512, 32, 24, 16, 64, 4, 32, 4, 128),
}

KINDS = ("seq2seq", "mlm", "causal")


@dataclass(frozen=True)
class Side:
    """One model of a pair: its display name and a builder (called under a fixed seed)."""

    name: str
    build: Callable[[Size], PreTrainedModel]


@dataclass(frozen=True)
class Pair:
    """Candidate against reference. `absolute` pairs compare different architectures at equal parameter count:
    their figures are reported side by side, not as a goal ratio."""

    name: str
    kind: str
    candidate: Side
    reference: Side
    absolute: bool = False
    # parameters the reference has and the candidate, by design of the pair, has not (name substrings)
    reference_only: tuple[str, ...] = ()


#: the special token ids every config of a pair shares
TOKEN_IDS = {"pad_token_id": PAD, "bos_token_id": BOS, "eos_token_id": EOS}


def stack_shapes(size: Size) -> dict[str, int]:
    """The shapes of an encoder-only or decoder-only model, under the names BERT and our stacks share."""
    return {
        "vocab_size": size.vocab, "hidden_size": size.hidden, "num_attention_heads": size.heads,
        "intermediate_size": size.ffn, "num_hidden_layers": size.stack_layers,
        "max_position_embeddings": size.max_positions,
    }


def _sdpa(factory: Callable[..., PreTrainedModel], config: object) -> PreTrainedModel:
    return factory.from_config(config, attn_implementation="sdpa")


def transformer_config(size: Size) -> TransformerConfig:
    """hf_encdec_transformer as in the paper: post-LN, sinusoidal positions, ReLU, scaled tied embeddings."""
    return TransformerConfig(
        vocab_size=size.vocab,
        hidden_size=size.hidden,
        num_attention_heads=size.heads,
        intermediate_size=size.ffn,
        encoder_layers=size.seq2seq_layers,
        decoder_layers=size.seq2seq_layers,
        max_position_embeddings=size.max_positions,
        hidden_act="relu",
        norm_position="post",
        position_type="sinusoidal",
        scale_embedding=True,
        tie_word_embeddings=True,
        share_encoder_decoder_embeddings=True,
        decoder_start_token_id=BOS,
        **TOKEN_IDS,
        **SEQ2SEQ_DROPOUT,
    )


def build_transformer(size: Size) -> PreTrainedModel:
    return _sdpa(AutoModelForSeq2SeqLM, transformer_config(size))


def _bart_like_kwargs(size: Size) -> dict[str, object]:
    return {
        "vocab_size": size.vocab,
        "d_model": size.hidden,
        "encoder_attention_heads": size.heads,
        "decoder_attention_heads": size.heads,
        "encoder_ffn_dim": size.ffn,
        "decoder_ffn_dim": size.ffn,
        "encoder_layers": size.seq2seq_layers,
        "decoder_layers": size.seq2seq_layers,
        "max_position_embeddings": size.max_positions,
        "activation_function": "relu",
        "scale_embedding": True,
        "tie_word_embeddings": True,
        **TOKEN_IDS,
        "decoder_start_token_id": BOS,
        "forced_eos_token_id": None,
        **SEQ2SEQ_DROPOUT,
    }


def build_marian(size: Size) -> PreTrainedModel:
    config = MarianConfig(
        decoder_vocab_size=size.vocab, share_encoder_decoder_embeddings=True, **_bart_like_kwargs(size)
    )
    return _sdpa(AutoModelForSeq2SeqLM, config)


def build_bart(size: Size) -> PreTrainedModel:
    return _sdpa(AutoModelForSeq2SeqLM, BartConfig(**_bart_like_kwargs(size)))


def build_encoder(size: Size) -> PreTrainedModel:
    config = EncoderConfig(
        **stack_shapes(size), **TOKEN_IDS, hidden_act="gelu", dropout=BERT_DROPOUT["hidden"],
        attention_dropout=BERT_DROPOUT["attention"], mask_token_id=MASK,
    )
    return _sdpa(AutoModelForMaskedLM, config)


def build_bert(size: Size) -> PreTrainedModel:
    config = BertConfig(
        **stack_shapes(size),
        hidden_act="gelu",
        hidden_dropout_prob=BERT_DROPOUT["hidden"],
        attention_probs_dropout_prob=BERT_DROPOUT["attention"],
        layer_norm_eps=1e-12,
        type_vocab_size=2,
        pad_token_id=PAD,
        tie_word_embeddings=True,
    )
    return _sdpa(AutoModelForMaskedLM, config)


def build_decoder(size: Size) -> PreTrainedModel:
    config = DecoderConfig(
        **stack_shapes(size), **TOKEN_IDS, hidden_act="gelu", dropout=GPT2_DROPOUT["hidden"],
        attention_dropout=GPT2_DROPOUT["attention"],
    )
    return _sdpa(AutoModelForCausalLM, config)


def build_gpt2(size: Size) -> PreTrainedModel:
    config = GPT2Config(
        vocab_size=size.vocab,
        n_positions=size.max_positions,
        n_embd=size.hidden,
        n_layer=size.stack_layers,
        n_head=size.heads,
        n_inner=size.ffn,
        activation_function="gelu",  # exact GELU as in ours (GPT-2's own default is the tanh approximation)
        resid_pdrop=GPT2_DROPOUT["hidden"],
        embd_pdrop=GPT2_DROPOUT["hidden"],
        attn_pdrop=GPT2_DROPOUT["attention"],
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        **TOKEN_IDS,
    )
    return _sdpa(AutoModelForCausalLM, config)


def llama_decoder_config(size: Size) -> DecoderConfig:
    return DecoderConfig.llama(
        hidden_size=size.hidden,
        num_attention_heads=size.heads,
        num_hidden_layers=size.stack_layers,
        vocab_size=size.vocab,
        max_position_embeddings=size.max_positions,
        **TOKEN_IDS,
    )


def build_decoder_llama(size: Size) -> PreTrainedModel:
    return _sdpa(AutoModelForCausalLM, llama_decoder_config(size))


def build_llama(size: Size) -> PreTrainedModel:
    ours = llama_decoder_config(size)
    config = LlamaConfig(
        vocab_size=size.vocab,
        hidden_size=size.hidden,
        intermediate_size=ours.intermediate_size,
        num_hidden_layers=size.stack_layers,
        num_attention_heads=size.heads,
        num_key_value_heads=ours.num_key_value_heads,
        max_position_embeddings=size.max_positions,
        rms_norm_eps=ours.layer_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": ours.rope_theta},
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        **TOKEN_IDS,
    )
    return _sdpa(AutoModelForCausalLM, config)


def rnn_config(size: Size, hidden: int) -> RNNSeq2SeqConfig:
    """Luong et al. 2015 / OpenNMT defaults (2+2 LSTM, bidirectional encoder, general attention, input feeding) with
    one shared embedding tied to the output layer, like the Transformer it is compared with."""
    return RNNSeq2SeqConfig(
        vocab_size=size.vocab,
        embedding_size=hidden,
        hidden_size=hidden,
        encoder_layers=2,
        decoder_layers=2,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        dropout=SEQ2SEQ_DROPOUT["dropout"],
        decoder_start_token_id=BOS,
        **TOKEN_IDS,
    )


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor once (frozen sinusoid tables such as Marian's are not counted)."""
    seen: set[int] = set()
    total = 0
    for parameter in model.parameters():
        if parameter.requires_grad and id(parameter) not in seen:
            seen.add(id(parameter))
            total += parameter.numel()
    return total


def rnn_hidden_for(size: Size, target: int) -> int:
    """The RNN hidden size (a multiple of 8) whose parameter count is closest to `target`."""
    from transformers import AutoModelForSeq2SeqLM as Auto

    def params(hidden: int) -> int:
        with torch.device("meta"):
            return count_parameters(Auto.from_config(rnn_config(size, hidden)))

    best = min(range(8, 8 * size.hidden + 1, 8), key=lambda hidden: abs(params(hidden) - target))
    return best


def build_rnn(size: Size) -> PreTrainedModel:
    with torch.device("meta"):
        target = count_parameters(build_transformer(size))
    return AutoModelForSeq2SeqLM.from_config(rnn_config(size, rnn_hidden_for(size, target)))


PAIRS: dict[str, Pair] = {
    "marian": Pair(
        "marian", "seq2seq", Side("hf_encdec_transformer", build_transformer), Side("MarianMTModel", build_marian)
    ),
    "bart": Pair(
        "bart",
        "seq2seq",
        Side("hf_encdec_transformer", build_transformer),
        Side("BartForConditionalGeneration", build_bart),
        reference_only=("embed_positions", "layernorm_embedding"),
    ),
    "bert": Pair("bert", "mlm", Side("hf_encdec_encoder", build_encoder), Side("BertForMaskedLM", build_bert)),
    "gpt2": Pair("gpt2", "causal", Side("hf_encdec_decoder", build_decoder), Side("GPT2LMHeadModel", build_gpt2)),
    "llama": Pair(
        "llama",
        "causal",
        Side("hf_encdec_decoder (llama preset)", build_decoder_llama),
        Side("LlamaForCausalLM", build_llama),
    ),
    "rnn": Pair(
        "rnn",
        "seq2seq",
        Side("hf_encdec_rnn_seq2seq (LSTM, Luong)", build_rnn),
        Side("hf_encdec_transformer", build_transformer),
        absolute=True,
    ),
}


def parameter_report(pair: Pair, candidate: nn.Module, reference: nn.Module) -> dict[str, object]:
    """Trainable parameter counts side by side; `match` compares them after removing the parameters that only the
    reference has by design of the pair (`reference_only`)."""
    ours, theirs = count_parameters(candidate), count_parameters(reference)
    extra = 0
    seen: set[int] = set()
    for name, parameter in reference.named_parameters():
        if parameter.requires_grad and id(parameter) not in seen and any(key in name for key in pair.reference_only):
            seen.add(id(parameter))
            extra += parameter.numel()
    report: dict[str, object] = {
        "candidate": ours,
        "reference": theirs,
        "reference_only": extra,
        "reference_only_names": list(pair.reference_only),
    }
    if pair.absolute:
        report["relative_difference"] = abs(ours - theirs) / theirs
        report["match"] = abs(ours - theirs) / theirs < 0.02
    else:
        report["match"] = ours == theirs - extra
    return report
