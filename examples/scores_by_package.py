"""BLEU and chrF of a main-job run per held-out package, next to the copy-the-source baseline, and the repetition
rate (repeated word bigrams per sentence; `rep.`) of the translations next to the references'.

    python examples/scores_by_package.py runs/gettext-de              # the run's test_translations.jsonl
    python examples/scores_by_package.py runs/gettext-de --data gettext:fr

The packages come from the corpus (rebuilt from the machine's catalogs, deterministically the same split); the
translations from the run folder, so nothing is decoded again.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from hf_encdec.data import load_corpus
from hf_encdec.evaluation import copy_baseline_scores, corpus_scores, repetition_rate
from hf_encdec.training.recipe import read_translations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a folder written by hf-encdec train")
    parser.add_argument("--data", default="gettext:de")
    args = parser.parse_args()
    rows = read_translations(args.run)  # test_translations.jsonl, or the .tsv of runs from earlier versions
    test = load_corpus(args.data)["test"]
    # Each pair occurs once in the corpus, so a row finds its package by its pair: runs from before the splits were
    # shuffled hold the test split in package order, later ones in the shuffled order, a --test-size run a subset.
    package_of = dict(zip(zip(test["source"], test["target"]), test["package"]))
    unknown = [row for row in rows if (row["source"], row["reference"]) not in package_of]
    if unknown:
        raise SystemExit(f"{len(unknown)} of the {len(rows)} translations in {args.run} are no pair of the {args.data} "
                         f"test split (the first: {unknown[0]['source']!r}); was the run trained on other data?")
    groups: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        groups[package_of[(row["source"], row["reference"])]].append(index)
    groups = dict(sorted(groups.items(), key=lambda item: -len(item[1])))
    groups["all"] = list(range(len(rows)))
    print("| package | pairs | BLEU | chrF | copy BLEU | copy chrF | rep. | reference rep. |")
    print("|---|---|---|---|---|---|---|---|")
    for package, indices in groups.items():
        sources = [rows[i]["source"] for i in indices]
        references = [rows[i]["reference"] for i in indices]
        translations = [rows[i]["translation"] for i in indices]
        model = corpus_scores(translations, references)
        copy = copy_baseline_scores(sources, references)
        print(f"| {package} | {len(indices)} | {model['bleu']:.1f} | {model['chrf']:.1f} | {copy['bleu']:.1f} "
              f"| {copy['chrf']:.1f} | {repetition_rate(translations):.3f} | {repetition_rate(references):.3f} |")


if __name__ == "__main__":
    main()
