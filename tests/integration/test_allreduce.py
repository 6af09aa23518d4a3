"""The probe's all-reduce in the CPU probe image (gloo across two processes): the figure reaches the report, and a
rank that never joins ends at the all-reduce's deadline with no process and no container left.

The images come from scripts/ci/build-test-images.sh; without them these tests skip with that command (in CI they
fail instead)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from provided import TORCH_IMAGE, labelled_containers, require_images

from mldoctor.facts import Facts
from mldoctor.facts.probe import ProbeRun, facts_of
from mldoctor.model import Status
from mldoctor.policy import Policy
from mldoctor.probe import launch
from mldoctor.rules import REGISTRY
from mldoctor.runner import evaluate

pytestmark = pytest.mark.docker

LABEL = "mldoctor.probe"
HANG_TIMEOUT = 8.0


def _docker():
    import docker

    return docker.from_env(timeout=10)


def probe_containers() -> set[str]:
    return labelled_containers(LABEL)


@pytest.fixture(autouse=True)
def no_probe_container_left():
    require_images(TORCH_IMAGE)
    before = probe_containers()
    yield
    deadline = time.monotonic() + 15  # another run on this daemon removes its own within seconds; a leak stays
    while (new := probe_containers() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert new == set(), "a probe container outlived its run"


def test_gpu_bench_in_the_cpu_image_reports_the_gloo_busbw():
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", "gpu-bench", "--image", TORCH_IMAGE, "--duration", "2", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    found = next(r for r in report["results"] if r["id"] == "bench.allreduce")
    assert found["status"] == "PASS" and "gloo on the CPU: busbw" in found["summary"], found
    allreduce = report["facts"]["probe"]["document"]["bench"]["allreduce"]
    assert (allreduce["backend"], allreduce["world_size"], allreduce["hung"]) == ("gloo", 2, False)
    assert [r["stage"] for r in allreduce["ranks"]] == ["done", "done"]
    largest = allreduce["sizes"][-1]
    assert largest["ok"] and largest["busbw_gbps"] > 0.01 and largest["busbw_gbps"] == largest["algbw_gbps"]  # n=2
    rows = [r for r in report["benchmarks"] if r["metric"].startswith("allreduce")]
    assert len(rows) == len(allreduce["sizes"]) and all(r["unit"] == "GB/s" and r["measured"] > 0 for r in rows)
    assert rows[-1]["measured"] == pytest.approx(largest["busbw_gbps"])
    p2p = next(r for r in report["results"] if r["id"] == "bench.p2p")
    assert p2p["status"] == "SKIP"  # no GPU: no peers


def test_a_rank_that_never_joins_ends_at_the_deadline_and_fails():
    """The real launcher, the real container: rank 1 sleeps instead of joining; the probe kills both ranks at its
    all-reduce deadline and still prints its document, well before the launcher's own deadline."""
    request = launch.LaunchRequest(
        image=TORCH_IMAGE,
        args=("--duration", "1", "--allreduce-timeout", f"{HANG_TIMEOUT:g}", "--allreduce-stall-rank", "1"),
        deadline_s=120.0,
    )
    outcome = launch.run_in_container(request)
    assert outcome.error is None and outcome.exit_code == 0 and not outcome.timed_out, outcome
    facts = facts_of(ProbeRun(image=TORCH_IMAGE, gpus="none", deadline_s=120.0), outcome)
    doc = facts.document
    assert doc is not None and doc.bench is not None, facts.run
    allreduce = doc.bench.allreduce
    assert allreduce.hung and allreduce.unfinished == [0, 1] and allreduce.sizes == []
    assert HANG_TIMEOUT <= allreduce.elapsed_s < HANG_TIMEOUT + 5, allreduce.elapsed_s
    stages = {r.rank: (r.stage, r.killed, r.joined) for r in allreduce.ranks}
    assert stages == {0: ("init", True, False), 1: ("stalled", True, False)}
    assert outcome.elapsed_s < HANG_TIMEOUT + 60, outcome.elapsed_s

    (found,) = evaluate([REGISTRY["bench.allreduce"]], Facts(probe=facts), Policy())
    assert found.status is Status.FAIL and "hung: rank 0, 1 did not finish within 8 s" in found.summary
    assert "never joined" in found.summary and found.fix


WATCHER = r"""
import json, os, subprocess, sys, time
started = time.monotonic()
proc = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL)
elapsed = time.monotonic() - started
time.sleep(0.5)
others = []
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                others.append(handle.read().replace(b"\0", b" ")[:80].decode())
        except OSError:
            pass
lines = [line for line in proc.stdout.decode().splitlines() if line.strip()]
print(json.dumps({"elapsed": elapsed, "others": others, "lines": len(lines),
                  "allreduce": json.loads(lines[-1])["bench"]["allreduce"]}))
"""


def test_no_worker_outlives_the_probe_inside_the_container():
    """In the container, the probe runs under a watcher (PID 1) that lists every process left once the probe
    has exited: none, after a hang that killed both ranks; and the probe's stdout is its one document."""
    client = _docker()
    name = f"mldoctor-allreduce-test-{time.monotonic_ns()}"
    container = client.containers.create(
        TORCH_IMAGE,
        entrypoint=["python3", "-c", WATCHER],
        command=[launch.probe_source(), "--duration", "0.5", "--allreduce-timeout", "6", "--allreduce-stall-rank", "1"],
        name=name,
        labels={LABEL: "1"},
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=launch.PIDS_LIMIT,
    )
    try:
        container.start()
        assert container.wait(timeout=120)["StatusCode"] == 0, container.logs(stderr=True)[-2000:]
        seen = json.loads(container.logs(stdout=True, stderr=False).decode().strip().splitlines()[-1])
    finally:
        container.remove(force=True)
    assert seen["others"] == [], seen["others"]
    assert seen["lines"] == 1  # one JSON document, nothing from the workers
    assert seen["allreduce"]["hung"] and 6 <= seen["allreduce"]["elapsed_s"] < 11
    assert seen["elapsed"] < 60
