"""What runs on each node of a fleet run: `mldoctor check --format json` there, its report tagged with the
scheduler's node name and printed as `@mldoctor-fleet` lines (see `frames`) on stdout.

The node name is the scheduler's, because the host name does not tell nodes apart (two Slurm nodes on one machine
both report `"host": "vm"`). Until `mldoctor check` records it itself (as `facts.host.node_name`), the task puts it
in the report's top-level `node`, which the aggregator reads first. The check runs in a child process of the same
interpreter, so its stdout (the document) is captured whole and nothing it prints can break the framing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from mldoctor.fleet import frames
from mldoctor.fleet.document import MAX_DOCUMENT
from mldoctor.fleet.text import bounded

NODE_VARIABLES = ("SLURMD_NODENAME", "NODE_NAME")
"""Slurm's node name, then Kubernetes' (the manifests set NODE_NAME from the downward API, spec.nodeName)."""
NODELIST_VARIABLES = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST")


def node_name(explicit: str | None = None) -> str:
    """The scheduler's name for this node: an explicit one (Ray's node id), SLURMD_NODENAME, NODE_NAME, else the
    short host name."""
    for value in (explicit, *(os.environ.get(v) for v in NODE_VARIABLES), socket.gethostname().split(".")[0]):
        if value and frames.valid_node(value):
            return value
    return "unknown"


def check_command(check_args: Sequence[str], node: str) -> list[str]:
    """`python -m mldoctor check --format json ARGS`, with `{node}` in an argument replaced by the node's name (a
    per-node policy: `--config /etc/mldoctor/{node}.toml`)."""
    args = [arg.replace("{node}", node) for arg in check_args]
    return [sys.executable, "-m", "mldoctor", "check", "--ci", "--format", "json", *args]


def error_report(node: str, message: str) -> dict[str, Any]:
    """Not a report: the aggregator lists the node as unreadable, with this message."""
    return {"node": node, "error": bounded(message, 500)}


def run_check(check_args: Sequence[str], node: str, timeout: float | None = None) -> tuple[dict[str, Any], int]:
    """The node's report (with `node` set) and the check's exit code; an error report when it produced none."""
    try:
        done = subprocess.run(check_command(check_args, node), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return error_report(node, f"mldoctor check did not finish in {timeout:g} s"), 3
    except OSError as exc:
        return error_report(node, f"cannot run mldoctor check: {exc}"), 3
    code = done.returncode
    if len(done.stdout) > MAX_DOCUMENT:
        return error_report(node, f"mldoctor check printed more than {MAX_DOCUMENT >> 20} MiB"), code
    try:
        report = json.loads(done.stdout)
    except ValueError:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return error_report(node, f"mldoctor check exited {code} without a report: {' / '.join(tail)}"), code
    if not isinstance(report, dict):
        return error_report(node, f"mldoctor check printed a JSON {type(report).__name__}, not a report"), code
    report["node"] = node
    return report, code


def announce(node: str) -> None:
    """The start line, printed before the check runs: it names the step's nodes, so the launcher knows which
    nodes to wait for even when some never print anything."""
    nodelist = next((os.environ[v] for v in NODELIST_VARIABLES if os.environ.get(v)), "")
    emit([frames.start_line(node, nodelist if " " not in nodelist else "")])


def emit(lines: list[str]) -> None:
    for line in lines:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()  # one write per line: each reaches the engine whole


def main(check_args: Sequence[str], node: str | None = None, timeout: float | None = None) -> int:
    """Run the check on this node and print its report as frames. Exits 0 whatever the check found, so that an
    engine does not cancel the other nodes' tasks: the verdict travels in the report."""
    name = node_name(node)
    announce(name)
    report, _code = run_check(check_args, name, timeout)
    emit(frames.encode(name, report))
    return 0
