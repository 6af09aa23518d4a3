"""JUnit XML, one testsuite per node (CI systems show each node as a suite, each check as a test): FAIL is
<failure>, ERROR <error>, SKIP <skipped>; a node with no report or an unreadable one is a suite with one <error>.
ElementTree escapes markup; the characters XML 1.0 cannot hold at all were removed when the text was read."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from mldoctor.fleet.aggregate import Fleet, NodeRow
from mldoctor.fleet.text import bounded
from mldoctor.model import Status

COUNTS = ("tests", "failures", "errors", "skipped")


def _suite(root: ET.Element, name: str, hostname: str) -> ET.Element:
    return ET.SubElement(root, "testsuite", name=name, hostname=hostname or name, time="0")


def _finish(suite: ET.Element, counts: dict[str, int], totals: dict[str, int]) -> None:
    for key in COUNTS:
        suite.set(key, str(counts[key]))
        totals[key] += counts[key]


def _node(root: ET.Element, row: NodeRow, totals: dict[str, int]) -> None:
    suite = _suite(root, row.node, row.summary.host)
    suite.set("timestamp", row.summary.created.rstrip("Z"))
    counts = dict.fromkeys(COUNTS, 0)
    for cell in row.cells.values():
        counts["tests"] += 1
        case = ET.SubElement(suite, "testcase", classname=row.node, name=cell.id, time="0")
        text = cell.summary
        if row.link is not None and row.link.check == cell.id and row.link.fix:
            text += f"\nfix: {row.link.fix}"
        if cell.status is Status.FAIL:
            ET.SubElement(case, "failure", message=cell.summary, type="FAIL").text = text
            counts["failures"] += 1
        elif cell.status is Status.ERROR:
            ET.SubElement(case, "error", message=cell.summary, type="ERROR").text = text
            counts["errors"] += 1
        elif cell.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=cell.summary)
            counts["skipped"] += 1
        elif cell.status is Status.WARN:
            ET.SubElement(case, "system-out").text = f"WARN: {text}"
    _finish(suite, counts, totals)


def _lost(root: ET.Element, name: str, message: str, totals: dict[str, int]) -> None:
    suite = _suite(root, name, name)
    case = ET.SubElement(suite, "testcase", classname=name, name="report", time="0")
    ET.SubElement(case, "error", message=message, type="ERROR").text = message
    _finish(suite, {"tests": 1, "failures": 0, "errors": 1, "skipped": 0}, totals)


def render(fleet: Fleet) -> str:
    root = ET.Element("testsuites", name="mldoctor fleet", time="0")
    totals = dict.fromkeys(COUNTS, 0)
    for row in fleet.rows:
        _node(root, row, totals)
    for node in fleet.missing:
        _lost(root, node, "no report (hung or unreachable)", totals)
    for lost in fleet.unreadable:
        _lost(root, lost.node or bounded(lost.origin, 200), f"unreadable report {lost.origin}: {lost.error}", totals)
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
