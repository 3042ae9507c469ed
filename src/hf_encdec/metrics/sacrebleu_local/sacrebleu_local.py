"""sacreBLEU corpus BLEU as an offline `evaluate` metric (Papineni et al. 2002; Post 2018, arXiv 1804.08771).

Load it by absolute path so `evaluate` never consults the Hub: `hf_encdec.evaluation.load_metric("bleu")`.
Scores use sacreBLEU defaults and match `hf_encdec.evaluation.corpus_scores(...)["bleu"]`.
"""

from __future__ import annotations

from typing import Any

import evaluate

from hf_encdec.evaluation.metrics import bleu_score, evaluate_features

_DESCRIPTION = "Corpus-level BLEU computed by sacreBLEU with its default settings (13a tokenisation, exp smoothing)."
_INPUTS = """
Args:
    predictions (list of str): detokenised system outputs.
    references (list of str, or list of list of str): one reference per prediction, or the same number of
        references for every prediction.
Returns:
    score (float): BLEU on the 0-100 scale; counts, totals, precisions, bp, sys_len, ref_len as in sacreBLEU;
    signature (str): the sacreBLEU signature that makes the number reproducible.
"""
_CITATION = """@inproceedings{post-2018-call,
  title = "A Call for Clarity in Reporting {BLEU} Scores",
  author = "Post, Matt",
  booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
  year = "2018",
  url = "https://www.aclweb.org/anthology/W18-6319",
}"""


class SacrebleuLocal(evaluate.Metric):
    """An `evaluate` wrapper around `hf_encdec.evaluation.metrics.bleu_score`; see the module docstring."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=evaluate_features(),
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions: list[str], references: list[Any]) -> dict[str, Any]:
        return bleu_score(predictions, references)
