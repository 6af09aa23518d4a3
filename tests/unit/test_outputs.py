"""Every output format parsed back by a real consumer: junitparser, prometheus_client's parser, GitHub's rules."""

from __future__ import annotations

import json
import re

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


def gpu_less_report(**sections):
    """This project's CI machine: no NVIDIA GPU, so every NVIDIA check is SKIP and none of them matters."""
    from mldoctor.facts.nvidia import FabricManagerFacts, KernelFacts, NvidiaFacts, NvmlFacts, ToolkitFacts

    nvidia = NvidiaFacts(KernelFacts("6.1.0-18-amd64"), NvmlFacts(), ToolkitFacts(), FabricManagerFacts())
    return build_report(select(["docker", "nvidia", "host"]), facts(nvidia=nvidia, **sections), Policy())


class TestTable:
    def render(self, report, verbose=False):
        from mldoctor.output import table

        return table.render(report, RenderOptions(verbose=verbose, width=120))

    def test_a_gpu_less_host_folds_its_nvidia_skips_into_one_line(self):
        report = gpu_less_report()
        nvidia = [r.id for r in report.results if r.area == "nvidia"]
        assert len(nvidia) >= 2 and {r.status for r in report.results if r.area == "nvidia"} == {Status.SKIP}
        text = self.render(report)
        section = text.split("\nNVIDIA\n", 1)[1].split("\n\n", 1)[0]
        assert section == f"-  {len(nvidia)} skipped: no NVIDIA GPU on this host (mldoctor check -v lists them)"
        assert not any(check_id in text for check_id in nvidia)
        assert text.splitlines()[-2].endswith(f"{report.counts()[Status.SKIP]} skipped")  # still counted

    def test_verbose_lists_every_skipped_check(self):
        report = gpu_less_report()
        text = self.render(report, verbose=True)
        assert all(f"-  {r.id} " in text for r in report.results if r.area == "nvidia")
        assert "skipped: no NVIDIA GPU on this host (" not in text

    def test_a_skip_that_points_at_a_failure_stays_visible(self):
        report = build_report(select(["docker", "host"]), facts(docker=down("missing_socket")), Policy())
        blocked = [r for r in report.results if r.blocked_by == "docker.daemon"]
        assert len(blocked) >= 2
        text = self.render(report)
        for result in blocked:
            assert f"{result.id}" in text and "skipped: docker.daemon failed" in text
        assert " skipped: " not in text.replace("skipped: docker.daemon failed", "")

    def test_a_skip_that_points_at_a_warning_stays_visible(self):
        report = gpu_less_report()
        warned = CheckResult("host.extra", "Extra", "host", Status.WARN, "low", fix="do it")
        report.results += [
            warned,
            CheckResult("host.a", "A", "host", Status.SKIP, "skipped: host.extra: low", blocked_by="host.extra"),
            CheckResult("host.b", "B", "host", Status.SKIP, "skipped: host.extra: low", blocked_by="host.extra"),
        ]
        text = self.render(report)
        assert "host.a " in text and "host.b " in text

    def test_one_skip_alone_keeps_its_row(self):
        report = gpu_less_report()
        report.results.append(CheckResult("host.lonely", "Lonely", "host", Status.SKIP, "not applicable here"))
        assert re.search(r"^-  host\.lonely +not applicable here$", self.render(report), re.MULTILINE)
        assert "1 skipped:" not in self.render(report)

    def test_verbose_shows_the_facts_the_timings_and_the_policy(self):
        from factories import docker

        from mldoctor.engine.daemon import DaemonProcess
        from mldoctor.output.table import summary_line

        process = DaemonProcess(pid=812, command_line=["/usr/bin/dockerd", "-H", "fd://"])
        report = gpu_less_report(docker=docker(process=process))
        text = self.render(report, verbose=True)
        assert "endpoint        unix:///var/run/docker.sock (from default)" in text
        assert "daemon process  pid 812: /usr/bin/dockerd -H fd://" in text
        assert "Docker 24.0.7 (API 1.43)" in text and "/etc/docker/daemon.json" in text
        assert "0 NVIDIA GPU(s) on the PCI bus" in text
        assert re.search(r"^   Docker +10 ms to reach the daemon$", text, re.MULTILINE)
        report.facts.timings, report.elapsed_s = {"host": 0.002, "docker": 0.25}, 12.5
        timed = self.render(report, verbose=True)
        assert re.search(r"^   host +2 ms in all$", timed, re.MULTILINE)
        assert re.search(r"^   Docker +250 ms in all, 10 ms to reach the daemon$", timed, re.MULTILINE)
        assert re.search(r"^   the run +12\.5 s, gathering and judging$", timed, re.MULTILINE)
        assert "disk_fail_gib             5\n" in text and "matmul                    pass >= 0.9, warn >= 0.75" in text
        assert text.index("\nFacts\n") < text.index("\nTimings\n") < text.index("\nPolicy\n")
        assert text.index("\nPolicy\n") < text.index(summary_line(report))

    def test_verbose_names_the_driver_nvml_and_toolkit_of_a_gpu_host(self):
        from test_nvidia_rules import DRIVER, nvidia_facts

        report = build_report(select(["nvidia"]), facts(nvidia=nvidia_facts(gpus=2)), Policy())
        text = self.render(report, verbose=True)
        assert re.search(r"^   GPUs +2 NVIDIA GPU\(s\) on the PCI bus$", text, re.MULTILINE)
        driver = rf"^   driver +{DRIVER} \(CUDA 12\.4, NVML 12\.{DRIVER}\); kernel module {DRIVER};"
        assert re.search(driver, text, re.MULTILINE)
        assert re.search(r"^   NVML GPUs +2: NVIDIA H100 80GB HBM3$", text, re.MULTILINE)
        assert re.search(r"^   container toolkit +nvidia-ctk 1\.16\.2, ", text, re.MULTILINE)
        assert re.search(r"^   NVIDIA +\d+ ms in NVML$", text, re.MULTILINE)

    def test_verbose_says_why_the_daemon_was_not_reached(self):
        report = build_report(select(["docker"]), facts(docker=down("missing_socket", "no such file")), Policy())
        text = self.render(report, verbose=True)
        assert re.search(r"^   daemon +not reached \(missing_socket\): no such file$", text, re.MULTILINE)
        assert re.search(r"^   Docker +gave up after \d+ ms: missing_socket$", text, re.MULTILINE)


