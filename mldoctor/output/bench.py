"""`mldoctor gpu-bench` output: one row per measurement (GPU | metric | measured | expected | ratio | status),
then every probe or benchmark finding that is not a PASS, with its fix.

The rows are the report's `benchmarks`, graded by the same pure function the bench.* checks use; nothing here
measures or judges on its own.
"""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mldoctor.model import Report, Status
from mldoctor.output import DEFAULT, RenderOptions
from mldoctor.output.table import GLYPHS, STYLES, summary_line


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def renderable(report: Report) -> Group:
    table = Table(box=None, padding=(0, 2), pad_edge=False)
    for header, justify in [("GPU", "left"), ("device", "left"), ("metric", "left"), ("measured", "right"),
                            ("expected", "right"), ("ratio", "right"), ("status", "left"), ("", "left")]:  # fmt: skip
        table.add_column(header, justify=justify, no_wrap=header != "")
    for row in report.benchmarks:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        table.add_row(
            row.gpu,
            row.device,
            row.metric,
            f"{_number(row.measured)} {row.unit}",
            _number(row.expected),
            ratio,
            Text(f"{GLYPHS[row.status]} {row.status.value}", style=STYLES[row.status]),
            Text(row.note, style="dim"),
        )
    parts: list = [Text(f"mldoctor {report.tool_version} gpu-bench · {report.host} · {report.created}", style="bold")]
    parts += [Text(""), table] if table.row_count else [Text(""), Text("no benchmark ran (see below)", style="dim")]
    problems = [r for r in report.results if r.status not in (Status.PASS, Status.SKIP) or r.fix]
    for result in problems:
        line = Text(f"{GLYPHS[result.status]} {result.id}: ", style=STYLES[result.status])
        line.append(result.summary, style="")
        if result.fix:
            line.append("\n  fix: ", style="bold cyan")
            line.append(result.fix, style="cyan")
        parts += [Text(""), line]
    parts += [Text(""), Text(summary_line(report), style="bold")]
    return Group(*parts)


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    """Plain text, for files and pipes."""
    console = Console(width=options.width, no_color=True, highlight=False, record=True, file=io.StringIO())
    console.print(renderable(report))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
