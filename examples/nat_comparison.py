"""A NAT run's decoding comparison (mask-predict at T = 1, 4, 10 against its teacher, a NAT trained without
distillation and the copy baseline) on an evenly spaced subset of the test split, for a finished run: what
`hf-encdec train` reports (with --comparison-size and --undistilled), on as many pairs as you choose.

    python examples/nat_comparison.py runs/nat-de runs/distilled-de --pairs 1000 --undistilled runs/nat-raw
"""

from __future__ import annotations

import argparse
import json

from hf_encdec.data import load_corpus
from hf_encdec.inference import load_translator
from hf_encdec.training.nat_report import compare_decoding, teacher_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the NAT run folder")
    parser.add_argument("data", help="the distilled corpus folder it was trained on (names the teacher)")
    parser.add_argument("--pairs", type=int, default=1000, help="test pairs, evenly spaced over the split")
    parser.add_argument("--length-beam-size", type=int, default=3)
    parser.add_argument("--undistilled", default=None, help="a NAT run trained on the real references, to compare")
    parser.add_argument("--out", default=None, help="write the rows to this JSON file")
    args = parser.parse_args()
    test = load_corpus(args.data)["test"]
    if not 0 < args.pairs <= len(test):
        raise SystemExit(f"--pairs must be between 1 and the {len(test)} test pairs, got {args.pairs}")
    subset = test.select([int(i * len(test) / args.pairs) for i in range(args.pairs)])
    model, tokenizer = load_translator(args.run)
    rows = compare_decoding(model, tokenizer, subset["source"], subset["target"],
                            length_beam_size=args.length_beam_size, teacher=teacher_of(args.data),
                            undistilled=args.undistilled)
    report = {"test_pairs": args.pairs, "of": len(test), "rows": rows}
    text = json.dumps(report, indent=1, ensure_ascii=False)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
