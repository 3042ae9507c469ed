"""The same-run comparison the decoding experiments share: for each batch size (and beam 4 up to batch 8), one
`generate()` call per mode of the library's model and one of MarianMTModel's, alternated, medians; printed as tokens/s
over Marian (x) and per-token growth (g: median step time of the last eighth of the new tokens over the first).

A script gives its modes and `set_mode(mode)`, which puts the library into a mode before each of that mode's calls
(Marian's calls run under `reference_mode`). A mode whose first call raises is reported with its error and not timed.
"""
from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import StepClock, alternate, generate_call, generation_config, generation_inputs, per_token_costs  # noqa: E402
from pairs import PAIRS, SIZES  # noqa: E402
from run import build  # noqa: E402


def arguments(default_modes: list[str]) -> tuple[object, list[int], int, int, list[str]]:
    """SIZE BATCHES REPS [NEW [MODES]] from the command line: the size, batch sizes, calls a side, new tokens (160)
    and the comma-separated modes (`default_modes`)."""
    size = SIZES[sys.argv[1]]
    batches = [int(b) for b in sys.argv[2].split(",")]
    new = int(sys.argv[4]) if len(sys.argv) > 4 else 160
    modes = sys.argv[5].split(",") if len(sys.argv) > 5 else default_modes
    return size, batches, int(sys.argv[3]), new, modes


def models(size: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The library's Transformer (with the speed paths, as run.py builds it) and MarianMTModel of `size`, from the
    same seed, in eval mode."""
    ours, marian = build(PAIRS["marian"], size, 0, torch.device("cpu"), torch.float32)
    return ours.eval(), marian.eval()


def plain_model(size: object) -> torch.nn.Module:
    """The library's Transformer of `size` from the same seed as `models`, without the speed paths, in eval mode."""
    torch.manual_seed(0)
    return PAIRS["marian"].candidate.build(size).eval()


def compare(
    size: object,
    batches: list[int],
    reps: int,
    new: int,
    modes: dict[str, torch.nn.Module],
    marian: torch.nn.Module,
    set_mode: Callable[[str], None],
    reference_mode: str,
) -> None:
    """Print one line per batch size and beam: Marian's time and growth, then each mode's ratio and growth.
    `modes` maps each mode to the model it decodes with."""
    print(f"{size.name}, {new} new tokens, threads {torch.get_num_threads()}, {reps} alternating calls a side, "
          "medians; x = tokens/s over Marian; g = late/early per-token step time")
    for batch in batches:
        inputs = generation_inputs(PAIRS["marian"].kind, replace(size, generate_batch=batch), 0)
        for beams in (1, size.beams) if batch <= 8 else (1,):
            keys = ["marian", *modes]
            clocks = {key: StepClock() for key in keys}
            growth: dict[str, list[float]] = {key: [] for key in keys}

            def moded(key: str) -> Callable[[], None]:
                model = marian if key == "marian" else modes[key]
                call = generate_call(model, inputs, generation_config(new, beams), clocks[key])

                def run() -> None:
                    set_mode(reference_mode if key == "marian" else key)
                    try:
                        call()
                    finally:
                        set_mode(reference_mode)
                    growth[key].append(per_token_costs(clocks[key].times, max(4, new // 8))["growth"])

                return run

            calls = {key: moded(key) for key in keys}
            notes, first = [], {}
            for key in list(keys):  # untimed: first use of every shape (product trials, compilation)
                started = time.perf_counter()
                try:
                    calls[key]()
                except Exception as error:  # a mode that cannot run here is reported, not timed
                    message = " ".join(line.strip() for line in str(error).splitlines()[:2])[:200]
                    notes.append(f"{key} failed: {type(error).__name__}: {message}")
                    del calls[key]
                    keys.remove(key)
                    continue
                first[key] = time.perf_counter() - started
                growth[key].clear()
            notes.append("first (untimed) calls: " + ", ".join(f"{key} {seconds:.1f} s" for key, seconds in first.items()))
            times = alternate(calls, reps, torch.device("cpu"))
            reference = statistics.median(times["marian"])
            print(f"batch {batch:2d} beams {beams}: marian {reference * 1e3:.0f} ms "
                  f"g{statistics.median(growth['marian']):.2f}; "
                  + ", ".join(f"{key} {reference / statistics.median(times[key]):.2f}x "
                              f"g{statistics.median(growth[key]):.2f}" for key in keys[1:])
                  + "".join(f"\n    {note}" for note in notes), flush=True)
