"""The Slurm prolog / HealthCheckProgram script: it drains on exit 1 with a quote-safe reason and never on 2 or 3.

The generated script is run by bash for real; `scontrol` is a stand-in that records its arguments, and `mldoctor
check` a stand-in that writes a given report and exits with a given code (the real drain on a real slurmd is in
tests/integration/test_fleet_slurm.py). `mldoctor fleet drain-reason` is the real one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_fleet import driver_failed, node_report

from mldoctor.fleet.command import fleet
from mldoctor.fleet.slurm import health_script

REPO = Path(__file__).parents[2]
HOSTILE = 'driver "550" $(touch /tmp/pwned) `id`; rm -rf / & echo \\\n!!'

FAKE_CHECK = """#!/bin/bash
# stand-in for `mldoctor check`: write $FAKE_REPORT to the -o file, exit $FAKE_CODE; anything else is the real one
if [ "$1" = check ]; then
  echo "$*" > "$FAKE_DIR/check-args"
  while [ $# -gt 0 ]; do [ "$1" = -o ] && cp "$FAKE_REPORT" "$2"; shift; done
  exit "$FAKE_CODE"
fi
exec "$FAKE_PYTHON" -m mldoctor "$@"
"""
FAKE_SCONTROL = '#!/bin/bash\nprintf "%s\\n" "$@" > "$FAKE_DIR/scontrol"\n'


@pytest.fixture
def node(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("mldoctor-stand-in", FAKE_CHECK), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "prolog.sh"
    check_args = ["--no-probe", "--config", "/etc/mldoctor/{node}.toml", "--port", "$(reboot)"]
    script.write_text(health_script([str(bin_dir / "mldoctor-stand-in")], check_args, str(tmp_path / "reports")))
    script.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "FAKE_DIR": str(tmp_path),
        "FAKE_PYTHON": sys.executable,
        "FAKE_REPORT": str(tmp_path / "report.json"),
        "SLURMD_NODENAME": "node2",
    }

    def run(code: int, report: dict | None = None) -> subprocess.CompletedProcess:
        (tmp_path / "report.json").write_text(json.dumps(report or node_report("node2")))
        return subprocess.run([str(script)], env={**env, "FAKE_CODE": str(code)}, capture_output=True, text=True)

    return run, tmp_path


def test_a_fail_drains_the_node_with_a_quote_safe_reason(node):
    run, folder = node
    outcome = run(1, node_report(None, results=driver_failed(summary=HOSTILE)))
    assert outcome.returncode == 1
    assert (folder / "scontrol").read_text().splitlines() == [
        "update",
        "nodename=node2",
        "state=drain",
        "reason=mldoctor: nvidia.driver: driver 550 (touch /tmp/pwned) id rm -rf / echo",
    ]
    assert not Path("/tmp/pwned").exists()
    assert json.loads((folder / "reports" / "node2.json").read_text())["results"]


@pytest.mark.parametrize("code", [0, 2, 3])
def test_anything_but_a_fail_never_drains(node, code):
    run, folder = node
    outcome = run(code)
    assert outcome.returncode == 0
    assert not (folder / "scontrol").exists()


def test_node_placeholders_expand_on_the_node_and_nothing_else_does(node):
    run, folder = node
    run(0)
    assert (folder / "check-args").read_text().split() == [
        "check", "--ci", "--format", "json", "-o", str(folder / "reports" / "node2.json"),
        "--no-probe", "--config", "/etc/mldoctor/node2.toml", "--port", "$(reboot)",
    ]  # fmt: skip


def test_the_script_is_valid_bash_and_printed_by_the_command(tmp_path):
    outcome = CliRunner().invoke(fleet, ["slurm-prolog", "--mldoctor", "/opt/venv/bin/mldoctor"])
    assert outcome.exit_code == 0
    assert outcome.output.startswith("#!/bin/bash\n")
    assert '/opt/venv/bin/mldoctor check --ci --format json -o "$report" --no-probe --skip docker' in outcome.output
    script = tmp_path / "p.sh"
    script.write_text(outcome.output)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    target = tmp_path / "prolog.d" / "50-mldoctor.sh"
    target.parent.mkdir()
    assert CliRunner().invoke(fleet, ["slurm-prolog", "-o", str(target)]).exit_code == 0
    assert os.access(target, os.X_OK)


def test_drain_reason_of_a_report(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(node_report(None, results=driver_failed(summary="x" * 500))))
    outcome = CliRunner().invoke(fleet, ["drain-reason", str(path)])
    assert outcome.exit_code == 0
    assert outcome.output.startswith("mldoctor: nvidia.driver: xxx")
    assert len(outcome.output.strip()) == 100
    path.write_text(json.dumps(node_report(None)))
    assert CliRunner().invoke(fleet, ["drain-reason", str(path)]).exit_code == 1
    path.write_text("{not json")
    outcome = CliRunner().invoke(fleet, ["drain-reason", str(path)])
    assert outcome.exit_code == 2 and "not JSON" in outcome.output
