"""`mldoctor fleet run --ray` on a real local Ray cluster of two nodes (a head and a second `ray start` on this
host, loopback only), stopped at the end by the pids of its processes (not `ray stop`, which would stop any Ray
on the machine). Slow-ish: the two `ray start` take about 10 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from provided import absent

REPO = Path(__file__).parents[2]
REMEDY = "python3 -m pip install 'ray>=2.9'  (or: pip install -e '.[ray]')"


def ray_cli() -> str:
    __tracebackhide__ = True
    try:
        import ray  # noqa: F401
    except ImportError:
        absent(f"ray is not installed; provide it: {REMEDY}")
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if found is None:
        absent(f"ray's command is not on PATH; provide it: {REMEDY}")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_of(folder: str) -> list[psutil.Process]:
    """Every process whose command line names the cluster's private folder, with all their descendants."""
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["cmdline"]):
        if any(folder in arg for arg in process.info["cmdline"] or ()):
            found[process.pid] = process
            with contextlib.suppress(psutil.NoSuchProcess):
                found.update({child.pid: child for child in process.children(recursive=True)})
    return list(found.values())


def stop(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=5)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    cli = ray_cli()
    folder = tempfile.mkdtemp(prefix="mldr-", dir="/tmp")  # short: Ray's unix socket paths must fit 107 bytes
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", f"--temp-dir={folder}", "--disable-usage-stats"]
    began = time.monotonic()
    try:
        head = [cli, "start", "--head", f"--port={port}", "--include-dashboard=false", *common]
        subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([cli, "start", f"--address=127.0.0.1:{port}", *common], env=env, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        print(f"Ray: two nodes up in {time.monotonic() - began:.1f} s")
        yield f"127.0.0.1:{port}", env
    finally:
        stop(processes_of(folder))
        assert not processes_of(folder), "a Ray process outlived the test"
        shutil.rmtree(folder, ignore_errors=True)


def test_fleet_run_through_a_strict_spread_placement_group(ray_cluster):
    address, env = ray_cluster
    command = [sys.executable, "-m", "mldoctor", "fleet", "run", "--ray", "--ray-address", address, "--deadline",
               "120", "--format", "json", "--check-args", "--no-probe --skip docker"]  # fmt: skip
    began = time.monotonic()
    outcome = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    seconds = time.monotonic() - began
    assert outcome.returncode == 0, outcome.stderr
    data = json.loads(outcome.stdout)
    names = [n["node"] for n in data["nodes"]]
    assert len(set(names)) == 2, names  # one task on each of two distinct Ray nodes
    assert all(len(name) == 56 and int(name, 16) >= 0 for name in names)  # Ray node ids, not the shared host name
    assert {n["host"] for n in data["nodes"]} == {socket.gethostname()}
    assert data["missing"] == [] and data["unreadable"] == []
    assert "ray: 2 node(s) started, 2 reported" in outcome.stderr
    print(f"fleet run --ray, 2 nodes: {seconds:.2f} s wall")


def test_more_nodes_than_the_cluster_has_is_one_line(ray_cluster):
    address, env = ray_cluster
    command = [sys.executable, "-m", "mldoctor", "fleet", "run", "--ray", "--ray-address", address, "--ray-nodes", "3"]
    outcome = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert outcome.returncode == 3
    assert outcome.stderr.strip().splitlines()[-1] == (
        "mldoctor: fleet run: --ray-nodes 3, but the Ray cluster has 2 alive node(s)"
    )
