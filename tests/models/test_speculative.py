"""Speculative decoding (models/speculative.py): `generate(assistant_model=drafter)` with a NAT drafter or source
lookup returns the target's greedy ids exactly, for the Transformer and the pointer-generator, with the plain
transformers cache and with the speed paths' cache, and refuses what it cannot do losslessly."""

from __future__ import annotations

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutput

from hf_encdec import apply_speed_paths
from hf_encdec.models.configuration_nat import NATConfig
from hf_encdec.models.modeling_nat import NATForConditionalGeneration
from hf_encdec.models.speculative import HypothesisLookupDrafter, SourceLookupDrafter, lookup
from helpers import build
from variants import TINY_TRANSFORMER, VOCAB

#: the specials a random tiny target would otherwise repeat forever (start, pad, unk, mask): suppressed so that
#: outputs hold varied tokens and EOS; the target applies the same processor when it checks a draft
SUPPRESS = [0, 1, 3, 4]
CTC = {"decoder_input_type": "upsampled_source"}


def _drafter(**overrides: object) -> NATForConditionalGeneration:
    torch.manual_seed(3)
    config = NATConfig(**{**TINY_TRANSFORMER, "encoder_layers": 1, "decoder_layers": 1, "mask_token_id": 4,
                          "max_position_embeddings": 40, **overrides})
    return NATForConditionalGeneration(config).eval()


def _target(family: str, speed: bool) -> torch.nn.Module:
    model = build(family)
    return apply_speed_paths(model) if speed else model


