"""Fill the held-out packages' catalogs with a trained model and count what `msgfmt -c` rejects, with and without the
protections of `hf-encdec translate-po`; placeholder fidelity and BLEU/chrF on the test split, with and without.

    python examples/po_check.py runs/main                 # the main job's model (~40 min, 2 AMD EPYC cores, 2026-11-28)
    python examples/po_check.py runs/main --limit 200     # a quick look: 200 test pairs, the 3 smallest packages

For each held-out (test) package of the corpus, its compiled catalog ``<locale>/de/LC_MESSAGES/<package>.mo`` is
written back as a template (every entry, untranslated; ``c-format`` where the English has a printf directive, as
xgettext flags C sources) and as a ``.po`` with the real translations. The template is filled twice: by
`fill_catalog(protect=True)` (what translate-po does) and with the model's best hypotheses as they are (the plain
`translate()` of before). `msgfmt -c --use-fuzzy` checks all three. The catalogs and `po_check.json` go to
`<run>/po_check/`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import polib

from hf_encdec.data import load_corpus
from hf_encdec.data.gettext_corpus import find_catalogs
from hf_encdec.evaluation import corpus_scores
from hf_encdec.inference import load_translator, translate, translate_messages
from hf_encdec.inference import fill_catalog
from hf_encdec.localization.catalog import msgfmt_check, template_from_mo
from hf_encdec.localization.placeholders import keeps_placeholders


def _test_split(args: argparse.Namespace, model, tokenizer) -> dict:  # noqa: ANN001
    test = load_corpus(args.data)["test"]
    sources, references = list(test["source"]), list(test["target"])
    if args.limit:
        sources, references = sources[: args.limit], references[: args.limit]
    result: dict = {"pairs": len(sources), "references": {
        "keep_directives": sum(keeps_placeholders(s, r) for s, r in zip(sources, references)) / len(sources)}}
    for name, protect in (("unprotected", False), ("protected", True)):
        start = time.perf_counter()
        counts: Counter[str] = Counter()
        if protect:
            outputs = translate_messages(model, tokenizer, sources, num_beams=args.beams, counts=counts)
            kept_as_source = sum(output is None for output in outputs)
            hypotheses = [source if output is None else output for source, output in zip(sources, outputs)]
        else:
            cache = args.run / "po_check" / f"test.unprotected.{len(sources)}.json"
            if args.reuse_unprotected and cache.is_file():
                hypotheses = json.loads(cache.read_text())
            else:
                hypotheses = translate(model, tokenizer, sources, num_beams=args.beams, protect=False)
                cache.write_text(json.dumps(hypotheses, ensure_ascii=False))
            kept_as_source = 0
        scores = corpus_scores(hypotheses, references)
        result[name] = {
            "bleu": scores["bleu"], "chrf": scores["chrf"], "minutes": (time.perf_counter() - start) / 60,
            "keep_directives": sum(keeps_placeholders(s, h) for s, h in zip(sources, hypotheses)) / len(sources),
            "kept_as_source": kept_as_source, "settled": dict(counts),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a folder written by hf-encdec train on gettext:<lang>")
    parser.add_argument("--data", default="gettext:de")
    parser.add_argument("--beams", type=int, help="beam size (default: the model's generation config)")
    parser.add_argument("--limit", type=int, help="only this many test pairs, and the 3 smallest packages")
    parser.add_argument("--reuse-unprotected", action="store_true",
                        help="check the unprotected catalogs and test translations an earlier run left in <run>/po_check/ "
                             "instead of making them again")
    args = parser.parse_args()
    if shutil.which("msgfmt") is None:
        raise SystemExit("msgfmt (gettext-tools) is not installed; install it (apt install gettext) to run this check")
    language = args.data.split(":", 1)[1]
    model, tokenizer = load_translator(args.run)
    out = args.run / "po_check"
    out.mkdir(exist_ok=True)
    test = load_corpus(args.data)["test"]
    packages = sorted(Counter(test["package"]).items(), key=lambda item: item[1])
    names = [name for name, _ in packages][: 3 if args.limit else None]
    catalogs = find_catalogs(language)
    report: dict = {"run": str(args.run), "data": args.data, "catalogs": {}}
    for name in names:
        mo = catalogs[name][0]
        template = template_from_mo(mo, out / f"{name}.pot")
        reference = template_from_mo(mo, out / f"{name}.reference.po", keep_translations=True)
        row: dict = {"reference": msgfmt_check(reference).rejected}
        for variant, protect in (("unprotected", False), ("protected", True)):
            filled = out / f"{name}.{variant}.po"
            if not (args.reuse_unprotected and not protect and filled.is_file()):
                fill_catalog(model, tokenizer, template, filled, language=language, protect=protect, num_beams=args.beams)
            checked = msgfmt_check(filled)
            left = len(polib.pofile(str(filled)).untranslated_entries())  # not filled (fuzzy ones count as filled)
            row.update({"entries": checked.entries, variant: checked.rejected, f"{variant}_not_filled": left})
        report["catalogs"][name] = row
        print(name, row, flush=True)
    report["test_split"] = _test_split(args, model, tokenizer)
    (out / "po_check.json").write_text(json.dumps(report, indent=2))
    total = Counter()
    for row in report["catalogs"].values():
        total.update({key: value for key, value in row.items() if isinstance(value, int)})
    print("\n| package | entries | msgfmt -c rejects: references | best hypothesis as it is | translate-po | left untranslated |")
    print("|---|---|---|---|---|---|")
    for name, row in [*report["catalogs"].items(), ("all", total)]:
        print(f"| {name} | {row['entries']} | {row['reference']} | {row['unprotected']} | {row['protected']} | "
              f"{row['protected_not_filled']} |")
    split = report["test_split"]
    print(f"\nTest split ({split['pairs']} pairs): references keep the directives in {split['references']['keep_directives']:.2%}")
    for name in ("unprotected", "protected"):
        row = split[name]
        print(f"  {name}: BLEU {row['bleu']:.2f} chrF {row['chrf']:.2f}, directives kept {row['keep_directives']:.2%}, "
              f"kept as the source {row['kept_as_source']}, {row['minutes']:.1f} min, settled {row['settled']}")
    print(f"\nwritten: {out / 'po_check.json'}")


if __name__ == "__main__":
    main()
