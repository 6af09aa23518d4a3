"""`mldoctor fleet run`: the srun command line, collecting through a stand-in srun (the real one is in
tests/integration/test_fleet_slurm.py), the deadline, and bad usage.

The stand-in srun runs the real node task (`python -m mldoctor fleet task -- ...`, which runs the real `mldoctor
check` on this host) once per node with SLURMD_NODENAME set, concurrently, its tasks' stdout merged as srun merges
them; so everything but Slurm's own transport is the real thing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mldoctor.fleet.slurm import srun_command

REPO = Path(__file__).parents[2]
CHECK = "--no-probe --skip docker --config {policies}/{{node}}.toml"

FAKE_SRUN = """#!/bin/bash
# stand-in for srun: drop srun's options, run the command once per node in parallel
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
echo "$*" > "$FAKE_DIR/command"
for node in node1 node2 node3; do
  if [ "$node" = "${FAKE_HANG:-}" ]; then
    (sleep 300 & echo $! > "$FAKE_DIR/hung.pid"; wait) &
  else
    SLURMD_NODENAME=$node SLURM_STEP_NODELIST='node[1-3]' "$@" &
  fi
done
wait
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    policies = tmp_path / "policies"
    policies.mkdir()
    for node in ("node1", "node3"):
        (policies / f"{node}.toml").write_text("")
    (policies / "node2.toml").write_text("require_gpus = 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return tmp_path


def fleet_run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mldoctor", "fleet", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_the_srun_command_line():
    command = srun_command(["/opt/py/bin/python", "-m", "mldoctor"], ["-N3", "-p", "debug"], ["--no-probe"], 100)
    assert command == [
        "srun", "--ntasks-per-node=1", "--kill-on-bad-exit=0", "--time=3", "-N3", "-p", "debug",
        "/opt/py/bin/python", "-m", "mldoctor", "fleet", "task", "--", "--no-probe",
    ]  # fmt: skip
    assert "--time=3" not in srun_command(["m"], ["-t", "10"], [], 100)
    assert "--time=3" not in srun_command(["m"], ["--time=10"], [], 100)


def test_three_nodes_through_srun_one_failing(fake_slurm):
    outcome = fleet_run("--slurm", "--format", "json", "--check-args", CHECK.format(policies=fake_slurm / "policies"))
    assert outcome.returncode == 1, outcome.stderr
    data = json.loads(outcome.stdout)
    states = {n["node"]: n["state"] for n in data["nodes"]}
    assert states["node2"] == "fail"
    assert states["node1"] != "fail" and states["node3"] != "fail"
    [drain] = data["drain"]
    assert drain["node"] == "node2" and drain["check"] == "nvidia.gpu"
    assert drain["commands"][0].startswith('scontrol update nodename=node2 state=drain reason="mldoctor: nvidia.gpu: ')
    assert "3 node(s) started, 3 reported" in outcome.stderr
    # the nodes ran this interpreter's mldoctor, and {node} reached them unexpanded (each node fills it in)
    ran = (fake_slurm / "command").read_text()
    assert ran.startswith(f"{sys.executable} -m mldoctor fleet task -- --no-probe")
    assert "{node}.toml" in ran


def test_a_node_silent_past_the_deadline_is_no_report_and_srun_is_stopped(fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_HANG", "node3")
    began = time.monotonic()
    outcome = fleet_run("--slurm", "--deadline", "8", "--format", "json", "--check-args", "--no-probe --skip docker")
    assert time.monotonic() - began < 60
    data = json.loads(outcome.stdout)
    assert data["missing"] == ["node3"]  # known from the other nodes' SLURM_STEP_NODELIST
    assert sorted(n["node"] for n in data["nodes"]) == ["node1", "node2"]
    assert outcome.returncode == 3
    assert "deadline of 8 s reached; stopped srun. No report from: node3" in outcome.stderr
    hung = int((fake_slurm / "hung.pid").read_text())
    for _ in range(50):
        if not Path(f"/proc/{hung}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{hung}").exists(), "the engine's process group outlived the deadline"


def test_no_srun_here_is_one_line_and_exit_3(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    outcome = subprocess.run(
        [sys.executable, "-m", "mldoctor", "fleet", "run", "--slurm"], capture_output=True, text=True, cwd=REPO
    )
    assert outcome.returncode == 3
    assert outcome.stderr.strip() == "mldoctor: fleet run: cannot run srun: No such file or directory"


def test_srun_failing_before_any_node_says_what_srun_said(tmp_path, monkeypatch):
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\necho 'srun: error: invalid partition specified: nope' >&2\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    outcome = fleet_run("--slurm", "--", "-p", "nope")
    assert outcome.returncode == 3
    assert "no node reported. srun said: srun: error: invalid partition specified: nope" in outcome.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say which engine reaches the nodes: --slurm or --ray"),
        (["--slurm", "-N3"], "No such option '-N'"),
        (["--ray", "--", "-N3"], "options after -- are srun's"),
        (["--slurm", "--deadline", "0"], "--deadline"),
        (["--slurm", "--check-args", "--config 'unterminated"], "No closing quotation"),
        (["--slurm", "--mldoctor", ""], "give a command"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, message):
    outcome = fleet_run(*args, timeout=30)
    assert outcome.returncode == 2
    assert message in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_ray_missing_names_the_install_command():
    """ray made unimportable (as where the extra is not installed), whether or not it is installed here."""
    code = "import sys; sys.modules['ray'] = None; from mldoctor.cli import main; main()"
    outcome = subprocess.run(
        [sys.executable, "-c", code, "fleet", "run", "--ray"], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert outcome.returncode == 3
    assert outcome.stderr.strip() == (
        "mldoctor: fleet run: --ray needs ray, which is not installed: python3 -m pip install 'mldoctor[ray]'"
    )


def test_the_node_task_tags_the_report_with_the_scheduler_node_name(tmp_path):
    """Two Slurm nodes on one host both report host "vm": the task adds the scheduler's node name."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURMD_NODENAME": "node7", "SLURM_STEP_NODELIST": "node[7-8]"}
    command = [sys.executable, "-m", "mldoctor", "fleet", "task", "--", "--no-probe", "--skip", "docker"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "@mldoctor-fleet node7 start node[7-8]"
    assert all(line.startswith("@mldoctor-fleet node7 ") for line in lines)
    from mldoctor.fleet.frames import Assembler

    assembler = Assembler("t")
    [document] = [d for line in lines for d in assembler.feed(line)]
    assert document.data["node"] == "node7"
    assert document.data["schema_version"] >= 1


def test_a_check_that_prints_no_report_becomes_an_error_on_that_node(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURMD_NODENAME": "node9"}
    command = [sys.executable, "-m", "mldoctor", "fleet", "task", "--", "--config", str(tmp_path / "absent.toml")]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    from mldoctor.fleet.frames import Assembler

    assembler = Assembler("t")
    [document] = [d for line in out.splitlines() for d in assembler.feed(line)]
    assert document.error.startswith("on the node: mldoctor check exited 2 without a report")
