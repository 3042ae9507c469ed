"""One projection of a decoding step, both ways: `F.linear(x, W)` (MKL packs the (D_out, D_in) weight) against
`(W x^T)^T` (MKL packs the few rows of x instead), for the row counts and weight shapes of bench/pairs.py's sizes.
`ProjectionLinear` (hf_encdec/speed/projections.py) no longer reads a table: it times both ways on its first real
calls of each shape. This prints the isolated picture for a machine, which can differ from the one inside generate().

    python bench/projections.py                 # prints a markdown table of speed-ups, (W x^T)^T over F.linear
    python bench/projections.py --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# (D_in, D_out) of the small and base sizes: attention, feed-forward in and out, output layer
SHAPES = [(256, 256), (256, 1024), (1024, 256), (256, 8000), (512, 512), (512, 2048), (2048, 512), (512, 32000)]
ROWS = [1, 2, 4, 8, 12, 16, 32]


def _median_ms(function, repetitions: int) -> float:
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    times.sort()
    return 1e3 * times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; speed-up of (W x^T)^T over F.linear(x, W)")
    print("| D_in -> D_out | " + " | ".join(f"{rows} rows" for rows in ROWS) + " |")
    print("|---|" + "---|" * len(ROWS))
    with torch.inference_mode():
        for d_in, d_out in SHAPES:
            weight, bias = torch.randn(d_out, d_in), torch.randn(d_out)
            cells = []
            for rows in ROWS:
                x = torch.randn(rows, d_in)
                plain = lambda: F.linear(x, weight, bias)  # noqa: E731
                swapped = lambda: torch.addmm(bias[:, None], weight, x.t()).t().contiguous()  # noqa: E731
                torch.testing.assert_close(plain(), swapped(), rtol=1e-4, atol=1e-3)
                for function in (plain, swapped, plain, swapped):  # warm-up
                    function()
                plain_ms, swapped_ms = [], []
                for _ in range(3):  # alternate, so drifting machine load hits both
                    plain_ms.append(_median_ms(plain, args.repetitions))
                    swapped_ms.append(_median_ms(swapped, args.repetitions))
                cells.append(f"{sorted(plain_ms)[1] / sorted(swapped_ms)[1]:.2f}")
            print(f"| {d_in} -> {d_out} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
