"""JUnit XML: one testcase per check, one testsuite per area, as GitLab, Jenkins and most CI systems read it.

FAIL is <failure>, ERROR is <error>, SKIP is <skipped>; a WARN is a passing testcase whose system-out says so,
or a <failure> under --strict (the report then fails the job too, so the two agree).
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from mldoctor.model import CheckResult, Report, Status, areas_of
from mldoctor.output import DEFAULT, RenderOptions


def _message(result: CheckResult) -> str:
    return result.summary + (f"\nfix: {result.fix}" if result.fix else "")


def _testcase(parent: ET.Element, result: CheckResult, strict: bool) -> tuple[str, ...]:
    case = ET.SubElement(parent, "testcase", classname=f"mldoctor.{result.area}", name=result.id, time="0")
    kind: tuple[str, ...] = ()
    if result.status is Status.FAIL or (strict and result.status is Status.WARN):
        ET.SubElement(case, "failure", message=result.summary, type=result.status.value).text = _message(result)
        kind = ("failures",)
    elif result.status is Status.ERROR:
        ET.SubElement(case, "error", message=result.summary, type="ERROR").text = _message(result)
        kind = ("errors",)
    elif result.status is Status.SKIP:
        ET.SubElement(case, "skipped", message=result.summary)
        kind = ("skipped",)
    out = [f"{result.status.value}: {result.summary}"]
    if result.fix and result.status is Status.WARN:
        out.append(f"fix: {result.fix}")
    out += [*result.details, f"docs: {result.docs}"]
    ET.SubElement(case, "system-out").text = "\n".join(out)
    return kind


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    strict = options.strict
    root = ET.Element("testsuites", name="mldoctor")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for area, title in areas_of(report.results):
        results = [r for r in report.results if r.area == area]
        if not results:
            continue
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"mldoctor.{area}",
            hostname=report.host,
            timestamp=report.created.rstrip("Z"),
            time="0",
        )
        suite.set("package", title)
        counts = {"tests": len(results), "failures": 0, "errors": 0, "skipped": 0}
        for result in results:
            for key in _testcase(suite, result, strict):
                counts[key] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
