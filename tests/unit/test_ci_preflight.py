"""CI preflight as a CI job meets it: policy file, flag overrides, artifacts, GitHub, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from factories import down, facts, host
from helpers import call
from junitparser import JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from mldoctor.facts.host import CpuFacts
from mldoctor.output import json as json_output
from mldoctor.policy import Policy
from mldoctor.runner import build_report, select


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A project directory of its own, so no policy file from elsewhere is found."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path


def saved(path, **facts_changes):
    report = build_report(select(["docker", "host"]), facts(**facts_changes), Policy())
    path.write_text(json_output.render(report))
    return str(path)


def test_policy_file_then_flags(capsys, workdir):
    (workdir / "mldoctor.toml").write_text(
        "require_gpus = 8\ndisk_fail_gib = 50\ndisk_warn_gib = 60\n[probe]\nduration = 3\n"
    )
    code, out, _ = call(capsys, "config", "show", "--format", "json")
    settings = json.loads(out)["settings"]
    assert code == 0
    assert settings["require_gpus"] == {"value": 8, "source": str(workdir / "mldoctor.toml")}
    assert settings["probe.duration"]["value"] == 3.0
    assert settings["timeout"] == {"value": 5.0, "source": "default"}


def test_flag_beats_file_and_saved_policy_is_reused(capsys, workdir):
    (workdir / "mldoctor.toml").write_text("disk_fail_gib = 100000\ndisk_warn_gib = 100000\n")
    path = saved(workdir / "r.json")
    code, out, _ = call(capsys, "check", "--facts", path, "--format", "json", "--only", "host.disk")
    assert code == 0, "a re-diagnosis judges by the report's own policy, not this directory's file"
    code, out, _ = call(
        capsys,
        "check",
        "--facts",
        path,
        "--format",
        "json",
        "--only",
        "host.disk",
        "--disk-fail-gib",
        "100000",
        "--disk-warn-gib",
        "100000",
    )
    assert code == 1 and json.loads(out)["results"][0]["status"] == "FAIL"


def test_file_thresholds_apply_to_a_live_run(capsys, workdir):
    (workdir / "mldoctor.toml").write_text("disk_fail_gib = 100000\ndisk_warn_gib = 100000\n")
    code, out, _ = call(capsys, "check", "--only", "host.disk", "--format", "json")
    assert code == 1
    assert json.loads(out)["policy"]["disk_fail_gib"] == 100000.0


def test_bad_file_stops_before_anything_runs(capsys, workdir):
    (workdir / "mldoctor.toml").write_text('strict = "yes"\n')
    code, out, err = call(capsys, "check", "--only", "host")
    assert code == 2 and out == ""
    assert err.strip() == (
        f'mldoctor: error: {workdir / "mldoctor.toml"}: strict = "yes" is not allowed: '
        "use true or false (see `mldoctor check --help`)"
    )


def test_strict_from_file_and_exit_zero(capsys, workdir):
    path = saved(workdir / "r.json", host=host(cpu=CpuFacts(logical=2, usable=2)))
    assert call(capsys, "check", "--facts", path)[0] == 0
    (workdir / "mldoctor.toml").write_text("strict = true\n")
    assert call(capsys, "check", "--facts", path)[0] == 1
    assert call(capsys, "check", "--facts", path, "--exit-zero")[0] == 0


def test_every_artifact_in_one_run(capsys, workdir):
    path = saved(workdir / "r.json", docker=down("missing_socket"))
    out_dir = workdir / "out"
    out_dir.mkdir()
    code, _, _ = call(
        capsys,
        "check",
        "--facts",
        path,
        "--junit",
        str(out_dir / "r.xml"),
        "--prometheus",
        str(out_dir / "m.prom"),
        "--markdown",
        str(out_dir / "r.md"),
        "--json",
        str(out_dir / "r.json"),
    )
    assert code == 1
    assert sorted(os.listdir(out_dir)) == ["m.prom", "r.json", "r.md", "r.xml"]
    xml = JUnitXml.fromfile(str(out_dir / "r.xml"))
    assert xml.failures >= 1
    families = {f.name for f in text_string_to_metric_families((out_dir / "m.prom").read_text())}
    assert "mldoctor_check_status" in families
    assert "`docker.daemon`" in (out_dir / "r.md").read_text()
    assert json.loads((out_dir / "r.json").read_text())["summary"]["FAIL"] >= 1


def test_unwritable_artifact_path_is_refused_first(capsys, workdir):
    code, _, err = call(capsys, "check", "--only", "host", "--junit", "/nonexistent/dir/r.xml")
    assert code == 2 and "--junit" in err and "does not exist" in err


def test_github_actions(capsys, workdir, monkeypatch):
    summary = workdir / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    path = saved(workdir / "r.json", docker=down("missing_socket"))
    code, out, _ = call(capsys, "check", "--facts", path)
    assert code == 1
    assert "::error title=mldoctor docker.daemon::" in out
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "## mldoctor" in text
    code, out, err = call(capsys, "check", "--facts", path, "--format", "json")
    json.loads(out)  # annotations must not corrupt JSON on stdout
    assert "::error title=mldoctor docker.daemon::" in err
    _, out, _ = call(capsys, "check", "--facts", path, "--no-github")
    assert "::error" not in out


def test_ci_mode_is_plain_with_progress_lines(workdir):
    env = {**os.environ, "FORCE_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", "check", "--only", "host", "--ci"],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        check=False,
    )
    assert "\x1b[" not in proc.stdout and "host.disk" in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("mldoctor: ") and "checking host" in lines[0]
    assert lines[-1].endswith("checks")
