"""The Hugging Face contract of the RNN seq2seq family: Auto classes, defaults, save/load, remote code in a clean
process, generate() outputs and the encoder interface generate relies on."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, GenerationConfig
from transformers.modeling_layers import GradientCheckpointingLayer

import hf_encdec
from hf_encdec import RNNSeq2SeqConfig, RNNSeq2SeqForConditionalGeneration, RNNSeq2SeqModel
from hf_encdec.models.rnn_layers import RNNDecoderState, RNNEncoderOutput
from hf_encdec.models.transformers_contract import output_cache
from helpers import run_without_hf_encdec
from rnn_helpers import build_rnn, padded_sources, token_ids
from variants import TINY_RNN, TINY_RNN_ENCODER

HYBRID = {"encoder_type": "transformer", "attention_type": "bahdanau", "input_feeding": False, "rnn_type": "gru",
          "encoder_config": TINY_RNN_ENCODER}


def test_model_type_and_auto_classes() -> None:
    config = AutoConfig.for_model("hf_encdec_rnn_seq2seq", **TINY_RNN)
    assert isinstance(config, RNNSeq2SeqConfig) and config.model_type == "hf_encdec_rnn_seq2seq"
    assert type(AutoModel.from_config(config)) is RNNSeq2SeqModel
    assert type(AutoModelForSeq2SeqLM.from_config(config)) is RNNSeq2SeqForConditionalGeneration
    hf_encdec.registration.register()  # idempotent
    assert RNNSeq2SeqConfig.default_auto_map["AutoModelForSeq2SeqLM"].endswith("RNNSeq2SeqForConditionalGeneration")


def test_default_config_is_a_luong_opennmt_model() -> None:
    config = RNNSeq2SeqConfig()
    assert (config.rnn_type, config.attention_type, config.input_feeding, config.bridge) == ("lstm", "luong_general", True, "linear")
    assert (config.embedding_size, config.hidden_size, config.encoder_layers, config.decoder_layers) == (512, 512, 2, 2)
    assert config.bidirectional_encoder and config.dropout == 0.2 and config.uniform_init_range == 0.1
    assert not config.tie_word_embeddings and not config.share_encoder_decoder_embeddings
    assert config.scheduled_sampling_probability == 0.0 and config.encoder_type == "rnn"
    model = RNNSeq2SeqForConditionalGeneration(RNNSeq2SeqConfig(vocab_size=1000, hidden_size=64, embedding_size=48))
    assert model.model.encoder.rnn.hidden_size == 32 and model.model.encoder.rnn.bidirectional  # 32 per direction
    assert all(p.abs().max() <= 0.1 for p in model.parameters())  # uniform in [-0.1, 0.1] (Luong et al.)


@pytest.mark.contract
@pytest.mark.parametrize(
    "overrides",
    [{}, {"tie_word_embeddings": True}, {"share_encoder_decoder_embeddings": True, "tie_word_embeddings": True}, HYBRID],
    ids=["untied", "tied-output", "shared-and-tied", "transformer-encoder"],
)
def test_save_and_load_round_trip(overrides: dict, tmp_path: Path) -> None:
    model = build_rnn(overrides)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "hf_encdec_rnn_seq2seq"
    assert set(saved["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM"}
    ids, mask = padded_sources()
    decoder_ids = token_ids(length=4)
    expected = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    # equal up to float noise (a loaded tensor's memory alignment can pick another kernel path)
    torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits, expected, atol=1e-7, rtol=1e-6)
    assert torch.equal(loaded.generate(ids, attention_mask=mask, max_new_tokens=5), model.generate(ids, attention_mask=mask, max_new_tokens=5))
    tied = loaded.lm_head.weight is loaded.model.decoder.embed_tokens.weight
    assert tied == overrides.get("tie_word_embeddings", False)
    shared = loaded.model.decoder.embed_tokens.weight is loaded.model.get_input_embeddings().weight
    assert shared == overrides.get("share_encoder_decoder_embeddings", False)
    with safe_open(tmp_path / "model.safetensors", "pt") as stored:
        vocab_matrices = [k for k in stored.keys() if stored.get_slice(k).get_shape()[0] == 99]
    assert len(vocab_matrices) == 3 - tied - shared, vocab_matrices  # a tied matrix is stored once
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is RNNSeq2SeqModel


REMOTE_SCRIPT = """
import json, sys
sys.modules["hf_encdec"] = None  # hf_encdec must not be importable here
import torch
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
ids, mask = torch.tensor(json.loads(sys.argv[2])), torch.tensor(json.loads(sys.argv[3]))
logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :4]).logits
generated = model.generate(ids, attention_mask=mask, max_new_tokens=5, num_beams=3, num_return_sequences=2)
print(json.dumps({"logits": logits.tolist(), "generated": generated.tolist()}))
"""


@pytest.mark.contract
@pytest.mark.parametrize("overrides", [{"rnn_type": "lstm", "tie_word_embeddings": True}, HYBRID], ids=["rnn", "transformer-encoder"])
def test_remote_code_loads_without_hf_encdec(overrides: dict, tmp_path: Path) -> None:
    model = build_rnn(overrides)
    model.save_pretrained(tmp_path / "model")
    assert {"modeling_rnn_seq2seq.py", "rnn_layers.py", "rnn_attention.py", "configuration_rnn_seq2seq.py"} <= {
        p.name for p in (tmp_path / "model").iterdir()
    }
    ids, mask = padded_sources()
    result = run_without_hf_encdec(REMOTE_SCRIPT, str(tmp_path / "model"), json.dumps(ids.tolist()),
                                   json.dumps(mask.tolist()), home=tmp_path / "hf_home")
    expected = model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :4]).logits
    torch.testing.assert_close(torch.tensor(result["logits"]), expected, atol=1e-6, rtol=1e-5)
    generated = model.generate(ids, attention_mask=mask, max_new_tokens=5, num_beams=3, num_return_sequences=2)
    assert result["generated"] == generated.tolist()


@pytest.mark.contract
def test_generate_outputs_for_alignment_plots_and_scores() -> None:
    model = build_rnn({"attention_type": "bahdanau", "input_feeding": False})
    ids, mask = padded_sources()
    out = model.generate(
        ids, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, output_attentions=True, output_scores=True,
        output_hidden_states=True, return_dict_in_generate=True,
    )
    assert len(out.scores) == 4 and out.scores[0].shape == (3, 99)
    alignment = torch.cat([step[0] for step in out.cross_attentions], dim=2)[:, 0]  # (B, T, S): target x source
    assert alignment.shape == (3, 4, 7)
    torch.testing.assert_close(alignment.sum(-1), torch.ones(3, 4))
    # the same alignment as a teacher-forced forward over the generated tokens
    forced = model(input_ids=ids, attention_mask=mask, decoder_input_ids=out.sequences[:, :-1], output_attentions=True)
    torch.testing.assert_close(forced.cross_attentions[0][:, 0], alignment, atol=1e-6, rtol=1e-5)
    # the embeddings (E = 24) and every layer's states (H = 32): 2 encoder layers, 3 decoder layers
    assert [tuple(states.shape) for states in out.encoder_hidden_states] == [(3, 7, 24), (3, 7, 32), (3, 7, 32)]
    assert [tuple(states.shape) for states in out.decoder_hidden_states[0]] == [(3, 1, 24)] + [(3, 1, 32)] * 3


def test_without_attention_there_are_no_cross_attentions() -> None:
    model = build_rnn({"attention_type": "none", "input_feeding": False})
    ids, mask = padded_sources()
    out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :3], output_attentions=True)
    assert out.cross_attentions is None


@pytest.mark.contract
def test_encoder_interface_that_generate_uses() -> None:
    model = build_rnn({"rnn_type": "gru"})
    encoder = model.get_encoder()
    assert encoder.main_input_name == "input_ids"
    ids, mask = padded_sources()
    out = encoder(input_ids=ids, attention_mask=mask, output_attentions=False, output_hidden_states=False, return_dict=True)
    assert isinstance(out, RNNEncoderOutput)
    assert out.final_hidden_state.shape == (3, 2, 32) and out.final_hidden_state.shape[0] == ids.shape[0]  # batch first
    as_tuple = encoder(input_ids=ids, attention_mask=mask, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], out.last_hidden_state)
    # tuples and dicts are accepted back as encoder_outputs
    decoder_ids = token_ids(length=4)
    reference = model(encoder_outputs=out, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    assert torch.equal(model(encoder_outputs=dict(out), attention_mask=mask, decoder_input_ids=decoder_ids).logits, reference)
    state = output_cache(model(encoder_outputs=out, attention_mask=mask, decoder_input_ids=decoder_ids, use_cache=True))
    assert isinstance(state, RNNDecoderState) and state.hidden.shape == (3, 3, 32)  # (B, decoder layers, H)
    assert model(encoder_outputs=out, attention_mask=mask, decoder_input_ids=decoder_ids, return_dict=False)[0].shape == (3, 4, 99)


EMBEDDING_SETTINGS = [
    pytest.param({"share_encoder_decoder_embeddings": False, "tie_word_embeddings": False}, id="separate"),
    pytest.param({"share_encoder_decoder_embeddings": False, "tie_word_embeddings": True}, id="separate-tied-output"),
    pytest.param({"share_encoder_decoder_embeddings": True, "tie_word_embeddings": False}, id="shared"),
    pytest.param({"share_encoder_decoder_embeddings": True, "tie_word_embeddings": True}, id="shared-tied-output"),
    pytest.param({**HYBRID, "embedding_size": 32, "share_encoder_decoder_embeddings": True}, id="transformer-shared"),
    pytest.param({**HYBRID, "share_encoder_decoder_embeddings": False}, id="transformer-separate"),
]


@pytest.mark.parametrize("overrides", EMBEDDING_SETTINGS)
def test_inputs_embeds_match_ids_in_every_embedding_setting(overrides: dict) -> None:
    """inputs_embeds from get_input_embeddings() and decoder_inputs_embeds from the decoder's own table compute what
    the ids compute; with shared embeddings the two tables hold one weight (a Transformer encoder scales its lookups
    by sqrt(d), the RNN decoder reads the table as it is, so there the decoder's embeddings are its own lookups)."""
    model = build_rnn(overrides)
    ids, mask = padded_sources()
    decoder_ids = token_ids(length=4)
    decoder_table = model.get_decoder().embed_tokens
    shared = decoder_table.weight is model.get_input_embeddings().weight
    assert shared == overrides["share_encoder_decoder_embeddings"]
    by_ids = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    by_embeds = model(
        inputs_embeds=model.get_input_embeddings()(ids), attention_mask=mask, decoder_inputs_embeds=decoder_table(decoder_ids)
    ).logits
    assert torch.equal(by_ids, by_embeds)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"attention_type": "luong_dot", "input_feeding": False}, id="one-call-decoder"),
        pytest.param({"attention_type": "bahdanau", "rnn_type": "gru"}, id="stepping-decoder"),
        pytest.param(HYBRID, id="transformer-encoder"),
    ],
)
def test_hidden_states_of_every_layer_carry_the_gradient_of_the_output(overrides: dict) -> None:
    """output_hidden_states gives the embeddings and every layer's states on both sides, L + 1 each (2 encoder and 3
    decoder layers here); retain_grad() on them sees the output's gradient where the output was computed from those
    very tensors: every layer of a recurrent encoder, the decoder's embeddings, and every layer of a decoder that
    runs the target in one call (a stepping decoder's layer states are joined from its steps afterwards)."""
    model = build_rnn(overrides).train()
    ids, mask = padded_sources()
    out = model.model(input_ids=ids, attention_mask=mask, decoder_input_ids=token_ids(length=4),
                      output_hidden_states=True)
    encoder_states, decoder_states = out.encoder_hidden_states, out.decoder_hidden_states
    assert len(encoder_states) == 3 and torch.equal(encoder_states[-1], out.encoder_last_hidden_state)
    assert [tuple(state.shape) for state in decoder_states] == [(3, 4, 24)] + [(3, 4, 32)] * 3
    assert torch.equal(decoder_states[-1], out.decoder_states)  # the top layer's s_t
    recurrent_encoder = overrides is not HYBRID
    one_call = not model.get_decoder().steps_one_at_a_time
    reached = [*(encoder_states if recurrent_encoder else encoder_states[:1]), decoder_states[0],
               *(decoder_states[1:] if one_call else ())]
    for state in reached:
        state.retain_grad()
    out.last_hidden_state.sum().backward()
    for state in reached:
        assert state.grad is not None and state.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        pytest.param({"assistant_model": "draft"}, "assistant_model", id="assistant_model"),
        pytest.param({"prompt_lookup_num_tokens": 2}, "prompt_lookup_num_tokens", id="prompt_lookup"),
        pytest.param({"generation_config": GenerationConfig(prompt_lookup_num_tokens=2, max_new_tokens=3)},
                     "prompt_lookup_num_tokens", id="in-the-generation-config"),
    ],
)
def test_assisted_decoding_is_refused_up_front(settings: dict, named: str) -> None:
    """A recurrent state cannot be rolled back to the last accepted draft token: the same refusal under every
    transformers release (transformers' own, keyed on the `_is_stateful` attribute, was removed in 5.25)."""
    model = build_rnn({"attention_type": "bahdanau"})
    if settings.get("assistant_model") == "draft":
        settings = {"assistant_model": build_rnn({"attention_type": "none"})}
    assert "_is_stateful" not in vars(type(model))
    ids, mask = padded_sources()
    with pytest.raises(ValueError, match=f"cannot decode with `{named}`: assisted .* no per-token history"):
        model.generate(ids, attention_mask=mask, max_new_tokens=3, **settings)
    assert model.generate(ids, attention_mask=mask, max_new_tokens=3).shape[0] == 3  # plain decoding still works


