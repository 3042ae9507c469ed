"""Decoding with the pointer-generator's copy attention: the copy outputs of `generate()` read back by one
teacher-forced pass, and the coverage penalty that re-ranks beam search's finished hypotheses (Wu et al. 2016, arXiv
1609.08144, section 7, with the copy attention as the alignment):

    s(Y, X) = log P(Y | X) / |Y|^length_penalty + beta * sum_s log(min(sum_t a_t,s, 1))

Shapes: B sources, R hypotheses (B x beams), N generated tokens, S source length, V+ extended vocabulary.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from transformers.utils import ModelOutput

#: the floor of a source position's coverage before its log: a position no step attended to costs log 1e-9
COVERAGE_FLOOR = 1e-9


def generation_setting(model: nn.Module, kwargs: dict[str, Any], name: str) -> Any:
    """A generation setting as `generate()` would take it: from the call's `kwargs`, else from the
    `generation_config` passed there, else from the model's."""
    if kwargs.get(name) is not None:
        return kwargs[name]
    return getattr(kwargs.get("generation_config") or model.generation_config, name, None)


def check_coverage_penalty(beta: float, *, beams: int, wanted: int, do_sample: bool | None) -> None:
    """Raise unless the re-ranking can run: a finite beta >= 0 on beam search (num_beams > 1, no sampling) that
    returns at most `num_beams` hypotheses.

    >>> check_coverage_penalty(0.2, beams=4, wanted=5, do_sample=False)
    Traceback (most recent call last):
    ...
    ValueError: coverage_penalty re-ranks the finished hypotheses of beam search: it needs a finite beta >= 0, num_beams > 1, num_return_sequences <= num_beams and do_sample=False, got coverage_penalty=0.2, num_beams=4, num_return_sequences=5, do_sample=False
    """
    if not math.isfinite(beta) or beta < 0 or beams < 2 or do_sample or wanted > beams:
        raise ValueError(
            f"coverage_penalty re-ranks the finished hypotheses of beam search: it needs a finite beta >= 0, "
            f"num_beams > 1, num_return_sequences <= num_beams and do_sample=False, got coverage_penalty={beta}, "
            f"num_beams={beams}, num_return_sequences={wanted}, do_sample={do_sample}"
        )


@torch.no_grad()
def copy_trace(
    model: nn.Module, sequences: torch.LongTensor, inputs: torch.Tensor | None, kwargs: dict[str, Any]
) -> ModelOutput:
    """The model's outputs (logits, p_gen, copy attention) at every generated token of `sequences` (R, 1 + N), by one
    teacher-forced pass over the sources (`inputs`, or `kwargs["input_ids"]`) repeated to R rows."""
    source = inputs if inputs is not None else kwargs["input_ids"]
    repeats = sequences.shape[0] // source.shape[0]

    def rows(value: torch.Tensor | None) -> torch.Tensor | None:
        return None if value is None else value.repeat_interleave(repeats, dim=0)

    return model(
        input_ids=rows(source),
        attention_mask=rows(kwargs.get("attention_mask")),
        decoder_input_ids=sequences[:, :-1],
        source_ids=rows(kwargs["source_ids"] if kwargs.get("source_ids") is not None else source),
        num_source_oovs=kwargs.get("num_source_oovs", 0),
        use_cache=False,
    )


def until_end(generated: torch.LongTensor, eos_token_id: int | list[int] | None) -> torch.Tensor:
    """(R, N) True for each generated token up to and including a hypothesis's first end token.

    >>> until_end(torch.tensor([[5, 2, 0], [5, 6, 7]]), 2).tolist()
    [[True, True, False], [True, True, True]]
    """
    ends = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
    is_end = torch.isin(generated, torch.tensor(ends, device=generated.device)).int()
    return (is_end.cumsum(dim=1) - is_end) == 0


def length_normalised_log_prob(
    logits: torch.Tensor, generated: torch.LongTensor, valid: torch.Tensor, length_penalty: float
) -> torch.Tensor:
    """log P(Y | X) / |Y|^length_penalty (R,) of the hypotheses `generated` (R, N) from the teacher-forced pass's
    (R, N, V+) scores, over their `valid` (R, N) tokens."""
    log_probs = torch.log_softmax(logits.float(), dim=-1).gather(-1, generated[..., None]).squeeze(-1)  # (R, N)
    length = valid.sum(dim=1).clamp(min=1).float()
    return (log_probs * valid).sum(dim=1) / length**length_penalty


