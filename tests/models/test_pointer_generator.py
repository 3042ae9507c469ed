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
from hf_encdec.models.copy_mechanism import (
    CopyMechanism,
    copy_cross_entropy,
    linear_copy_cross_entropy,
    mixture_log_probs,
)
from variants import BATCH, SOURCE_LEN, TARGET_LEN, TINY_RNN, TINY_TRANSFORMER, VOCAB

HIDDEN = 32


def _inputs(seed: int = 0, vocab: int = VOCAB) -> dict[str, torch.Tensor]:
    """Decoder and encoder states, output-layer logits, source ids (one word twice) and a mask (row 1 padded)."""
    generator = torch.Generator().manual_seed(seed)
    source_ids = torch.randint(0, vocab, (BATCH, SOURCE_LEN), generator=generator)
    source_ids[0, 1] = source_ids[0, 4]  # a token twice in one source: its copy probabilities add up
    mask = torch.ones(BATCH, SOURCE_LEN, dtype=torch.long)
    mask[1, 5:] = 0
    return {
        "hidden_states": torch.randn(BATCH, TARGET_LEN, HIDDEN, generator=generator),
        "encoder_hidden_states": torch.randn(BATCH, SOURCE_LEN, HIDDEN, generator=generator),
        "vocab_logits": torch.randn(BATCH, TARGET_LEN, VOCAB, generator=generator),
        "source_ids": source_ids,
        "encoder_attention_mask": mask,
    }


def _copy_mechanism(gate_bias: float | None = None) -> CopyMechanism:
    torch.manual_seed(0)
    copy = CopyMechanism(HIDDEN, HIDDEN)
    if gate_bias is not None:
        with torch.no_grad():
            copy.gate.weight.zero_()
            copy.gate.bias.fill_(gate_bias)
    return copy


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
    copy = _copy_mechanism()
    inputs = _inputs()
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
    inputs = _inputs()
    with torch.no_grad():
        generating, p_gen, _ = _mixture(_copy_mechanism(gate_bias=50.0), inputs)
        copying, _, attention = _mixture(_copy_mechanism(gate_bias=-50.0), inputs)
    assert torch.all(p_gen > 1 - 1e-6)
    torch.testing.assert_close(generating, F.log_softmax(inputs["vocab_logits"], dim=-1))
    in_source = torch.zeros(BATCH, VOCAB, dtype=torch.bool).scatter_(1, inputs["source_ids"], True)
    in_source[1] = False
    in_source[1].scatter_(0, inputs["source_ids"][1, :5], True)  # padded source positions do not count
    copy_mass = (copying.exp() * in_source[:, None, :]).sum(-1)
    torch.testing.assert_close(copy_mass, torch.ones(BATCH, TARGET_LEN))
    torch.testing.assert_close(copying.exp().gather(2, inputs["source_ids"][:, None, :1].expand(-1, TARGET_LEN, -1))[..., 0],
                               (attention * (inputs["source_ids"] == inputs["source_ids"][:, :1])[:, None, :]).sum(-1))


