"""`ProjectionLinear` (speed/projections.py): every way of multiplying a few rows gives `nn.Linear`'s result, each
shape takes its ways in turn on its first real calls and keeps the fastest by a clear margin, and a fixed way takes
no trial."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_encdec.speed import projections
from hf_encdec.speed.projections import PRODUCT_WAYS, ProductTrial, ProjectionLinear, product_blocks


def counted_ways(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ways the few-row products took, in order ("swapped", "blocked" or "rowsum"; plain products are not
    listed)."""
    ways: list[str] = []
    monkeypatch.setattr(projections, "_swapped_product", lambda *args: ways.append("swapped") or swapped_product(*args))
    monkeypatch.setattr(projections, "_blocked_product", lambda *args: ways.append("blocked") or blocked_product(*args))
    monkeypatch.setattr(projections, "_rowsum_product", lambda *args: ways.append("rowsum") or rowsum_product(*args))
    return ways


@pytest.mark.parametrize("way", PRODUCT_WAYS)
@pytest.mark.parametrize("rows", [1, 2, 9, 64])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("in_features", "out_features"), [(16, 37), (37, 16), (16, 160)])
def test_linear_few_row_path_equals_nn_linear(
    rows: int, bias: bool, in_features: int, out_features: int, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every way gives nn.Linear's result; which one runs is what this machine measured, forced here."""
    ours = ProjectionLinear(in_features, out_features, bias=bias)
    plain = torch.nn.Linear(in_features, out_features, bias=bias)
    plain.load_state_dict(ours.state_dict())
    key = (rows, in_features, out_features, bias, torch.get_num_threads())
    monkeypatch.setitem(projections._product_choices, key, way)
    ways = counted_ways(monkeypatch)
    hidden = torch.randn(rows, 1, in_features)
    with torch.no_grad():
        got, expected = ours(hidden), plain(hidden)
    assert got.shape == (rows, 1, out_features) and got.is_contiguous()
    torch.testing.assert_close(got, expected)
    # blocked and rowsum are for one row, blocked for output features with a block count (not 37); forced, they run
    # plain elsewhere
    runs_plain = way == "plain" or (way in ("blocked", "rowsum") and rows > 1) or (way == "blocked" and out_features == 37)
    assert ways == ([] if runs_plain else [way])
    # with autograd the plain path runs, and gradients flow
    ours(hidden.requires_grad_()).sum().backward()
    assert hidden.grad is not None and len(ways) <= 1


swapped_product = projections._swapped_product
blocked_product = projections._blocked_product
rowsum_product = projections._rowsum_product


@pytest.mark.parametrize("bias", [False, True])
def test_the_rowsum_product_in_chunks_equals_the_product(bias: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projections, "ROWSUM_CHUNK", 24)  # 3 rows of 8 weights a chunk: 13 chunks, the last short
    weight, x = torch.randn(37, 8), torch.randn(1, 8)
    bias_vector = torch.randn(37) if bias else None
    torch.testing.assert_close(rowsum_product(x, weight, bias_vector), F.linear(x, weight, bias_vector))
    wide, column = torch.randn(5, 40), torch.randn(40, 3)[:, 1:2].t()  # rows longer than a chunk; a strided x
    torch.testing.assert_close(rowsum_product(column, wide, None), F.linear(column, wide))


def test_each_product_shape_is_chosen_once_per_process_from_its_real_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projections, "_product_choices", {})
    monkeypatch.setattr(projections, "_product_trials", {})
    ways = counted_ways(monkeypatch)
    layer, other = ProjectionLinear(8, 24), ProjectionLinear(8, 24)
    calls = len(PRODUCT_WAYS) * (projections.TRIAL_CALLS + 1)  # each way once untimed, then TRIAL_CALLS timed
    with torch.no_grad():
        for step in range(calls):
            x = torch.randn(1, 8)
            used = layer if step % 2 else other
            torch.testing.assert_close(used(x), torch.nn.functional.linear(x, used.weight, used.bias))
            # the ways take turns (plain, swapped, blocked, rowsum), on the caller's own inputs
            assert ways == [PRODUCT_WAYS[i % len(PRODUCT_WAYS)] for i in range(step + 1) if i % len(PRODUCT_WAYS)]
        key = (1, 8, 24, True, torch.get_num_threads())
        chosen = projections.product_choices()
        assert set(chosen) == {key} and chosen[key] in PRODUCT_WAYS  # shared by the layers of one shape
        before = len(ways)
        for _ in range(5):
            layer(torch.randn(1, 8))
        assert ways[before:] == ([] if chosen[key] == "plain" else [chosen[key]] * 5)
        layer(torch.randn(65, 8))  # past MAX_CHOSEN_ROWS: nn.Linear's product, no trial
    assert not projections._product_trials and len(projections.product_choices()) == 1


