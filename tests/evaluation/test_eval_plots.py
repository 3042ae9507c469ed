"""plot_attention and plot_loss_curve write real PNGs sized to their content and reject bad input."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from hf_encdec.evaluation.plots import plot_attention, plot_loss_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def _attention(num_target: int, num_source: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(num_target, num_source))
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def _log_history(with_scores: bool) -> list[dict]:
    history: list[dict] = []
    for step in range(10, 201, 10):
        history.append({"loss": 3.0 * np.exp(-step / 80) + 0.2, "learning_rate": 1e-3, "epoch": step / 50, "step": step})
        if step % 50 == 0:
            entry = {"eval_loss": 3.0 * np.exp(-step / 80) + 0.4, "epoch": step / 50, "step": step}
            if with_scores:
                entry |= {"eval_bleu": 0.2 * step, "eval_chrf": 0.3 * step, "eval_gen_len": 7.0}
            history.append(entry)
    history.append({"train_runtime": 3.0, "train_loss": 1.0, "epoch": 4.0, "step": 200})
    return history


def test_attention_heatmap_is_a_png_with_plausible_size(tmp_path: Path) -> None:
    source = ["▁Der", "▁Hund", "▁läuft", ".", "</s>"]
    target = ["▁The", "▁dog", "▁runs", "</s>"]
    path = plot_attention(_attention(4, 5), source, target, tmp_path / "attention.png", title="layer 1")
    assert path == tmp_path / "attention.png"
    width, height = _png_size(path)
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (height, width)
    assert 300 < width < 2000 and 200 < height < 2000
    # A heatmap, not a blank canvas: many distinct colours.
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 50


def test_attention_figure_grows_with_tokens_and_is_capped(tmp_path: Path) -> None:
    small = _png_size(plot_attention(_attention(4, 5), list("abcde"), list("wxyz"), tmp_path / "small.png"))
    wide = _png_size(plot_attention(_attention(4, 40), [f"s{i}" for i in range(40)], list("wxyz"), tmp_path / "w.png"))
    huge = _png_size(
        plot_attention(
            _attention(400, 500), [f"s{i}" for i in range(500)], [f"t{i}" for i in range(400)], tmp_path / "h.png"
        )
    )
    assert wide[0] > small[0] * 1.5
    assert max(huge) < 2600  # 16 inches at 120 dpi plus labels, not 500 tokens' worth


def test_attention_accepts_torch_tensors_and_literal_dollar_tokens(tmp_path: Path) -> None:
    weights = torch.softmax(torch.randn(3, 4, requires_grad=True), dim=-1)
    # "$\\x$" would be parsed as (invalid) mathtext if labels were not escaped.
    path = plot_attention(weights, ["$\\x$", "$5", "a", "b"], ["x", "", "z"], tmp_path / "tensor.png")
    assert _png_size(path)[0] > 0


@pytest.mark.parametrize(
    ("weights", "source", "target", "message"),
    [
        (np.ones((3, 5)), list("abcde"), list("wxyz"), r"shape \(3, 5\).*expected \(4, 5\)"),
        (np.ones(5), list("abcde"), list("wxyz"), "matrix"),
        (np.zeros((0, 0)), [], [], "empty"),
        (-np.ones((4, 5)), list("abcde"), list("wxyz"), "non-negative"),
    ],
    ids=["wrong-shape", "1d", "empty", "negative"],
)
def test_attention_rejects_bad_weights(
    tmp_path: Path, weights: np.ndarray, source: list[str], target: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plot_attention(weights, source, target, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_attention_requires_png_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png"):
        plot_attention(_attention(2, 2), ["a", "b"], ["x", "y"], tmp_path / "attention.jpg")


@pytest.mark.parametrize("with_scores", [False, True], ids=["loss-only", "with-bleu-chrf"])
def test_loss_curve_is_a_png(tmp_path: Path, with_scores: bool) -> None:
    path = plot_loss_curve(_log_history(with_scores), tmp_path / "curves" / "loss.png", title="toy")
    width, height = _png_size(path)
    assert matplotlib.image.imread(path).shape[:2] == (height, width)
    assert 600 < width < 1500 and 300 < height < 1000


def test_loss_curve_draws_the_score_axis_only_when_scores_exist(tmp_path: Path) -> None:
    plain = matplotlib.image.imread(plot_loss_curve(_log_history(False), tmp_path / "plain.png"))
    scored = matplotlib.image.imread(plot_loss_curve(_log_history(True), tmp_path / "scored.png"))
    # The second y axis and its curves make the picture different, not just relabelled.
    assert plain.shape != scored.shape or not np.allclose(plain, scored)


def test_loss_curve_with_eval_loss_only(tmp_path: Path) -> None:
    history = [{"eval_loss": 2.0, "step": 10}, {"eval_loss": 1.5, "step": 20}]
    assert _png_size(plot_loss_curve(history, tmp_path / "eval.png"))[0] > 0


def test_loss_curve_without_loss_raises(tmp_path: Path) -> None:
    history = [{"train_runtime": 1.0, "train_loss": 0.5, "step": 3}, {"learning_rate": 1e-3, "step": 3}]
    with pytest.raises(ValueError, match="no 'loss' or 'eval_loss'"):
        plot_loss_curve(history, tmp_path / "loss.png")
    with pytest.raises(ValueError, match="no 'loss' or 'eval_loss'"):
        plot_loss_curve([], tmp_path / "loss.png")
    assert not (tmp_path / "loss.png").exists()


def test_loss_curve_rejects_entries_without_step_and_non_lists(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no 'step'"):
        plot_loss_curve([{"loss": 1.0}], tmp_path / "loss.png")
    with pytest.raises(ValueError, match="list of dicts"):
        plot_loss_curve({"loss": 1.0, "step": 1}, tmp_path / "loss.png")  # type: ignore[arg-type]
