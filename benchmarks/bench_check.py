"""Speed of `mldoctor check` and `mldoctor --help`, as ratios against baselines measured in the same run.

Targets (issue 2): check <= 1.5x the import floor `python -c "import docker, rich, click, psutil"`;
`--help` under 0.25 s; with a daemon that never answers, `check --timeout 2` back within 3 s.
Run by hand with a daemon up: python benchmarks/bench_check.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def wall(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    py = sys.executable
    floor = wall([py, "-c", "import docker, rich, click, psutil"], runs)
    check = wall([py, "-m", "mldoctor", "check"], runs)
    check_json = wall([py, "-m", "mldoctor", "check", "--format", "json"], runs)
    help_time = wall([py, "-m", "mldoctor", "--help"], runs)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "hung.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(16)
        hung = wall(
            [py, "-m", "mldoctor", "check", "--timeout", "2"],
            max(1, runs // 2),
            env={**os.environ, "DOCKER_HOST": f"unix://{path}"},
        )
        server.close()
    print(f"import floor (docker, rich, click, psutil): {floor:.3f} s")
    print(f"mldoctor check (table):  {check:.3f} s  = {check / floor:.2f}x floor  (target <= 1.5x)")
    print(f"mldoctor check (json):   {check_json:.3f} s  = {check_json / floor:.2f}x floor")
    print(f"mldoctor --help:         {help_time:.3f} s  (target < 0.25 s)")
    print(f"check --timeout 2, daemon never answers: {hung:.3f} s  (target < 3 s)")


if __name__ == "__main__":
    main()