def coverage_penalty(
    copy_attentions: torch.Tensor, valid: torch.Tensor, source_mask: torch.Tensor | None, beams: int
) -> torch.Tensor:
    """sum_s log(min(sum_t a_t,s, 1)) (R,) from the copy attentions (R, N, S) of the `valid` (R, N) tokens: 0 for a
    hypothesis that covered every real source position, below 0 for each one it left under-covered. `source_mask`
    (B, S) leaves padding out; each source stands for its `beams` hypotheses.

    >>> attention = torch.tensor([[[1.0, 0.0], [0.0, 0.5]]])  # position 2 half covered
    >>> round(float(coverage_penalty(attention, torch.ones(1, 2, dtype=torch.bool), None, 1)[0]), 4)  # log 0.5
    -0.6931
    """
    covered = (copy_attentions.float() * valid[..., None]).sum(dim=1)  # (R, S) attention received
    penalty = torch.log(covered.clamp(min=COVERAGE_FLOOR, max=1.0))  # 0 where covered, < 0 where under-covered
    if source_mask is not None:
        penalty = penalty * source_mask.repeat_interleave(beams, dim=0).to(penalty.device)
    return penalty.sum(dim=1)


def best_of_each_source(scores: torch.Tensor, beams: int, wanted: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows (B * wanted,) of the `wanted` best of each source's `beams` hypotheses by `scores` (R,), best first,
    and their scores.

    >>> best_of_each_source(torch.tensor([0.1, 0.3, 0.2, -1.0, -2.0, 0.0]), beams=3, wanted=1)
    (tensor([1, 5]), tensor([0.3000, 0.0000]))
    """
    best = scores.view(-1, beams).topk(wanted, dim=1)  # (B, wanted), sorted
    rows = best.indices + beams * torch.arange(best.indices.shape[0], device=scores.device)[:, None]
    return rows.flatten(), best.values.flatten()


def generate_with_coverage_penalty(
    model: nn.Module, inputs: torch.Tensor | None, beta: float, kwargs: dict[str, Any]
) -> torch.LongTensor | ModelOutput:
    """Beam search's `num_beams` finished hypotheses of each source re-ranked by s(Y, X) (module docstring); the
    best `num_return_sequences`, as `generate()` returns them (`model.generate` without the penalty runs the search;
    with `return_dict_in_generate`, `sequences_scores` holds s(Y, X), and `output_attentions` adds `p_gen` and
    `copy_attentions`)."""
    beams = generation_setting(model, kwargs, "num_beams") or 1
    wanted = generation_setting(model, kwargs, "num_return_sequences") or 1
    check_coverage_penalty(beta, beams=beams, wanted=wanted, do_sample=generation_setting(model, kwargs, "do_sample"))
    if (inputs if inputs is not None else kwargs.get("input_ids")) is None:
        raise ValueError("coverage_penalty reads the copy attention back by a pass over the source; pass input_ids")
    search = {**kwargs, "num_return_sequences": beams, "return_dict_in_generate": False, "output_attentions": False}
    sequences = model.generate(inputs, **search)  # (B * beams, 1 + N), each source's hypotheses side by side
    outputs = copy_trace(model, sequences, inputs, search)
    generated = sequences[:, 1:]
    valid = until_end(generated, generation_setting(model, kwargs, "eos_token_id"))
    length_penalty = generation_setting(model, kwargs, "length_penalty") or 0.0
    scores = length_normalised_log_prob(outputs.logits, generated, valid, length_penalty)
    scores = scores + beta * coverage_penalty(outputs.copy_attentions, valid, kwargs.get("attention_mask"), beams)
    rows, best_scores = best_of_each_source(scores, beams, wanted)
    chosen = sequences[rows]
    if not generation_setting(model, kwargs, "return_dict_in_generate"):
        return chosen
    result = ModelOutput(sequences=chosen, sequences_scores=best_scores)
    if generation_setting(model, kwargs, "output_attentions"):
        result["p_gen"], result["copy_attentions"] = outputs.p_gen[rows], outputs.copy_attentions[rows]
    return result
