"""Reports carried through an engine's stdout: framing, reassembly under interleaving, and hostile input."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner
from test_fleet import driver_failed, node_report

from mldoctor.fleet import frames, hostlist
from mldoctor.fleet.command import fleet

pytestmark = pytest.mark.filterwarnings("error")


def lines_for(node: str, report: dict) -> list[str]:
    return [frames.start_line(node, "node[1-3]"), *frames.encode(node, report)]


def assemble(lines: list[str]) -> tuple[list, frames.Assembler]:
    assembler = frames.Assembler("srun")
    documents = [d for line in lines for d in assembler.feed(line)]
    return documents + list(assembler.unfinished()), assembler


def test_a_report_is_cut_into_short_lines_and_comes_back_whole():
    report = node_report("node1", bf16=(790.0,) * 8)
    lines = frames.encode("node1", report)
    assert len(lines) > 1, "a real report must span several lines for this test to mean anything"
    assert all(len(line) < 700 for line in lines)
    documents, _ = assemble(lines)
    assert [(d.name_hint, d.error) for d in documents] == [("node1", None)]
    assert documents[0].data == report


def test_three_nodes_interleaved_with_noise_are_told_apart():
    reports = {f"node{i}": node_report(f"node{i}", bf16=(700.0 + i,) * 8) for i in (1, 2, 3)}
    lines = [line for node, report in reports.items() for line in lines_for(node, report)]
    lines += ["srun: warning: something unrelated", "Welcome to the cluster", "{not json"]
    random.Random(7).shuffle(lines)
    documents, assembler = assemble(lines)
    assert {d.name_hint: d.data for d in documents} == reports
    assert assembler.started == {"node1": "node[1-3]", "node2": "node[1-3]", "node3": "node[1-3]"}


def test_a_report_cut_off_midway_is_unreadable_not_lost():
    lines = frames.encode("node2", node_report("node2"))
    documents, _ = assemble(lines[:-1])
    assert [d.name_hint for d in documents] == ["node2"]
    assert documents[0].error == f"the report was cut off ({len(lines) - 1} of {len(lines)} parts came)"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("@mldoctor-fleet node1 one/two AAAA", "a malformed @mldoctor-fleet line"),
        ("@mldoctor-fleet node1 0/1 !!!notbase64", "a report that cannot be decoded"),
        ("@mldoctor-fleet -rf 0/1 eJw=", "an invalid node name"),
        ("@mldoctor-fleet node1 3/2 eJw=", "inconsistent chunk numbers"),
        ("@mldoctor-fleet node1 0/1 eJwrycxLBQAEIwGT", "a report that cannot be decoded"),
    ],
)
def test_hostile_lines_are_reported_not_raised(line, error):
    documents, _ = assemble([line])
    assert len(documents) == 1
    assert error in documents[0].error


def test_an_inflated_report_over_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(frames, "MAX_DOCUMENT", 1000)
    lines = frames.encode("node1", {"padding": "x" * 5000})  # compresses to a few dozen bytes
    documents, _ = assemble(lines)
    assert "larger than" in documents[0].error


def test_a_node_that_could_not_run_the_check_says_why():
    documents, _ = assemble(
        frames.encode("node3", {"node": "node3", "error": "mldoctor check exited 2 without a report"})
    )
    assert documents[0].error == "on the node: mldoctor check exited 2 without a report"


def test_mldoctor_fleet_reads_saved_engine_output_on_stdin():
    """`kubectl logs ... | mldoctor fleet -`: the pods' logs carry the same lines."""
    log = [
        *lines_for("gpu-a", node_report("gpu-a")),
        *lines_for("gpu-b", node_report("gpu-b", results=driver_failed())),
    ]
    outcome = CliRunner().invoke(fleet, ["-", "--format", "json"], input="\n".join(log) + "\n")
    data = json.loads(outcome.output)
    assert [(n["node"], n["state"]) for n in data["nodes"]] == [("gpu-b", "fail"), ("gpu-a", "pass")]
    assert outcome.exit_code == 1


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("node[1-3]", ["node1", "node2", "node3"]),
        ("gpu[08-10],login", ["gpu08", "gpu09", "gpu10", "login"]),
        ("r[1-2]-n[1,3]", ["r1-n1", "r1-n3", "r2-n1", "r2-n3"]),
        ("single", ["single"]),
    ],
)
def test_slurm_host_lists_expand(text, names):
    assert hostlist.expand(text) == names


@pytest.mark.parametrize("text", ["node[1-3", "node]1[", "node[a-b]", "node[5-1]", "n[0-99999999]"])
def test_bad_host_lists_are_refused(text):
    with pytest.raises(hostlist.HostlistError):
        hostlist.expand(text)
