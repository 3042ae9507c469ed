"""Evaluation: sacreBLEU metrics, the copy baseline, Trainer `compute_metrics`, offline `evaluate` modules, plots."""

from .metrics import (
    METRIC_MODULES,
    bleu_score,
    build_compute_metrics,
    chrf_score,
    copy_baseline_scores,
    corpus_scores,
    load_metric,
    mbr_order,
    metric_script_path,
    reference_streams,
    repetition_rate,
)
from .plots import plot_attention, plot_copy_attention, plot_loss_curve

__all__ = [
    "METRIC_MODULES",
    "bleu_score",
    "build_compute_metrics",
    "chrf_score",
    "copy_baseline_scores",
    "corpus_scores",
    "load_metric",
    "mbr_order",
    "metric_script_path",
    "plot_attention",
    "plot_copy_attention",
    "plot_loss_curve",
    "reference_streams",
    "repetition_rate",
]
