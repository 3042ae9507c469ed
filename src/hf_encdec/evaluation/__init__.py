"""Evaluation: sacreBLEU metrics, the copy baseline, Trainer `compute_metrics`, offline `evaluate` modules, plots."""

from .metrics import (
    METRIC_MODULES,
    build_compute_metrics,
    copy_baseline_scores,
    corpus_scores,
    load_metric,
    metric_script_path,
    reference_streams,
)

__all__ = [
    "METRIC_MODULES",
    "build_compute_metrics",
    "copy_baseline_scores",
    "corpus_scores",
    "load_metric",
    "metric_script_path",
    "reference_streams",
]
