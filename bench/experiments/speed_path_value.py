"""What each speed path buys: copies of one model with every speed path ("all"), none ("plain"), and every path but
one ("no-<path>"), side by side with transformers' model of the pair, in one process, interleaved (A B ... B A).

Training: CPU time of forward + backward + AdamW step on one thread (`time.thread_time`, which other processes on
a shared machine do not inflate the way they inflate wall time), and the peak step memory (bench/measure.py). Generation
(`--generate`): CPU time of `generate()` with the cache, greedy and beam 4. Ratios are the reference's time (or
memory) over each copy's: above 1 is faster than the reference.

    python bench/experiments/speed_path_value.py marian,bert,gpt2,llama,rnn 10          # PAIRS REPS: training
    python bench/experiments/speed_path_value.py marian,rnn 7 --generate 1,8,32 --new 128   # generation
"""
import argparse
import copy
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import Trainer, generate_call, generation_config, generation_inputs, peak_step_memory, training_batches  # noqa: E402
from pairs import PAIRS, SIZES  # noqa: E402

from hf_encdec.speed import SPEED_PATHS, apply_speed_paths  # noqa: E402

TRAINING_PATHS = ("dropout", "gated_product", "recurrent_step", "fused_loss")
GENERATION_PATHS = ("projections", "generation_cache", "recurrent_step")


def copies(model: torch.nn.Module, paths: tuple[str, ...]) -> dict[str, torch.nn.Module]:
    """The plain model, one copy with every speed path, and one without each of `paths`."""
    modes = {"plain": model, "all": apply_speed_paths(copy.deepcopy(model))}
    for path in paths:
        modes[f"no-{path}"] = apply_speed_paths(copy.deepcopy(model), paths=[p for p in SPEED_PATHS if p != path])
    return modes


def cpu_times(calls: dict, reps: int) -> dict[str, float]:
    for call in calls.values():
        call()  # untimed: first use of every shape (product trials)
    times: dict[str, list[float]] = {key: [] for key in calls}
    keys = list(calls)
    for rep in range(reps):
        for key in keys if rep % 2 == 0 else keys[::-1]:
            started = time.thread_time()
            calls[key]()
            times[key].append(time.thread_time() - started)
    return {key: statistics.median(values) for key, values in times.items()}


def sides(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The plain candidate of pair `name` at the small size and its reference, from the same seed; a reference from
    the library (the rnn pair's Transformer) with the speed paths, as bench/run.py builds it."""
    pair, size = PAIRS[name], SIZES["small"]
    torch.manual_seed(0)
    ours = pair.candidate.build(size)
    torch.manual_seed(0)
    reference = pair.reference.build(size)
    if type(reference).__module__.startswith("hf_encdec."):
        reference = apply_speed_paths(reference)
    return ours, reference


def training(name: str, reps: int) -> None:
    pair, size = PAIRS[name], SIZES["small"]
    ours, reference = sides(name)
    batches = training_batches(pair.kind, size, 4, 0)
    trainers = {key: Trainer.create(model, 1e-4) for key, model in copies(ours, TRAINING_PATHS).items()}
    trainers["reference"] = Trainer.create(reference, 1e-4)
    cursor = {key: 0 for key in trainers}

    def step(key: str) -> None:
        trainers[key].step(batches[cursor[key] % len(batches)])
        cursor[key] += 1

    memory = {key: peak_step_memory(lambda key=key: trainers[key].step(batches[0]), torch.device("cpu"),
                                    prepare=trainers[key].clear) for key in trainers}
    seconds = cpu_times({key: (lambda key=key: step(key)) for key in trainers}, reps)
    print(f"{name} training, reference {seconds['reference'] * 1e3:.0f} ms {memory['reference'] / 2**20:.0f} MiB: "
          + ", ".join(f"{key} {seconds['reference'] / seconds[key]:.2f}x mem {memory[key] / memory['reference']:.2f}x"
                      for key in trainers if key != "reference"), flush=True)


def generation(name: str, reps: int, batches: list[int], new: int) -> None:
    pair, size = PAIRS[name], SIZES["small"]
    ours, reference = sides(name)
    ours, reference = ours.eval(), reference.eval()
    modes = copies(ours, GENERATION_PATHS)
    for batch in batches:
        inputs = generation_inputs(pair.kind, replace(size, generate_batch=batch), 0)
        for beams in (1, size.beams) if batch <= 8 else (1,):
            config = generation_config(new, beams)
            calls = {key: generate_call(model, inputs, config) for key, model in modes.items()}
            calls["reference"] = generate_call(reference, inputs, config)
            seconds = cpu_times(calls, reps)
            print(f"{name} generate batch {batch} beams {beams}, reference {seconds['reference'] * 1e3:.0f} ms: "
                  + ", ".join(f"{key} {seconds['reference'] / seconds[key]:.2f}x" for key in modes), flush=True)


parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("pairs")
parser.add_argument("reps", type=int)
parser.add_argument("--generate", metavar="BATCHES", help="comma-separated batch sizes: time generate() instead")
parser.add_argument("--new", type=int, default=128, help="new tokens a generation (default 128)")
args = parser.parse_args()
torch.set_num_threads(1)
print(f"1 thread, CPU time, {args.reps} interleaved calls a side, medians; x = reference / ours", flush=True)
for pair_name in args.pairs.split(","):
    if args.generate:
        generation(pair_name, args.reps, [int(b) for b in args.generate.split(",")], args.new)
    else:
        training(pair_name, args.reps)
