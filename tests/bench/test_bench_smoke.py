"""The benchmark in its quickest mode on tiny sizes: it runs, writes the JSON it documents, and compares models with
matched parameter counts. No timing is asserted (tests never time things; bench/README.md holds the numbers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAIRS = ["marian", "bart", "bert", "gpt2", "llama", "rnn"]


def test_quick_tiny_run_writes_the_documented_json(tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "bench" / "run.py"), "--sizes", "tiny", "--quick", "--threads", "1",
        "--pairs", ",".join(PAIRS), "--out", str(tmp_path), "--name", "smoke", "--gen-batches", "1,2",
    ]
    # the bench runs the library's models as its entry points do, with the speed paths
    env = {key: value for key, value in os.environ.items() if key != "HF_ENCDEC_SPEED_PATHS"}
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "| size | pair |" in finished.stdout  # the ratio table is printed
    assert "| size | pair | batch |" in finished.stdout  # and the one per batch size

    report = json.loads((tmp_path / "smoke.json").read_text())
    assert {"name", "command", "machine", "device", "dtype", "settings", "sizes", "matmul", "results", "table"} <= set(report)
    assert report["machine"]["slug"] and report["machine"]["cpu_count"] > 0
    # decoding measured its few-row products on this machine and recorded the choice
    assert report["machine"]["speed_paths"] is True
    assert report["product_choices"]
    assert {choice["way"] for choice in report["product_choices"]} <= {"plain", "swapped", "blocked", "rowsum"}
    assert report["matmul"]["tiny"]["peak_gflops"] > 0 and len(report["matmul"]["tiny"]["shapes"]) == 5
    assert [result["pair"] for result in report["results"]] == PAIRS
    assert len(report["table"]) == len(PAIRS)
    for result in report["results"]:
        params = result["parameters"]
        if not result["absolute"]:
            # same shapes on both sides: equal trainable parameters, up to what the reference has by design
            assert params["match"] and params["candidate"] == params["reference"] - params["reference_only"]
        train = result["train"]
        for side in ("candidate", "reference"):
            assert train[side]["tokens_per_s"] > 0 and train[side]["step_memory_mb"] > 0
            assert len(train[side]["all_step_ms"]) == 2 * 2  # --quick: 2 passes over 2 batches
        assert {"throughput", "memory", "memory_with_gradients"} <= set(train["ratio"])
        if result["kind"] == "mlm":
            assert "generate" not in result
            continue
        generate = result["generate"]
        for mode in ("greedy", "beam"):
            assert generate[mode]["candidate"]["tokens_per_s"] > 0 and generate[mode]["ratio"] > 0
        assert generate["beam"]["beams"] > 1
        assert sorted(generate["by_batch"]) == ["1", "2"]  # JSON keys
        for entry in generate["by_batch"].values():
            assert entry["greedy"]["ratio"] > 0 and entry["beam"]["ratio"] > 0
        for mode in ("greedy", "beam"):
            for side in ("candidate", "reference"):
                assert generate["per_token_cost"][mode][side]["growth"] > 0
