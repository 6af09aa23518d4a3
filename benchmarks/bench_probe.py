"""Probe overhead: `mldoctor gpu-bench --image X` wall time minus its benchmark budget, over
`docker run --rm X python3 -c "import torch"`, both measured in this run (target <= 1.3x).

    python3 benchmarks/bench_probe.py [--image mldoctor-probe-test:cpu] [--duration 2] [--repeat 3]

Prints each figure and the ratio of the medians; exits 1 when the ratio misses the target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

TARGET = 1.3


def wall(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv[:4])}... exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return elapsed, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="mldoctor-probe-test:cpu")
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    baseline_argv = ["docker", "run", "--rm", "--entrypoint", "python3", args.image, "-c", "import torch"]
    probe_argv = [sys.executable, "-m", "mldoctor", "gpu-bench", "--image", args.image,
                  "--duration", f"{args.duration:g}", "--format", "json"]  # fmt: skip
    wall(baseline_argv)  # warm the page cache for both: the image's layers, torch's shared objects
    baselines, overheads, budgets = [], [], []
    for _ in range(args.repeat):
        baselines.append(wall(baseline_argv)[0])
        elapsed, stdout = wall(probe_argv)
        bench = json.loads(stdout)["facts"]["probe"]["document"]["bench"]
        budgets.append(bench["elapsed_s"])
        overheads.append(elapsed - bench["elapsed_s"])
    baseline, overhead = statistics.median(baselines), statistics.median(overheads)
    ratio = overhead / baseline
    print(f"docker run --rm {args.image} python3 -c 'import torch': median {baseline:.2f} s  {_fmt(baselines)}")
    print(f"gpu-bench wall minus benchmark time:            median {overhead:.2f} s  {_fmt(overheads)}")
    print(f"benchmark time inside the probe (--duration {args.duration:g}): {_fmt(budgets)}")
    print(f"probe overhead ratio: {ratio:.2f}x (target <= {TARGET}x)")
    return 0 if ratio <= TARGET else 1


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


if __name__ == "__main__":
    sys.exit(main())