@pytest.mark.parametrize("extra", [0, 3], ids=["vocabulary", "extended-vocabulary"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_loss_without_the_mixture_equals_the_loss_of_the_mixture(extra: int, label_smoothing: float) -> None:
    """copy_cross_entropy never builds P; its value and gradients equal those of the cross-entropy of the whole P
    (label smoothing spread over the V vocabulary words)."""
    inputs = _inputs()
    if extra:
        inputs["source_ids"][2, 3] = VOCAB + 2  # a source word outside the vocabulary
    labels = torch.randint(0, VOCAB, (BATCH, TARGET_LEN))
    labels[0, 0] = inputs["source_ids"][0, 1]  # the word that is twice in its source
    labels[2, 1] = inputs["source_ids"][2, 3]  # the source-only word when extended
    labels[1, 3:] = -100
    losses, gradients = [], []
    for sparse in (True, False):
        copy = _copy_mechanism()
        logits = inputs["vocab_logits"].clone().requires_grad_()
        attention, gate_logits, _ = copy(inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["encoder_attention_mask"])
        if sparse:
            loss = copy_cross_entropy(
                logits[labels != -100], attention, gate_logits, inputs["source_ids"], labels,
                encoder_attention_mask=inputs["encoder_attention_mask"], label_smoothing=label_smoothing,
            )
        else:
            log_probs = mixture_log_probs(logits, attention, gate_logits, inputs["source_ids"], VOCAB + extra)
            keep = labels != -100
            nll = -log_probs.gather(2, labels.clamp(min=0)[..., None])[..., 0]
            smooth = -log_probs[..., :VOCAB].mean(-1)
            loss = ((1 - label_smoothing) * nll + label_smoothing * smooth)[keep].mean()
        loss.backward()
        losses.append(loss)
        gradients.append([logits.grad, copy.query.weight.grad, copy.gate.weight.grad, copy.gate.bias.grad])
    torch.testing.assert_close(losses[0], losses[1])
    for sparse_gradient, dense_gradient in zip(*gradients):
        torch.testing.assert_close(sparse_gradient, dense_gradient, atol=1e-6, rtol=1e-4)


def _fused_loss_case(extra: int, with_bias: bool) -> dict:
    """A copy loss problem with its differentiable parts: decoder states (B, T, D) feeding both the output layer and
    the copy head, the output layer (V, D) and (V,), labels with -100, the word twice in its source, padding in row 1's
    source, and with `extra` a source-only word (V + 2, in a source and a label) and a label in no source (V + 1)."""
    inputs = _inputs()
    if extra:
        inputs["source_ids"][2, 3] = VOCAB + 2
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(0, VOCAB, (BATCH, TARGET_LEN), generator=generator)
    labels[0, 0] = inputs["source_ids"][0, 1]  # the word that is twice in its source
    labels[1, 1] = inputs["source_ids"][1, 6]  # a word only at a padded source position
    labels[2, 1] = inputs["source_ids"][2, 3]  # the source-only word when extended
    if extra:
        labels[2, 4] = VOCAB + 1  # outside the vocabulary and in no source: only the copy floor gives it mass
    labels[1, 3:] = -100
    return {
        **inputs,
        "labels": labels,
        "weight": torch.randn(VOCAB, HIDDEN, generator=generator) / HIDDEN**0.5,
        "bias": torch.randn(VOCAB, generator=generator) if with_bias else None,
    }


def _copy_losses(case: dict, fused: bool, dtype: torch.dtype = torch.float32, **kwargs) -> tuple[torch.Tensor, list]:
    """The fused or unfused loss of `case` and the gradients of the states, the output layer, the copy attention and
    the gate logits."""
    copy = _copy_mechanism()
    hidden_states = case["hidden_states"].to(dtype, copy=True).requires_grad_()
    weight = case["weight"].to(dtype, copy=True).requires_grad_()
    bias = None if case["bias"] is None else case["bias"].to(dtype, copy=True).requires_grad_()
    attention, gate_logits, _ = copy.to(dtype)(
        hidden_states, case["encoder_hidden_states"].to(dtype), case["encoder_attention_mask"]
    )
    attention.retain_grad()
    gate_logits.retain_grad()
    keep = case["labels"] != -100
    arguments = (attention, gate_logits, case["source_ids"], case["labels"])
    kwargs = {"encoder_attention_mask": case["encoder_attention_mask"], **kwargs}
    if fused:
        loss = linear_copy_cross_entropy(hidden_states[keep], weight, bias, *arguments, **kwargs)
    else:
        loss = copy_cross_entropy(F.linear(hidden_states[keep], weight, bias), *arguments, **kwargs)
    loss.backward()
    gradients = [hidden_states.grad, weight.grad, attention.grad, gate_logits.grad]
    return loss, gradients + ([] if bias is None else [bias.grad])


@pytest.mark.parametrize("num_items_in_batch", [None, 20], ids=["per-token", "num-items"])
@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("extra", [0, 3], ids=["vocabulary", "extended-vocabulary"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1], ids=["no-smoothing", "smoothing"])
def test_fused_copy_loss_equals_the_unfused_loss_in_value_and_every_gradient(
    label_smoothing: float, extra: int, with_bias: bool, num_items_in_batch: int | None
) -> None:
    """linear_copy_cross_entropy (the output layer fused with the loss, chunk by chunk) == copy_cross_entropy of the
    logits, in value and in the gradients of the decoder states (through the output layer and the copy head), the
    output layer, the copy attention and the gate; chunk_size=4 takes the 13 labelled tokens in four chunks."""
    case = _fused_loss_case(extra, with_bias)
    kwargs = {"label_smoothing": label_smoothing, "num_items_in_batch": num_items_in_batch}
    fused, fused_gradients = _copy_losses(case, fused=True, chunk_size=4, **kwargs)
    unfused, unfused_gradients = _copy_losses(case, fused=False, **kwargs)
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=1e-5)
    names = ["states", "weight", "attention", "gate", "bias"]
    for name, got, expected in zip(names, fused_gradients, unfused_gradients):
        assert expected.abs().sum() > 0, name
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4, msg=name)


