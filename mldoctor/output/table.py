"""The console matrix: one row per check, grouped by area, a pasteable fix under every WARN/FAIL.

One layout for every destination: `lines()` lays the matrix out as styled pieces at a given width (wrapped with a
hanging indent, so fixes stay readable); `render()` joins them as plain text for files and pipes, and
`print_report()` colours them on a terminal. rich is imported only for the terminal.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from mldoctor.model import CheckResult, Report, Status, areas_of
from mldoctor.output import DEFAULT, RenderOptions

if TYPE_CHECKING:
    from rich.console import Console

GLYPHS = {Status.PASS: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIP: "-", Status.ERROR: "?"}
ASCII_GLYPHS = {Status.PASS: "+", Status.WARN: "!", Status.FAIL: "x", Status.SKIP: "-", Status.ERROR: "?"}
STYLES = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.SKIP: "dim",
    Status.ERROR: "magenta",
}

Piece = tuple[str, str]
"""(text, rich style) — the style is ignored in plain text."""


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


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """`text` wrapped to `width`, its first line after `first`, the others after `rest` (a hanging indent)."""
    out: list[str] = []
    for index, paragraph in enumerate(text.splitlines() or [""]):
        lead = first if index == 0 else rest
        out += textwrap.wrap(
            paragraph,
            width,
            initial_indent=lead,
            subsequent_indent=rest,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [lead.rstrip()]
    return out


def _row(result: CheckResult, glyph: str, id_width: int, width: int, verbose: bool) -> list[list[Piece]]:
    style = STYLES[result.status]
    indent = " " * (id_width + 5)
    text = _wrap(result.summary, width, indent, indent)
    rows = [
        [
            (f"{glyph}  ", style),
            (f"{result.id:<{id_width}}  ", style),
            (text[0][len(indent) :], "dim" if result.status is Status.SKIP else ""),
        ]
    ]
    rows += [[(line, "dim" if result.status is Status.SKIP else "")] for line in text[1:]]
    if result.fix:  # never wrapped: a command cut in two cannot be pasted (it may overflow instead)
        for i, line in enumerate(result.fix.splitlines()):
            lead = [(indent, ""), ("fix: ", "bold cyan")] if i == 0 else [(indent + "     ", "")]
            rows.append([*lead, (line, "cyan")])
    if verbose:
        for detail in result.details:
            rows += [[(line, "dim")] for line in _wrap(detail, width, indent + "• ", indent + "  ")]
    return rows


def _heading(report: Report) -> str:
    """The run's line; a re-diagnosis says whose report it judged and when that was made, not only today's time."""
    origin = report.facts.origin
    if origin is None:
        return f"mldoctor {report.tool_version} · {report.host} · {report.created}"
    return (
        f"mldoctor {report.tool_version} · offline re-diagnosis of {origin.host or report.host}, "
        f"report made {origin.created or '?'} · judged {report.created}"
    )


def lines(report: Report, verbose: bool = False, width: int = 100, ascii_only: bool = False) -> list[list[Piece]]:
    glyphs = ASCII_GLYPHS if ascii_only else GLYPHS
    id_width = max((len(r.id) for r in report.results), default=10)
    out: list[list[Piece]] = [[(_heading(report), "bold")]]
    for area, title in areas_of(report.results):
        results = [r for r in report.results if r.area == area]
        if results:
            out += [[], [(title, "bold underline")]]
            for result in results:
                out += _row(result, glyphs[result.status], id_width, width, verbose)
    out += [[], [(summary_line(report), "bold")]]
    if not verbose and any(r.details for r in report.results if r.status is not Status.PASS):
        origin = report.facts.origin
        again = f"mldoctor check --facts {origin.path} -v" if origin else "mldoctor check -v"
        out.append([(f"details: {again}", "dim")])
    return out


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    """Plain text, for files and pipes."""
    pieces = lines(report, options.verbose, options.width)
    return "".join("".join(text for text, _ in line).rstrip() + "\n" for line in pieces)


def print_report(report: Report, console: Console, verbose: bool = False) -> None:
    """Coloured on a terminal (rich honours NO_COLOR)."""
    from rich.text import Text

    ascii_only = not (console.encoding or "").lower().startswith("utf")
    for line in lines(report, verbose, console.width, ascii_only):
        console.print(Text.assemble(*line), highlight=False, crop=False, soft_wrap=True)
