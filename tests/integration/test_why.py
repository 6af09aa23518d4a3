"""`mldoctor why CONTAINER` against real containers on the real daemon: each way a container ends, named."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from provided import BASE_IMAGE, require_images

pytestmark = pytest.mark.docker


@pytest.fixture
def container():
    """Make a stopped container from the base image; removed afterwards whatever happened."""
    require_images(BASE_IMAGE)
    made = []

    def make(*args: str, start: bool = True) -> str:
        name = f"mldoctor-why-{uuid.uuid4().hex[:8]}"
        made.append(name)
        verb = ["run"] if start else ["create"]
        subprocess.run(["docker", *verb, "--name", name, "--network", "none", *args], capture_output=True, timeout=120)
        if not start:
            subprocess.run(["docker", "start", name], capture_output=True, timeout=60)
        return name

    yield make
    subprocess.run(["docker", "rm", "-f", *made], capture_output=True, timeout=60)


def why(name: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", "why", name, "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else {}


def test_a_known_error_in_the_logs_names_its_check(container):
    name = container(BASE_IMAGE, "python3", "-c", "print('RuntimeError: No CUDA GPUs are available'); exit(1)")
    code, data = why(name)
    assert code == 1 and data["container"]["exit_code"] == 1
    assert data["diagnosis"]["check"] == "probe.cuda" and "CUDA_VISIBLE_DEVICES" in data["diagnosis"]["fix"]


def test_the_memory_limit_kill_is_named_even_where_oomkilled_reads_false(container):
    """Exit 137 under a memory limit is an OOM kill (cgroup v1 with Docker 20.10 can leave OOMKilled false)."""
    name = container("--memory", "64m", "--memory-swap", "64m", BASE_IMAGE, "python3", "-c", "x = bytearray(512 << 20)")
    code, data = why(name)
    assert code == 1 and data["container"]["exit_code"] == 137
    assert "memory limit of 64 MiB" in data["diagnosis"]["summary"] and data["diagnosis"]["check"] == "host.memory"


def test_a_command_that_does_not_exist(container):
    name = container(BASE_IMAGE, "no-such-command", start=False)
    code, data = why(name)
    assert code == 1 and "never started" in data["diagnosis"]["summary"]
    assert "does not exist" in data["diagnosis"]["summary"]


def test_a_clean_exit_and_a_running_container(container):
    code, data = why(container(BASE_IMAGE, "true"))
    assert code == 0 and "exited normally" in data["diagnosis"]["summary"]
    running = container("-d", BASE_IMAGE, "sleep", "60")
    code, data = why(running)
    assert code == 0 and "running" in data["diagnosis"]["summary"]


def test_a_container_that_does_not_exist_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "mldoctor", "why", "no-such-container-here"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert "no container named 'no-such-container-here'" in proc.stderr
