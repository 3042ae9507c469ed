"""PNG figures for reports and model cards: attention heatmaps and training curves.

Figures are drawn on a bare `matplotlib.figure.Figure` (Agg canvas), never through `pyplot`: no display is needed,
no global figure registry fills up in long runs, and callers' own backend choice is left untouched.

Shape legend: T target length, S source length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

logger = logging.getLogger(__name__)

__all__ = ["plot_attention", "plot_loss_curve"]

# Inches per token row/column, and the figure size limits: beyond ~60 tokens per axis the labels are thinned
# instead of growing the image without bound.
_INCHES_PER_TOKEN = 0.32
_MIN_SIDE_INCHES = 3.0
_MAX_SIDE_INCHES = 16.0
_MAX_LABELS_PER_AXIS = 60
# Cell values are written into the heatmap only when it is small enough for them to be legible.
_MAX_ANNOTATED_CELLS = 15
_DPI = 120


def _to_numpy(weights: Any) -> np.ndarray:
    """Accept numpy arrays, nested lists and torch tensors (detached, moved to CPU) without importing torch."""
    if hasattr(weights, "detach"):
        weights = weights.detach().float().cpu().numpy()
    return np.asarray(weights, dtype=np.float64)


def _escape_label(token: str) -> str:
    """Keep a token literal: matplotlib parses `$...$` as mathtext, and empty labels would vanish."""
    token = str(token).replace("$", r"\$")
    return token if token.strip() else repr(token)


def _tick_positions(count: int) -> np.ndarray:
    """Every position when few tokens, otherwise an evenly spaced subset of at most `_MAX_LABELS_PER_AXIS`."""
    step = max(1, math.ceil(count / _MAX_LABELS_PER_AXIS))
    return np.arange(0, count, step)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plots are written as PNG; the path must end in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=_DPI, bbox_inches="tight")
    logger.info("wrote %s", path)
    return path


def plot_attention(
    weights: Any,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Draw an attention matrix as a heatmap PNG: target tokens down the rows, source tokens along the columns.

    Args:
        weights: (T, S) attention weights (numpy array, nested list or torch tensor), e.g. one head or the head
            mean of a cross-attention layer; row t is the distribution over source positions for target step t.
        source_tokens: S labels for the columns (shown rotated, on top, where the eye reads the source first).
        target_tokens: T labels for the rows.
        path: output `.png` file; parent folders are created.
        title: optional title.

    Returns:
        The path written.

    Raises:
        ValueError: `weights` is not 2-D, is empty, contains negative values, or its shape differs from
            (len(target_tokens), len(source_tokens)); or `path` does not end in `.png`.
    """
    matrix = _attention_matrix(weights, source_tokens, target_tokens)
    num_target, num_source = matrix.shape
    width = _clamp(_INCHES_PER_TOKEN * num_source + 2.5, _MIN_SIDE_INCHES + 1.5, _MAX_SIDE_INCHES)
    height = _clamp(_INCHES_PER_TOKEN * num_target + 1.8, _MIN_SIDE_INCHES, _MAX_SIDE_INCHES)
    figure = Figure(figsize=(width, height), layout="constrained")
    _heatmap(figure, figure.subplots(), matrix, source_tokens, target_tokens, width)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def _attention_matrix(weights: Any, source_tokens: Sequence[str], target_tokens: Sequence[str]) -> np.ndarray:
    """The (T, S) weights as numpy, checked against the token labels (see `plot_attention`'s Raises)."""
    matrix = _to_numpy(weights)
    if matrix.ndim != 2:
        raise ValueError(f"weights must be a (target, source) matrix, got shape {matrix.shape}")
    if matrix.size == 0:
        raise ValueError(f"weights is empty (shape {matrix.shape}); nothing to plot")
    if matrix.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(
            f"weights has shape {matrix.shape} but there are {len(target_tokens)} target and "
            f"{len(source_tokens)} source tokens; expected ({len(target_tokens)}, {len(source_tokens)})"
        )
    if np.nanmin(matrix) < 0:
        raise ValueError(f"attention weights must be non-negative, got minimum {np.nanmin(matrix):.4g}")
    return matrix


