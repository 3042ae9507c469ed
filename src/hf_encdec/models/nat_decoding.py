"""Decoding of the non-autoregressive family in small steps: what `NATForConditionalGeneration.generate` runs, and
what drafting for speculative decoding reuses (a variant, e.g. a CTC decoder or de-duplication, replaces one step).

Shapes: B sources, l length candidates per source, W the widest candidate (tokens + EOS), p the given prefix,
V vocabulary.

    settings = decoding_settings(...)               checks and defaults
    lengths  = lengths_from_classifier(...)          (B, l): the l most likely lengths, each above the prefix
               or given_lengths(...)                 (B, 1): target_length / fixed_length
    canvas   = Canvas.build(prefix, lengths, ...)    the positions, the given prefix, where EOS goes
    choices  = mask_predict(predict, canvas, N)      one pass over the open positions, then N - 1 rounds that re-mask
                                                     the T (N - t) / N least confident of them (Ghazvininejad et al.)
    rows     = best_candidates(choices, canvas, l)   each source's candidate of best mean log-probability
    output   = as_sequences(...)                     start token, tokens, EOS, padding (the AR families' format)
               or as_continuation(...)               the prefix and the first new tokens (a draft)

A *prefix* (`decoder_input_ids`, the decoder start token and p tokens) is what speculative decoding hands a drafter:
the tokens the target model has accepted so far. Its positions are given (never masked) and the continuation is
predicted at the positions after it, in one pass by default (the CMLM conditions on the observed tokens exactly as
it does in training, where any subset of the target is shown).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

#: what the library's tools and Seq2SeqTrainer hand any seq2seq generate() and parallel decoding has no use for;
#: anything else (sampling, penalties, ...) raises rather than being ignored
IGNORED_GENERATE_KWARGS = (
    "synced_gpus", "length_penalty", "use_cache", "early_stopping", "decoder_start_token_id", "bos_token_id",
    "eos_token_id", "pad_token_id", "labels", "decoder_attention_mask",
)

#: what transformers' assisted generation hands its drafter besides the prefix: the target's logits processors and
#: minimum length (the target applies both when it checks the draft, so a draft need not), the pointer-generator
#: target's copy inputs, and the drafter's cache from its previous call. Taken only with a prefix.
DRAFT_ONLY_KWARGS = ("logits_processor", "min_new_tokens", "source_ids", "num_source_oovs", "cache", "past_key_values")

#: defaults of drafting (continuing a prefix) when the drafter's generation config does not set
#: `draft_num_iterations` / `draft_length_beam_size`: one parallel pass over the most likely length
DRAFT_DEFAULTS = {"draft_num_iterations": 1, "draft_length_beam_size": 1}


@dataclass(frozen=True)
class DecodingSettings:
    """What one `generate()` call decodes: rounds of mask-predict, length candidates, given lengths, the longest
    length the classifier may pick, and for a prefix the most new tokens returned (`cut`) and the confidence below
    which a draft stops (`confidence_threshold`, transformers' `assistant_confidence_threshold`)."""

    num_iterations: int
    length_beam_size: int
    target_length: int | torch.Tensor | None
    fixed_length: int | None
    longest: int
    cut: int | None
    confidence_threshold: float | None
    return_dict: bool
    output_scores: bool


def check_no_sampling(do_sample: bool, num_return_sequences: int, num_beams: int | None) -> None:
    """Parallel decoding is deterministic and returns one sequence a source."""
    if do_sample or num_return_sequences != 1 or num_beams not in (None, 1):
        raise ValueError(
            "NAT decoding is deterministic, parallel and returns one sequence per source: do_sample=True, "
            f"num_beams={num_beams} and num_return_sequences={num_return_sequences} are not available (use "
            "length_beam_size to try several lengths)"
        )


def check_kwargs(kwargs: dict[str, Any], *, has_prefix: bool) -> None:
    """Raise for generate() arguments that parallel decoding would otherwise ignore silently."""
    allowed = set(IGNORED_GENERATE_KWARGS) | (set(DRAFT_ONLY_KWARGS) if has_prefix else set())
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(f"NAT generate() got arguments it does not take: {unknown}")


def setting(name: str, given: Any, generation_config: Any, own_config: Any, default: Any) -> Any:
    """A decoding setting: the argument, else the generation config passed in, else the model's own, else `default`."""
    if given is not None:
        return given
    for config in (generation_config, own_config):
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def decoding_settings(
    config: Any,
    generation_config: Any,
    own_config: Any,
    *,
    prefix_length: int | None,
    num_iterations: int | None,
    length_beam_size: int | None,
    target_length: int | torch.Tensor | None,
    fixed_length: int | None,
    max_new_tokens: int | None,
    max_length: int | None,
    return_dict_in_generate: bool | None,
    output_scores: bool | None,
) -> DecodingSettings:
    """Checked settings of one call. Without a prefix, `max_new_tokens` (or `max_length`, which counts the start
    token) bounds the length the classifier may choose, so every output ends with EOS. With a prefix (drafting), the
    length is the classifier's choice above the prefix and the continuation is cut after `max_new_tokens`, as an
    autoregressive model's would be; the rounds and length candidates default to the drafter's own
    `draft_num_iterations` / `draft_length_beam_size` (one pass, one length)."""
    ctc = config.decoder_input_type == "upsampled_source"
    if prefix_length is None:
        num_iterations = setting("num_iterations", num_iterations, generation_config, own_config, 1 if ctc else 10)
        length_beam_size = setting("length_beam_size", length_beam_size, generation_config, own_config, 1)
    else:
        # the generation config of a drafting call is the target's: the drafter's own settings come from its config
        if num_iterations is None:
            num_iterations = getattr(own_config, "draft_num_iterations", None) or DRAFT_DEFAULTS["draft_num_iterations"]
        if length_beam_size is None:
            length_beam_size = (
                getattr(own_config, "draft_length_beam_size", None) or DRAFT_DEFAULTS["draft_length_beam_size"]
            )
    if not isinstance(num_iterations, int) or num_iterations < 1:
        raise ValueError(f"num_iterations must be an integer >= 1 (1 = one-pass decoding), got {num_iterations!r}")
    if not isinstance(length_beam_size, int) or length_beam_size < 1:
        raise ValueError(f"length_beam_size must be an integer >= 1, got {length_beam_size!r}")
    if target_length is not None and fixed_length is not None:
        raise ValueError("give target_length (exact lengths) or fixed_length (cut at the first EOS), not both")
    # a CTC model trained with glancing saw tokens of its best alignment in its input: it can refine its own output
    refines_ctc = ctc and getattr(config, "glancing_ratio", 0) > 0 and not prefix_length
    if config.decoder_input_type != "mask" and (num_iterations > 1 or prefix_length) and not refines_ctc:
        raise ValueError(
            "mask-predict re-masks tokens and a prefix shows some, which a "
            f"decoder_input_type={config.decoder_input_type!r} model never saw in training: use num_iterations=1 "
            "without decoder_input_ids, or train with decoder_input_type='mask'"
            + (" (or, for CTC, with glancing_ratio > 0 to refine over several iterations)" if ctc else "")
        )
    if ctc and (length_beam_size > 1 or target_length is not None or fixed_length is not None):
        raise ValueError(
            "a CTC model (decoder_input_type='upsampled_source') finds the length itself in one pass: "
            f"length_beam_size={length_beam_size}, target_length and fixed_length are not available"
        )
    limit = config.max_position_embeddings
    max_new_tokens = max_new_tokens if max_new_tokens is not None else getattr(generation_config, "max_new_tokens", None)
    max_length = max_length if max_length is not None else getattr(generation_config, "max_length", None)
    cut = None
    if prefix_length is None:
        longest = min(limit, max_new_tokens or limit, max_length - 1 if max_length else limit)
    else:
        longest = limit
        room = [n for n in (max_new_tokens, max_length - 1 - prefix_length if max_length else None) if n is not None]
        cut = min(room) if room else None
        if cut is not None and cut < 1:
            raise ValueError(
                f"no room for a continuation: max_new_tokens={max_new_tokens}, max_length={max_length} and a prefix "
                f"of {prefix_length} tokens after the start token"
            )
    threshold = getattr(generation_config, "assistant_confidence_threshold", None) if prefix_length is not None else None
    return DecodingSettings(
        num_iterations=num_iterations,
        length_beam_size=length_beam_size,
        target_length=target_length,
        fixed_length=fixed_length,
        longest=longest,
        cut=cut,
        confidence_threshold=threshold if threshold else None,
        return_dict=bool(setting("return_dict_in_generate", return_dict_in_generate, generation_config, None, False)),
        output_scores=bool(setting("output_scores", output_scores, generation_config, None, False)),
    )


def check_rescorer(rescorer: Any, config: Any) -> None:
    """A re-scorer of noisy parallel decoding must be an autoregressive seq2seq model with the NAT's vocabulary."""
    other = getattr(rescorer, "config", None)
    if other is None or not getattr(other, "is_encoder_decoder", False) or other.model_type == config.model_type:
        kind = getattr(other, "model_type", type(rescorer).__name__)
        raise ValueError(f"rescorer must be an autoregressive encoder-decoder model (e.g. the NAT's teacher), got {kind}")
    size = getattr(other, "decoder_vocab_size", None) or other.vocab_size
    if size != config.decoder_vocab_size:
        raise ValueError(
            f"rescorer has a target vocabulary of {size} tokens and this NAT {config.decoder_vocab_size}: it must "
            "share the NAT's tokenizer (use the teacher the NAT was distilled from)"
        )


def prefix_tokens(decoder_input_ids: torch.Tensor, config: Any) -> torch.Tensor:
    """The (B, p) given tokens of a prefix (B, 1 + p) that starts with the decoder start token. Ids outside the
    vocabulary (a pointer-generator's copied source words) are read as `unk_token_id` (else as the mask token)."""
    if decoder_input_ids.dim() != 2 or decoder_input_ids.shape[1] < 1:
        raise ValueError(f"decoder_input_ids must be (batch, 1 + prefix length), got shape {tuple(decoder_input_ids.shape)}")
    start = config.decoder_start_token_id
    if not bool((decoder_input_ids[:, 0] == start).all()):
        raise ValueError(
            f"decoder_input_ids must begin with the decoder start token {start} (the prefix generate() continues), "
            f"got first column {decoder_input_ids[:, 0].tolist()}"
        )
    tokens = decoder_input_ids[:, 1:]
    special = (tokens == config.mask_token_id) | (tokens == config.pad_token_id)
    if bool(special.any()):
        raise ValueError(
            f"a prefix holds the mask or pad token ({config.mask_token_id}, {config.pad_token_id}): give the tokens "
            "decoded so far, the same number for every source"
        )
    outside = tokens >= config.decoder_vocab_size
    if bool(outside.any()):
        unknown = config.unk_token_id if config.unk_token_id is not None else config.mask_token_id
        tokens = tokens.masked_fill(outside, unknown)
    return tokens


def given_lengths(given: int | torch.Tensor, name: str, *, batch: int, lowest: int, limit: int, device: torch.device) -> torch.Tensor:
    """(B, 1) lengths from `target_length` / `fixed_length`: an int or a (B,) tensor in [lowest, limit]."""
    lengths = torch.as_tensor(given, device=device).long().reshape(-1)
    if lengths.numel() == 1:
        lengths = lengths.expand(batch)
    if lengths.shape != (batch,):
        raise ValueError(f"{name} must be an int or a ({batch},) tensor, got shape {tuple(lengths.shape)}")
    if int(lengths.min()) < lowest or int(lengths.max()) > limit:
        raise ValueError(
            f"{name} must lie in [{lowest}, {limit}] (at least the prefix and EOS; at most max_position_embeddings, "
            f"the longest target the model has positions for), got {lengths.tolist()}"
        )
    return lengths[:, None]


def lengths_from_classifier(length_logits: torch.Tensor, *, lowest: int, longest: int, beam: int) -> torch.Tensor:
    """(B, l) the `beam` most likely target lengths (tokens + EOS) in [lowest, longest] from the length classifier's
    (B, max + 1) scores."""
    scores = length_logits.float().clone()
    scores[:, :lowest] = float("-inf")  # a target holds at least EOS, after any given prefix
    scores[:, longest + 1 :] = float("-inf")
    return scores.topk(min(beam, longest - lowest + 1), dim=-1).indices


@dataclass(frozen=True)
class Canvas:
    """The positions of one decoding, one row per (source, length candidate): `target` (R, W) the T_r positions of
    each row, `given` (R, W) the prefix among them, `last` (R, W) where EOS is written (None: nowhere forced, for
    `fixed_length`), `lengths` (R,) and the first decoder input `tokens` (R, W): the prefix, then the mask token,
    then padding."""

    target: torch.Tensor
    given: torch.Tensor
    last: torch.Tensor | None
    lengths: torch.Tensor
    tokens: torch.Tensor

    @property
    def open(self) -> torch.Tensor:
        """(R, W) the positions to predict: the target after the prefix."""
        return self.target & ~self.given

    @property
    def open_lengths(self) -> torch.Tensor:
        """(R,) how many positions of each row are predicted."""
        return self.open.sum(dim=1)

    @classmethod
    def build(
        cls, prefix: torch.Tensor, lengths: torch.Tensor, *, mask_token_id: int, pad_token_id: int, eos_at_end: bool
    ) -> Canvas:
        """From the (B, p) prefix and (B, l) lengths; rows are source-major (source b's candidates side by side)."""
        candidates = lengths.shape[1]
        flat = lengths.reshape(-1)  # (R,)
        width = int(flat.max())
        positions = torch.arange(width, device=flat.device)[None, :]
        target = positions < flat[:, None]
        given = positions < prefix.shape[1]
        given = given.expand_as(target) & target
        last = target & ~F.pad(target[:, 1:], (0, 1), value=False) if eos_at_end else None
        tokens = torch.full(target.shape, mask_token_id, dtype=torch.long, device=flat.device)
        tokens = tokens.masked_fill(~target, pad_token_id)
        if prefix.shape[1]:
            tokens[:, : prefix.shape[1]] = prefix.repeat_interleave(candidates, dim=0)
        return cls(target=target, given=given, last=last, lengths=flat, tokens=tokens)


class Choices(NamedTuple):
    """Tokens (R, W) and their log-probabilities (R, W) at every position, and with `scores` the (R, W, V)
    log-probabilities each token was chosen from (-inf for tokens not allowed there)."""

    tokens: torch.Tensor
    log_probs: torch.Tensor
    scores: torch.Tensor | None = None


def choose_tokens(
    logits: torch.Tensor, at_end: torch.Tensor | None, config: Any, *, keep_scores: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The most likely token of each of N rows of (N, V) output logits, its log-probability and, with `keep_scores`,
    the (N, V) log-probabilities. Special tokens are never predicted; with `at_end` (N,) EOS is written where it is
    True and nowhere else. Log-probabilities are normalised over every token but the special ones (EOS included), so
    a position's confidence does not depend on where EOS is allowed."""
    logits = logits.float()
    forbidden = {config.pad_token_id, config.decoder_start_token_id, config.bos_token_id, config.mask_token_id}
    logits[:, [i for i in forbidden if i is not None and i != config.eos_token_id]] = float("-inf")
    log_probs = logits - logits.logsumexp(dim=-1, keepdim=True)  # (N, V)
    if at_end is None:
        best, tokens = log_probs.max(dim=-1)
        return tokens, best, (log_probs if keep_scores else None)
    eos = config.eos_token_id
    elsewhere = log_probs.clone()
    elsewhere[:, eos] = float("-inf")
    best, tokens = elsewhere.max(dim=-1)
    tokens = torch.where(at_end, torch.full_like(tokens, eos), tokens)
    best = torch.where(at_end, log_probs[:, eos], best)
    scores = None
    if keep_scores:
        only_eos = torch.full_like(log_probs, float("-inf"))
        only_eos[:, eos] = log_probs[:, eos]
        scores = torch.where(at_end[:, None], only_eos, elsewhere)
    return tokens, best, scores


def scatter_choices(
    positions: torch.Tensor, tokens: torch.Tensor, log_probs: torch.Tensor, scores: torch.Tensor | None, pad_token_id: int
) -> Choices:
    """Choices at the N `positions` (R, W) spread back to (R, W) (pad and 0 elsewhere)."""
    all_tokens = torch.full(positions.shape, pad_token_id, dtype=torch.long, device=positions.device)
    all_log_probs = torch.zeros(positions.shape, dtype=log_probs.dtype, device=positions.device)
    all_tokens[positions], all_log_probs[positions] = tokens, log_probs
    all_scores = None
    if scores is not None:
        all_scores = scores.new_full((*positions.shape, scores.shape[-1]), float("-inf"))
        all_scores[positions] = scores
    return Choices(all_tokens, all_log_probs, all_scores)


#: predict(tokens (R, W), positions (R, W)) -> Choices at those positions: one decoder pass
Predict = Callable[[torch.Tensor, torch.Tensor], Choices]


def mask_predict(predict: Predict, canvas: Canvas, num_iterations: int, mask_token_id: int) -> Choices:
    """Mask-predict over the canvas's open positions: all of them predicted in one pass, then for t = 1 .. N - 1 the
    n = T_open (N - t) / N least confident open ones (the EOS position excluded) masked again and re-predicted. N = 1
    is one-pass decoding. Given (prefix) positions keep their tokens and log-probability 0."""
    masked = canvas.open
    tokens = canvas.tokens
    log_probs = torch.zeros(tokens.shape, device=tokens.device)
    scores = None
    remaskable = masked if canvas.last is None else masked & ~canvas.last
    for step in range(num_iterations):
        new = predict(tokens, masked)
        tokens = torch.where(masked, new.tokens, tokens)
        log_probs = torch.where(masked, new.log_probs, log_probs)
        if new.scores is not None:
            scores = new.scores if scores is None else torch.where(masked[..., None], new.scores, scores)
        remaining = num_iterations - 1 - step
        if remaining == 0:
            break
        count = canvas.open_lengths * remaining // num_iterations  # n = T (N - t) / N
        if int(count.max()) == 0:
            break
        masked = lowest_confidence(log_probs, remaskable, count)
        tokens = tokens.masked_fill(masked, mask_token_id)
    return Choices(tokens, log_probs, scores)


def lowest_confidence(log_probs: torch.Tensor, target: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(B, T) mask of the `count` (B,) real positions with the lowest log-probability (ties: the earlier first)."""
    scores = log_probs.masked_fill(~target, float("inf"))
    ranks = scores.argsort(dim=1, stable=True).argsort(dim=1, stable=True)
    return (ranks < count[:, None]) & target


def best_candidates(choices: Choices, canvas: Canvas, candidates: int) -> torch.Tensor:
    """(B,) the row of each source's candidate with the highest mean log-probability over its predicted positions."""
    mean = choices.log_probs.sum(dim=1) / canvas.open_lengths.clamp(min=1)
    mean = mean.view(-1, candidates)
    return torch.arange(mean.shape[0], device=mean.device) * candidates + mean.argmax(dim=1)


def cut_at_first_eos(tokens: torch.Tensor, eos_token_id: int, pad_token_id: int) -> torch.Tensor:
    """(B, T) tokens with everything after each row's first EOS replaced by padding."""
    is_eos = tokens == eos_token_id
    after_first = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    return tokens.masked_fill(after_first, pad_token_id)


def as_sequences(tokens: torch.Tensor, start_token_id: int, pad_token_id: int) -> torch.Tensor:
    """(B, 1 + L): the start token, then each row's tokens, the padding columns on the right dropped."""
    kept = (tokens != pad_token_id).long()
    width = int((kept * torch.arange(1, tokens.shape[1] + 1, device=tokens.device)).max()) if kept.any() else 0
    start = torch.full((tokens.shape[0], 1), start_token_id, dtype=torch.long, device=tokens.device)
    return torch.cat([start, tokens[:, :width]], dim=1)


def confident_length(log_probs: torch.Tensor, threshold: float) -> int:
    """How many tokens of a (B, k) draft to keep: up to and including the first whose probability is below
    `threshold` in any row (transformers' `ConfidenceCriteria` stops an autoregressive drafter the same way)."""
    below = (log_probs.exp() < threshold).any(dim=0).nonzero()
    return int(below[0]) + 1 if below.numel() else log_probs.shape[1]


def as_continuation(
    decoder_input_ids: torch.Tensor,
    choices: Choices,
    *,
    prefix_length: int,
    cut: int | None,
    confidence_threshold: float | None,
    pad_token_id: int,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """The prefix (B, 1 + p) and the first new tokens of the chosen rows: at most `cut`, stopped after the first below
    `confidence_threshold`, padding columns dropped; and their (B, V) scores, one per new token."""
    tokens = choices.tokens[:, prefix_length:]
    log_probs = choices.log_probs[:, prefix_length:]
    if cut is not None:
        tokens, log_probs = tokens[:, :cut], log_probs[:, :cut]
    real = tokens != pad_token_id
    width = int(real.sum(dim=1).max())
    tokens, log_probs = tokens[:, :width], log_probs[:, :width]
    if confidence_threshold is not None and width:
        width = confident_length(log_probs.masked_fill(~real[:, :width], 0.0), confidence_threshold)
        tokens = tokens[:, :width]
    scores = None
    if choices.scores is not None:
        scores = tuple(choices.scores[:, prefix_length + i] for i in range(width))
    return torch.cat([decoder_input_ids, tokens], dim=1), scores


def end_only_draft(decoder_input_ids: torch.Tensor, vocab_size: int, eos_token_id: int) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The draft when the prefix fills every position the model has: the end of the sentence, scored as certain."""
    batch = decoder_input_ids.shape[0]
    eos = torch.full((batch, 1), eos_token_id, dtype=torch.long, device=decoder_input_ids.device)
    scores = torch.full((batch, vocab_size), float("-inf"), device=decoder_input_ids.device)
    scores[:, eos_token_id] = 0.0
    return torch.cat([decoder_input_ids, eos], dim=1), (scores,)


def compact(tokens: torch.Tensor, keep: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """(B, W) the kept tokens of each row moved to its front in order, padding after them."""
    positions = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    order = torch.where(keep, positions, positions + tokens.shape[1]).argsort(dim=1)  # kept first, in order
    moved = tokens.gather(1, order)
    return moved.masked_fill(positions >= keep.sum(dim=1, keepdim=True), pad_token_id)


def drop_repeats(tokens: torch.Tensor, pad_token_id: int, source: torch.Tensor | None = None) -> torch.Tensor:
    """(B, W) tokens with each run of identical consecutive tokens written once (Gu et al. 2018's de-duplication),
    except a token that the row's `source` (B, S) also repeats: software messages copy `-- --` or `%s%s` from
    their source. Only equal ids merge: `%s %s` is two different tokens (the second with its space) and stays."""
    repeat = F.pad(tokens[:, 1:] == tokens[:, :-1], (1, 0), value=False)
    if source is not None:
        source_repeats = source[:, 1:].masked_fill(source[:, 1:] != source[:, :-1], -1)  # (B, S - 1), -1: no repeat
        repeat = repeat & ~(tokens[:, :, None] == source_repeats[:, None, :]).any(dim=-1)
    return compact(tokens, (tokens != pad_token_id) & ~repeat, pad_token_id)


def ctc_shown_positions(confidence: torch.Tensor, real: torch.Tensor, shown: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(B, U) the positions a CTC refinement round shows the decoder: those shown before, then the most confident of
    the other `real` positions, `count` (B,) in all per row (never fewer than shown before)."""
    rank_score = confidence.masked_fill(shown, float("inf")).masked_fill(~real, float("-inf"))
    ranks = rank_score.argsort(dim=1, descending=True, stable=True).argsort(dim=1, stable=True)
    return shown | ((ranks < count[:, None]) & real)


def ctc_collapse(
    tokens: torch.Tensor, real: torch.Tensor, *, blank: int, eos_token_id: int, pad_token_id: int, longest: int
) -> torch.Tensor:
    """The CTC output of (B, U) per-position tokens at the `real` positions: repeats merged, blanks dropped, at most
    `longest - 1` tokens, then EOS; (B, W) with padding after."""
    repeat = F.pad(tokens[:, 1:] == tokens[:, :-1], (1, 0), value=False)
    kept = compact(tokens, real & ~repeat & (tokens != blank), pad_token_id)
    kept = F.pad(kept, (0, 1), value=pad_token_id)[:, :longest]
    lengths = (kept != pad_token_id).sum(dim=1).clamp(max=longest - 1)
    kept = kept.masked_fill(torch.arange(kept.shape[1], device=kept.device)[None, :] >= lengths[:, None], pad_token_id)
    return kept.scatter(1, lengths[:, None], eos_token_id)