@pytest.mark.parametrize(("rows", "out_features", "tried"), [(1, 37, ("swapped", "rowsum")), (2, 24, ("swapped",))])
def test_several_rows_try_plain_and_swapped_and_one_row_without_blocks_no_blocked(
    rows: int, out_features: int, tried: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projections, "_product_choices", {})
    monkeypatch.setattr(projections, "_product_trials", {})
    ways = counted_ways(monkeypatch)
    layer = ProjectionLinear(8, out_features)  # 37 output features: no block count divides them
    with torch.no_grad():
        for _ in range((1 + len(tried)) * (projections.TRIAL_CALLS + 1)):
            layer(torch.randn(rows, 8))
    assert ways == list(tried) * (projections.TRIAL_CALLS + 1)
    assert projections.product_choices()[(rows, 8, out_features, True, torch.get_num_threads())] in ("plain", *tried)


def test_blocks_divide_the_output_features_and_follow_the_threads() -> None:
    assert [product_blocks(8000, threads) for threads in (1, 2, 3, 4, 8, 64)] == [2, 2, 2, 4, 8, 8]
    assert product_blocks(24, 16) == 8 and product_blocks(12, 16) == 4 and product_blocks(6, 16) == 2
    assert product_blocks(37, 16) == 0


@pytest.mark.parametrize("way", PRODUCT_WAYS)
def test_a_fixed_way_takes_no_trial(way: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projections, "_product_choices", {})
    monkeypatch.setattr(projections, "_product_trials", {})
    ways = counted_ways(monkeypatch)
    layer = torch.nn.Linear(8, 24)
    ProjectionLinear.swap_in(layer, way)
    with torch.no_grad():
        for _ in range(3):
            layer(torch.randn(1, 8))
    assert ways == ([] if way == "plain" else [way] * 3) and not projections._product_trials


def test_an_unknown_product_way_is_refused() -> None:
    with pytest.raises(ValueError, match=r"product_way='fast' is not one of \('measured', 'plain', 'swapped'"):
        ProjectionLinear.swap_in(torch.nn.Linear(8, 24), "fast")


def test_another_way_than_plain_needs_a_clear_win() -> None:
    """Decided on given timings (tests never time): the median of the timed calls, the first call of each way left
    out, the fastest way, and a 10% margin over plain for any other."""

    def choice(plain: list[float], swapped: list[float], blocked: list[float] | None = None) -> str | None:
        timings = {"plain": plain, "swapped": swapped, **({"blocked": blocked} if blocked else {})}
        trial = ProductTrial(calls=len(plain) - 1, ways=tuple(timings))
        decided = None
        for round_ in range(len(plain)):
            for _ in timings:
                way = trial.next_way()
                decided = trial.record(way, timings[way][round_])
        return decided

    assert choice([50.0, 1.0, 1.0, 1.0], [50.0, 0.5, 0.6, 9.0]) == "swapped"  # one slow outlier does not decide
    assert choice([1.0, 1.0, 1.0], [1.0, 0.89, 0.89]) == "swapped"
    assert choice([1.0, 1.0, 1.0], [1.0, 0.95, 0.95]) == "plain" and choice([1.0, 1.0, 1.0], [0.1, 2.0, 2.0]) == "plain"
    assert choice([1.0, 1.0, 1.0], [1.0, 0.8, 0.8], [1.0, 0.5, 0.5]) == "blocked"  # the fastest way wins
    assert choice([1.0, 1.0, 1.0], [1.0, 0.5, 0.5], [1.0, 0.8, 0.8]) == "swapped"
    assert choice([1.0, 1.0, 1.0], [1.0, 0.95, 0.95], [1.0, 0.93, 0.93]) == "plain"  # neither 10% faster than plain
    unfinished = ProductTrial(calls=3)
    assert unfinished.record(unfinished.next_way(), 1.0) is None