def _heatmap(
    figure: Figure,
    axes: Any,
    matrix: np.ndarray,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    width: float,
    colour_label: str = "attention weight",
) -> None:
    """Draw (T, S) weights on `axes`: target tokens down the rows, source tokens along the top, a colour bar."""
    num_target, num_source = matrix.shape
    # vmax at the largest weight (not 1) so that diffuse attention over long sources stays visible.
    vmax = float(np.nanmax(matrix)) if np.nanmax(matrix) > 0 else 1.0
    image = axes.imshow(matrix, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    # A colourbar about half an inch wide whatever the figure width.
    colorbar = figure.colorbar(image, ax=axes, fraction=min(0.05, 0.5 / width), pad=0.02)
    colorbar.set_label(colour_label)

    label_size = 9 if max(num_source, num_target) <= 40 else 7
    source_ticks = _tick_positions(num_source)
    target_ticks = _tick_positions(num_target)
    axes.set_xticks(source_ticks, [_escape_label(source_tokens[i]) for i in source_ticks], fontsize=label_size)
    axes.set_yticks(target_ticks, [_escape_label(target_tokens[i]) for i in target_ticks], fontsize=label_size)
    axes.xaxis.tick_top()
    axes.xaxis.set_label_position("top")
    axes.tick_params(axis="x", labelrotation=60)
    for label in axes.get_xticklabels():
        label.set_horizontalalignment("left")
        label.set_rotation_mode("anchor")
    axes.set_xlabel("source")
    axes.set_ylabel("target")
    # Thin grid lines between cells keep rows and columns apart when neighbouring weights are similar.
    axes.set_xticks(np.arange(-0.5, num_source, 1.0), minor=True)
    axes.set_yticks(np.arange(-0.5, num_target, 1.0), minor=True)
    axes.grid(which="minor", color="white", linewidth=0.4, alpha=0.5)
    axes.tick_params(which="minor", length=0)

    if num_source <= _MAX_ANNOTATED_CELLS and num_target <= _MAX_ANNOTATED_CELLS:
        for row in range(num_target):
            for column in range(num_source):
                value = matrix[row, column]
                if np.isfinite(value):
                    color = "black" if value > 0.6 * vmax else "white"
                    axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)


