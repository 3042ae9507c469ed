"""Wu et al.'s decode-time coverage penalty on a trained pointer-generator: BLEU, chrF and the repetition rate of the
test split (or a part of it) at several penalty weights beta, with the run's beam size and length penalty.

    python examples/coverage_penalty.py runs/gettext-de --betas 0,0.2,1
    python examples/coverage_penalty.py runs/gettext-de --package git --min-source-words 20   # long git messages

beta = 0 is plain beam search. The penalty re-ranks beam search's finished hypotheses by how fully their copy
attention covers the source (see `PointerGeneratorMixin.generate`), so it can only help where the beam holds a
hypothesis that covers the source better than the one the model scores best.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hf_encdec.data import load_corpus
from hf_encdec.evaluation import copy_baseline_scores, corpus_scores, repetition_rate
from hf_encdec.inference import load_translator, translate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a folder written by hf-encdec train (a copy model)")
    parser.add_argument("--data", default="gettext:de")
    parser.add_argument("--betas", default="0,0.2,1", help="comma-separated penalty weights")
    parser.add_argument("--package", help="only the test pairs of this package")
    parser.add_argument("--min-source-words", type=int, default=0, help="only sources of at least this many words")
    parser.add_argument("--report", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    betas = [float(beta) for beta in args.betas.split(",")]
    test = load_corpus(args.data)["test"]
    keep = [
        i for i, (source, package) in enumerate(zip(test["source"], test["package"]))
        if (args.package is None or package == args.package) and len(source.split()) >= args.min_source_words
    ]
    if not keep:
        raise SystemExit(f"no test pair of {args.data} has package {args.package!r} and >= {args.min_source_words} words")
    sources = [test["source"][i] for i in keep]
    references = [test["target"][i] for i in keep]
    model, tokenizer = load_translator(args.run)
    copy = copy_baseline_scores(sources, references)
    print(f"{len(sources)} pairs; copying the source: BLEU {copy['bleu']:.2f} chrF {copy['chrf']:.2f}; "
          f"references' repetition {repetition_rate(references):.3f}")
    rows = []
    for beta in betas:
        start = time.perf_counter()
        penalty = {"coverage_penalty": beta} if beta else {}
        translations = translate(model, tokenizer, sources, **penalty)
        scores = corpus_scores(translations, references)
        rows.append({"beta": beta, "bleu": scores["bleu"], "chrf": scores["chrf"],
                     "repetition": repetition_rate(translations), "minutes": (time.perf_counter() - start) / 60})
        print(f"beta {beta}: BLEU {scores['bleu']:.2f} chrF {scores['chrf']:.2f} "
              f"repetition {rows[-1]['repetition']:.3f} ({rows[-1]['minutes']:.1f} min)", flush=True)
    if args.report:
        args.report.write_text(json.dumps({"pairs": len(sources), "copy": copy, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
