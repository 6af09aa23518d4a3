"""`mldoctor fleet run --slurm` and the prolog on a real Slurm cluster: munged, slurmctld and three slurmd on this
host, started by scripts/ci/start-slurm.sh (.ci/run starts it and stops it at the end).

node2 gets a policy it fails (`require_gpus = 1`, chosen by the node's own name through `{node}` in the check
arguments): the fleet verdict names it, its first broken link (nvidia.gpu) and the drain command; then the prolog
really drains it (`sinfo` shows it drained with mldoctor's reason) and the test returns it to service.

`--allreduce` runs the real gloo all-reduce across the three nodes in the CPU probe image
(scripts/ci/build-test-images.sh), one container per node on the host's network.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from provided import TORCH_IMAGE, absent, labelled_containers, require_docker, require_images

REPO = Path(__file__).parents[2]
REMEDY = "bash scripts/ci/start-slurm.sh (then export the SLURM_CONF it prints)"
DEFAULT_CONF = "/tmp/mldoctor-slurm/slurm.conf"
NODES = ["node1", "node2", "node3"]
REASON = "mldoctor: nvidia.gpu: no NVIDIA GPU on this host required: 1"


def require_slurm() -> dict[str, str]:
    """The environment for Slurm's clients, when the private cluster answers with its three nodes."""
    __tracebackhide__ = True
    conf = os.environ.get("SLURM_CONF") or DEFAULT_CONF
    if shutil.which("sinfo") is None or not os.path.exists(conf):
        absent(f"no Slurm cluster here (sinfo, {conf}); provide it: {REMEDY}")
    env = {**os.environ, "SLURM_CONF": conf, "PYTHONPATH": str(REPO)}
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, env=env, timeout=30)
    if nodes.returncode != 0 or sorted(set(nodes.stdout.split())) != NODES:
        absent(
            f"the Slurm cluster at {conf} does not answer with {NODES}: {nodes.stderr.strip()}; provide it: {REMEDY}"
        )
    return env


@pytest.fixture(scope="module")
def slurm() -> dict[str, str]:
    env = require_slurm()
    for node in NODES:  # a node left drained by an earlier run would make this one wait for resources
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], env=env, capture_output=True)
    wait_idle(env)
    return env


def states(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N|%T|%E"], capture_output=True, text=True, env=env, timeout=30, check=True
    ).stdout
    return {n: (s, r) for n, s, r in (line.split("|", 2) for line in out.splitlines())}


