"""The plain reference loop mldoctor's bf16 figure is compared with (issue 4): 8192^3 bf16 `torch.mm` on random
data, clocks settled first, CUDA events around each product, the median. Prints one JSON line.

Run on a GPU host: python3 benchmarks/reference_matmul.py [--device 0] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0, help="keep the GPU busy this long before timing")
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args()
    n = 8192
    device = torch.device("cuda", args.device)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    c = torch.empty(n, n, device=device, dtype=torch.bfloat16)
    settle_until = time.monotonic() + args.seconds
    while time.monotonic() < settle_until:  # warm-up: cuBLAS handle, algorithm choice, clocks
        for _ in range(10):
            torch.mm(a, b, out=c)
        torch.cuda.synchronize(device)
    times = []
    for _ in range(args.iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.mm(a, b, out=c)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    median_ms = statistics.median(times)
    print(
        json.dumps(
            {
                "gpu": torch.cuda.get_device_name(device),
                "device": args.device,
                "shape": [n, n, n],
                "dtype": "bf16",
                "median_ms": round(median_ms, 4),
                "tflops": round(2 * n**3 / (median_ms / 1e3) / 1e12, 1),
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
            }
        )
    )


if __name__ == "__main__":
    main()
