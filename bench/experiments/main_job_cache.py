"""The main job's test translation (a trained run folder's model, its beam size and length penalty, batches of 64
sources, `protect=False`) with the library's growing decoding cache against transformers' `DynamicCache`, alternated
in one process; checks that both give the same translations.

    python bench/experiments/main_job_cache.py runs/main-<date>-<time> 3 800     # RUN REPS SENTENCES
"""
import json
import logging
import statistics
import sys
import time
from pathlib import Path

from hf_encdec.inference import load_translator, translate
from hf_encdec.speed import cache

logging.disable(logging.WARNING)
run, reps, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with open(run / "test_translations.jsonl", encoding="utf-8") as lines:
    sources = [json.loads(line)["source"] for line in lines][:count]
model, tokenizer = load_translator(run)
growing = cache.use_growing_layers
times: dict[str, list[float]] = {"growing": [], "dynamic": []}
outputs: dict[str, list[str]] = {}
for rep in range(reps):
    for mode in ("growing", "dynamic") if rep % 2 else ("dynamic", "growing"):
        cache.use_growing_layers = growing if mode == "growing" else (lambda built: None)
        started = time.perf_counter()
        outputs[mode] = translate(model, tokenizer, sources, protect=False, progress=False)
        times[mode].append(time.perf_counter() - started)
cache.use_growing_layers = growing
print(f"{len(sources)} sentences, beams {model.generation_config.num_beams}; seconds: "
      + "; ".join(f"{mode} {', '.join(f'{t:.2f}' for t in values)}" for mode, values in times.items())
      + f"; growing / dynamic {statistics.median(times['growing']) / statistics.median(times['dynamic']):.3f}; "
      f"same translations: {outputs['growing'] == outputs['dynamic']}")
