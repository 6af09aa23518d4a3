"""The command line as a user meets it: exit codes, one-line errors, outputs, re-diagnosis."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from factories import down, facts, host
from helpers import call

from mldoctor.facts.host import CpuFacts
from mldoctor.output import json as json_output
from mldoctor.policy import Policy
from mldoctor.runner import build_report, select


def run(*argv: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def saved_report(tmp_path):
    """A report of a machine whose daemon is down, saved the way `check --format json -o` saves it."""
    report = build_report(select(["docker", "host"]), facts(docker=down("missing_socket")), Policy())
    path = tmp_path / "report.json"
    path.write_text(json_output.render(report))
    return path, report


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from mldoctor.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('docker', 'pynvml', 'torch', 'psutil', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_version_and_module_entry_point():
    code, out, _ = run("--version")
    assert code == 0 and out.strip() == "mldoctor, version 0.1.0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--format", "xml"], "'xml' is not one of"),
        (["check", "--timeout", "-1"], "--timeout"),
        (["check", "--port", "70000"], "70000"),
        (["check", "--only", "dokcer"], "no check matches 'dokcer'"),
        (["check", "--frobnicate"], "No such option"),
        (["check", "-o", "/nonexistent/dir/report.json"], "does not exist"),
        (["check", "--facts", "/nonexistent.json"], "does not exist"),
        (["check", "--disk-fail-gib", "50", "--disk-warn-gib", "10"], "warn must be >= fail"),
        (["chekc"], "No such command"),
        (["fix", "probe.shm", "--timeout", "nan"], "'nan' is not a number of seconds"),  # FloatRange lets nan by
        (["fix", "probe.shm", "--timeout", "inf"], "--timeout"),
        (["why", "x", "--timeout", "nan"], "'nan' is not a number of seconds"),
        (["image", "check", "x", "--timeout", "nan"], "'nan' is not a number of seconds"),
        (["fleet", "run", "--slurm", "--deadline", "nan"], "'nan' is not a number of seconds"),
        (["fleet", "task", "--timeout", "inf"], "--timeout"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = call(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mldoctor: error: ") and message in err
    assert "Traceback" not in err


def test_facts_rediagnosis_gives_the_same_statuses(capsys, saved_report):
    path, report = saved_report
    code, out, _ = call(capsys, "check", "--facts", str(path), "--format", "json")
    assert code == 1
    again = json.loads(out)
    judged = [(r["id"], r["status"]) for r in again["results"] if r["area"] != "report"]  # + report.integrity
    assert judged == [(r.id, r.status.value) for r in report.results]
    assert again["summary"]["FAIL"] >= 1


def test_facts_rediagnosis_table_names_first_broken_link(capsys, saved_report):
    path, _ = saved_report
    code, out, _ = call(capsys, "check", "--facts", str(path))
    assert code == 1
    assert "✗  docker.daemon" in out or "x  docker.daemon" in out
    assert "fix: sudo systemctl enable --now docker" in out
    assert "skipped: docker.daemon failed" in out


def test_facts_from_a_newer_schema_is_refused(capsys, saved_report, tmp_path):
    path, _ = saved_report
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(data))
    code, _, err = call(capsys, "check", "--facts", str(newer))
    assert code == 2 and "schema 99" in err and "upgrade mldoctor" in err


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"schema_version": 1, "facts": {"host": 5}}'])
def test_facts_file_that_is_not_a_report(capsys, tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, err = call(capsys, "check", "--facts", str(bad))
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_json_output_file_is_written_atomically(capsys, saved_report, tmp_path):
    path, _ = saved_report
    target = tmp_path / "out" / "r.json"
    target.parent.mkdir()
    code, out, _ = call(capsys, "check", "--facts", str(path), "--format", "json", "-o", str(target))
    assert code == 1 and out == ""
    assert json.loads(target.read_text())["schema_version"] == 1
    assert os.listdir(target.parent) == ["r.json"]


def test_table_to_file_is_plain_text(capsys, saved_report, tmp_path):
    path, _ = saved_report
    target = tmp_path / "r.txt"
    call(capsys, "check", "--facts", str(path), "-o", str(target), "-v")
    text = target.read_text()
    assert "\x1b[" not in text
    assert all(line == line.rstrip() for line in text.splitlines())
    assert "• error: boom" in text


def test_strict_turns_warnings_into_failures(capsys, tmp_path):
    report = build_report(select(["docker", "host"]), facts(host=host(cpu=CpuFacts(logical=2, usable=2))), Policy())
    path = tmp_path / "warn.json"
    path.write_text(json_output.render(report))
    assert call(capsys, "check", "--facts", str(path))[0] == 0
    assert call(capsys, "check", "--facts", str(path), "--strict")[0] == 1


def test_checks_lists_ids(capsys):
    code, out, _ = call(capsys, "checks")
    assert code == 0 and "docker.daemon" in out and "host.port" in out


def test_only_host_checks_on_this_machine(capsys):
    code, out, _ = call(capsys, "check", "--only", "host", "--format", "json")
    data = json.loads(out)
    assert {r["id"].split(".")[0] for r in data["results"]} == {"host"}
    assert data["facts"]["docker"] is None
    assert code in (0, 1)


@pytest.mark.parametrize(
    ("env", "coloured"), [({"FORCE_COLOR": "1"}, True), ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False)]
)
def test_colour_only_when_wanted(saved_report, env, coloured):
    path, _ = saved_report
    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", "check", "--facts", str(path)],
        capture_output=True,
        text=True,
        env={**clean, **env},
        check=False,
    )
    has_colour = re.search(r"\x1b\[[0-9;]*3[0-7](;[0-9]+)*m", proc.stdout) is not None
    assert has_colour is coloured, proc.stdout[:300]


def test_pipes_get_no_escape_codes(saved_report):
    path, _ = saved_report
    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    out = subprocess.run(
        [sys.executable, "-m", "mldoctor", "check", "--facts", str(path)],
        capture_output=True,
        text=True,
        env=clean,
        check=False,
    ).stdout
    assert "\x1b[" not in out and "docker.daemon" in out


def test_rediagnosis_judges_only_what_the_report_has_facts_for(capsys, saved_report):
    path, _ = saved_report
    _, out, _ = call(capsys, "check", "--facts", str(path), "--format", "json")
    assert {r["id"].split(".")[0] for r in json.loads(out)["results"]} == {"report", "docker", "host"}
    _, out, _ = call(capsys, "check", "--facts", str(path), "--format", "json", "--only", "nvidia.gpu")
    (row,) = json.loads(out)["results"]
    assert row["status"] == "SKIP" and row["summary"] == "no nvidia facts in this report"


def test_without_the_docker_package_docker_fails_cleanly():
    code = (
        "import sys\n"
        "sys.modules['docker'] = None  # what a missing package looks like to `import docker`\n"
        "from mldoctor.cli import main\n"
        "main(['check', '--only', 'docker.daemon', '--format', 'json'])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    (row,) = json.loads(proc.stdout)["results"]
    assert proc.returncode == 1 and row["status"] == "FAIL"
    assert row["fix"].startswith("python3 -m pip install 'docker>=7.1'")


def test_a_host_only_check_loads_only_the_host_modules():
    code = (
        "import sys\n"
        "from mldoctor.cli import main\n"
        "try:\n    main(['check', '--only', 'host', '--format', 'json'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('docker', 'rich.console', 'mldoctor.rules.nvidia', 'mldoctor.rules.probe', 'mldoctor.rules.bench',\n"
        "         'mldoctor.facts.nvidia', 'mldoctor.facts.probe', 'mldoctor.data.gpus')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr


def test_no_probe_loads_neither_the_probe_nor_the_benchmark_modules():
    """--no-probe skips whole areas: their rule and fact modules are not even imported (a fifth of the run)."""
    code = (
        "import sys\n"
        "from mldoctor.cli import main\n"
        "try:\n    main(['check', '--no-probe', '--format', 'json'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('mldoctor.rules.probe', 'mldoctor.rules.bench', 'mldoctor.facts.probe', 'mldoctor.probe.launch',\n"
        "         'mldoctor.data.gpus', 'statistics')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
