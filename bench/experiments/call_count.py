"""The Python function calls of one `generate()` of run.py's marian candidate (the library's small Transformer, with
the speed paths) and its CPU time on one thread: a per-step overhead check that does not depend on the machine's
load (the call count is exact), for comparing two versions of the code run one after the other, e.g. with
PYTHONPATH pointing at another checkout's src/.

    python bench/experiments/call_count.py 1 4 64 15      # BATCH BEAMS NEW REPS
"""
import cProfile
import pstats
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import generate_call, generation_config, generation_inputs  # noqa: E402
from pairs import PAIRS, SIZES  # noqa: E402
from run import build  # noqa: E402

batch, beams, new, reps = (int(value) for value in sys.argv[1:5])
torch.set_num_threads(1)
size = SIZES["small"]
ours, _ = build(PAIRS["marian"], size, 0, torch.device("cpu"), torch.float32)
call = generate_call(ours.eval(), generation_inputs("seq2seq", replace(size, generate_batch=batch), 0),
                     generation_config(new, beams))
for _ in range(3):
    call()  # untimed: the product trials of every shape
profile = cProfile.Profile()
profile.enable()
call()
profile.disable()
seconds = []
for _ in range(reps):
    started = time.thread_time()
    call()
    seconds.append(time.thread_time() - started)
print(f"batch {batch}, beams {beams}, {new} new tokens: {pstats.Stats(profile).total_calls} Python calls, "
      f"CPU time median {statistics.median(seconds) * 1e3:.1f} ms over {reps} calls (1 thread)")