@pytest.mark.contract
def test_generation_config_round_trip(tmp_path: Path) -> None:
    model = build_rnn()
    model.generation_config.num_beams = 4
    model.save_pretrained(tmp_path)
    assert AutoModelForSeq2SeqLM.from_pretrained(tmp_path).generation_config.num_beams == 4


@pytest.mark.parametrize(
    ("overrides", "decoder_chunks"),
    [
        pytest.param({"attention_type": "luong_general", "input_feeding": True}, 3, id="luong-input-feeding-steps"),
        pytest.param({"attention_type": "bahdanau", "scheduled_sampling_probability": 0.5}, 3, id="bahdanau-sampling"),
        pytest.param({"attention_type": "none", "rnn_type": "gru"}, 0, id="fixed-context-one-call"),
        pytest.param({"attention_type": "luong_dot", "input_feeding": False}, 0, id="luong-one-call"),
        pytest.param(HYBRID, 3, id="transformer-encoder"),
    ],
)
@pytest.mark.parametrize("reentrant", [False, True], ids=["non-reentrant", "reentrant"])
def test_gradient_checkpointing_recomputes_in_segments_with_the_same_loss_and_gradients(
    overrides: dict, decoder_chunks: int, reentrant: bool
) -> None:
    """Every layer that runs over a whole sequence is one checkpointed segment (a GradientCheckpointingLayer: the
    encoder's recurrent or Transformer layers, a one-call decoder's recurrent layers); a stepping decoder checkpoints
    chunks of `checkpoint_steps` steps (19 targets: 3 chunks of 8) and its layers not again. Dropout and scheduled
    sampling draw the same numbers in the recomputation, so loss and gradients are those of the plain backward."""
    model = build_rnn({**overrides, "dropout": 0.3}).train()
    ids, mask = padded_sources()
    labels = token_ids(length=19)
    results = []
    for enabled in (False, True):
        model.zero_grad()
        if enabled:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
        calls: Counter[str] = Counter()
        for name, module in model.named_modules():
            checkpoint = getattr(module, "_gradient_checkpointing_func", None)
            if checkpoint is not None:
                module._gradient_checkpointing_func = lambda *args, _c=checkpoint, _n=name: calls.update([_n]) or _c(*args)
        torch.manual_seed(1)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        results.append((loss, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}))
        if enabled:
            layers = [name for name, module in model.named_modules() if isinstance(module, GradientCheckpointingLayer)]
            encoder_layers = [name for name in layers if name.startswith("model.encoder.")]
            decoder_layers = [name for name in layers if name.startswith("model.decoder.")]
            assert len(encoder_layers) == 2 and len(decoder_layers) == 3  # TINY_RNN: 2 + 3 layers
            expected = dict.fromkeys(encoder_layers, 1)
            expected.update({"model.decoder": decoder_chunks} if decoder_chunks else dict.fromkeys(decoder_layers, 1))
            assert dict(calls) == expected
    (plain_loss, plain), (checkpointed_loss, checkpointed) = results
    assert torch.equal(plain_loss, checkpointed_loss) and plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=0, atol=1e-6, msg=name)


def test_the_hybrid_encoder_follows_the_models_attention_implementation() -> None:
    model = build_rnn({**HYBRID, "attn_implementation": "eager"})
    encoder = model.get_encoder()
    assert encoder.config is model.config.encoder_config
    assert encoder.config._attn_implementation == "eager"
    model.set_attn_implementation("sdpa")
    assert encoder.config._attn_implementation == "sdpa"
    ids, mask = padded_sources()
    decoder_ids = token_ids(length=4)
    sdpa = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    model.set_attn_implementation("eager")
    eager = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-4)


def test_the_hybrid_encoder_refuses_a_kernel_its_positions_cannot_run() -> None:
    with pytest.raises(ValueError, match="alibi"):
        build_rnn({**HYBRID, "encoder_config": {**TINY_RNN_ENCODER, "position_type": "alibi"},
                   "attn_implementation": "flash_attention_2"})
