"""Global attention of RNN decoders over the encoder states: scores, masked weights, context vectors.

Shapes: B batch, T query steps, S source length, Dq query size, Dk key size, A additive-attention size.

Every scorer turns a query q_t (a decoder state) and the encoder states h_1..h_S into alignment weights and a context:

    e_tj = score(q_t, h_j)
    a_tj = exp(e_tj) / sum_{k real} exp(e_tk)        a_tj = 0 exactly where h_j is padding
    c_t  = sum_j a_tj h_j

The scores (`score()`) are split from the weighting (`forward()`) as in OpenNMT's `GlobalAttention`:

| scorer | score(q_t, h_j) | paper |
|---|---|---|
| `AdditiveScorer` (bahdanau, luong_concat) | v^T tanh(W q_t + U h_j) | Bahdanau et al. 2015 (1409.0473) eq. 6 |
| `DotScorer` (luong_dot) | q_t^T h_j | Luong et al. 2015 (1508.04025) eq. 8 |
| `GeneralScorer` (luong_general) | q_t^T W_a h_j | Luong et al. 2015 eq. 8 |

Luong's concat score v^T tanh(W_a [q_t; h_j]) is the additive score with W_a = [W, U], so both use one class. What is
fed as the query (s_{t-1} for Bahdanau, s_t for Luong) is the decoder's business, not the scorer's.

The part of a score that depends only on the keys (U h_j) is computed once per source by `project_keys()`; the decoder
keeps it in its state so a generation step costs O(S A), not O(S Dk A).

Coverage (Tu et al. 2016, arXiv 1601.04811; See et al. 2017, arXiv 1704.04368, eq. 11): built with `coverage=True`,
a scorer also reads the coverage vector c^t = sum_{t' < t} a_t' (B, T, S), the attention already paid to each source
position. The additive score takes it inside the tanh as See et al. write it, v^T tanh(W q_t + U h_j + w_c c^t_j);
the dot and general scores have no hidden layer to put it in, so they add it weighted by the query:
e_tj + (w_c^T q_t + b_c) c^t_j (`CoverageWeight`).
"""

from __future__ import annotations

import torch
from torch import nn

ATTENTION_TYPES = ("none", "bahdanau", "luong_dot", "luong_general", "luong_concat")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis of (B, T, S) scores, restricted to the (B, S) keys where `mask` is true.

    Weights on masked keys are exactly 0, so padding cannot change a context vector; a row with no real key gets all
    zeros (a zero context) instead of NaN.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)
    keep = mask[:, None, :].bool()  # (B, 1, S)
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)
    return weights.masked_fill(~keep, 0.0)


class CoverageWeight(nn.Linear):
    """How strongly a step's query weighs the coverage vector in a score without a hidden layer: (B, T, Dq) ->
    w_c^T q_t + b_c, (B, T, 1) (added to the scores as weight * coverage)."""

    def __init__(self, query_size: int) -> None:
        super().__init__(query_size, 1)