def plot_copy_attention(
    weights: Any,
    p_gen: Any,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Draw a pointer-generator's copy attention as a heatmap PNG with, beside each target row, the probability
    p_gen that the token was generated from the vocabulary rather than copied (a bar from 0 to 1).

    Args:
        weights: (T, S) copy attention; row t is where target step t copies from.
        p_gen: T generation probabilities (numpy array, list or tensor of shape (T,) or (T, 1)), each in [0, 1].
        source_tokens, target_tokens, path, title: as in `plot_attention`.

    Returns:
        The path written.

    Raises:
        ValueError: as `plot_attention`, or p_gen does not hold T values in [0, 1].

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> plot_copy_attention([[0.9, 0.1], [0.2, 0.8]], [0.1, 0.7], ["a", "b"], ["a", "x"], folder / "copy.png").name
    'copy.png'
    """
    matrix = _attention_matrix(weights, source_tokens, target_tokens)
    generation = _to_numpy(p_gen).reshape(-1)
    if generation.shape[0] != matrix.shape[0]:
        raise ValueError(f"p_gen has {generation.shape[0]} values for {matrix.shape[0]} target tokens")
    if np.nanmin(generation) < 0 or np.nanmax(generation) > 1:
        raise ValueError(f"p_gen values must lie in [0, 1], got [{np.nanmin(generation):.4g}, {np.nanmax(generation):.4g}]")
    num_target, num_source = matrix.shape
    width = _clamp(_INCHES_PER_TOKEN * num_source + 4.0, _MIN_SIDE_INCHES + 3.0, _MAX_SIDE_INCHES)
    height = _clamp(_INCHES_PER_TOKEN * num_target + 1.8, _MIN_SIDE_INCHES, _MAX_SIDE_INCHES)
    figure = Figure(figsize=(width, height), layout="constrained")
    attention_axes, gate_axes = figure.subplots(1, 2, width_ratios=[max(num_source, 4), 3], sharey=True)
    _heatmap(figure, attention_axes, matrix, source_tokens, target_tokens, width, colour_label="copy attention")
    rows = np.arange(num_target)
    gate_axes.barh(rows, generation, height=0.7, color="tab:orange", label="p_gen (generate)")
    gate_axes.barh(rows, 1 - generation, left=generation, height=0.7, color="tab:blue", alpha=0.35, label="1 - p_gen (copy)")
    gate_axes.set_xlim(0.0, 1.0)
    gate_axes.set_xlabel("p_gen")
    gate_axes.xaxis.set_label_position("top")
    gate_axes.xaxis.tick_top()
    gate_axes.tick_params(axis="y", left=False, labelleft=False)
    gate_axes.legend(loc="lower center", bbox_to_anchor=(0.5, -0.02 - 1.2 / height), fontsize=7, frameon=False)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def _series(log_history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of every log entry holding a finite number under `key`."""
    steps: list[float] = []
    values: list[float] = []
    for index, entry in enumerate(log_history):
        value = entry.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(float(value)):
            continue
        if "step" not in entry:
            raise ValueError(f"log_history entry {index} has {key!r} but no 'step': {dict(entry)}")
        steps.append(float(entry["step"]))
        values.append(float(value))
    return steps, values


def plot_loss_curve(log_history: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Plot training and evaluation loss against the optimizer step, from `trainer.state.log_history`.

    Training loss (`loss` entries) is a line, evaluation loss (`eval_loss`) a line with markers; when the log has
    `eval_bleu` / `eval_chrf` they are drawn against a second y axis on the right (0-100 scale).

    Args:
        log_history: the Trainer's list of log dicts; each plotted entry needs a `step`.
        path: output `.png` file; parent folders are created.
        title: optional title.

    Returns:
        The path written.

    Raises:
        ValueError: no entry has a `loss` or `eval_loss` value, an entry with one has no `step`, or `path` does not
            end in `.png`.
    """
    if isinstance(log_history, Mapping) or not all(isinstance(entry, Mapping) for entry in log_history):
        raise ValueError("log_history must be a list of dicts, as in trainer.state.log_history")
    train_steps, train_loss = _series(log_history, "loss")
    eval_steps, eval_loss = _series(log_history, "eval_loss")
    if not train_loss and not eval_loss:
        keys = sorted({key for entry in log_history for key in entry})
        raise ValueError(
            "log_history has no 'loss' or 'eval_loss' entry to plot (keys present: "
            f"{keys or 'none'}); pass trainer.state.log_history after training with logging enabled"
        )

    figure = Figure(figsize=(8.0, 4.5), layout="constrained")
    axes = figure.subplots()
    handles = []
    if train_loss:
        marker = "o" if len(train_loss) == 1 else None
        handles += axes.plot(train_steps, train_loss, color="tab:blue", linewidth=1.4, marker=marker, label="train loss")
    if eval_loss:
        handles += axes.plot(
            eval_steps, eval_loss, color="tab:orange", linewidth=1.6, marker="o", markersize=4, label="eval loss"
        )
    axes.set_xlabel("step")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # optimizer steps are whole numbers
    axes.set_ylabel("loss")
    axes.grid(True, alpha=0.3)

    score_series = [
        (label, color, *_series(log_history, key))
        for key, label, color in (("eval_bleu", "eval BLEU", "tab:green"), ("eval_chrf", "eval chrF", "tab:purple"))
    ]
    score_series = [series for series in score_series if series[3]]
    if score_series:
        score_axes = axes.twinx()
        for label, color, steps, values in score_series:
            handles += score_axes.plot(
                steps, values, color=color, linewidth=1.4, linestyle="--", marker="s", markersize=4, label=label
            )
        score_axes.set_ylabel("score (0-100)")
        top = max(max(values) for _, _, _, values in score_series)
        score_axes.set_ylim(0.0, max(10.0, min(100.0, top * 1.1)))

    if title:
        figure.suptitle(title, fontsize=11)
    # Outside the axes: loss falls towards the lower right while scores rise towards the upper right.
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False)
    return _save(figure, path)
