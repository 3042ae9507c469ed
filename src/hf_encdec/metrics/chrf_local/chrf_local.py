"""sacreBLEU corpus chrF as an offline `evaluate` metric (Popović 2015, "chrF: character n-gram F-score").

Load it by absolute path so `evaluate` never consults the Hub: `hf_encdec.evaluation.load_metric("chrf")`.
Scores use sacreBLEU defaults (character 6-grams, no word n-grams, beta 2) and match
`hf_encdec.evaluation.corpus_scores(...)["chrf"]`.
"""

from __future__ import annotations

from typing import Any

import evaluate

from hf_encdec.evaluation.metrics import chrf_score, evaluate_features

_DESCRIPTION = "Corpus-level chrF computed by sacreBLEU with its default settings (char order 6, beta 2)."
_INPUTS = """
Args:
    predictions (list of str): detokenised system outputs.
    references (list of str, or list of list of str): one reference per prediction, or the same number of
        references for every prediction.
Returns:
    score (float): chrF on the 0-100 scale; char_order, word_order, beta as used;
    signature (str): the sacreBLEU signature that makes the number reproducible.
"""
_CITATION = """@inproceedings{popovic-2015-chrf,
  title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
  author = "Popovi{\\'c}, Maja",
  booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
  year = "2015",
  url = "https://aclanthology.org/W15-3049",
}"""


class ChrfLocal(evaluate.Metric):
    """An `evaluate` wrapper around `hf_encdec.evaluation.metrics.chrf_score`; see the module docstring."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=evaluate_features(),
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions: list[str], references: list[Any]) -> dict[str, Any]:
        return chrf_score(predictions, references)
