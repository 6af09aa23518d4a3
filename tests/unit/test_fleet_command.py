"""`mldoctor fleet` as a command: inputs (folders, stdin), outputs, expected nodes, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_fleet import driver_failed, node_report

from mldoctor.fleet.command import fleet


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(fleet, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def sweep(tmp_path):
    """A folder as the documented Slurm sweep writes it: DIR/$SLURMD_NODENAME.json, no node field yet."""
    folder = tmp_path / "sweep"
    folder.mkdir()
    for node in ("node1", "node2"):
        (folder / f"{node}.json").write_text(json.dumps(node_report(None, host="vm"), indent=2))
    failing = node_report(None, host="vm", results=driver_failed())
    (folder / "node3.json").write_text(json.dumps(failing, indent=2))
    return folder


def test_a_folder_from_the_slurm_sweep(sweep):
    outcome = run(str(sweep))
    assert outcome.exit_code == 1
    assert 'scontrol update nodename=node3 state=drain reason="mldoctor: nvidia.driver: driver 470.82' in outcome.output
    assert "node1" in outcome.output and "node2" in outcome.output


def test_expected_nodes_from_options_and_a_file(sweep, tmp_path):
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("node1\nnode2\n# spare\nnode9\n")
    outcome = run(str(sweep), "--expect", "node1,node3", "--expect", "node8", "--nodes-file", str(nodes))
    assert "No report, hung or unreachable (2; not drained):\n  node8 node9" in outcome.output


def test_reports_as_json_lines_on_stdin():
    lines = "\n".join(json.dumps(node_report(f"n{i}")) for i in range(3))
    outcome = run("-", "--format", "json", input=lines + "\n")
    data = json.loads(outcome.output)
    assert [n["node"] for n in data["nodes"]] == ["n0", "n1", "n2"]
    assert outcome.exit_code == 0


def test_output_to_a_file(sweep, tmp_path):
    target = tmp_path / "fleet.html"
    outcome = run(str(sweep), "--format", "html", "-o", str(target))
    assert outcome.exit_code == 1
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert outcome.stdout == ""


def test_a_missing_node_alone_exits_3(sweep):
    outcome = run(str(sweep / "node1.json"), "--expect", "node1,node2")
    assert outcome.exit_code == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/path"], "does not exist"),
        (["EMPTY"], "no mldoctor report found"),
        (["EMPTY", "--straggler-ratio", "1.5"], "--straggler-ratio"),
        (["EMPTY", "--min-driver-version", "latest"], "a version such as"),
        (["EMPTY", "-o", "/no/such/dir/out.txt"], "does not exist"),
        (["EMPTY", "--format", "yaml"], "'yaml' is not one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    outcome = run(*[str(empty) if a == "EMPTY" else a for a in args])
    assert outcome.exit_code == 2
    assert message in outcome.output
    assert "Traceback" not in outcome.output


REAL = Path(__file__).parents[1] / "data" / "fleet" / "debian12-no-gpu.json"
"""`mldoctor check --no-probe --format json` as recorded on this project's machine kind (Debian 12, no GPU)."""


def test_two_slurm_nodes_on_one_host_are_told_apart_by_their_file_names(tmp_path):
    for node in ("node1", "node2"):
        (tmp_path / f"{node}.json").write_text(REAL.read_text())
    data = json.loads(run(str(tmp_path), "--format", "json").output)
    assert [(n["node"], n["host"]) for n in data["nodes"]] == [("node1", "vm"), ("node2", "vm")]
    assert data["nodes"][0]["state"] == "warn"
    assert data["drift"] == []
    assert data["exit_code"] == 0


def test_the_same_reports_on_stdin_have_only_the_host_name_to_go_by():
    outcome = run("-", "--format", "json", input=REAL.read_text() * 2)
    data = json.loads(outcome.output)
    assert [n["node"] for n in data["nodes"]] == ["vm"]
    assert data["duplicates"] == ["vm"]


def test_the_policy_file_gives_the_fleet_its_ratios_and_floors_and_a_flag_wins(sweep, tmp_path, monkeypatch):
    """One settings table: [fleet] and the version floors from the file, a typed flag over the file."""
    policy = tmp_path / "policy.toml"
    policy.write_text('min_driver_version = "999.1"\n\n[fleet]\nstraggler_ratio = 0.75\nallreduce-slow-ratio = 0.6\n')
    monkeypatch.chdir(tmp_path)
    data = json.loads(run(str(sweep), "--config", str(policy), "--format", "json").output)
    assert data["policy"] == {"straggler_ratio": 0.75, "min_driver_version": "999.1", "min_cuda_version": "",
                              "allreduce_slow_ratio": 0.6, "allreduce_min_busbw": 0.0}  # fmt: skip
    assert {n["node"]: n["state"] for n in data["nodes"]}["node1"] == "fail"  # below the file's floor
    flagged = json.loads(
        run(str(sweep), "--config", str(policy), "--straggler-ratio", "0.95", "--format", "json").output
    )
    assert flagged["policy"]["straggler_ratio"] == 0.95 and flagged["policy"]["min_driver_version"] == "999.1"


def test_the_nearest_policy_file_is_found_as_mldoctor_check_finds_it(sweep, tmp_path, monkeypatch):
    (tmp_path / "mldoctor.toml").write_text("[fleet]\nallreduce_min_busbw = 40\n")
    monkeypatch.chdir(tmp_path)
    data = json.loads(run(str(sweep), "--format", "json").output)
    assert data["policy"]["allreduce_min_busbw"] == 40.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fleet]\nstraggler_ratio = 1.5\n", "fleet.straggler_ratio = 1.5 is not allowed: use a number > 0 and <= 1"),
        ("[fleet]\nslow_ratio = 0.5\n", "unknown key 'fleet.slow_ratio'; did you mean 'fleet.allreduce_slow_ratio'?"),
        ('[fleet]\nallreduce_min_busbw = "fast"\n', 'fleet.allreduce_min_busbw = "fast" is not allowed: use a number'),
    ],
)
def test_a_bad_fleet_key_is_one_line_and_exit_2(sweep, tmp_path, text, message):
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    outcome = subprocess.run([sys.executable, "-m", "mldoctor", "fleet", str(sweep), "--config", str(policy)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert outcome.returncode == 2 and message in outcome.stderr and "Traceback" not in outcome.stderr
    assert outcome.stderr.count("\n") == 1 and outcome.stdout == ""
