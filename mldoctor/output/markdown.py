"""The matrix as GitHub-flavoured Markdown: what a user pastes into an issue, and the Actions step summary."""

from __future__ import annotations

from mldoctor.model import Report, Status, areas_of
from mldoctor.output import DEFAULT, RenderOptions
from mldoctor.output.table import summary_line

ICONS = {Status.PASS: "✅", Status.WARN: "⚠️", Status.FAIL: "❌", Status.SKIP: "⏭️", Status.ERROR: "❓"}


def _cell(text: str) -> str:
    """Table cells cannot hold pipes or newlines."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def _code(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return "<br>".join(f"<code>{_cell(line).replace('<br>', ' ')}</code>" for line in lines)


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    lines = [
        f"## mldoctor {report.tool_version} on `{report.host}`",
        "",
        f"{summary_line(report)} · {report.created}",
    ]
    for area, title in areas_of(report.results):
        results = [r for r in report.results if r.area == area]
        if not results:
            continue
        lines += ["", f"### {title}", "", "| | check | finding | fix |", "|---|---|---|---|"]
        for r in results:
            lines.append(f"| {ICONS[r.status]} | `{r.id}` | {_cell(r.summary)} | {_code(r.fix) if r.fix else ''} |")
    return "\n".join(lines) + "\n"