class GlobalAttention(nn.Module):
    """Base of the scorers: `forward(query, keys, mask)` -> (context, weights) from the subclass's `score()`."""

    #: whether `project_keys` does work worth caching across decoding steps
    projects_keys: bool = False
    #: whether `score` reads the coverage vector (built with coverage=True)
    uses_coverage: bool = False

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """The key-only part of the score, (B, S, Dk) -> (B, S, *); computed once per source sequence."""
        return keys

    def score(
        self, query: torch.Tensor, projected_keys: torch.Tensor, coverage: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Unnormalised alignment scores e_tj, (B, T, Dq) x (B, S, *) -> (B, T, S); `coverage` (B, T, S) only for a
        scorer built with coverage."""
        raise NotImplementedError

    def add_coverage(self, scores: torch.Tensor, query: torch.Tensor, coverage: torch.Tensor | None) -> torch.Tensor:
        """e_tj + (w_c^T q_t + b_c) c^t_j for the scores without a hidden layer (dot, general)."""
        if not self.uses_coverage:
            return scores
        if coverage is None:
            raise ValueError("this attention was built with coverage and needs the coverage vector")
        return scores + self.coverage_weight(query) * coverage.to(scores.dtype)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
        coverage: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (B, T, Dk) and weights (B, T, S) of the (B, T, Dq) queries over the (B, S, Dk) keys; `coverage`
        (B, T, S) as in the module docstring (scorers built with coverage only)."""
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        weights = masked_softmax(self.score(query, projected_keys, coverage), mask)  # (B, T, S)
        context = torch.bmm(weights, keys)  # (B, T, Dk)
        return context, weights


class DotScorer(GlobalAttention):
    """Luong's dot score e_tj = q_t^T h_j (needs Dq = Dk); no parameters (but the coverage weight)."""

    def __init__(self, query_size: int | None = None, *, coverage: bool = False) -> None:
        super().__init__()
        if coverage and query_size is None:
            raise ValueError("a dot scorer with coverage needs query_size (the size of its coverage weight)")
        self.uses_coverage = coverage
        self.coverage_weight = CoverageWeight(query_size) if coverage else None

    def score(
        self, query: torch.Tensor, projected_keys: torch.Tensor, coverage: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.add_coverage(torch.bmm(query, projected_keys.transpose(1, 2)), query, coverage)  # (B, T, S)


class GeneralScorer(GlobalAttention):
    """Luong's general (bilinear) score e_tj = q_t^T W_a h_j.

    Computed as (W_a^T q_t)^T h_j: projecting the query costs O(Dq Dk) per step instead of O(S Dq Dk) per source, and
    needs nothing cached. `linear.weight` holds W_a^T, shape (Dk, Dq).
    """

    def __init__(self, query_size: int, key_size: int, *, coverage: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(query_size, key_size, bias=False)
        self.uses_coverage = coverage
        self.coverage_weight = CoverageWeight(query_size) if coverage else None

    def score(
        self, query: torch.Tensor, projected_keys: torch.Tensor, coverage: torch.Tensor | None = None
    ) -> torch.Tensor:
        scores = torch.bmm(self.linear(query), projected_keys.transpose(1, 2))  # (B, T, S)
        return self.add_coverage(scores, query, coverage)


class AdditiveScorer(GlobalAttention):
    """Additive (MLP) score e_tj = v^T tanh(W q_t + U h_j) of Bahdanau et al. (their v_a, W_a, U_a; no biases) and
    Luong's concat score."""

    projects_keys = True

    def __init__(self, query_size: int, key_size: int, attention_size: int, *, coverage: bool = False) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)  # W
        self.key_proj = nn.Linear(key_size, attention_size, bias=False)  # U
        self.v = nn.Linear(attention_size, 1, bias=False)  # v^T
        self.uses_coverage = coverage
        self.coverage_proj = nn.Linear(1, attention_size, bias=False) if coverage else None  # w_c

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return self.key_proj(keys)  # (B, S, A)

    def score(
        self, query: torch.Tensor, projected_keys: torch.Tensor, coverage: torch.Tensor | None = None
    ) -> torch.Tensor:
        pre = self.query_proj(query)[:, :, None, :] + projected_keys[:, None, :, :]  # (B, T, S, A)
        if self.uses_coverage:
            if coverage is None:
                raise ValueError("this attention was built with coverage and needs the coverage vector")
            pre = pre + self.coverage_proj(coverage.to(pre.dtype)[..., None])  # w_c c^t_j, (B, T, S, A)
        return self.v(torch.tanh(pre)).squeeze(-1)  # (B, T, S)


def build_scorer(
    attention_type: str, *, query_size: int, key_size: int, coverage: bool = False
) -> GlobalAttention | None:
    """The scorer of an `attention_type` (None for `none`, Cho et al.'s fixed context), reading the coverage vector
    when `coverage`."""
    if attention_type == "none":
        if coverage:
            raise ValueError("coverage sums past attention weights and needs an attention_type other than 'none'")
        return None
    if attention_type in ("bahdanau", "luong_concat"):
        return AdditiveScorer(query_size, key_size, query_size, coverage=coverage)
    if attention_type == "luong_dot":
        if query_size != key_size:
            raise ValueError(f"luong_dot needs equal query and key sizes, got {query_size} and {key_size}")
        return DotScorer(query_size, coverage=coverage)
    if attention_type == "luong_general":
        return GeneralScorer(query_size, key_size, coverage=coverage)
    raise ValueError(f"attention_type={attention_type!r} is not supported; valid values: {ATTENTION_TYPES}")
