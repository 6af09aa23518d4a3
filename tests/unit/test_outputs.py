"""Every output format parsed back by a real consumer: junitparser, prometheus_client's parser, GitHub's rules."""

from __future__ import annotations

import json

import pytest
from factories import down, facts
from junitparser import Error, Failure, JUnitXml, Skipped
from prometheus_client.parser import text_string_to_metric_families

from mldoctor.model import BenchRow, CheckResult, Status
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

    @staticmethod
    def families_in_one_piece(text):
        """HELP and TYPE once per family, right before its samples, which are all together (the format's rule)."""
        order = []
        for line in text.splitlines():
            name = line.split()[2] if line.startswith("# ") else line.split("{")[0].split()[0]
            if not order or order[-1] != name:
                order.append(name)
        assert len(order) == len(set(order)), order
        assert text.count("# TYPE ") == text.count("# HELP ") == len(order)
        return order

    def test_benchmark_figures_are_gauges_in_base_units(self):
        from test_bundle import gpu_report

        report = gpu_report()
        text = prometheus.render(report)
        order = self.families_in_one_piece(text)
        bench = ["mldoctor_bench_measured", "mldoctor_bench_expected", "mldoctor_bench_peak", "mldoctor_bench_ratio"]
        assert [name for name in order if name.startswith("mldoctor_bench")] == bench
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert {families[name].type for name in bench} == {"gauge"}

        def series(name):
            return {(s.labels["gpu"], s.labels["metric"]): s for s in families[name].samples}

        measured, expected, ratio = (
            series("mldoctor_bench_measured"),
            series("mldoctor_bench_expected"),
            series("mldoctor_bench_ratio"),
        )
        assert len(measured) == len(report.benchmarks) == 8 * 8  # 8 GPUs: 5 dtypes and 3 copy directions
        slow = next(r for r in report.benchmarks if (r.gpu, r.metric) == ("5", "bf16"))
        sample = measured["5", "bf16"]
        assert sample.labels == {
            "host": report.host,
            "gpu": "5",
            "model": "NVIDIA H100 80GB HBM3",
            "metric": "bf16",
            "unit": "flop_per_second",
        }
        assert sample.value == pytest.approx(slow.measured * 1e12, rel=1e-9)
        assert expected["5", "bf16"].value == pytest.approx(slow.expected * 1e12, rel=1e-9)
        assert ratio["5", "bf16"].value == pytest.approx(0.68) and "unit" not in ratio["5", "bf16"].labels
        copy = next(r for r in report.benchmarks if (r.gpu, r.metric) == ("0", "h2d"))
        assert measured["0", "h2d"].labels["unit"] == "bytes_per_second"
        assert measured["0", "h2d"].value == pytest.approx(copy.measured * 1e9, rel=1e-9)

    def test_benchmark_labels_are_escaped_and_unknown_figures_left_out(self, report):
        device = 'GPU "x" \\ y\nz\x1b[31m\x00'
        report.host = 'node"7\\'
        report.benchmarks = [
            BenchRow("cpu", "CPU", "fp32", "GFLOP/s", 812.5, None, None, Status.PASS),
            BenchRow("0", device, "bf16", "TFLOP/s", float("nan"), 790.0, 989.4, Status.FAIL),
        ]
        text = prometheus.render(report)
        self.families_in_one_piece(text)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        (cpu,) = families["mldoctor_bench_measured"].samples  # NaN measured: no sample rather than a NaN
        assert cpu.value == pytest.approx(812.5e9) and cpu.labels["unit"] == "flop_per_second"
        assert cpu.labels["host"] == 'node"7\\'
        (gpu,) = families["mldoctor_bench_expected"].samples  # the CPU has no expected figure
        assert gpu.labels["model"] == 'GPU "x" \\ y\nz\\x00' and gpu.value == pytest.approx(790e12)
        assert "mldoctor_bench_ratio" not in families


def test_json_has_summary_and_stable_ids(report):
    data = json.loads(json_output.render(report))
    assert data["schema_version"] == 1
    assert data["summary"]["ERROR"] == 1
    assert [r["id"] for r in data["results"]] == [r.id for r in report.results]


def test_json_keeps_hostile_text_exactly_and_stays_ascii(report):
    """JSON can hold any text: it is escaped, not altered, and the document is ASCII (a lone surrogate from an odd
    environment byte would otherwise fail to encode when the file is written)."""
    hostile = "\x1b[31mred\x1b[0m \x00 \ud800 </script> \u2028"
    report.results[0].summary = hostile
    report.facts.timings = {"docker": 0.25}
    report.elapsed_s = 1.5
    text = json_output.render(report)
    assert text.isascii()
    data = json.loads(text)
    assert data["results"][0]["summary"] == hostile and data["elapsed_s"] == 1.5
    assert data["facts"]["timings"] == {"docker": 0.25} and "duration_s" in data["results"][0]


@pytest.mark.parametrize("width", [60, 80, 100])
def test_a_fix_command_is_never_wrapped(width):
    """A command cut over two lines cannot be pasted; prose may wrap, commands overflow instead."""
    from mldoctor.output import table

    fix = "sudo apt-get install -y docker-compose-plugin   # from Docker's package repository (" + "x" * 40 + ")"
    result = CheckResult("docker.compose", "Docker Compose", "docker", Status.WARN, "no compose", fix=fix)
    report = build_report([], facts(), Policy())
    report.results = [result]
    assert any(line.endswith(fix) for line in table.render(report, RenderOptions(width=width)).splitlines())