def wait_idle(env: dict[str, str], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(state == "idle" for state, _ in states(env).values()):
            return
        time.sleep(0.5)
    pytest.fail(f"Slurm nodes not idle after {timeout:g} s: {states(env)}")


@pytest.fixture
def policies(tmp_path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    for node in NODES:
        (folder / f"{node}.toml").write_text("require_gpus = 1\n" if node == "node2" else "")
    return folder


def test_fleet_run_across_three_slurm_nodes_names_the_failing_one(slurm, policies):
    check = f"--no-probe --skip docker --config {policies}/{{node}}.toml"
    command = [sys.executable, "-m", "mldoctor", "fleet", "run", "--slurm", "--deadline", "120", "--format", "json",
               "--check-args", check, "--", "-N3"]  # fmt: skip
    began = time.monotonic()
    outcome = subprocess.run(command, capture_output=True, text=True, env=slurm, cwd=REPO, timeout=180)
    seconds = time.monotonic() - began
    assert outcome.returncode == 1, outcome.stderr
    data = json.loads(outcome.stdout)
    by_node = {n["node"]: n for n in data["nodes"]}
    assert sorted(by_node) == NODES and data["missing"] == []
    assert [n for n, row in by_node.items() if row["state"] == "fail"] == ["node2"]
    assert by_node["node2"]["first_broken_link"]["check"] == "nvidia.gpu"
    [drain] = data["drain"]
    assert drain["commands"][0] == f'scontrol update nodename=node2 state=drain reason="{REASON}"'
    assert "srun: 3 node(s) started, 3 reported" in outcome.stderr
    print(f"fleet run --slurm, 3 nodes: {seconds:.2f} s wall")


def test_a_hung_node_is_no_report_at_the_deadline_and_the_step_is_ended(slurm):
    hang = 'if [ "$SLURMD_NODENAME" = node3 ]; then exec sleep 300; fi; exec "$0" -m mldoctor "$@"'
    mldoctor = shlex.join(["bash", "-c", hang, sys.executable])
    command = [sys.executable, "-m", "mldoctor", "fleet", "run", "--slurm", "--deadline", "10", "--format", "json",
               "--mldoctor", mldoctor, "--check-args", "--no-probe --skip docker", "--", "-N3"]  # fmt: skip
    outcome = subprocess.run(command, capture_output=True, text=True, env=slurm, cwd=REPO, timeout=120)
    data = json.loads(outcome.stdout)
    assert data["missing"] == ["node3"], outcome.stderr
    assert sorted(n["node"] for n in data["nodes"]) == ["node1", "node2"]
    assert outcome.returncode == 3
    assert_no_step_left(slurm)


def test_the_prolog_drains_the_failing_node_with_the_reason(slurm, policies, tmp_path):
    conf = Path(slurm["SLURM_CONF"])
    prolog = conf.parent / "prolog.d" / "50-mldoctor-test.sh"
    mldoctor = shlex.join(["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "mldoctor"])
    check = f"--no-probe --skip docker --config {policies}/{{node}}.toml"
    generate = [sys.executable, "-m", "mldoctor", "fleet", "slurm-prolog", "--mldoctor", mldoctor, "--check-args",
                check, "--report-dir", str(tmp_path / "reports"), "-o", str(prolog)]  # fmt: skip
    subprocess.run(generate, env=slurm, cwd=REPO, check=True, capture_output=True, timeout=60)
    try:
        job = subprocess.run(["srun", "-N3", "true"], capture_output=True, text=True, env=slurm, timeout=120)
        assert job.returncode != 0
        assert "failed on node node2: Job prolog failed" in job.stderr
        now = states(slurm)
        assert now["node2"][0] in ("drained", "draining") and now["node2"][1] == REASON
        assert now["node1"][0] != "drained" and now["node3"][0] != "drained"
        assert json.loads((tmp_path / "reports" / "node1.json").read_text())["results"]
    finally:
        prolog.unlink(missing_ok=True)
        subprocess.run(["scontrol", "update", "nodename=node2", "state=resume"], env=slurm, capture_output=True)
    wait_idle(slurm)
    assert states(slurm)["node2"] == ("idle", "none")


def assert_no_step_left(slurm) -> None:
    """The launcher ended its srun at the deadline: the queue empties within 30 s, and the nodes are idle again."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        queue = subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=slurm, timeout=30).stdout
        if not queue.strip():
            break
        time.sleep(0.5)
    assert not queue.strip(), f"the step outlived the deadline: {queue}"
    wait_idle(slurm)


def allreduce_containers() -> set[str]:
    return labelled_containers("mldoctor.allreduce")


@pytest.fixture
def torch_image(slurm):
    require_images(TORCH_IMAGE)
    before = allreduce_containers()
    yield
    assert allreduce_containers() - before == set(), "an all-reduce container outlived its run"


def fleet_allreduce(env: dict[str, str], *more: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    command = [sys.executable, "-m", "mldoctor", "fleet", "run", "--slurm", "--allreduce", "--allreduce-image",
               TORCH_IMAGE, "--format", "json", "--check-args", "--no-probe --skip docker", *more,
               "--", "-N3"]  # fmt: skip
    began = time.monotonic()
    outcome = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    return outcome, time.monotonic() - began


@pytest.mark.docker
def test_the_gloo_all_reduce_runs_across_the_three_slurm_nodes(slurm, torch_image):
    outcome, seconds = fleet_allreduce(slurm, "--allreduce-deadline", "120")
    assert "Traceback" not in outcome.stderr, outcome.stderr
    data = json.loads(outcome.stdout)
    measured = data["allreduce"]
    assert measured["failed"] == [], measured["failed"]
    assert (measured["backend"], measured["device"], measured["nodes"]) == ("gloo", "cpu", NODES)
    assert measured["whole"]["busbw_gbps"] > 0 and measured["whole"]["ok"]
    pairs = {(p["a"], p["b"]): p["busbw_gbps"] for p in measured["pairs"]}
    assert sorted(pairs) == [("node1", "node2"), ("node1", "node3"), ("node2", "node3")]
    assert all(figure > 0 for figure in pairs.values())
    assert measured["suspects"] == []  # three pairs: at most one is below 0.8x the median
    assert {n["node"]: n["checks"]["fleet.allreduce"] for n in data["nodes"]} == dict.fromkeys(NODES, "PASS")
    assert outcome.returncode == 0, outcome.stderr
    assert "srun (all-reduce): 3 node(s) started, 3 reported" in outcome.stderr
    figures = ", ".join(f"{a}-{b} {v:.3f}" for (a, b), v in pairs.items())
    print(f"fleet run --slurm --allreduce, 3 nodes: whole set busbw {measured['whole']['busbw_gbps']:.3f} GB/s; "
          f"pairs {figures} GB/s; all-reduce step {measured['seconds']:.1f} s, {seconds:.1f} s in all")  # fmt: skip


@pytest.mark.docker
def test_a_rank_that_never_joins_ends_the_all_reduce_at_its_deadline(slurm, torch_image):
    """node3's all-reduce task sleeps instead of starting: the other two wait for it at the rendezvous until their
    deadline, say so, and leave no container; node3 is named as the node with no result."""
    hang = ('case "$*" in *allreduce-task*) [ "$SLURMD_NODENAME" = node3 ] && exec sleep 300;; esac; '
            'exec "$0" -m mldoctor "$@"')  # fmt: skip
    mldoctor = shlex.join(["bash", "-c", hang, sys.executable])
    outcome, seconds = fleet_allreduce(slurm, "--allreduce-deadline", "30", "--mldoctor", mldoctor)
    data = json.loads(outcome.stdout)
    failed = dict(data["allreduce"]["failed"])
    assert failed["node3"] == "no result came (the task hung or never started)", outcome.stderr
    assert sorted(failed) == NODES and all("stage init" in failed[n] for n in ("node1", "node2")), failed
    assert data["allreduce"]["status"] == "ERROR" and outcome.returncode == 3
    assert seconds < 90, f"the run took {seconds:.0f} s with an all-reduce deadline of 30 s"
    assert "deadline of 30 s reached; stopped srun (all-reduce). No report from: node3" in outcome.stderr
    assert_no_step_left(slurm)


@pytest.mark.docker
def test_an_image_missing_on_the_nodes_is_named_on_each_and_never_pulled(slurm):
    require_docker()
    command = [sys.executable, "-m", "mldoctor", "fleet", "run", "--slurm", "--allreduce", "--allreduce-image",
               "mldoctor-test-no-such:image", "--format", "json", "--check-args", "--no-probe --skip docker",
               "--", "-N3"]  # fmt: skip
    outcome = subprocess.run(command, capture_output=True, text=True, env=slurm, cwd=REPO, timeout=120)
    data = json.loads(outcome.stdout)
    failed = dict(data["allreduce"]["failed"])
    assert sorted(failed) == NODES and all("No such image: mldoctor-test-no-such:image" in w for w in failed.values())
    assert outcome.returncode == 3 and "Traceback" not in outcome.stderr
