"""The copy mechanism (copy_mechanism.py) and the pointer-generator family: the mixture against a loop reference, its
reductions (p_gen = 1 is the plain softmax, p_gen = 0 only copies), the extended vocabulary, generate() with and
without a cache, clear errors, and learning to copy words outside the vocabulary."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import build, token_ids
from hf_encdec import (
    PointerGeneratorConfig,
    PointerGeneratorForConditionalGeneration,
    RNNSeq2SeqConfig,
    RNNSeq2SeqForConditionalGeneration,
)
from copy_cases import HIDDEN, copy_head, copy_inputs
from hf_encdec.models.copy_mechanism import CopyMechanism, mixture_cross_entropy, mixture_log_probs
from variants import BATCH, SOURCE_LEN, TARGET_LEN, TINY_RNN, TINY_TRANSFORMER, VOCAB


def _mixture(copy: CopyMechanism, inputs: dict[str, torch.Tensor], extended: int | None = None) -> tuple:
    attention, gate_logits, _ = copy(inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["encoder_attention_mask"])
    log_probs = mixture_log_probs(inputs["vocab_logits"], attention, gate_logits, inputs["source_ids"], extended)
    return log_probs, torch.sigmoid(gate_logits), attention


def _reference(copy: CopyMechanism, inputs: dict[str, torch.Tensor], extended: int) -> torch.Tensor:
    """The paper's formulas, one (b, t, s) at a time."""
    hidden, encoder, logits = inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["vocab_logits"]
    probs = torch.zeros(BATCH, TARGET_LEN, extended)
    for b in range(BATCH):
        keep = inputs["encoder_attention_mask"][b].bool()
        for t in range(TARGET_LEN):
            scores = torch.stack([hidden[b, t] @ copy.query.weight.T @ encoder[b, s] for s in range(SOURCE_LEN)])
            attention = torch.softmax(scores[keep] / HIDDEN**0.5, dim=0)
            context = attention @ encoder[b, keep]
            p_gen = torch.sigmoid(copy.gate.weight[0] @ torch.cat([hidden[b, t], context]) + copy.gate.bias[0])
            probs[b, t, :VOCAB] = p_gen * torch.softmax(logits[b, t], dim=0)
            for a, token in zip(attention, inputs["source_ids"][b, keep].tolist()):
                probs[b, t, token] += (1 - p_gen) * a
    return probs


@pytest.mark.parametrize("extra", [0, 3], ids=["vocabulary", "extended-vocabulary"])
def test_mixture_matches_the_formulas(extra: int) -> None:
    copy = copy_head()
    inputs = copy_inputs()
    if extra:
        inputs["source_ids"][2, 3] = VOCAB + 2  # a source word outside the vocabulary
    with torch.no_grad():
        log_probs, p_gen, attention = _mixture(copy, inputs, VOCAB + extra)
    expected = _reference(copy, inputs, VOCAB + extra)
    torch.testing.assert_close(log_probs.exp(), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(BATCH, TARGET_LEN))
    assert torch.all(attention[1, :, 5:] == 0)  # padding is never copied
    assert torch.all((p_gen > 0) & (p_gen < 1))
    if extra:
        # only the copy part reaches the source-only word; ids V and V+1 are in no source
        torch.testing.assert_close(log_probs[2, :, VOCAB + 2].exp(), ((1 - p_gen[2, :, 0]) * attention[2, :, 3]))
        assert torch.all(log_probs[:, :, VOCAB : VOCAB + 2] < -60)


def test_generation_probability_one_is_the_plain_softmax_and_zero_only_copies() -> None:
    inputs = copy_inputs()
    with torch.no_grad():
        generating, p_gen, _ = _mixture(copy_head(gate_bias=50.0), inputs)
        copying, _, attention = _mixture(copy_head(gate_bias=-50.0), inputs)
    assert torch.all(p_gen > 1 - 1e-6)
    torch.testing.assert_close(generating, F.log_softmax(inputs["vocab_logits"], dim=-1))
    in_source = torch.zeros(BATCH, VOCAB, dtype=torch.bool).scatter_(1, inputs["source_ids"], True)
    in_source[1] = False
    in_source[1].scatter_(0, inputs["source_ids"][1, :5], True)  # padded source positions do not count
    copy_mass = (copying.exp() * in_source[:, None, :]).sum(-1)
    torch.testing.assert_close(copy_mass, torch.ones(BATCH, TARGET_LEN))
    torch.testing.assert_close(copying.exp().gather(2, inputs["source_ids"][:, None, :1].expand(-1, TARGET_LEN, -1))[..., 0],
                               (attention * (inputs["source_ids"] == inputs["source_ids"][:, :1])[:, None, :]).sum(-1))