def _sources(count: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input_ids, attention_mask) of one source each; odd lengths, one padded on the right."""
    generator = torch.Generator().manual_seed(7)
    sources = []
    for length in (5, 9, 13, 3)[:count]:
        ids = torch.randint(5, VOCAB, (1, length), generator=generator)
        ids[0, -1] = 2
        sources.append((ids, torch.ones_like(ids)))
    padded = torch.cat([sources[0][0], torch.zeros(1, 4, dtype=torch.long)], 1)
    sources.append((padded, (padded != 0).long()))
    return sources


@pytest.mark.parametrize("speed", [False, True], ids=["plain-cache", "speed-paths"])
@pytest.mark.parametrize("family", ["seq2seq", "pointer_generator"])
@pytest.mark.parametrize("draft", ["nat", "source", "ctc-hypothesis"])
def test_speculative_ids_equal_greedy_ids(family: str, speed: bool, draft: str) -> None:
    target = _target(family, speed)
    drafters = {
        "nat": _drafter,
        "source": lambda: SourceLookupDrafter.for_target(target),
        "ctc-hypothesis": lambda: HypothesisLookupDrafter.for_target(target, _drafter(**CTC)),
    }
    drafter = drafters[draft]()
    lengths = set()
    for ids, mask in _sources():
        for max_new in (7, 30):  # the limit reached inside a draft, and outputs that end with EOS
            settings = {"max_new_tokens": max_new, "suppress_tokens": SUPPRESS, "do_sample": False}
            greedy = target.generate(ids, attention_mask=mask, **settings)
            drafted = target.generate(ids, attention_mask=mask, assistant_model=drafter, **settings)
            assert torch.equal(greedy, drafted), (greedy.tolist(), drafted.tolist())
            lengths.add(greedy.shape[1])
    assert len(lengths) > 1  # the cases differ in length: some stop at EOS, some at the limit


@pytest.mark.parametrize("family", ["seq2seq", "pointer_generator"])
def test_speculative_ids_equal_greedy_ids_without_a_cache(family: str) -> None:
    target = build(family)
    for ids, mask in _sources(2):
        settings = {"max_new_tokens": 12, "suppress_tokens": SUPPRESS}
        greedy = target.generate(ids, attention_mask=mask, use_cache=False, **settings)
        drafted = target.generate(ids, attention_mask=mask, assistant_model=_drafter(), **settings)
        assert torch.equal(greedy, drafted)


def test_source_lookup_drafts_fewer_target_passes_when_the_output_copies_the_source() -> None:
    """A source that holds the target's own output: source lookup proposes right tokens, and the target runs fewer
    forward passes than tokens it emits (each accepted draft token is one pass saved), with the same ids."""
    target = build("seq2seq")
    ids = _sources(1)[0][0]
    settings = {"max_new_tokens": 12, "suppress_tokens": SUPPRESS + [2]}
    first = target.generate(ids, **settings)
    source = torch.cat([first[:, 1:], ids], dim=1)  # the target's output, then the old source
    for _ in range(3):  # settle on a source whose greedy output it contains
        output = target.generate(source, **settings)
        if torch.equal(output[:, 1:], source[:, : output.shape[1] - 1]):
            break
        source = torch.cat([output[:, 1:], ids], dim=1)
    greedy = target.generate(source, **settings)
    calls = []
    hook = target.register_forward_hook(lambda *args: calls.append(1))
    try:
        drafted = target.generate(source, assistant_model=SourceLookupDrafter.for_target(target), **settings)
    finally:
        hook.remove()
    assert torch.equal(greedy, drafted)
    assert torch.equal(greedy[:, 1:], source[:, : greedy.shape[1] - 1])  # the case this test is about
    assert len(calls) < greedy.shape[1] - 1


def test_lookup_proposes_what_follows_the_latest_match_of_the_longest_suffix() -> None:
    source = [10, 11, 12, 13, 11, 12, 14, 15]
    assert lookup(source, [9, 11, 12], max_ngram=3, count=2) == [14, 15]  # the latest occurrence of "11 12"
    assert lookup(source, [13], max_ngram=3, count=3) == [11, 12, 14]
    assert lookup(source, [], max_ngram=3, count=2) == [10, 11]  # nothing generated: the source's start
    assert lookup(source, [99, 98], max_ngram=3, count=2) == [12, 13]  # no match: the aligned position
    assert lookup(source, [99, 98], max_ngram=3, count=2, unmatched=1) == [12]  # ... as many tokens as asked
    assert lookup(source, [99, 98], max_ngram=3, count=2, unmatched=5) == [12, 13]  # ... never more than count


def test_source_lookup_proposes_one_token_where_nothing_matches() -> None:
    """A source position is a poor guess of a translation's next token: source lookup drafts one token there and a
    full draft only after a match (the hypothesis drafter, below, drafts fully from its translation's position)."""
    target = build("seq2seq")
    drafter = SourceLookupDrafter.for_target(target, num_assistant_tokens=10)
    source, start = torch.tensor([[10, 11, 12, 13, 14, 2]]), target.config.decoder_start_token_id

    def draft(*prefix: int) -> list[int]:
        out = drafter.generate(source, decoder_input_ids=torch.tensor([[start, *prefix]]))
        return out.sequences[0, 1 + len(prefix):].tolist()

    assert draft(99) == [11]  # no match: the one token at the position reached
    assert draft() == [10]
    assert draft(99, 11) == [12, 13, 14]  # after a match: what follows, up to the source's end


def test_the_hypothesis_drafter_proposes_what_follows_in_the_nats_translation_and_its_end() -> None:
    """The NAT's translation (here a given one: 9 10 11 9 12 EOS, then padding) is looked up like the source: after
    the latest match of the generated suffix, from the position reached when nothing matches, and EOS is proposed too
    (the source lookup drops it), so that a draft can end the sentence."""
    target = build("seq2seq")
    drafter = HypothesisLookupDrafter.for_target(target, _drafter(**CTC), num_assistant_tokens=3)
    translation = BaseModelOutput(last_hidden_state=torch.tensor([[9, 10, 11, 9, 12, 2, 0, 0]])[..., None])

    def draft(*prefix: int) -> list[int]:
        start = target.config.decoder_start_token_id
        out = drafter.generate(decoder_input_ids=torch.tensor([[start, *prefix]]), encoder_outputs=translation)
        assert len(out.scores) == out.sequences.shape[1] - 1 - len(prefix)  # one score row a proposed token
        return out.sequences[0, 1 + len(prefix):].tolist()

    assert draft() == [9, 10, 11]
    assert draft(5, 9) == [12, 2]  # the latest "9" is followed by 12 and EOS
    assert draft(10, 11) == [9, 12, 2]
    assert draft(7, 7) == [11, 9, 12]  # no match: from the position reached
    assert draft(9, 10, 11, 9, 12, 2) == [2]  # used up: the end


def test_the_hypothesis_drafter_translates_once_a_call_with_its_nat() -> None:
    """The drafter's encoder is the NAT's translation of the source; transformers runs it once per generate(), so the
    NAT encodes the source once however many drafts follow."""
    target, nat = build("seq2seq"), _drafter(**CTC)
    ids, mask = _sources(1)[0]
    drafter = HypothesisLookupDrafter.for_target(target, nat)
    encoded = drafter.get_encoder()(input_ids=ids, attention_mask=mask)
    assert encoded.last_hidden_state[..., 0].tolist() == nat.generate(ids, attention_mask=mask)[:, 1:].tolist()
    passes = []
    hook = nat.model.encoder.register_forward_hook(lambda *args: passes.append(1))
    try:
        target.generate(ids, attention_mask=mask, assistant_model=drafter, max_new_tokens=20, suppress_tokens=SUPPRESS)
    finally:
        hook.remove()
    assert len(passes) == 1


def test_mismatched_drafters_are_refused_naming_both() -> None:
    target = build("seq2seq")
    ids = _sources(1)[0][0]
    with pytest.raises(ValueError, match=r"NATForConditionalGeneration.*vocabulary of 57.*TransformerForConditional"):
        target.generate(ids, assistant_model=_drafter(vocab_size=57), max_new_tokens=4)
    with pytest.raises(ValueError, match=r"eos_token_id=7.*TransformerForConditionalGeneration eos_token_id=2"):
        target.generate(ids, assistant_model=_drafter(eos_token_id=7), max_new_tokens=4)
    with pytest.raises(ValueError, match=r"hf_encdec drafter.*TransformerForConditionalGeneration"):
        target.generate(ids, assistant_model=build("seq2seq"), max_new_tokens=4)
    with pytest.raises(ValueError, match=r"decoder_input_type='upsampled_source': only a CMLM NAT.*Hypothesis"):
        target.generate(ids, assistant_model=_drafter(**CTC), max_new_tokens=4)
    with pytest.raises(ValueError, match=r"NATForConditionalGeneration.*vocabulary of 57.*TransformerForConditional"):
        HypothesisLookupDrafter.for_target(target, _drafter(**CTC, vocab_size=57))
    with pytest.raises(ValueError, match=r"translates with an hf_encdec_nat model, got TransformerForConditional"):
        HypothesisLookupDrafter.for_target(target, build("seq2seq"))


def test_a_drafter_of_another_tokenizer_of_the_same_size_is_refused() -> None:
    """Runs record their tokenizer's fingerprint: same size and special ids are not enough."""
    target, drafter, ctc = build("seq2seq"), _drafter(), _drafter(**CTC)
    drafter.config.tokenizer_fingerprint = ctc.config.tokenizer_fingerprint = "fedcba9876543210"
    ids = _sources(1)[0][0]
    greedy = target.generate(ids, max_new_tokens=4, suppress_tokens=SUPPRESS)
    # a target of an older version, without a fingerprint: sizes and special ids are all there is to check
    drafted = target.generate(ids, assistant_model=drafter, max_new_tokens=4, suppress_tokens=SUPPRESS)
    assert torch.equal(drafted, greedy)
    target.config.tokenizer_fingerprint = "0123456789abcdef"
    message = r"NATForConditionalGeneration was trained with another tokenizer.*fedcba9876543210.*0123456789abcdef"
    with pytest.raises(ValueError, match=message):
        target.generate(ids, assistant_model=drafter, max_new_tokens=4)
    with pytest.raises(ValueError, match=message):
        HypothesisLookupDrafter.for_target(target, ctc)
    drafter.config.tokenizer_fingerprint = target.config.tokenizer_fingerprint
    drafted = target.generate(ids, assistant_model=drafter, max_new_tokens=4, suppress_tokens=SUPPRESS)
    assert torch.equal(drafted, greedy)


def test_sampling_and_batches_are_refused() -> None:
    target = build("pointer_generator")
    ids = _sources(1)[0][0]
    with pytest.raises(ValueError, match="greedy search only"):
        target.generate(ids, assistant_model=_drafter(), do_sample=True, max_new_tokens=4)
    with pytest.raises(ValueError, match="batch of 2"):
        target.generate(ids.repeat(2, 1), assistant_model=_drafter(), max_new_tokens=4)


def test_rnn_still_refuses_assisted_decoding() -> None:
    model = build_rnn()
    with pytest.raises(ValueError, match="roll"):
        model.generate(_sources(1)[0][0], assistant_model=_drafter(), max_new_tokens=4)


def build_rnn() -> torch.nn.Module:
    from hf_encdec import RNNSeq2SeqConfig, RNNSeq2SeqForConditionalGeneration

    torch.manual_seed(0)
    config = RNNSeq2SeqConfig(vocab_size=VOCAB, hidden_size=16, embedding_size=16)
    return RNNSeq2SeqForConditionalGeneration(config).eval()
