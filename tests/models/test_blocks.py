"""The shared blocks against their papers' formulas and against reference implementations."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from hf_encdec import TransformerConfig
from hf_encdec.models import speed_paths
from hf_encdec.models.attention import MultiHeadAttention
from hf_encdec.models.feed_forward import build_feed_forward
from hf_encdec.models.losses import linear_cross_entropy, token_cross_entropy
from hf_encdec.models.norms import RMSNorm, build_norm
from hf_encdec.models.positions import (
    AlibiBias,
    RotaryEmbedding,
    SinusoidalPositionalEmbedding,
    alibi_slopes,
    apply_rotary,
)
from hf_encdec.models.speed_paths import PRODUCT_WAYS, ProductTrial, ProjectionLinear, product_blocks


def test_sinusoidal_positions_follow_the_paper() -> None:
    table = SinusoidalPositionalEmbedding(16)(torch.arange(9)[None])[0]  # (T, D)
    for pos in (0, 3, 8):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_rope_scores_depend_only_on_relative_distance() -> None:
    rotary = RotaryEmbedding(8)
    query, key = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(query_pos: int, key_pos: int) -> float:
        cos_q, sin_q = rotary(torch.tensor([[query_pos]]), torch.float32)
        cos_k, sin_k = rotary(torch.tensor([[key_pos]]), torch.float32)
        rotated_q, _ = apply_rotary(query, query, cos_q, sin_q)
        _, rotated_k = apply_rotary(key, key, cos_k, sin_k)
        return (rotated_q * rotated_k).sum().item()

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_alibi_slopes_match_press_et_al() -> None:
    assert alibi_slopes(8).tolist() == pytest.approx([2 ** -(i + 1) for i in range(8)])
    # 6 heads: the 4 slopes of 4 heads, then every other slope of 8 heads
    expected = [2 ** (-2 * (i + 1)) for i in range(4)] + [2**-1, 2**-3]
    assert alibi_slopes(6).tolist() == pytest.approx(expected)


def test_alibi_bias_is_minus_slope_times_distance() -> None:
    bias = AlibiBias(2)(torch.arange(4)[None], torch.arange(4)[None], torch.float32)  # (1, 2, 4, 4)
    slopes = alibi_slopes(2)
    assert bias[0, 1, 3, 0].item() == pytest.approx(-3 * slopes[1].item())
    assert bias[0, 0, 1, 2].item() == pytest.approx(-1 * slopes[0].item())
    assert torch.all(bias[0, :, range(4), range(4)] == 0)


def test_rmsnorm_formula() -> None:
    norm = RMSNorm(6, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(2, 3, 6)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    with pytest.raises(ValueError, match="norm_type='batchnorm'"):
        build_norm("batchnorm", 6, 1e-5)


@pytest.mark.parametrize(("activation", "inner"), [("swiglu", F.silu), ("geglu", F.gelu)])
def test_gated_feed_forward_formula(activation: str, inner) -> None:
    ffn = build_feed_forward(activation, 6, 11, dropout=0.0, bias=False)
    x = torch.randn(2, 3, 6)
    expected = ffn.down_proj(inner(ffn.gate_proj(x)) * ffn.up_proj(x))
    torch.testing.assert_close(ffn(x), expected)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_linear_cross_entropy_equals_logits_then_loss(label_smoothing: float, with_bias: bool) -> None:
    hidden = torch.randn(3, 5, 8, requires_grad=True)
    weight = torch.randn(13, 8, requires_grad=True)
    bias = torch.randn(13, requires_grad=True) if with_bias else None
    labels = torch.randint(0, 13, (3, 5))
    labels[0, 3:] = -100
    # chunk_size=4 forces several chunks over the 13 labelled tokens
    fused = linear_cross_entropy(
        hidden, weight, labels, bias=bias, label_smoothing=label_smoothing, num_items_in_batch=20, chunk_size=4
    )
    fused.backward()
    fused_grads = [hidden.grad.clone(), weight.grad.clone()] + ([bias.grad.clone()] if with_bias else [])
    for tensor in [hidden, weight] + ([bias] if with_bias else []):
        tensor.grad = None
    logits = F.linear(hidden, weight, bias)
    reference = token_cross_entropy(logits, labels, label_smoothing=label_smoothing, num_items_in_batch=20)
    reference.backward()
    reference_grads = [hidden.grad, weight.grad] + ([bias.grad] if with_bias else [])
    torch.testing.assert_close(fused, reference)
    for got, expected in zip(fused_grads, reference_grads):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_token_cross_entropy_means_over_labelled_tokens_without_num_items() -> None:
    logits = torch.randn(2, 4, 7)
    labels = torch.tensor([[1, 2, -100, -100], [3, 4, 5, -100]])
    expected = F.cross_entropy(logits.reshape(-1, 7), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(token_cross_entropy(logits, labels), expected)


def _attention(config: TransformerConfig, kv_heads: int) -> MultiHeadAttention:
    return MultiHeadAttention(
        config,
        hidden_size=32,
        num_heads=4,
        num_key_value_heads=kv_heads,
        head_dim=8,
        bias=True,
        dropout=0.0,
        layer_idx=0,
        is_causal=True,
    ).eval()


@pytest.mark.parametrize("kv_heads", [1, 2])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_grouped_query_attention_with_repeated_weights_equals_multi_head(kv_heads: int, implementation: str) -> None:
    config = TransformerConfig(hidden_size=32, num_attention_heads=4)
    config._attn_implementation = implementation
    grouped, full = _attention(config, kv_heads), _attention(config, 4)
    groups = 4 // kv_heads
    with torch.no_grad():
        for name in ("q_proj", "o_proj"):
            getattr(full, name).load_state_dict(getattr(grouped, name).state_dict())
        for name in ("k_proj", "v_proj"):
            # (K*d, D) -> (K, d, D) -> repeat each kv head for its query group -> (H*d, D)
            weight = getattr(grouped, name).weight.view(kv_heads, 8, 32).repeat_interleave(groups, 0)
            bias = getattr(grouped, name).bias.view(kv_heads, 8).repeat_interleave(groups, 0)
            getattr(full, name).weight.copy_(weight.reshape(32, 32))
            getattr(full, name).bias.copy_(bias.reshape(32))
    x = torch.randn(3, 7, 32)
    torch.testing.assert_close(grouped(x)[0], full(x)[0], atol=1e-5, rtol=1e-4)


def test_attention_weights_are_returned_with_sdpa_by_falling_back_to_eager() -> None:
    config = TransformerConfig(hidden_size=32, num_attention_heads=4)
    config._attn_implementation = "sdpa"
    attention = _attention(config, 2)
    x = torch.randn(2, 5, 32)
    output, weights = attention(x, output_attentions=True)
    assert weights.shape == (2, 4, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))
    assert torch.all(weights.triu(1) == 0)  # causal without a mask
    torch.testing.assert_close(output, attention(x)[0], atol=1e-5, rtol=1e-4)


def test_position_modules_recompute_their_buffers() -> None:
    for module in (SinusoidalPositionalEmbedding(8), RotaryEmbedding(8), AlibiBias(4)):
        buffer = next(module.buffers())
        original = buffer.clone()
        buffer.fill_(float("nan"))
        module.reset_buffers()
        torch.testing.assert_close(next(module.buffers()), original)


def test_attention_dropout_in_cpu_training_runs_the_eager_kernel_with_a_bool_mask() -> None:
    config = TransformerConfig(hidden_size=32, num_attention_heads=4)
    attention = MultiHeadAttention(
        config,
        hidden_size=32,
        num_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        bias=True,
        dropout=0.3,
        layer_idx=0,
        is_causal=True,
    ).train()
    x = torch.randn(2, 5, 32, requires_grad=True)
    outputs = {}
    for implementation in ("eager", "sdpa"):
        config._attn_implementation = implementation
        torch.manual_seed(1)
        outputs[implementation] = attention(x)[0]
    torch.testing.assert_close(outputs["sdpa"], outputs["eager"])  # the same kernel and the same random draws
    saved: list[torch.dtype] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.shape == (2, 4, 5, 5):
            saved.append(tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        attention(x)
    assert torch.bool in saved and saved.count(torch.float32) <= 2  # softmax output and dropped weights, no float mask


def test_fused_loss_hands_its_gradients_over_and_refuses_a_second_backward() -> None:
    hidden = torch.randn(2, 6, 8, requires_grad=True)
    weight = torch.randn(11, 8, requires_grad=True)
    labels = torch.randint(0, 11, (2, 6))
    loss = linear_cross_entropy(hidden, weight, labels, chunk_size=5)
    loss.backward(retain_graph=True)
    reference_hidden = hidden.detach().clone().requires_grad_()
    reference_weight = weight.detach().clone().requires_grad_()
    token_cross_entropy(reference_hidden @ reference_weight.T, labels).backward()
    torch.testing.assert_close(weight.grad, reference_weight.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(hidden.grad, reference_hidden.grad, atol=1e-5, rtol=1e-4)
    with pytest.raises(RuntimeError, match="cannot be backpropagated twice"):
        loss.backward()


def counted_ways(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ways the few-row products took, in order ("swapped", "blocked" or "rowsum"; plain products are not
    listed)."""
    ways: list[str] = []
    monkeypatch.setattr(speed_paths, "_swapped_product", lambda *args: ways.append("swapped") or swapped_product(*args))
    monkeypatch.setattr(speed_paths, "_blocked_product", lambda *args: ways.append("blocked") or blocked_product(*args))
    monkeypatch.setattr(speed_paths, "_rowsum_product", lambda *args: ways.append("rowsum") or rowsum_product(*args))
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
    monkeypatch.setattr(speed_paths, "_few_row_product", "measured")
    monkeypatch.setitem(speed_paths._product_choices, key, way)
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