def test_a_fix_s_steps_and_effects_are_in_the_json_and_survive_a_re_diagnosis(tmp_path, capsys):
    """The fix as data: steps (who types each) and effects travel in the JSON and come back with `--facts`."""
    from factories import host
    from helpers import call

    from mldoctor.facts.host import UserFacts

    user = UserFacts(uid=1001, name="bob", active_groups=["bob"], member_of=["bob"])
    situation = facts(docker=down("permission"), host=host(user=user))
    report = build_report(select(["docker.permission"]), situation, Policy())
    data = json.loads(json_output.render(report))
    (row,) = [r for r in data["results"] if r["id"] == "docker.permission"]
    assert row["steps"] == [
        {"command": "sudo usermod -aG docker bob", "as_root": True, "note": "then log out and back in"}
    ]
    assert row["effects"] == ["relogin"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    _, out, _ = call(capsys, "check", "--facts", str(path), "--only", "docker.permission", "--format", "json")
    (same,) = [r for r in json.loads(out)["results"] if r["id"] == "docker.permission"]
    assert same["steps"] == row["steps"] and same["effects"] == row["effects"]


def test_effects_are_said_after_the_fix_in_the_table_markdown_and_html():
    from mldoctor.bundle import html
    from mldoctor.output import table

    fix = "sudo systemctl restart docker   # applies <daemon.json>"
    result = CheckResult(
        "docker.config", "Config", "docker", Status.WARN, "not applied", fix=fix, effects=["restarts-docker"]
    )
    report = build_report([], facts(), Policy())
    report.results = [result]
    said = "restarts the Docker daemon: its running containers stop unless live-restore is on"
    assert f"note: it {said}" in table.render(report, RenderOptions(width=120))
    assert f"<br>*it {said}*" in markdown.render(report)
    page = html.render(report)
    assert f'<p class="effect">It {said}.</p>' in page and "applies &lt;daemon.json&gt;" in page
