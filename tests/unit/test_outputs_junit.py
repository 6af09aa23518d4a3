"""JUnit times and XML safety: each check's time is how long gathering its facts took, read back by junitparser;
report text with terminal escapes and NULs still makes a document ElementTree parses."""

from __future__ import annotations

import json
import time
from xml.etree import ElementTree as ET

import pytest
from factories import down, facts
from junitparser import JUnitXml

from mldoctor import facts as facts_module
from mldoctor import runner
from mldoctor.facts import Facts, GatherOptions, gather
from mldoctor.model import CheckResult, Status
from mldoctor.output import RenderOptions, junit
from mldoctor.policy import Policy
from mldoctor.runner import build_report, select
from mldoctor.serde import from_data, to_data


def parsed(text: str, tmp_path) -> JUnitXml:
    path = tmp_path / "r.xml"
    path.write_text(text, encoding="utf-8")
    return JUnitXml.fromfile(str(path))


def timed_report():
    timed = facts(docker=down("missing_socket"))
    timed.timings = {"docker": 0.25, "host": 0.04}
    report = build_report(select(["docker", "host"]), timed, Policy())
    report.elapsed_s = 1.5
    return report


def test_each_check_takes_the_time_of_the_facts_it_reads(tmp_path):
    xml = parsed(junit.render(timed_report()), tmp_path)
    cases = {case.name: case.time for suite in xml for case in suite}
    assert cases["docker.daemon"] == 0.25  # reads docker and host, gathered side by side: the longer one
    assert cases["docker.disk"] == 0.25  # skipped behind docker.daemon, but its facts were gathered
    assert cases["host.memory"] == 0.04
    assert {suite.name: suite.time for suite in xml} == {"mldoctor.docker": 0.25, "mldoctor.host": 0.04}
    assert xml.time == 1.5


def test_times_survive_a_saved_report_and_are_left_out_when_unknown(tmp_path):
    report = timed_report()
    loaded = from_data(Facts, json.loads(json.dumps(to_data(report.facts))))
    again = build_report(select(["docker", "host"]), loaded, Policy())
    assert [r.duration_s for r in again.results] == [r.duration_s for r in report.results]

    older = build_report(select(["docker", "host"]), facts(), Policy())  # facts from before timings were kept
    text = junit.render(older)
    assert 'time="' not in text and 'time="0"' not in junit.render(report)
    xml = parsed(text, tmp_path)
    assert all(case.time is None for suite in xml for case in suite)


def test_gather_times_each_section_from_its_own_start(monkeypatch):
    def slow(seconds, fails=False):
        def gatherer(options, earlier, errors):
            time.sleep(seconds)
            if fails:
                raise RuntimeError("boom")
            return object()

        return gatherer

    monkeypatch.setitem(facts_module.GATHERERS, "docker", slow(0.3))
    monkeypatch.setitem(facts_module.GATHERERS, "nvidia", slow(0.1, fails=True))
    monkeypatch.setitem(facts_module.GATHERERS, "probe", slow(0.05))
    gathered = gather({"docker", "nvidia", "probe"}, GatherOptions(timeout=5))
    assert set(gathered.timings) == {"docker", "nvidia", "probe"}
    assert 0.3 <= gathered.timings["docker"] < 0.6
    assert 0.1 <= gathered.timings["nvidia"] < 0.3  # a gatherer that raised still took its time
    assert 0.05 <= gathered.timings["probe"] < 0.25  # not counting its wait for docker and nvidia
    assert "nvidia" in gathered.errors


def test_run_carries_the_wall_time_and_the_durations(monkeypatch):
    def fake_gather(sections, options):
        time.sleep(0.1)
        gathered = facts()
        gathered.timings = {"host": 0.08}
        return gathered

    monkeypatch.setattr(runner, "gather", fake_gather)
    report = runner.run(select(["host.memory"]), GatherOptions())
    assert report.elapsed_s is not None and 0.1 <= report.elapsed_s < 1.0
    assert [(r.id, r.duration_s) for r in report.results] == [("host.memory", 0.08)]


HOSTILE = "\x1b[31mdisk full\x1b[0m \x00 nul, \x07 bell, \x0b vt, \ud800 surrogate, ]]> & <tag> \"q\" 'a'"


@pytest.mark.parametrize("strict", [False, True])
def test_control_characters_in_report_text_still_make_xml(strict, tmp_path):
    report = timed_report()
    report.host = "node\x0c07"
    report.results.append(
        CheckResult(
            id="host.hostile",
            title="Hostile",
            area="host",
            status=Status.WARN,
            summary=HOSTILE,
            details=["\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "\x1b[1;32mgreen\x1b[m"],
            fix="echo \x00",
        )
    )
    text = junit.render(report, RenderOptions(strict=strict))
    root = ET.fromstring(text.encode("utf-8"))  # the encoded bytes: a lone surrogate would not even encode
    case = next(c for c in root.iter("testcase") if c.get("name") == "host.hostile")
    out = case.find("system-out").text
    summary = "disk full \\x00 nul, \\x07 bell, \\x0b vt, \\ud800 surrogate, ]]> & <tag> \"q\" 'a'"
    assert out.startswith(f"WARN: {summary}\nfix: echo \\x00\nlink\ngreen\n")
    assert "\x1b" not in text and "[31m" not in text
    assert root.find("testsuite").get("hostname") == "node\\x0c07"
    if strict:
        assert case.find("failure").get("message") == summary
    xml = parsed(text, tmp_path)
    assert any(c.name == "host.hostile" for s in xml for c in s)


def test_printable_keeps_what_xml_allows():
    text = "tab\tnewline\ncr\r é ☃ 😀 \ue000 \ufffd"
    assert junit.printable(text) == text
    assert junit.printable("\x7f\x85\x9f\ufffe\uffff") == "\\x7f\\x85\\x9f\\ufffe\\uffff"
