"""The Transformer families (encoder-decoder, encoder-only, decoder-only): Auto classes, save/load with tying,
generate(), pipelines and clear errors for bad configs and inputs. Remote code for every family:
tests/hf/test_families.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM,
                          AutoModelForSequenceClassification, AutoModelForTokenClassification, pipeline)

import hf_encdec
from helpers import build, token_ids, word_level_tokenizer
from hf_encdec import (
    DecoderConfig,
    EncoderConfig,
    TransformerConfig,
    TransformerForConditionalGeneration,
)
from variants import TINY_TRANSFORMER

FAMILIES = {
    "seq2seq": (AutoModelForSeq2SeqLM, "hf_encdec_transformer"),
    "pointer_generator": (AutoModelForSeq2SeqLM, "hf_encdec_pointer_generator"),
    "encoder": (AutoModelForMaskedLM, "hf_encdec_encoder"),
    "decoder": (AutoModelForCausalLM, "hf_encdec_decoder"),
}
SEQ2SEQ = ("seq2seq", "pointer_generator")


def _logits(family: str, model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    if family in SEQ2SEQ:
        return model(input_ids=ids, decoder_input_ids=ids[:, :4]).logits
    return model(input_ids=ids).logits


def test_model_types_and_auto_classes() -> None:
    expected = {
        "hf_encdec_transformer": {AutoModel: "TransformerModel", AutoModelForSeq2SeqLM: "TransformerForConditionalGeneration"},
        "hf_encdec_pointer_generator": {AutoModelForSeq2SeqLM: "PointerGeneratorForConditionalGeneration"},
        "hf_encdec_encoder": {
            AutoModel: "EncoderModel",
            AutoModelForMaskedLM: "EncoderForMaskedLM",
            AutoModelForSequenceClassification: "EncoderForSequenceClassification",
            AutoModelForTokenClassification: "EncoderForTokenClassification",
        },
        "hf_encdec_decoder": {AutoModel: "DecoderModel", AutoModelForCausalLM: "DecoderForCausalLM"},
    }
    sizes = {**TINY_TRANSFORMER}
    for model_type, auto_classes in expected.items():
        encoder_decoder = model_type.endswith(("transformer", "pointer_generator"))
        layers = {"encoder_layers": 1, "decoder_layers": 1} if encoder_decoder else {"num_hidden_layers": 1}
        config = AutoConfig.for_model(model_type, **sizes, **layers)
        assert config.model_type == model_type
        for auto_class, class_name in auto_classes.items():
            assert type(auto_class.from_config(config)).__name__ == class_name
    hf_encdec.registration.register()  # idempotent


def test_default_config_is_transformer_base() -> None:
    config = TransformerConfig()
    assert (config.hidden_size, config.num_attention_heads, config.encoder_layers, config.decoder_layers) == (512, 8, 6, 6)
    assert (config.intermediate_size, config.norm_position, config.position_type, config.hidden_act) == (2048, "post", "sinusoidal", "relu")
    assert config.dropout == 0.1 and config.scale_embedding and config.tie_word_embeddings
    assert config.share_encoder_decoder_embeddings
    model = TransformerForConditionalGeneration(TransformerConfig(vocab_size=1000))
    assert model.lm_head.weight is model.model.encoder.embed_tokens.weight is model.model.decoder.embed_tokens.weight


def test_llama_preset() -> None:
    config = DecoderConfig.llama(hidden_size=128, num_attention_heads=8, num_hidden_layers=2, vocab_size=500)
    assert (config.norm_type, config.norm_position, config.position_type, config.hidden_act) == ("rmsnorm", "pre", "rope", "swiglu")
    assert config.num_key_value_heads == 2 and not config.tie_word_embeddings and not config.attention_bias
    # Llama has no dropout anywhere, also not the attention dropout DecoderConfig defaults to (GPT-2's 0.1)
    assert config.dropout == config.attention_dropout == config.activation_dropout == 0.0
    model = AutoModelForCausalLM.from_config(config)
    assert model.lm_head.weight is not model.model.decoder.embed_tokens.weight
    assert type(model.model.decoder.final_norm).__name__ == "RMSNorm"


@pytest.mark.contract
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("tie", [True, False])
def test_save_and_load_round_trip(family: str, tie: bool, tmp_path: Path) -> None:
    extra = {"tie_word_embeddings": tie}
    if family in SEQ2SEQ and not tie:
        extra["share_encoder_decoder_embeddings"] = False
    model = build(family, **extra)
    model.save_pretrained(tmp_path)
    auto_class, model_type = FAMILIES[family]
    loaded = auto_class.from_pretrained(tmp_path).eval()
    saved_config = json.loads((tmp_path / "config.json").read_text())
    assert saved_config["model_type"] == model_type and "AutoConfig" in saved_config["auto_map"]
    ids = token_ids()
    assert torch.equal(_logits(family, model, ids), _logits(family, loaded, ids))
    output, input_embedding = loaded.get_output_embeddings().weight, loaded.get_input_embeddings().weight
    assert (output is input_embedding) == tie
    with safe_open(tmp_path / "model.safetensors", "pt") as stored:
        vocab_matrices = [k for k in stored.keys() if stored.get_slice(k).get_shape() == [99, 32]]
    # tied weights are stored once; untied: input and output (and the seq2seq decoder's own input) matrices
    expected = 1 if tie else (3 if family in SEQ2SEQ else 2)
    assert len(vocab_matrices) == expected, vocab_matrices


@pytest.mark.contract
def test_generate_modes_and_outputs() -> None:
    model = build("seq2seq")
    source = token_ids()
    beams = model.generate(source, num_beams=4, num_return_sequences=3, length_penalty=0.6, max_new_tokens=6)
    assert beams.shape[0] == 9
    torch.manual_seed(1)
    first = model.generate(source, do_sample=True, top_k=20, temperature=0.9, max_new_tokens=6)
    torch.manual_seed(1)
    assert torch.equal(first, model.generate(source, do_sample=True, top_k=20, temperature=0.9, max_new_tokens=6))
    no_repeat = model.generate(source, no_repeat_ngram_size=1, max_new_tokens=8, do_sample=False)
    for row in no_repeat[:, 1:].tolist():
        assert len(row) == len(set(row)), row  # no token twice
    plain = model.generate(source, max_new_tokens=8, do_sample=False)
    assert any(len(set(r)) < len(r) for r in plain[:, 1:].tolist()), "the untrained model repeats; the check above bites"
    out = model.generate(
        source, max_new_tokens=4, do_sample=False, return_dict_in_generate=True, output_attentions=True,
        output_hidden_states=True, output_scores=True,
    )
    assert len(out.scores) == 4 and out.scores[0].shape == (3, 99)
    assert len(out.cross_attentions) == 4 and len(out.cross_attentions[0]) == 2
    assert out.cross_attentions[0][0].shape == (3, 4, 1, 7)
    assert out.encoder_attentions[0].shape == (3, 4, 7, 7) and len(out.encoder_hidden_states) == 3
    assert len(out.decoder_hidden_states[0]) == 3


@pytest.mark.contract
def test_decoder_only_generation_with_left_padding_matches_unpadded() -> None:
    model = build("decoder", {"position_type": "rope"})
    short, long = token_ids(batch=1, length=3), token_ids(batch=1, length=6)
    batch = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], 1), long])
    mask = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long)], 1), torch.ones(1, 6, dtype=torch.long)])
    together = model.generate(batch, attention_mask=mask, max_new_tokens=5, do_sample=False)
    assert together[0, 6:].tolist() == model.generate(short, max_new_tokens=5, do_sample=False)[0, 3:].tolist()
    assert together[1, 6:].tolist() == model.generate(long, max_new_tokens=5, do_sample=False)[0, 6:].tolist()


WORDS = [f"w{i}" for i in range(94)]


@pytest.mark.contract
def test_pipelines_for_each_family() -> None:
    tokenizer = word_level_tokenizer(WORDS)
    text = "w1 w2 w3 w4"
    seq2seq = build("seq2seq")
    translate = pipeline("seq2seq-generation", model=seq2seq, tokenizer=tokenizer)
    result = translate(text, num_beams=2, max_new_tokens=5)
    encoded = tokenizer(text, return_tensors="pt")
    expected = seq2seq.generate(**encoded, num_beams=2, max_new_tokens=5)
    assert result == [{"generated_text": tokenizer.decode(expected[0], skip_special_tokens=True)}]
    assert len(translate([text, "w5 w6"], max_new_tokens=3)) == 2

    fill = pipeline("fill-mask", model=build("encoder"), tokenizer=tokenizer)
    filled = fill("w1 <mask> w3", top_k=3)
    assert len(filled) == 3 and all(item["token_str"] for item in filled)

    generator = pipeline("text-generation", model=build("decoder"), tokenizer=word_level_tokenizer(WORDS, add_eos=False))
    generated = generator("w1 w2", max_new_tokens=4, do_sample=False, return_tensors=True)[0]["generated_token_ids"]
    prompt = tokenizer("w1 w2", add_special_tokens=False)["input_ids"]
    assert generated[:2] == prompt and len(generated) == 6


@pytest.mark.contract
def test_pipeline_loads_from_a_saved_folder(tmp_path: Path) -> None:
    tokenizer = word_level_tokenizer(WORDS)
    model = build("seq2seq")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    translate = pipeline("seq2seq-generation", model=str(tmp_path))
    assert translate("w7 w8", max_new_tokens=3)[0]["generated_text"] == tokenizer.decode(
        model.generate(**tokenizer("w7 w8", return_tensors="pt"), max_new_tokens=3)[0], skip_special_tokens=True
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size=30 is not divisible by num_attention_heads=4"),
        ({"num_attention_heads": 4, "num_key_value_heads": 3}, "num_attention_heads=4 is not divisible by num_key_value_heads=3"),
        ({"hidden_size": 24, "num_attention_heads": 8, "position_type": "rope"}, "even head_dim, got 3"),
        ({"norm_type": "batchnorm"}, "norm_type='batchnorm'.*layernorm"),
        ({"norm_position": "middle"}, "norm_position='middle'.*post"),
        ({"position_type": "relative"}, "position_type='relative'.*sinusoidal"),
        ({"hidden_act": "tanh"}, "hidden_act='tanh'.*swiglu"),
        ({"position_type": "alibi", "attn_implementation": "flash_attention_2"}, "alibi.*flash_attention_2"),
        ({"dropout": 1.5}, "dropout must be in"),
        ({"pad_token_id": 500, "vocab_size": 99}, "pad_token_id=500 is outside"),
    ],
)
def test_invalid_configs_raise_value_errors_naming_the_values(kwargs: dict, message: str) -> None:
    for config_class in (TransformerConfig, EncoderConfig, DecoderConfig):
        with pytest.raises(ValueError, match=message):
            config_class(**kwargs)


def test_alibi_model_refuses_flash_attention() -> None:
    config = DecoderConfig(**TINY_TRANSFORMER, num_hidden_layers=1, position_type="alibi")
    with pytest.raises(ValueError, match="alibi"):
        AutoModelForCausalLM.from_config(config, attn_implementation="flash_attention_2")


def test_separate_vocabularies_need_unshared_embeddings() -> None:
    with pytest.raises(ValueError, match="decoder_vocab_size=50 differs"):
        TransformerConfig(vocab_size=99, decoder_vocab_size=50)
    model = build("seq2seq", decoder_vocab_size=50, share_encoder_decoder_embeddings=False)
    assert model(input_ids=token_ids(), decoder_input_ids=token_ids(low=5)[:, :4] % 50).logits.shape[-1] == 50


def test_over_long_input_with_learned_positions_is_a_clear_error() -> None:
    model = build("decoder", {"position_type": "learned"})  # max_position_embeddings = 64
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(token_ids(batch=1, length=65))
    model(token_ids(batch=1, length=64))  # the longest allowed input works
    sinusoidal = build("decoder", {"position_type": "sinusoidal"})
    assert sinusoidal(token_ids(batch=1, length=80)).logits.shape == (1, 80, 99)


def test_resizing_embeddings_keeps_them_tied() -> None:
    model = build("seq2seq")
    model.resize_token_embeddings(120)
    assert model.lm_head.weight is model.model.encoder.embed_tokens.weight is model.model.decoder.embed_tokens.weight
    assert model.lm_head.weight.shape[0] == 120


def test_classification_heads_train_with_labels() -> None:
    config = EncoderConfig(**TINY_TRANSFORMER, num_hidden_layers=1, num_labels=3)
    sequence = AutoModelForSequenceClassification.from_config(config)
    out = sequence(input_ids=token_ids(), labels=torch.tensor([0, 2, 1]))
    assert out.logits.shape == (3, 3) and out.loss.ndim == 0
    out.loss.backward()
    tokens = AutoModelForTokenClassification.from_config(config)
    labels = torch.randint(0, 3, (3, 7))
    labels[:, 5:] = -100
    out = tokens(input_ids=token_ids(), labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 3), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.slow
def test_flex_attention_kernel_matches_sdpa_for_inference() -> None:
    """flex_attention compiles its kernel on first use (about 20 s on CPU); it has no CPU backward, so inference only."""
    source, target = token_ids(length=9), token_ids(length=5)
    mask = torch.ones_like(source)
    mask[0, 6:] = 0
    for overrides in ({}, {"position_type": "alibi", "norm_position": "pre"}):
        flex, sdpa = build("seq2seq", {**overrides, "attn_implementation": "flex_attention"}), build("seq2seq", overrides)
        with torch.no_grad():
            expected = sdpa(input_ids=source, attention_mask=mask, decoder_input_ids=target).logits
            got = flex(input_ids=source, attention_mask=mask, decoder_input_ids=target).logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_gpt2_scales_the_residual_branch_init_by_depth_and_llama_does_not() -> None:
    import math

    from hf_encdec import DecoderConfig, DecoderForCausalLM

    sizes = {"vocab_size": 99, "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 8}
    torch.manual_seed(0)
    gpt2 = DecoderForCausalLM(DecoderConfig(**sizes, intermediate_size=256))
    llama = DecoderForCausalLM(DecoderConfig.llama(**sizes))
    scaled = 0.02 / math.sqrt(2 * 8)  # Radford et al. 2019: 1/sqrt(N) over the N = 2 * layers residual branches
    for layer in gpt2.model.decoder.layers:
        assert layer.self_attn.o_proj.weight.std().item() == pytest.approx(scaled, rel=0.1)
        assert layer.feed_forward.fc2.weight.std().item() == pytest.approx(scaled, rel=0.1)
        assert layer.self_attn.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
    for layer in llama.model.decoder.layers:
        assert layer.self_attn.o_proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
        assert layer.feed_forward.down_proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
