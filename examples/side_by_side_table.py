"""Print the README's side-by-side table from the run folders of scripts/side_by_side.sh.

    python examples/side_by_side_table.py runs/side-by-side

Each row reads a run's ``all_results.json`` (missing runs are shown as such) and ``config.json``; the ratio column
compares our model with transformers' own of the same size and steps (perplexity: theirs / ours, so > 1 means ours is
better; accuracy and BLEU: ours / theirs). Minutes are each run's training time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROWS = [
    # (task, metric key, lower is better, ours, theirs)
    ("masked LM, manual pages (test perplexity)", "predict_perplexity", True, "mlm-ours", "mlm-bert"),
    ("sections from MLM checkpoint (test accuracy)", "predict_accuracy", False, "cls-ours-pretrained",
     "cls-bert-pretrained"),
    ("sections from scratch (test accuracy)", "predict_accuracy", False, "cls-ours-scratch", "cls-bert-scratch"),
    ("causal LM, GPT-2 block (test perplexity)", "predict_perplexity", True, "clm-ours-gpt2", "clm-gpt2"),
    ("causal LM, Llama block (test perplexity)", "predict_perplexity", True, "clm-ours-llama", "clm-llama"),
]


def read(folder: Path) -> dict | None:
    path = folder / "all_results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def model_name(folder: Path) -> str:
    path = folder / "config.json"
    if not path.is_file():
        return "?"
    config = json.loads(path.read_text())
    return config.get("architectures", ["?"])[0]


def cell(results: dict | None, key: str) -> str:
    if results is None or key not in results:
        return "not run"
    value = results[key]
    minutes = results.get("train_runtime", 0) / 60
    return f"{value:.3f}" + (f" ({minutes:.1f} min)" if minutes else "")


def table(root: Path) -> str:
    lines = ["| task | ours | hf_encdec | transformers | theirs | ratio |", "|---|---|---|---|---|---|"]
    for task, key, lower_better, ours, theirs in ROWS:
        mine, other = read(root / ours), read(root / theirs)
        ratio = "-"
        if mine and other and key in mine and key in other and mine[key] and other[key]:
            value = other[key] / mine[key] if lower_better else mine[key] / other[key]
            ratio = f"{value:.3f}"
        lines.append(f"| {task} | `{model_name(root / ours)}` | {cell(mine, key)} | `{model_name(root / theirs)}` | "
                     f"{cell(other, key)} | {ratio} |")
    extra = []
    for name in ("cls-ours-pretrained", "cls-ours-scratch", "cls-bert-pretrained", "cls-bert-scratch"):
        results = read(root / name)
        if results:
            extra.append(f"{name}: accuracy {results['predict_accuracy']:.3f}, macro-F1 {results['predict_f1']:.3f}, "
                         f"majority class {results.get('predict_majority_accuracy', float('nan')):.3f}")
    before, after = read(root / "adapt-before"), read(root / "adapt-after")
    if before and after:
        extra.append(f"domain adaptation (git, {after['predict_samples']} held-out messages): BLEU "
                     f"{before['predict_bleu']:.2f} -> {after['predict_bleu']:.2f}, chrF {before['predict_chrf']:.2f} -> "
                     f"{after['predict_chrf']:.2f} ({after.get('train_runtime', 0) / 60:.1f} min of fine-tuning)")
    return "\n".join(lines + [""] + [f"- {line}" for line in extra])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="the OUT folder of scripts/side_by_side.sh")
    print(table(parser.parse_args().root))


if __name__ == "__main__":
    main()
