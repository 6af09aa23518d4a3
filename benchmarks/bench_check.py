"""Speed of `mldoctor check` and `mldoctor --help`, as ratios against baselines measured in the same run.

Targets: the host + docker checks (`check --only docker,host`) <= 1.3x the import floor
`python -c "import docker, rich, click, psutil"`, the full check (`check --duration 0`: the probe container too,
whose image may not be built) <= 1.5x; `--help` under 0.25 s; with a daemon that never answers, `check --timeout 2`
back within 3 s. The NVIDIA checks alone (`--no-probe`) are printed for reference.
The floor includes the interpreter's teardown at exit (about 25 ms here), which a finished `mldoctor` run skips
(`interrupts.finish`); the same imports ended with os._exit are measured too, and the checks printed against them,
so the figures show mldoctor's own cost over its imports either way.
Run by hand with a daemon up, against a regular install (`pip install .`, whose modules are byte-compiled):
python benchmarks/bench_check.py [--runs N]. An editable install under PYTHONDONTWRITEBYTECODE=1 recompiles every
mldoctor module on every run and reads about 0.1 s slower.
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


def wall(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - started


def medians(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Round-robin over the commands, so drift on a shared machine hits each of them alike; medians."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(wall(argv))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    py = sys.executable
    m = medians(
        {
            "floor": [py, "-c", "import docker, rich, click, psutil"],
            "imports": [py, "-c", "import docker, rich, click, psutil, os; os._exit(0)"],
            "check": [py, "-m", "mldoctor", "check", "--only", "docker,host"],
            "check_json": [py, "-m", "mldoctor", "check", "--only", "docker,host", "--format", "json"],
            "no_probe": [py, "-m", "mldoctor", "check", "--no-probe"],
            "full": [py, "-m", "mldoctor", "check", "--duration", "0"],
            "help": [py, "-m", "mldoctor", "--help"],
        },
        runs,
    )
    floor, imports, check, check_json, no_probe, full, help_time = (
        m[k] for k in ("floor", "imports", "check", "check_json", "no_probe", "full", "help")
    )
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "hung.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(16)
        env = {**os.environ, "DOCKER_HOST": f"unix://{path}"}
        hung = statistics.median(wall([py, "-m", "mldoctor", "check", "--timeout", "2"], env) for _ in range(3))
        server.close()
    import mldoctor

    print(f"mldoctor from {os.path.dirname(mldoctor.__file__)}, python {sys.executable}")
    print(f"import floor (docker, rich, click, psutil): {floor:.3f} s")
    print(f"check --only docker,host (table): {check:.3f} s = {check / floor:.2f}x floor  (target <= 1.3x)")
    print(f"check --only docker,host (json):  {check_json:.3f} s = {check_json / floor:.2f}x floor")
    print(f"check --no-probe (+ NVIDIA):      {no_probe:.3f} s = {no_probe / floor:.2f}x floor")
    print(f"check --duration 0 (+ probe):     {full:.3f} s = {full / floor:.2f}x floor  (target <= 1.5x)")
    print(f"the floor's imports without its teardown: {imports:.3f} s; against them: check --only docker,host "
          f"{check / imports:.2f}x, check --duration 0 {full / imports:.2f}x")  # fmt: skip
    print(f"mldoctor --help:         {help_time:.3f} s  (target < 0.25 s)")
    print(f"check --timeout 2, daemon never answers: {hung:.3f} s  (target < 3 s)")


if __name__ == "__main__":
    main()