def test_fused_copy_loss_is_the_same_in_any_number_of_chunks_and_without_gradients() -> None:
    case = _fused_loss_case(3, with_bias=True)
    one, one_gradients = _copy_losses(case, fused=True, label_smoothing=0.1)  # the default: one chunk of 13 tokens
    for chunk_size in (1, 5):
        several, several_gradients = _copy_losses(case, fused=True, label_smoothing=0.1, chunk_size=chunk_size)
        torch.testing.assert_close(several, one)
        for got, expected in zip(several_gradients, one_gradients):
            torch.testing.assert_close(got, expected)
    keep = case["labels"] != -100
    with torch.no_grad():
        attention, gate_logits, _ = _copy_mechanism()(
            case["hidden_states"], case["encoder_hidden_states"], case["encoder_attention_mask"]
        )
        evaluated = linear_copy_cross_entropy(
            case["hidden_states"][keep], case["weight"], case["bias"], attention, gate_logits, case["source_ids"],
            case["labels"], encoder_attention_mask=case["encoder_attention_mask"], label_smoothing=0.1, chunk_size=5,
        )
    torch.testing.assert_close(evaluated, one)


def test_fused_copy_loss_saves_no_logits_sized_tensor_for_backward() -> None:
    """The unfused loss keeps (N, V) logits for backward; the fused one keeps nothing of N * V elements or more."""
    case = _fused_loss_case(3, with_bias=True)
    tokens = int((case["labels"] != -100).sum())
    for fused in (True, False):
        saved: list[tuple[int, ...]] = []

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            saved.append(tuple(tensor.shape))
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            _copy_losses(case, fused=fused, label_smoothing=0.1)
        largest = max(saved, key=lambda shape: torch.Size(shape).numel())
        assert (torch.Size(largest).numel() >= tokens * VOCAB) == (not fused), (fused, largest)


def test_fused_copy_loss_takes_only_the_labelled_states() -> None:
    case = _fused_loss_case(0, with_bias=False)
    attention, gate_logits, _ = _copy_mechanism()(case["hidden_states"], case["encoder_hidden_states"])
    with pytest.raises(ValueError, match="hidden has 15 rows but labels have 13 labelled tokens"):
        linear_copy_cross_entropy(
            case["hidden_states"].reshape(-1, HIDDEN), case["weight"], None, attention, gate_logits,
            case["source_ids"], case["labels"],
        )


def test_fused_copy_loss_in_bfloat16_matches_the_unfused_loss() -> None:
    """bfloat16 states and output layer: the logits are taken in bfloat16 and the loss in float32, as unfused."""
    case = _fused_loss_case(3, with_bias=True)
    fused, fused_gradients = _copy_losses(case, fused=True, dtype=torch.bfloat16, label_smoothing=0.1, chunk_size=4)
    unfused, unfused_gradients = _copy_losses(case, fused=False, dtype=torch.bfloat16, label_smoothing=0.1)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, unfused, atol=1e-4, rtol=1e-4)
    for got, expected in zip(fused_gradients, unfused_gradients):
        assert got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, atol=2e-2, rtol=2e-2)


def test_model_loss_is_the_cross_entropy_of_its_output_and_trains_every_part() -> None:
    model = build("pointer_generator", label_smoothing=0.1).train()
    source, labels = token_ids(), token_ids(length=TARGET_LEN)
    labels[0, 3:] = -100
    out = model(input_ids=source, labels=labels)
    assert out.logits is None  # training takes the loss without building the mixture
    log_probs = model(input_ids=source, labels=labels, skip_logits=False).logits
    keep = labels != -100
    expected = 0.9 * -log_probs.gather(2, labels.clamp(min=0)[..., None])[keep].mean() + 0.1 * -log_probs[keep].mean()
    torch.testing.assert_close(out.loss, expected)
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