@pytest.mark.parametrize("num_items_in_batch", [None, 20], ids=["per-token", "num-items"])
def test_mixture_cross_entropy_follows_its_formula_token_by_token(num_items_in_batch: int | None) -> None:
    """(1 - eps) (-log P(y_t)) + eps/V sum_{w < V} -log P(w) over the labelled tokens: the smoothing leaves out the
    source-only words of the extended vocabulary, and a source-only label is scored by its copy probability."""
    extended, smoothing = VOCAB + 3, 0.1
    log_probs = torch.log_softmax(torch.randn(BATCH, TARGET_LEN, extended), dim=-1)
    labels = torch.randint(0, extended, (BATCH, TARGET_LEN))
    labels[0, 0], labels[1, 2:] = VOCAB + 1, -100
    total, count = 0.0, 0
    for b in range(BATCH):
        for t in range(TARGET_LEN):
            if labels[b, t] == -100:
                continue
            smooth = -sum(log_probs[b, t, w] for w in range(VOCAB)) / VOCAB
            total += (1 - smoothing) * -log_probs[b, t, labels[b, t]] + smoothing * smooth
            count += 1
    loss = mixture_cross_entropy(
        log_probs, labels, vocab_size=VOCAB, label_smoothing=smoothing, num_items_in_batch=num_items_in_batch
    )
    torch.testing.assert_close(loss, total / (num_items_in_batch or count))


def test_model_loss_is_the_cross_entropy_of_its_output_and_trains_every_part() -> None:
    model = build("pointer_generator", label_smoothing=0.1).train()
    source, labels = token_ids(), token_ids(length=TARGET_LEN)
    labels[0, 3:] = -100
    out = model(input_ids=source, labels=labels)
    log_probs = out.logits  # (B, T, V) log P, next to the loss it is taken from
    keep = labels != -100
    expected = 0.9 * -log_probs.gather(2, labels.clamp(min=0)[..., None])[keep].mean() + 0.1 * -log_probs[keep].mean()
    torch.testing.assert_close(out.loss, expected)
    assert model(input_ids=source, labels=labels, skip_logits=True).logits is None
    out.loss.backward()
    for name in ("copy_mechanism.query.weight", "copy_mechanism.gate.weight", "lm_head.weight"):
        gradient = model.get_parameter(name).grad
        assert gradient is not None and gradient.abs().sum() > 0 and torch.isfinite(gradient).all(), name
    with torch.no_grad():
        evaluated = model.eval()(input_ids=source, labels=labels)
    torch.testing.assert_close(evaluated.loss, out.loss)


def test_source_ids_default_to_input_ids_and_decide_what_is_copied() -> None:
    model = build("pointer_generator")
    source, target = token_ids(), token_ids(length=TARGET_LEN)
    default = model(input_ids=source, decoder_input_ids=target)
    explicit = model(input_ids=source, decoder_input_ids=target, source_ids=source)
    torch.testing.assert_close(default.logits, explicit.logits)
    other = model(input_ids=source, decoder_input_ids=target, source_ids=(source + 1) % VOCAB)
    assert not torch.allclose(other.logits, default.logits)


def test_extended_ids_are_fed_back_as_unknown_and_labels_may_use_them() -> None:
    model = build("pointer_generator", unk_token_id=3)
    source, target = token_ids(), token_ids(length=TARGET_LEN)
    extended_source = source.clone()
    extended_source[:, 2] = VOCAB + 1  # the third source word of every row is outside the vocabulary
    extended_target = target.clone()
    extended_target[:, 1] = VOCAB + 1
    unknown_target = target.clone()
    unknown_target[:, 1] = 3
    kwargs = {"input_ids": source, "source_ids": extended_source, "num_source_oovs": 2}
    with_extended = model(decoder_input_ids=extended_target, **kwargs)
    with_unknown = model(decoder_input_ids=unknown_target, **kwargs)
    assert with_extended.logits.shape == (BATCH, TARGET_LEN, VOCAB + 2)
    torch.testing.assert_close(with_extended.logits, with_unknown.logits)
    loss = model(labels=extended_target, **kwargs).loss
    assert torch.isfinite(loss)
    generated = model.generate(source, source_ids=extended_source, num_source_oovs=2, max_new_tokens=4, num_beams=2)
    assert generated.shape[0] == BATCH


