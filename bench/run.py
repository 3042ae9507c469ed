"""Speed and memory of every hf_encdec family against transformers' own models, side by side in one run.

    python bench/run.py                          # small and base sizes, all pairs, fp32 on CPU
    python bench/run.py --quick                  # fewer repetitions, shorter generations
    python bench/run.py --sizes tiny --quick     # seconds: the smoke test's run
    python bench/run.py --device cuda --dtype bf16   # on a GPU

For each pair (see pairs.py) and size: training throughput (target tokens/s of forward + backward + AdamW step) and
peak step memory, greedy and beam-search `generate()` throughput with the cache, the per-token cost early and late
in a long generation, and the achieved fraction of the machine's matmul throughput measured in the same run.
Candidate and reference alternate (A B B A ...) and medians are reported. Writes bench/results/<name>.json and prints
the table of ratios (candidate / reference).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import re
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # the memory profiler warns about pre-existing blocks
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import (  # noqa: E402
    Trainer,
    StepClock,
    alternate,
    count_flops,
    counted_tokens,
    generate_call,
    generation_config,
    generation_inputs,
    matmul_throughput,
    median,
    peak_step_memory,
    per_token_costs,
    to_device,
    training_batches,
)
from pairs import PAIRS, SIZES, Pair, Size, parameter_report  # noqa: E402

from hf_encdec.speed import product_choices, speed_paths_wanted, speed_up  # noqa: E402

transformers.logging.set_verbosity_error()
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
RESULTS = Path(__file__).resolve().parent / "results"


def machine(device: torch.device) -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as handle:
            line = next((line for line in handle if line.startswith("flags")), "")
        # the vector extensions that decide which BLAS kernels run
        flags = sorted(flag for flag in line.split(":", 1)[-1].split() if flag.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu": cpu,
        "cpu_flags": flags,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "speed_paths": speed_paths_wanted(),  # hf_encdec's models with hf_encdec.speed applied (HF_ENCDEC_SPEED_PATHS)
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["slug"] = machine_slug(info)
    return info


def machine_slug(info: dict[str, object]) -> str:
    """A folder name per machine type, e.g. ``amd-epyc-2cores-avx2`` or ``nvidia-h200``: results are kept per machine.

    >>> machine_slug({"cpu": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "cpu_count": 2,
    ...               "cpu_flags": ["avx", "avx2", "avx512f"]})
    'intel-xeon-platinum-8375c-2cores-avx512'
    """
    if info.get("gpu"):
        name = str(info["gpu"])
    else:
        flags = info.get("cpu_flags") or []
        vector = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "novec"
        name = f"{info['cpu']} {info['cpu_count']}cores {vector}"
    name = re.sub(r"\((r|tm)\)|\bcpu\b|@.*?(?= \d+cores|$)", " ", name.lower())
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def matmul_shapes(size: Size) -> list[tuple[int, int, int]]:
    """The projections of a training step (tokens x hidden into hidden, feed-forward, vocabulary) and a large
    square product, which shows what the machine can do at its best."""
    tokens = size.seq2seq_batch * size.seq2seq_length
    return [
        (tokens, size.hidden, size.hidden),
        (tokens, size.hidden, size.ffn),
        (tokens, size.ffn, size.hidden),
        (tokens, size.hidden, size.vocab),
        (2048, 2048, 2048),
    ]


def build(pair: Pair, size: Size, seed: int, device: torch.device, dtype: torch.dtype) -> tuple[object, object]:
    """Both sides of `pair` from the same seed; hf_encdec's models (the candidate, and the reference of the rnn pair)
    with the library's speed paths, as its entry points run them (`speed_up`; `HF_ENCDEC_SPEED_PATHS=0`: plain)."""
    torch.manual_seed(seed)
    candidate = pair.candidate.build(size).to(device=device, dtype=dtype)
    torch.manual_seed(seed)
    reference = pair.reference.build(size).to(device=device, dtype=dtype)
    sides = [speed_up(model) if type(model).__module__.startswith("hf_encdec.") else model for model in (candidate, reference)]
    return sides[0], sides[1]


