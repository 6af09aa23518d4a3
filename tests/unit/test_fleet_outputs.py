"""mldoctor fleet renderers: each one's shape, and report text escaped for where it goes."""

from __future__ import annotations

import json
import os
import re
import shlex
from xml.etree import ElementTree as ET

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from prometheus_client.parser import text_string_to_metric_families
from test_fleet import docs, driver_failed, node_report, result

from mldoctor.fleet.aggregate import FleetPolicy, aggregate
from mldoctor.fleet.output import FORMATS, renderer
from mldoctor.fleet.sources import Document, documents
from mldoctor.model import Status

NASTY = "GPU <script>alert(1)</script> | \"q\" & 's' `tick` *b* [l](x) \\ ]]>\n2nd line\x1b[31m\x00"
NASTY_NODE = 'node<b>"1"|x'


@pytest.fixture(scope="module")
def fleet():
    """Every section filled: a FAIL node with a hostile summary and name, a straggler, drift under a floor, an
    ERROR node, a missing node, an unreadable report."""
    slow = (790.0,) * 7 + (632.0,)
    nasty_results = [*driver_failed(summary=NASTY, fix=f"fix it: {NASTY}"), result("host.shm", Status.WARN, NASTY)]
    error_only = [result("docker.daemon"), result("nvidia.driver", Status.ERROR, "NVML crashed")]
    reports = docs(
        node_report(NASTY_NODE, results=nasty_results),
        node_report("n2", bf16=slow),
        node_report("n3", driver="535.129.03"),
        node_report("n4", results=error_only),
        node_report("n5"),
        node_report("n6"),
    )
    reports.append(Document("bad<file>.json", error="not JSON: <oops>"))
    return aggregate(reports, FleetPolicy(min_driver_version="550"), expected=["n7"])


def test_every_format_has_a_renderer(fleet):
    for name in FORMATS:
        assert renderer(name)(fleet).endswith("\n")
    with pytest.raises(ValueError, match="no fleet renderer"):
        renderer("yaml")


def test_table(fleet):
    text = renderer("table")(fleet)
    assert "\x1b" not in text and "\x00" not in text
    for line in fleet.drain:
        for command in line.commands:
            assert any(row.endswith(command) for row in text.splitlines())  # whole, on one line
    assert "No report, hung or unreachable (1; not drained):\n  n7" in text
    assert "Could not complete (1; not drained: rerun mldoctor check there):\nn4  nvidia.driver: NVML crashed" in text
    assert re.search(r"^n2 +GPU 7 GPU-n2-7 +bf16 632.0 TFLOP/s +0.80x of 790.0", text, re.MULTILINE)
    assert "    n3  535.129.03  FAIL: below the floor" in text


def test_json(fleet):
    data = json.loads(renderer("json")(fleet))
    assert (data["schema"], data["exit_code"]) == ("mldoctor-fleet", 1)
    assert data["summary"] == {
        "fail": 2,
        "incomplete": 1,
        "warn": 1,
        "pass": 2,
        "unreadable": 1,
        "no report": 1,
    }
    first = next(node for node in data["nodes"] if node["node"] == NASTY_NODE)
    assert first["first_broken_link"]["check"] == "nvidia.driver"
    assert first["checks"]["nvidia.toolkit"] == "SKIP"
    assert data["drain"][0]["commands"][0].startswith("scontrol update nodename=n3 state=drain")
    assert data["stragglers"][0]["ratio"] == 0.8