swapped_product = speed_paths._swapped_product
blocked_product = speed_paths._blocked_product
rowsum_product = speed_paths._rowsum_product


@pytest.mark.parametrize("bias", [False, True])
def test_the_rowsum_product_in_chunks_equals_the_product(bias: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed_paths, "ROWSUM_CHUNK", 24)  # 3 rows of 8 weights a chunk: 13 chunks, the last short
    weight, x = torch.randn(37, 8), torch.randn(1, 8)
    bias_vector = torch.randn(37) if bias else None
    torch.testing.assert_close(rowsum_product(x, weight, bias_vector), F.linear(x, weight, bias_vector))
    wide, column = torch.randn(5, 40), torch.randn(40, 3)[:, 1:2].t()  # rows longer than a chunk; a strided x
    torch.testing.assert_close(rowsum_product(column, wide, None), F.linear(column, wide))


def test_each_product_shape_is_chosen_once_per_process_from_its_real_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed_paths, "_few_row_product", "measured")
    monkeypatch.setattr(speed_paths, "_product_choices", {})
    monkeypatch.setattr(speed_paths, "_product_trials", {})
    ways = counted_ways(monkeypatch)
    layer, other = ProjectionLinear(8, 24), ProjectionLinear(8, 24)
    calls = len(PRODUCT_WAYS) * (speed_paths.TRIAL_CALLS + 1)  # each way once untimed, then TRIAL_CALLS timed
    with torch.no_grad():
        for step in range(calls):
            x = torch.randn(1, 8)
            used = layer if step % 2 else other
            torch.testing.assert_close(used(x), torch.nn.functional.linear(x, used.weight, used.bias))
            # the ways take turns (plain, swapped, blocked, rowsum), on the caller's own inputs
            assert ways == [PRODUCT_WAYS[i % len(PRODUCT_WAYS)] for i in range(step + 1) if i % len(PRODUCT_WAYS)]
        key = (1, 8, 24, True, torch.get_num_threads())
        chosen = speed_paths.product_choices()
        assert set(chosen) == {key} and chosen[key] in PRODUCT_WAYS  # shared by the layers of one shape
        before = len(ways)
        for _ in range(5):
            layer(torch.randn(1, 8))
        assert ways[before:] == ([] if chosen[key] == "plain" else [chosen[key]] * 5)
        layer(torch.randn(65, 8))  # past MAX_CHOSEN_ROWS: nn.Linear's product, no trial
    assert not speed_paths._product_trials and len(speed_paths.product_choices()) == 1