def bench_training(pair: Pair, size: Size, candidate, reference, args, device: torch.device) -> dict:
    batches = [to_device(batch, device) for batch in training_batches(pair.kind, size, args.batches, args.seed)]
    tokens = [counted_tokens(pair.kind, batch) for batch in batches]
    sides = {"candidate": Trainer.create(candidate, args.lr), "reference": Trainer.create(reference, args.lr)}
    cursor = {name: 0 for name in sides}

    def stepper(name: str):
        def step() -> None:
            trainer = sides[name]
            trainer.step(batches[cursor[name] % len(batches)])
            cursor[name] += 1

        return step

    calls = {name: stepper(name) for name in sides}
    # at least one warm-up step on every batch: the first step at a new shape pays one-off costs (CUDA kernel
    # selection and caching allocator growth: 1153 ms against 22 ms on an H200) that must not land in a timed step
    for _ in range(max(args.warmup, len(batches))):
        for call in calls.values():
            call()
    # every side runs the same batch sequence: reset the cursors after warm-up and time whole passes over the batches
    cursor.update({name: 0 for name in sides})
    repetitions = args.reps * len(batches)
    times = alternate(calls, repetitions, device)
    mean_tokens = sum(tokens) / len(tokens)
    flops = {name: count_flops(lambda trainer=trainer: trainer.step(batches[0])) for name, trainer in sides.items()}
    # two peaks per side: gradients allocated during the step (torch's default zero_grad), and gradients held
    # between steps (zeroed in place), which leaves what the step itself needs: activations and temporaries
    memory = {
        name: peak_step_memory(lambda trainer=trainer: trainer.step(batches[0]), device, prepare=trainer.clear)
        for name, trainer in sides.items()
    }
    activation_memory = {
        name: peak_step_memory(
            lambda trainer=trainer: trainer.step(batches[0], keep_gradients=True), device, prepare=trainer.zero
        )
        for name, trainer in sides.items()
    }
    result: dict[str, object] = {"tokens_per_step": mean_tokens, "batches": len(batches)}
    scale = mean_tokens / tokens[0]  # FLOPs were counted on the first batch; scale them to an average one
    task_flops = flops["reference"] * scale  # the reference's matmul work: what the task takes the stock model
    for name in sides:
        # per-batch medians, then the sum over the batch list: one pass over the fixed batches
        per_batch = [median(times[name][index :: len(batches)]) for index in range(len(batches))]
        epoch = sum(per_batch)
        step_seconds = epoch / len(batches)
        result[name] = {
            "step_ms": step_seconds * 1e3,
            "tokens_per_s": sum(tokens) / epoch,
            "step_memory_mb": activation_memory[name] / 2**20,
            "step_memory_with_gradients_mb": memory[name] / 2**20,
            "matmul_gflop_per_step": flops[name] * scale / 1e9,
            "model_gflops": task_flops / step_seconds / 1e9,
            "executed_gflops": flops[name] * scale / step_seconds / 1e9,
            "all_step_ms": [value * 1e3 for value in times[name]],
        }
    result["ratio"] = {
        "throughput": result["candidate"]["tokens_per_s"] / result["reference"]["tokens_per_s"],
        "memory": result["candidate"]["step_memory_mb"] / result["reference"]["step_memory_mb"],
        "memory_with_gradients": result["candidate"]["step_memory_with_gradients_mb"]
        / result["reference"]["step_memory_with_gradients_mb"],
    }
    for trainer in sides.values():
        trainer.optimizer.zero_grad(set_to_none=True)
    sides.clear()  # the trainers (models, optimizer states) go; the step closures above still name the dict
    gc.collect()
    return result


