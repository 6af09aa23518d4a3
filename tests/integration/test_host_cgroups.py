"""host.memory and host.cpu judge what this process may use, as a Slurm job, a systemd slice or a container sets it:
a real cgroup with a 2 GiB memory limit and a half-CPU quota, made for the test and removed after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from provided import absent

CGROUP = Path("/sys/fs/cgroup")


def _make(kind: str, name: str, settings: dict[str, str]) -> Path:
    """A child cgroup (v2 unified, or the v1 controller's hierarchy) with the given settings."""
    base = CGROUP if (CGROUP / "cgroup.controllers").exists() else CGROUP / kind
    directory = base / name
    directory.mkdir()
    for key, value in settings.items():
        (directory / key).write_text(value)
    return directory


@pytest.fixture
def limited_cgroups():
    if os.geteuid() != 0 or (not os.access(CGROUP, os.W_OK) and not os.access(CGROUP / "memory", os.W_OK)):
        absent("making a cgroup needs root and a writable /sys/fs/cgroup (run the tests as root, as CI does)")
    name = f"mldoctor-test-{uuid.uuid4().hex[:8]}"
    v2 = (CGROUP / "cgroup.controllers").exists()
    made = []
    try:
        if v2:
            made.append(_make("", name, {"memory.max": str(2 << 30), "cpu.max": "50000 100000"}))
        else:
            made.append(_make("memory", name, {"memory.limit_in_bytes": str(2 << 30)}))
            made.append(_make("cpu", name, {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"}))
        yield made
    finally:
        for directory in made:
            directory.rmdir()  # the process that joined it has exited: the cgroup is empty


def test_memory_and_cpu_are_judged_by_the_cgroup_the_process_runs_in(limited_cgroups):
    join = "".join(f"echo $$ > {d}/cgroup.procs; " for d in limited_cgroups)
    check = f"exec {sys.executable} -m mldoctor check --only host.memory,host.cpu --format json"
    proc = subprocess.run(["sh", "-c", join + check], capture_output=True, text=True, timeout=120)
    results = {r["id"]: r for r in json.loads(proc.stdout)["results"]}
    memory, cpu = results["host.memory"], results["host.cpu"]
    assert "under this cgroup's 2.0 GiB limit" in memory["summary"], memory
    assert cpu["summary"].startswith("0.5 usable of"), cpu
    assert cpu["status"] == "WARN"  # half a CPU starves any data loader