@pytest.mark.parametrize(("rows", "out_features", "tried"), [(1, 37, ("swapped", "rowsum")), (2, 24, ("swapped",))])
def test_several_rows_try_plain_and_swapped_and_one_row_without_blocks_no_blocked(
    rows: int, out_features: int, tried: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(speed_paths, "_few_row_product", "measured")
    monkeypatch.setattr(speed_paths, "_product_choices", {})
    monkeypatch.setattr(speed_paths, "_product_trials", {})
    ways = counted_ways(monkeypatch)
    layer = ProjectionLinear(8, out_features)  # 37 output features: no block count divides them
    with torch.no_grad():
        for _ in range((1 + len(tried)) * (speed_paths.TRIAL_CALLS + 1)):
            layer(torch.randn(rows, 8))
    assert ways == list(tried) * (speed_paths.TRIAL_CALLS + 1)
    assert speed_paths.product_choices()[(rows, 8, out_features, True, torch.get_num_threads())] in ("plain", *tried)


def test_blocks_divide_the_output_features_and_follow_the_threads() -> None:
    assert [product_blocks(8000, threads) for threads in (1, 2, 3, 4, 8, 64)] == [2, 2, 2, 4, 8, 8]
    assert product_blocks(24, 16) == 8 and product_blocks(12, 16) == 4 and product_blocks(6, 16) == 2
    assert product_blocks(37, 16) == 0


@pytest.mark.parametrize("way", PRODUCT_WAYS)
def test_a_fixed_way_takes_no_trial(way: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed_paths, "_few_row_product", way)
    monkeypatch.setattr(speed_paths, "_product_choices", {})
    monkeypatch.setattr(speed_paths, "_product_trials", {})
    ways = counted_ways(monkeypatch)
    with torch.no_grad():
        for _ in range(3):
            ProjectionLinear(8, 24)(torch.randn(1, 8))
    assert ways == ([] if way == "plain" else [way] * 3) and not speed_paths._product_trials


def test_an_unknown_few_row_product_setting_is_refused() -> None:
    finished = subprocess.run([sys.executable, "-c", "import hf_encdec.models.speed_paths"], capture_output=True,
                              text=True, env={**os.environ, "HF_ENCDEC_FEW_ROW_PRODUCT": "fast"}, timeout=120)
    assert finished.returncode != 0
    assert ("HF_ENCDEC_FEW_ROW_PRODUCT='fast' is not one of ('measured', 'plain', 'swapped', 'blocked', 'rowsum')"
            in finished.stderr)


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


@pytest.mark.parametrize("activation", ["swiglu", "geglu"])
def test_gated_feed_forward_keeps_gate_and_up_only_and_its_gradients_match_autograd(activation: str) -> None:
    ffn = build_feed_forward(activation, 6, 11, dropout=0.0, bias=True)
    x = torch.randn(2, 3, 6, requires_grad=True)
    weights = {parameter.data_ptr() for parameter in ffn.parameters()}
    wide: list[torch.Tensor] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.numel() == 2 * 3 * 11 and tensor.data_ptr() not in weights:
            wide.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = ffn(x)
    # gate and up for the product, and the product itself for down_proj; not act(gate)
    assert len({tensor.data_ptr() for tensor in wide}) == 3
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, *ffn.parameters()], grad)
    inner = F.silu if activation == "swiglu" else F.gelu
    expected_out = ffn.down_proj(inner(ffn.gate_proj(x)) * ffn.up_proj(x))
    expected = torch.autograd.grad(expected_out, [x, *ffn.parameters()], grad)
    for value, reference in zip(got, expected):
        torch.testing.assert_close(value, reference)


def test_rmsnorm_keeps_its_half_precision_path() -> None:
    norm = RMSNorm(6, eps=1e-6).to(torch.bfloat16)
    x = torch.randn(2, 3, 6, dtype=torch.bfloat16)
    expected = (x.float() / torch.sqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)
    torch.testing.assert_close(norm(x), norm.weight * expected)