def _cells(row: str) -> list[str]:
    """Split a Markdown table row on its unescaped pipes."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_markdown_escapes_report_text(fleet):
    text = renderer("markdown")(fleet)
    prose = re.sub(r"```sh\n.*?\n```", "", text, flags=re.DOTALL)  # fenced blocks are literal: commands stay as is
    assert "<script>" not in prose and "<b>" not in prose
    assert "&lt;script&gt;" in text
    (drain_row,) = [line for line in text.splitlines() if line.startswith("| node&lt;b&gt;") and "fix it:" in line]
    assert len(_cells(drain_row)) == 4
    matrix_header = next(line for line in text.splitlines() if line.startswith("| node | state |"))
    (matrix_row,) = [line for line in text.splitlines() if line.startswith("| node&lt;b&gt;") and "| fail |" in line]
    assert len(_cells(matrix_row)) == len(_cells(matrix_header))
    assert "\x1b" not in text
    slurm = text.split("Slurm:\n\n```sh\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert [shlex.split(line)[2] for line in slurm] == ["nodename=n3", f"nodename={NASTY_NODE}"]


def test_junit_has_one_testsuite_per_node_and_parses(fleet, tmp_path):
    path = tmp_path / "fleet.xml"
    path.write_text(renderer("junit")(fleet), encoding="utf-8")
    suites = {suite.name: suite for suite in JUnitXml.fromfile(str(path))}
    assert set(suites) == {NASTY_NODE, "n2", "n3", "n4", "n5", "n6", "n7", "bad<file>.json"}
    cases = {case.name: case for case in suites[NASTY_NODE]}
    (failure,) = cases["nvidia.driver"].result
    assert isinstance(failure, Failure)
    assert failure.message.startswith("GPU <script>alert(1)</script> | \"q\" & 's'")
    assert "fix it:" in failure.text
    assert isinstance(cases["nvidia.toolkit"].result[0], Skipped)
    assert isinstance(next(iter(suites["n4"])).result, list)
    assert any(isinstance(r, Error) for case in suites["n4"] for r in case.result)
    (lost,) = list(suites["n7"])
    assert lost.result[0].message == "no report (hung or unreachable)"
    assert suites["n3"].failures == 1  # below the driver floor: fleet.drift FAILs
    root = ET.parse(path).getroot()
    assert int(root.get("failures")) == sum(s.failures for s in suites.values())


def test_prometheus_parses_back_with_node_and_gpu_labels(fleet):
    families = {f.name: f for f in text_string_to_metric_families(renderer("prometheus")(fleet))}
    (straggler,) = [s for s in families["mldoctor_fleet_straggler_ratio"].samples if s.labels["dtype"] == "bf16"]
    assert straggler.labels == {
        "node": "n2",
        "gpu": "7",
        "uuid": "GPU-n2-7",
        "model": "NVIDIA H100 80GB HBM3, 80 GiB, 132 SMs",
        "dtype": "bf16",
    }
    assert straggler.value == pytest.approx(0.8)
    checks = families["mldoctor_fleet_check_status"].samples
    assert {"node": NASTY_NODE, "check": "nvidia.driver", "status": "fail"} in [s.labels for s in checks]
    states = [s for s in families["mldoctor_fleet_node_state"].samples if s.value == 1]
    assert {(s.labels["node"], s.labels["state"]) for s in states} >= {(NASTY_NODE, "fail"), ("n7", "no report")}
    drains = {s.labels["node"]: s.labels["check"] for s in families["mldoctor_fleet_drain"].samples}
    assert drains == {NASTY_NODE: "nvidia.driver", "n3": "fleet.drift"}


def test_html_is_self_contained_and_escapes_everything(fleet):
    page = renderer("html")(fleet)
    assert "<script" not in page and "node<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "node&lt;b&gt;&quot;1&quot;|x" in page
    assert not re.search(r"(src|href)=", page)  # nothing fetched from elsewhere
    assert "\x1b" not in page and "\x00" not in page
    assert page.count('<tr><td class="n ') == len(fleet.rows)  # the heatmap: a row per node
    assert "<svg" in page and "Drift" in page


def test_file_names_and_report_text_that_are_not_utf8_render_everywhere(tmp_path):
    folder = os.fsencode(tmp_path)
    with open(os.path.join(folder, b"bad\xff\x1b[2J.json"), "w") as handle:
        handle.write("{garbage")
    report = node_report("n1", results=driver_failed(summary="lone \ud800 surrogate"))
    with open(os.path.join(folder, b"n1.json"), "w", encoding="utf-8") as handle:
        handle.write(json.dumps(report))  # ensure_ascii: the surrogate travels as \\ud800, as JSON allows
    fleet = aggregate(documents([str(tmp_path)]))
    assert len(fleet.rows) == len(fleet.unreadable) == 1
    for name in FORMATS:
        text = renderer(name)(fleet)
        text.encode("utf-8")  # no lone surrogate left to fail a write
        assert "\x1b" not in text
