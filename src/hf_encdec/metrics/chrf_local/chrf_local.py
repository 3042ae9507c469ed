"""sacreBLEU corpus chrF as an offline `evaluate` metric (Popović 2015, "chrF: character n-gram F-score").

Load it by absolute path so `evaluate` never consults the Hub: `hf_encdec.evaluation.load_metric("chrf")`.
Scores use sacreBLEU defaults (character 6-grams, no word n-grams, beta 2) and match
`hf_encdec.evaluation.corpus_scores(...)["chrf"]`.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import sacrebleu

from hf_encdec.evaluation.metrics import reference_streams

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
    """sacreBLEU chrF with default settings; see the module docstring."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions: list[str], references: list[Any]) -> dict[str, Any]:
        if len(predictions) == 0:
            raise ValueError("cannot score an empty corpus")
        chrf = sacrebleu.CHRF()
        result = chrf.corpus_score(list(predictions), reference_streams(references))
        return {
            "score": float(result.score),
            "char_order": int(result.char_order),
            "word_order": int(result.word_order),
            "beta": int(result.beta),
            "signature": str(chrf.get_signature()),
        }
