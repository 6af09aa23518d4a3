"""Every output format parsed back by a real consumer: junitparser, prometheus_client's parser, GitHub's rules."""

from __future__ import annotations

import json

import pytest
from factories import down, facts
from junitparser import Error, Failure, JUnitXml, Skipped
from prometheus_client.parser import text_string_to_metric_families

from mldoctor.model import CheckResult, Status
from mldoctor.output import RenderOptions, github, junit, markdown, prometheus
from mldoctor.output import json as json_output
from mldoctor.policy import Policy
from mldoctor.runner import build_report, select


@pytest.fixture
def report():
    """A daemon that is down, plus one WARN, one ERROR and awkward characters in a finding."""
    rep = build_report(select(["docker", "host"]), facts(docker=down("missing_socket")), Policy())
    rep.results.append(
        CheckResult(
            id="host.extra",
            title="Extra",
            area="host",
            status=Status.WARN,
            summary='50% full, "quoted" | piped: a,b',
            fix="line one\nline two",
            details=["<tag> & more"],
        )
    )
    rep.results.append(
        CheckResult(id="host.broken", title="Broken", area="host", status=Status.ERROR, summary="the check crashed")
    )
    return rep


def statuses(report):
    return {r.id: r.status for r in report.results}


class TestJUnit:
    def parse(self, text, tmp_path):
        path = tmp_path / "r.xml"
        path.write_text(text)
        return JUnitXml.fromfile(str(path))

    def test_one_testcase_per_check_with_the_right_outcome(self, report, tmp_path):
        xml = self.parse(junit.render(report), tmp_path)
        cases = {case.name: case for suite in xml for case in suite}
        assert set(cases) == {r.id for r in report.results}
        expected = statuses(report)
        for name, case in cases.items():
            kinds = {type(r) for r in case.result}
            want = {Status.FAIL: {Failure}, Status.ERROR: {Error}, Status.SKIP: {Skipped}}.get(expected[name], set())
            assert kinds == want, name
        assert cases["docker.daemon"].classname == "mldoctor.docker"
        assert "fix: sudo systemctl enable --now docker" in cases["docker.daemon"].result[0].text
        assert "<tag> & more" in cases["host.extra"].system_out

    def test_counts_add_up(self, report, tmp_path):
        xml = self.parse(junit.render(report), tmp_path)
        counts = report.counts()
        assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (
            len(report.results),
            counts[Status.FAIL],
            counts[Status.ERROR],
            counts[Status.SKIP],
        )

    def test_strict_makes_warnings_failures(self, report, tmp_path):
        xml = self.parse(junit.render(report, RenderOptions(strict=True)), tmp_path)
        case = next(c for s in xml for c in s if c.name == "host.extra")
        assert isinstance(case.result[0], Failure)


class TestGitHub:
    def test_escaping(self):
        assert github.escape_data("50%\r\nx") == "50%25%0D%0Ax"
        assert github.escape_property("a:b,c%") == "a%3Ab%2Cc%25"

    def test_annotations(self, report):
        lines = github.render(report).splitlines()
        assert lines[0].startswith("::error title=mldoctor docker.daemon::")
        assert "%0Afix: sudo systemctl enable --now docker" in lines[0]
        warning = next(line for line in lines if "host.extra" in line)
        assert warning == (
            '::warning title=mldoctor host.extra::50%25 full, "quoted" | piped: a,b%0Afix: line one%0Aline two'
        )
        assert all("\n" not in line for line in lines)

    def test_limits_per_step(self, report):
        report.results += [
            CheckResult(id=f"host.w{i}", title="w", area="host", status=Status.WARN, summary="w", fix="f")
            for i in range(15)
        ]
        lines = github.render(report).splitlines()
        assert sum(line.startswith("::warning") for line in lines) == 10
        assert lines[-1].startswith("::notice title=mldoctor::")


class TestMarkdown:
    def test_table_rows_survive_pipes_and_newlines(self, report):
        text = markdown.render(report)
        row = next(line for line in text.splitlines() if "`host.extra`" in line)
        assert row.count(" | ") == 3 and "\\|" in row and "<code>line one</code><br><code>line two</code>" in row
        assert "### Docker" in text and "❌" in text


class TestPrometheus:
    def test_parses_and_one_hot(self, report):
        families = {f.name: f for f in text_string_to_metric_families(prometheus.render(report))}
        samples = families["mldoctor_check_status"].samples
        per_check = {}
        for sample in samples:
            per_check.setdefault(sample.labels["check"], {})[sample.labels["status"]] = sample.value
        for result in report.results:
            assert per_check[result.id] == {s.value.lower(): float(s is result.status) for s in Status}
        assert families["mldoctor_last_run_timestamp_seconds"].samples[0].value > 1.7e9
        totals = {s.labels["status"]: s.value for s in families["mldoctor_checks"].samples}
        assert totals["fail"] == report.counts()[Status.FAIL]


def test_json_has_summary_and_stable_ids(report):
    data = json.loads(json_output.render(report))
    assert data["schema_version"] == 1
    assert data["summary"]["ERROR"] == 1
    assert [r["id"] for r in data["results"]] == [r.id for r in report.results]


@pytest.mark.parametrize("width", [60, 80, 100])
def test_a_fix_command_is_never_wrapped(width):
    """A command cut over two lines cannot be pasted; prose may wrap, commands overflow instead."""
    from mldoctor.output import table

    fix = "sudo apt-get install -y docker-compose-plugin   # from Docker's package repository (" + "x" * 40 + ")"
    result = CheckResult("docker.compose", "Docker Compose", "docker", Status.WARN, "no compose", fix=fix)
    report = build_report([], facts(), Policy())
    report.results = [result]
    assert any(line.endswith(fix) for line in table.render(report, RenderOptions(width=width)).splitlines())
