"""Parallel against autoregressive decoding at one fixed output length (issue 12's speed goals).

    python bench/nat_speed.py                    # d256, 3+3 layers, vocabulary 8000, CPU; batch 1, 8, 32
    python bench/nat_speed.py --reps 5 --batches 1,8,32 --length 32

Both models have the same size and the same blocks (the NAT decoder has no causal mask and a length classifier): the
library's autoregressive Transformer decodes greedily with its key/value cache, exactly `--length` new tokens
(EOS left out, so a random model cannot stop early); the NAT writes `--length` positions with `target_length`, in
one pass (T=1) and with T = 4 and 10 rounds of mask-predict. Calls alternate (A B C D, D C B A, ...) and medians
are reported, as sentences per second and as the NAT's speed-up over the AR model. Untrained weights: decoding cost
does not depend on them. Writes bench/results/nat-speed-<device>.json with the machine it ran on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import alternate, generate_call, generation_config, median  # noqa: E402
from run import machine  # noqa: E402

from hf_encdec import TransformerConfig, TransformerForConditionalGeneration  # noqa: E402
from hf_encdec.models.configuration_nat import NATConfig  # noqa: E402
from hf_encdec.models.modeling_nat import NATForConditionalGeneration  # noqa: E402

SIZE = {"vocab_size": 8000, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024,
        "encoder_layers": 3, "decoder_layers": 3, "norm_position": "pre", "dropout": 0.0}
ITERATIONS = (1, 4, 10)


def main() -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--length", type=int, default=32, help="output length, both sides")
    parser.add_argument("--source-length", type=int, default=24)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    device = torch.device(args.device)

    torch.manual_seed(0)
    ar = TransformerForConditionalGeneration(TransformerConfig(**SIZE)).to(device).eval()
    torch.manual_seed(0)
    nat = NATForConditionalGeneration(
        NATConfig(**SIZE, mask_token_id=4, max_position_embeddings=max(128, args.length))
    ).to(device).eval()
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        generator = torch.Generator().manual_seed(batch)
        source = torch.randint(5, SIZE["vocab_size"], (batch, args.source_length), generator=generator).to(device)
        inputs = {"input_ids": source, "attention_mask": torch.ones_like(source)}
        calls = {"ar-greedy": generate_call(ar, inputs, generation_config(args.length, beams=1))}
        for iterations in ITERATIONS:
            def nat_call(iterations: int = iterations) -> torch.Tensor:
                with torch.inference_mode():
                    return nat.generate(**inputs, target_length=args.length, num_iterations=iterations)

            calls[f"nat-T{iterations}"] = nat_call
        for call in calls.values():  # warm-up
            call()
        times = alternate(calls, args.reps, device)
        seconds = {name: median(values) for name, values in times.items()}
        row = {"batch": batch, "seconds": seconds, "sentences_per_second": {k: batch / v for k, v in seconds.items()}}
        row["speedup_over_ar"] = {k: seconds["ar-greedy"] / v for k, v in seconds.items() if k != "ar-greedy"}
        rows.append(row)
        print(f"batch {batch:3d}: " + ", ".join(f"{k} {batch / v:8.1f} sent/s" for k, v in seconds.items())
              + " | speed-up " + ", ".join(f"{k} {v:.2f}x" for k, v in row["speedup_over_ar"].items()), flush=True)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(device),
        "settings": {**vars(args), "out": str(args.out), "size": SIZE, "iterations": ITERATIONS},
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"nat-speed-{device.type}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
