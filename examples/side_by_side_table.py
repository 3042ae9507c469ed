"""Print the README's side-by-side table from the run folders of scripts/side_by_side.sh.

    python examples/side_by_side_table.py runs/side-by-side

Each row reads a run's ``all_results.json`` (missing runs are shown as such) and ``config.json``; the ratio column
compares our model with transformers' own of the same size and steps (perplexity: theirs / ours, so > 1 means ours is
better; accuracy and BLEU: ours / theirs). Minutes are each run's training time. A line run over several seeds
(folders NAME, NAME-seed1, ...) shows the mean, the standard deviation and the number of seeds; its ratio is that of
the means.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def seed_runs(root: Path, name: str) -> list[dict]:
    """The finished runs of one line: NAME (seed 42) and NAME-seedN."""
    folders = [root / name] + sorted(root.glob(f"{name}-seed*"))
    return [results for results in map(read, folders) if results is not None]


def values(runs: list[dict], key: str) -> list[float]:
    return [run[key] for run in runs if key in run]


def cell(runs: list[dict], key: str) -> str:
    found = values(runs, key)
    if not found:
        return "not run"
    minutes = statistics.mean(run.get("train_runtime", 0) for run in runs) / 60
    if len(found) == 1:
        return f"{found[0]:.3f}" + (f" ({minutes:.1f} min)" if minutes else "")
    each = f", {minutes:.1f} min each" if minutes else ""
    return f"{statistics.mean(found):.3f} ± {statistics.stdev(found):.3f} ({len(found)} seeds{each})"


def table(root: Path) -> str:
    lines = ["| task | ours | hf_encdec | transformers | theirs | ratio |", "|---|---|---|---|---|---|"]
    for task, key, lower_better, ours, theirs in ROWS:
        mine, other = seed_runs(root, ours), seed_runs(root, theirs)
        ratio = "-"
        if values(mine, key) and values(other, key):
            mean_mine, mean_other = statistics.mean(values(mine, key)), statistics.mean(values(other, key))
            value = mean_other / mean_mine if lower_better else mean_mine / mean_other
            ratio = f"{value:.3f}"
        lines.append(f"| {task} | `{model_name(root / ours)}` | {cell(mine, key)} | `{model_name(root / theirs)}` | "
                     f"{cell(other, key)} | {ratio} |")
    extra = []
    for name in ("cls-ours-pretrained", "cls-ours-scratch", "cls-bert-pretrained", "cls-bert-scratch"):
        runs = seed_runs(root, name)
        if runs:
            mean = {key: statistics.mean(values(runs, key) or [float("nan")])
                    for key in ("predict_accuracy", "predict_f1", "predict_majority_accuracy")}
            seeds = f" (mean of {len(runs)} seeds)" if len(runs) > 1 else ""
            extra.append(f"{name}: accuracy {mean['predict_accuracy']:.3f}, macro-F1 {mean['predict_f1']:.3f}, "
                         f"majority class {mean['predict_majority_accuracy']:.3f}{seeds}")
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
