"""The console matrix: one row per check, grouped by area, a pasteable fix under every WARN/FAIL."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mldoctor.model import Report, Status
from mldoctor.rules.registry import AREAS

GLYPHS = {Status.PASS: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIP: "-", Status.ERROR: "?"}
ASCII_GLYPHS = {Status.PASS: "+", Status.WARN: "!", Status.FAIL: "x", Status.SKIP: "-", Status.ERROR: "?"}
STYLES = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.SKIP: "dim",
    Status.ERROR: "magenta",
}


def summary_line(report: Report) -> str:
    counts = report.counts()
    parts = [
        (Status.FAIL, "failed"),
        (Status.ERROR, "could not run"),
        (Status.WARN, "warning"),
        (Status.PASS, "passed"),
        (Status.SKIP, "skipped"),
    ]
    words = []
    for status, word in parts:
        n = counts[status]
        if n or status is Status.PASS:
            words.append(f"{n} {word}{'s' if word == 'warning' and n != 1 else ''}")
    return ", ".join(words)


def _cell(result, verbose: bool) -> Text:
    text = Text(result.summary, style="dim" if result.status is Status.SKIP else "")
    if result.fix:
        lines = result.fix.splitlines()
        text.append("\nfix: ", style="bold cyan")
        text.append(lines[0], style="cyan")
        for line in lines[1:]:
            text.append("\n     " + line, style="cyan")
    if verbose:
        for line in result.details:
            text.append(f"\n• {line}", style="dim")
    return text


def renderable(report: Report, verbose: bool = False, ascii_only: bool = False) -> Group:
    glyphs = ASCII_GLYPHS if ascii_only else GLYPHS
    id_width = max((len(r.id) for r in report.results), default=10)
    parts: list = [Text(f"mldoctor {report.tool_version} · {report.host} · {report.created}", style="bold")]
    for area, title in AREAS.items():
        results = [r for r in report.results if r.area == area]
        if not results:
            continue
        table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False, expand=False)
        table.add_column(width=1, no_wrap=True)
        table.add_column(min_width=id_width, no_wrap=True)
        table.add_column(overflow="fold")
        for result in results:
            style = STYLES[result.status]
            table.add_row(
                Text(glyphs[result.status], style=style), Text(result.id, style=style), _cell(result, verbose)
            )
        parts += [Text(""), Text(title, style="bold underline"), table]
    parts += [Text(""), Text(summary_line(report), style="bold")]
    if not verbose and any(r.details for r in report.results if r.status is not Status.PASS):
        parts.append(Text("details: mldoctor check -v", style="dim"))
    return Group(*parts)


def render(report: Report, verbose: bool = False, width: int = 100) -> str:
    """Plain text, for files and pipes."""
    console = Console(width=width, no_color=True, highlight=False, record=True, file=io.StringIO())
    console.print(renderable(report, verbose))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def print_report(report: Report, console: Console, verbose: bool = False) -> None:
    ascii_only = not (console.encoding or "").lower().startswith("utf")
    console.print(renderable(report, verbose, ascii_only), highlight=False)
