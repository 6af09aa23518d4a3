"""GitHub Actions workflow commands: an annotation per FAIL/WARN, within GitHub's per-step limits."""

from __future__ import annotations

from mldoctor.model import CheckResult, Report, Status
from mldoctor.output import DEFAULT, RenderOptions
from mldoctor.text import printable

MAX_PER_KIND = 10  # "limited to 10 warning annotations and 10 error annotations per step"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(kind: str, result: CheckResult) -> str:
    """One workflow command; a finding with a location (a Dockerfile's line) is pinned to that file and line."""
    message = printable(result.summary + (f"\nfix: {result.fix}" if result.fix else ""))  # no escape reaches a log
    where = ""
    if result.location:
        path, _, line = result.location.rpartition(":")
        where = f"file={escape_property(path)},line={line}," if path and line.isdigit() else ""
    return f"::{kind} {where}title={escape_property(f'mldoctor {result.id}')}::{escape_data(message)}"


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    """FAIL and ERROR (and WARN under --strict) are errors, WARN a warning; over the limit, one notice says so."""
    strict = options.strict
    errors = [
        r for r in report.results if r.status in (Status.FAIL, Status.ERROR) or (strict and r.status is Status.WARN)
    ]
    warnings = [r for r in report.results if r.status is Status.WARN and not strict]
    lines = [_annotation("error", r) for r in errors[:MAX_PER_KIND]]
    lines += [_annotation("warning", r) for r in warnings[:MAX_PER_KIND]]
    hidden = max(0, len(errors) - MAX_PER_KIND) + max(0, len(warnings) - MAX_PER_KIND)
    if hidden:
        lines.append(
            f"::notice title=mldoctor::{hidden} more findings than GitHub shows as annotations: see the job summary"
        )
    return "".join(line + "\n" for line in lines)


STEP_SUMMARY_LIMIT = 1024 * 1024  # "supports content up to a size of 1024k"


def append_step_summary(path: str, markdown: str) -> None:
    """Append to $GITHUB_STEP_SUMMARY, cut to what GitHub accepts rather than losing the whole summary."""
    data = markdown.encode("utf-8")
    if len(data) > STEP_SUMMARY_LIMIT - 200:
        data = data[: STEP_SUMMARY_LIMIT - 200].rsplit(b"\n", 1)[0] + b"\n\n(cut: GitHub's 1 MiB limit)\n"
    with open(path, "ab") as handle:
        handle.write(data)