def time_generation(pair: Pair, size: Size, models: dict, args, device: torch.device, batch: int) -> dict:
    """Greedy and beam `generate()` on `batch` sources, both sides in alternation: tokens per second and the ratio."""
    inputs = to_device(generation_inputs(pair.kind, replace(size, generate_batch=batch), args.seed), device)
    output: dict[str, object] = {}
    for mode, beams in (("greedy", 1), ("beam", size.beams)):
        config = generation_config(size.new_tokens, beams)
        calls = {name: generate_call(model, inputs, config) for name, model in models.items()}
        for call in calls.values():
            call()
        times = alternate(calls, args.gen_reps, device)
        produced = batch * size.new_tokens
        entry: dict[str, object] = {"beams": beams}
        for name in models:
            entry[name] = {"tokens_per_s": produced / median(times[name]), "call_ms": median(times[name]) * 1e3}
        entry["ratio"] = entry["candidate"]["tokens_per_s"] / entry["reference"]["tokens_per_s"]
        output[mode] = entry
    return output


def bench_generation(pair: Pair, size: Size, candidate, reference, args, device: torch.device) -> dict:
    inputs = to_device(generation_inputs(pair.kind, size, args.seed), device)
    models = {"candidate": candidate.eval(), "reference": reference.eval()}
    output: dict[str, object] = {"batch": size.generate_batch, "new_tokens": size.new_tokens}
    output.update(time_generation(pair, size, models, args, device, size.generate_batch))
    if args.gen_batches:
        output["by_batch"] = {
            batch: time_generation(pair, size, models, args, device, batch)
            for batch in map(int, args.gen_batches.split(","))
        }

    # per-token cost along one long generation, greedy and beam: early steps against late ones
    growth: dict[str, object] = {"new_tokens": size.growth_tokens, "window": max(2, size.growth_tokens // 8)}
    for mode, beams in (("greedy", 1), ("beam", size.beams)):
        config = generation_config(size.growth_tokens, beams)
        clocks = {name: StepClock() for name in models}
        calls = {name: generate_call(model, inputs, config, clocks[name]) for name, model in models.items()}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in models}
        for call in calls.values():  # a first long call meets every new cache length untimed
            call()
        for repetition in range(max(1, args.gen_reps // 2)):
            for name in list(models) if repetition % 2 == 0 else list(models)[::-1]:
                calls[name]()
                runs[name].append(per_token_costs(clocks[name].times, growth["window"]))
        growth[mode] = {
            name: {key: median([run[key] for run in runs[name]]) for key in ("early_ms", "late_ms", "growth")}
            for name in models
        }
    output["per_token_cost"] = growth
    return output


def run_pair(pair: Pair, size: Size, args, device: torch.device, dtype: torch.dtype) -> dict:
    candidate, reference = build(pair, size, args.seed, device, dtype)
    params = parameter_report(pair, candidate, reference)
    print(
        f"  {size.name:5s} {pair.name:6s} params {pair.candidate.name} {params['candidate']:,} | "
        f"{pair.reference.name} {params['reference']:,}"
        + (f" (of which {params['reference_only']:,} only in the reference: {', '.join(pair.reference_only)})" if params["reference_only"] else "")
        + f"  match={params['match']}",
        flush=True,
    )
    result: dict[str, object] = {
        "pair": pair.name,
        "size": size.name,
        "kind": pair.kind,
        "absolute": pair.absolute,
        "candidate": pair.candidate.name,
        "reference": pair.reference.name,
        "parameters": params,
    }
    if not args.no_train:
        result["train"] = bench_training(pair, size, candidate, reference, args, device)
    if not args.no_generate and pair.kind != "mlm":
        result["generate"] = bench_generation(pair, size, candidate, reference, args, device)
    del candidate, reference
    gc.collect()
    return result


def table_rows(results: list[dict]) -> list[dict[str, object]]:
    rows = []
    for result in results:
        train = result.get("train", {})
        generate = result.get("generate", {})
        growth = generate.get("per_token_cost", {})
        rows.append(
            {
                "size": result["size"],
                "pair": result["pair"],
                "absolute": result["absolute"],
                "params": f"{result['parameters']['candidate'] / 1e6:.2f}M/{result['parameters']['reference'] / 1e6:.2f}M",
                "train": train.get("ratio", {}).get("throughput"),
                "train_tok_s": (train.get("candidate", {}).get("tokens_per_s"), train.get("reference", {}).get("tokens_per_s")),
                "memory": train.get("ratio", {}).get("memory"),
                "memory_mb": (train.get("candidate", {}).get("step_memory_mb"), train.get("reference", {}).get("step_memory_mb")),
                "memory_with_gradients": train.get("ratio", {}).get("memory_with_gradients"),
                "mfu": (train.get("candidate", {}).get("model_flops_utilisation"), train.get("reference", {}).get("model_flops_utilisation")),
                "hfu": (train.get("candidate", {}).get("hardware_flops_utilisation"), train.get("reference", {}).get("hardware_flops_utilisation")),
                "greedy": generate.get("greedy", {}).get("ratio"),
                "greedy_tok_s": (generate.get("greedy", {}).get("candidate", {}).get("tokens_per_s"), generate.get("greedy", {}).get("reference", {}).get("tokens_per_s")),
                "beam": generate.get("beam", {}).get("ratio"),
                "beam_tok_s": (generate.get("beam", {}).get("candidate", {}).get("tokens_per_s"), generate.get("beam", {}).get("reference", {}).get("tokens_per_s")),
                "growth": tuple(growth.get("greedy", {}).get(side, {}).get("growth") for side in ("candidate", "reference")),
                "beam_growth": tuple(growth.get("beam", {}).get(side, {}).get("growth") for side in ("candidate", "reference")),
            }
        )
    return rows


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pair_fmt(values: tuple, spec: str, sep: str = "/") -> str:
    return sep.join(_fmt(value, spec) for value in values) if values and any(v is not None for v in values) else "-"


def print_table(rows: list[dict[str, object]]) -> str:
    """Markdown table: ratios candidate / reference (throughput: higher is better; memory: lower is better)."""
    header = (
        "| size | pair | params (ours/ref) | train x | train tok/s (ours/ref) | step mem x | step MiB (ours/ref) "
        "| mem x incl. grads | MFU (ours/ref) | HFU (ours/ref) | greedy x | greedy tok/s (ours/ref) | beam x "
        "| beam tok/s (ours/ref) | per-token late/early greedy (ours/ref) | beam (ours/ref) |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        mark = " (abs)" if row["absolute"] else ""
        lines.append(
            f"| {row['size']} | {row['pair']}{mark} | {row['params']} | {_fmt(row['train'], '.2f')} | "
            f"{_pair_fmt(row['train_tok_s'], '.0f')} | {_fmt(row['memory'], '.2f')} | {_pair_fmt(row['memory_mb'], '.0f')} | "
            f"{_fmt(row['memory_with_gradients'], '.2f')} | {_pair_fmt(row['mfu'], '.0%')} | {_pair_fmt(row['hfu'], '.0%')} | "
            f"{_fmt(row['greedy'], '.2f')} | {_pair_fmt(row['greedy_tok_s'], '.0f')} | "
            f"{_fmt(row['beam'], '.2f')} | {_pair_fmt(row['beam_tok_s'], '.0f')} | {_pair_fmt(row['growth'], '.2f')} | "
            f"{_pair_fmt(row['beam_growth'], '.2f')} |"
        )
    text = "\n".join(lines)
    print(text)
    return text


def print_batch_table(results: list[dict]) -> str:
    """Markdown table of `--gen-batches`: generation ratios per batch size (ours / reference)."""
    lines = ["| size | pair | batch | greedy x | greedy tok/s (ours/ref) | beam x | beam tok/s (ours/ref) |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        for batch, entry in result.get("generate", {}).get("by_batch", {}).items():
            cells = []
            for mode in ("greedy", "beam"):
                sides = tuple(entry[mode][side]["tokens_per_s"] for side in ("candidate", "reference"))
                cells += [_fmt(entry[mode]["ratio"], ".2f"), _pair_fmt(sides, ".0f")]
            lines.append(f"| {result['size']} | {result['pair']} | {batch} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,base", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--pairs", default=",".join(PAIRS), help=f"comma-separated, from {', '.join(PAIRS)}")
    parser.add_argument("--reps", type=int, default=5, help="timed passes over the training batches per side")
    parser.add_argument("--batches", type=int, default=3, help="distinct training batches (cycled)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps per side (at least one per batch)")
    parser.add_argument("--gen-reps", type=int, default=5, help="timed generate() calls per side and mode")
    parser.add_argument("--gen-batches", default="", help="also time generate() at these batch sizes, e.g. 1,8,32")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (both sides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: fp32 on CPU, bf16 on GPU")
    parser.add_argument("--quick", action="store_true", help="2 repetitions, 1 warm-up step, short generations")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--no-generate", action="store_true")
    parser.add_argument("--name", default=None, help="results file name (default: <device>-<dtype>[-quick])")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.warmup, args.gen_reps, args.batches = 2, 1, 2, 2
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = DTYPES[dtype_name]
    sizes = [SIZES[name] for name in args.sizes.split(",")]
    pairs = [PAIRS[name] for name in args.pairs.split(",")]
    if args.quick:
        sizes = [
            Size(**{**size.__dict__, "new_tokens": min(size.new_tokens, 16), "growth_tokens": min(size.growth_tokens, 48)})
            if size.name != "tiny"
            else size
            for size in sizes
        ]
    name = args.name or f"{device.type}-{dtype_name}" + ("-quick" if args.quick else "")
    info = machine(device)
    print(f"machine: {info['cpu']}, {info['cpu_count']} cores, {info['torch_threads']} torch threads, "
          f"{info['cpu_capability']}; torch {info['torch']}, transformers {info['transformers']}; {device} {dtype_name}")

    report: dict[str, object] = {
        "name": name,
        "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": info,
        "device": str(device),
        "dtype": dtype_name,
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "sizes": {size.name: size.__dict__ for size in sizes},
        "matmul": {},
        "results": [],
    }
    for size in sizes:
        shapes = matmul_shapes(size)
        rows = matmul_throughput(shapes, max(5, args.reps * 2), device, dtype)
        report["matmul"][size.name] = {"shapes": rows, "peak_gflops": max(row["gflops"] for row in rows)}
        print(f"{size.name}: matmul GFLOP/s " + ", ".join(f"{r['m']}x{r['k']}x{r['n']}: {r['gflops']:.0f}" for r in rows))
        for pair in pairs:
            report["results"].append(run_pair(pair, size, args, device, dtype))
            # the machine's rate again after each pair; the fractions use the best seen for this size
            again = matmul_throughput(shapes[-1:], max(5, args.reps * 2), device, dtype)[0]["gflops"]
            report["matmul"][size.name].setdefault("square_rechecks", []).append(again)
    for result in report["results"]:
        record = report["matmul"][result["size"]]
        record["peak_gflops"] = max([record["peak_gflops"], *record.get("square_rechecks", [])])
        train = result.get("train")
        if train:
            for side in ("candidate", "reference"):
                # model FLOPs utilisation: the task's matmul FLOPs (as the reference executes them) per second;
                # hardware utilisation: the FLOPs this side executed (ours skips the output layer on unlabelled
                # positions, so it executes fewer)
                train[side]["model_flops_utilisation"] = train[side]["model_gflops"] / record["peak_gflops"]
                train[side]["hardware_flops_utilisation"] = train[side]["executed_gflops"] / record["peak_gflops"]
            if result["absolute"]:
                # a different architecture: the reference's FLOPs are not its task, and torch's FLOP counter does
                # not see inside the fused LSTM kernels, so no utilisation is claimed for the candidate
                for key in ("model_gflops", "executed_gflops", "model_flops_utilisation", "hardware_flops_utilisation"):
                    train["candidate"][key] = None
    report["table"] = table_rows(report["results"])
    print()
    report["table_markdown"] = print_table(report["table"])
    if args.gen_batches:
        print()
        report["batch_table_markdown"] = print_batch_table(report["results"])
    report["product_choices"] = [  # what ProjectionLinear measured and chose on this machine (speed/projections.py)
        {"rows": rows, "d_in": d_in, "d_out": d_out, "bias": bias, "threads": threads, "way": way}
        for (rows, d_in, d_out, bias, threads), way in sorted(product_choices().items())
    ]
    folder = args.out / info["slug"] if args.out == RESULTS else args.out  # results are kept per machine
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {path}")
    return report


if __name__ == "__main__":
    main()