@pytest.mark.contract
def test_generate_is_the_same_with_and_without_cache_in_every_mode() -> None:
    model = build("pointer_generator")
    source = token_ids()
    mask = torch.ones_like(source)
    mask[0, 5:] = 0
    modes = [{}, {"num_beams": 3}, {"num_beams": 3, "num_return_sequences": 2}, {"do_sample": True, "top_p": 0.9}]
    for mode in modes:
        results = []
        for use_cache in (True, False):
            torch.manual_seed(1)
            results.append(model.generate(source, attention_mask=mask, max_new_tokens=6, use_cache=use_cache, **mode))
        assert torch.equal(*results), mode


def test_source_padding_changes_nothing() -> None:
    model = build("pointer_generator")
    source, target = token_ids(batch=1), token_ids(batch=1, length=TARGET_LEN)
    padded = torch.cat([source, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones_like(source), torch.zeros(1, 3, dtype=torch.long)], dim=1)
    alone = model(input_ids=source, decoder_input_ids=target).logits
    torch.testing.assert_close(model(input_ids=padded, attention_mask=mask, decoder_input_ids=target).logits, alone)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"share_encoder_decoder_embeddings": False, "decoder_vocab_size": 50}, "decoder_vocab_size=50 must equal"),
        ({"unk_token_id": 500}, "unk_token_id=500 is outside"),
    ],
)
def test_invalid_configs_raise_value_errors_naming_the_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PointerGeneratorConfig(**{**TINY_TRANSFORMER, **kwargs})


def test_missing_source_and_unknown_id_are_clear_errors() -> None:
    model = build("pointer_generator")
    source, target = token_ids(), token_ids(length=TARGET_LEN)
    encoder_outputs = model.get_encoder()(input_ids=source)
    with pytest.raises(ValueError, match="needs source_ids"):
        model(encoder_outputs=encoder_outputs, decoder_input_ids=target)
    with pytest.raises(ValueError, match="needs config.unk_token_id"):
        model(input_ids=source, decoder_input_ids=target, num_source_oovs=2)
    with pytest.raises(ValueError, match="generate\\(\\) needs input_ids"):
        model.generate(inputs_embeds=torch.randn(BATCH, SOURCE_LEN, 32), max_new_tokens=3)


def _copy_batch(generator: torch.Generator, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy-task rows of 6 words and </s>, two of the words outside the vocabulary: (input ids with <unk> = 3 there,
    the same row in the extended vocabulary with ids V and V + 1 there)."""
    extended = torch.randint(5, VOCAB, (batch, 6), generator=generator)
    positions = torch.rand(batch, 6, generator=generator).argsort(dim=1)[:, :2].sort(dim=1).values
    extended.scatter_(1, positions, (VOCAB + torch.arange(2)).expand(batch, 2).contiguous())
    extended = torch.cat([extended, torch.full((batch, 1), 2)], dim=1)
    return extended.masked_fill(extended >= VOCAB, 3), extended


def _copy_learner(family: str) -> torch.nn.Module:
    """A fresh model of `family` that feeds extended ids back as <unk> = 3: the Transformer pointer-generator, or See
    et al.'s RNN (one bidirectional LSTM layer, Bahdanau attention reused as the copy distribution)."""
    torch.manual_seed(0)
    if family == "transformer":
        config = PointerGeneratorConfig(
            **{**TINY_TRANSFORMER, "encoder_layers": 2, "decoder_layers": 2, "num_key_value_heads": 4, "unk_token_id": 3}
        )
        return PointerGeneratorForConditionalGeneration(config)
    config = RNNSeq2SeqConfig(
        **{**TINY_RNN, "rnn_type": "lstm", "attention_type": "bahdanau", "input_feeding": False, "encoder_layers": 1,
           "decoder_layers": 1, "hidden_size": 64, "copy_mechanism": True, "unk_token_id": 3}
    )
    return RNNSeq2SeqForConditionalGeneration(config)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "steps"), [("transformer", 150), ("rnn", 300)])
def test_learns_to_copy_words_outside_its_vocabulary(family: str, steps: int) -> None:
    """See et al.'s use: words the vocabulary cannot produce (here two per row, seen only as <unk>) are copied from
    the source through the extended vocabulary; a model without the copy mechanism could at best emit <unk>."""
    model = _copy_learner(family)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        input_ids, extended = _copy_batch(generator)
        loss = model(input_ids=input_ids, source_ids=extended, num_source_oovs=2, labels=extended).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    input_ids, extended = _copy_batch(torch.Generator().manual_seed(1), batch=64)
    generated = model.eval().generate(
        input_ids, source_ids=extended, num_source_oovs=2, max_new_tokens=7, do_sample=False
    )[:, 1:]
    outside = extended >= VOCAB
    assert (generated[outside] == extended[outside]).float().mean() >= 0.95
    assert (generated == extended).all(dim=1).float().mean() >= 0.9
