"""JUnit XML: one testcase per check, one testsuite per area, as GitLab, Jenkins and most CI systems read it.

FAIL is <failure>, ERROR is <error>, SKIP is <skipped>; a WARN is a passing testcase whose system-out says so,
or a <failure> under --strict (the report then fails the job too, so the two agree).

Times are honest: a testcase's time is how long gathering the facts its check reads took (`CheckResult.duration_s`),
a testsuite's the longest of its testcases' (an area's fact sections are gathered in parallel), the document's the
run's wall time. A time nobody measured (a re-diagnosed report from an older mldoctor) is left out, not written 0.

Report text is untrusted (an error message from the daemon, a GPU name, a banner from the image): it is escaped as
XML by ElementTree, and what XML 1.0 cannot hold at all (NUL and the other C0 controls, lone surrogates) is written
visibly as `\\xNN` after terminal escape sequences (colours) are dropped, so the document always parses.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from mldoctor.model import CheckResult, Report, Status, areas_of
from mldoctor.output import DEFAULT, RenderOptions
from mldoctor.text import printable


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{max(0.0, value):.3f}"


def _message(result: CheckResult) -> str:
    return result.summary + (f"\nfix: {result.fix}" if result.fix else "")


def _testcase(parent: ET.Element, result: CheckResult, strict: bool) -> tuple[str, ...]:
    case = ET.SubElement(parent, "testcase", classname=f"mldoctor.{result.area}", name=result.id)
    if (time := _seconds(result.duration_s)) is not None:
        case.set("time", time)
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


def _clean(root: ET.Element) -> None:
    """Every text and attribute of the tree made safe for XML 1.0 (ElementTree escapes markup, not controls)."""
    for element in root.iter():
        if element.text:
            element.text = printable(element.text)
        for key, value in element.attrib.items():
            element.set(key, printable(value))


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    strict = options.strict
    root = ET.Element("testsuites", name="mldoctor")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for area, title in areas_of(report.results):
        results = [r for r in report.results if r.area == area]
        if not results:
            continue
        suite = ET.SubElement(
            root, "testsuite", name=f"mldoctor.{area}", hostname=report.host, timestamp=report.created.rstrip("Z")
        )
        durations = [r.duration_s for r in results if r.duration_s is not None]
        if (time := _seconds(max(durations, default=None))) is not None:
            suite.set("time", time)
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
    if (time := _seconds(report.elapsed_s)) is not None:
        root.set("time", time)
    _clean(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
