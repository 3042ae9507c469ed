"""Properties every Transformer variant must have, for each family: causality, padding invariance, cache
equivalence, batch invariance, and the same numbers from every attention kernel."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from helpers import build, token_ids
from hf_encdec.models.transformers_contract import output_cache
from variants import BATCH, SOURCE_LEN, TARGET_LEN, TRANSFORMER_VARIANTS

ATOL, RTOL = 1e-5, 1e-4


def _seq2seq_logits(model: torch.nn.Module, source: torch.Tensor, target: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    return model(input_ids=source, decoder_input_ids=target, **kwargs).logits


@pytest.mark.parametrize("overrides", TRANSFORMER_VARIANTS)
def test_decoders_are_causal(overrides: dict[str, Any]) -> None:
    seq2seq, decoder = build("seq2seq", overrides), build("decoder", overrides)
    source, target = token_ids(), token_ids(length=TARGET_LEN)
    changed = target.clone()
    changed[:, 3:] = token_ids(length=TARGET_LEN - 3)
    torch.testing.assert_close(
        _seq2seq_logits(seq2seq, source, target)[:, :3], _seq2seq_logits(seq2seq, source, changed)[:, :3]
    )
    torch.testing.assert_close(decoder(target).logits[:, :3], decoder(changed).logits[:, :3])
    # and the future does matter somewhere, or the test would hold trivially
    assert not torch.allclose(decoder(target).logits[:, 3:], decoder(changed).logits[:, 3:])


@pytest.mark.parametrize("overrides", TRANSFORMER_VARIANTS)
def test_source_padding_changes_nothing(overrides: dict[str, Any]) -> None:
    seq2seq, encoder = build("seq2seq", overrides), build("encoder", overrides)
    source, target = token_ids(), token_ids(length=TARGET_LEN)
    mask = torch.ones_like(source)
    mask[1, 4:] = 0
    source[1, 4:] = 0  # pad id
    batch_logits = _seq2seq_logits(seq2seq, source, target, attention_mask=mask)
    alone = _seq2seq_logits(seq2seq, source[1:2, :4], target[1:2])
    torch.testing.assert_close(batch_logits[1:2], alone, atol=ATOL, rtol=RTOL)
    batch_states = encoder.model(input_ids=source, attention_mask=mask).last_hidden_state
    alone_states = encoder.model(input_ids=source[1:2, :4]).last_hidden_state
    torch.testing.assert_close(batch_states[1:2, :4], alone_states, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("overrides", TRANSFORMER_VARIANTS)
def test_decoder_only_left_padding_changes_nothing(overrides: dict[str, Any]) -> None:
    decoder = build("decoder", overrides)
    ids = token_ids(length=6)
    padded = torch.cat([torch.zeros(BATCH, 2, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros(BATCH, 2, dtype=torch.long), torch.ones_like(ids)], dim=1)
    mask[0, :2] = 1  # row 0 unpadded but longer: mixes padded and unpadded rows in one batch
    padded[0, :2] = token_ids(batch=1, length=2)
    logits = decoder(padded, attention_mask=mask).logits
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits[1:, 2:], decoder(ids[1:]).logits, atol=ATOL, rtol=RTOL)


@pytest.mark.contract
@pytest.mark.parametrize("overrides", TRANSFORMER_VARIANTS)
def test_incremental_decoding_with_cache_equals_full_forward(overrides: dict[str, Any]) -> None:
    """The seq2seq model takes the cache under its transformers 5.24 name `cache`, the decoder under the older
    `past_key_values`: both names work on every supported release."""
    seq2seq, decoder = build("seq2seq", overrides), build("decoder", overrides)
    source, target = token_ids(), token_ids(length=TARGET_LEN)
    full = _seq2seq_logits(seq2seq, source, target)
    encoder_outputs = seq2seq.get_encoder()(input_ids=source)
    cache, steps = None, []
    for t in range(TARGET_LEN):
        out = seq2seq(
            encoder_outputs=encoder_outputs, decoder_input_ids=target[:, t : t + 1], cache=cache, use_cache=True
        )
        cache = output_cache(out)
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=RTOL)

    full = decoder(target).logits
    out = decoder(target[:, :2], use_cache=True)  # a prefill of two tokens, then single steps
    steps, cache = [out.logits], output_cache(out)
    for t in range(2, TARGET_LEN):
        out = decoder(target[:, t : t + 1], past_key_values=cache, use_cache=True)
        cache = output_cache(out)
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=ATOL, rtol=RTOL)


@pytest.mark.contract
@pytest.mark.parametrize("overrides", TRANSFORMER_VARIANTS)
def test_generate_is_the_same_with_and_without_cache(overrides: dict[str, Any]) -> None:
    seq2seq, decoder = build("seq2seq", overrides), build("decoder", overrides)
    source = token_ids()
    mask = torch.ones_like(source)
    mask[2, 5:] = 0
    left_mask = torch.ones_like(source)
    left_mask[2, :2] = 0
    for kwargs in ({"do_sample": False}, {"num_beams": 3, "num_return_sequences": 2, "do_sample": False}):
        with_cache = seq2seq.generate(source, attention_mask=mask, max_new_tokens=6, use_cache=True, **kwargs)
        without = seq2seq.generate(source, attention_mask=mask, max_new_tokens=6, use_cache=False, **kwargs)
        assert torch.equal(with_cache, without)
        with_cache = decoder.generate(source, attention_mask=left_mask, max_new_tokens=6, use_cache=True, **kwargs)
        without = decoder.generate(source, attention_mask=left_mask, max_new_tokens=6, use_cache=False, **kwargs)
        assert torch.equal(with_cache, without)


@pytest.mark.parametrize("overrides", TRANSFORMER_VARIANTS)
def test_batch_rows_are_independent(overrides: dict[str, Any]) -> None:
    seq2seq, decoder, encoder = build("seq2seq", overrides), build("decoder", overrides), build("encoder", overrides)
    source, target = token_ids(), token_ids(length=TARGET_LEN)
    batched = _seq2seq_logits(seq2seq, source, target)
    for row in range(BATCH):
        one = slice(row, row + 1)
        torch.testing.assert_close(batched[one], _seq2seq_logits(seq2seq, source[one], target[one]), atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(decoder(source).logits[one], decoder(source[one]).logits, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(encoder(source).logits[one], encoder(source[one]).logits, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("overrides", TRANSFORMER_VARIANTS)
def test_eager_and_sdpa_kernels_agree(overrides: dict[str, Any]) -> None:
    overrides = {k: v for k, v in overrides.items() if k != "attn_implementation"}
    source, target = token_ids(), token_ids(length=TARGET_LEN)
    mask = torch.ones_like(source)
    mask[0, 3:] = 0
    eager, sdpa = build("seq2seq", {**overrides, "attn_implementation": "eager"}), build("seq2seq", overrides)
    torch.testing.assert_close(
        _seq2seq_logits(eager, source, target, attention_mask=mask),
        _seq2seq_logits(sdpa, source, target, attention_mask=mask),
        atol=ATOL,
        rtol=RTOL,
    )
    eager, sdpa = build("decoder", {**overrides, "attn_implementation": "eager"}), build("decoder", overrides)
    torch.testing.assert_close(eager(source, attention_mask=mask).logits, sdpa(source, attention_mask=mask).logits, atol=ATOL, rtol=RTOL)


def test_variant_table_covers_every_value_of_every_switch_the_source_declares() -> None:
    from hf_encdec.models.configuration_transformer import SWITCHES

    seen = {(k, v) for param in TRANSFORMER_VARIANTS for k, v in param.values[0].items()}
    for switch, values in SWITCHES.items():
        for value in values:
            assert (switch, value) in seen, f"{switch}={value} is not exercised by tests/variants.py"
    assert SOURCE_LEN != TARGET_LEN
