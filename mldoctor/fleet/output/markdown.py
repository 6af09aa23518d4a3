"""GitHub-flavoured Markdown: for an issue, a wiki page or a CI step summary. Report text is escaped for table
cells (pipes, Markdown punctuation, inline HTML); commands go in fenced blocks longer than any backtick run."""

from __future__ import annotations

import html
import re

from mldoctor.fleet.aggregate import Fleet, NodeState
from mldoctor.model import Status

ICONS = {Status.PASS: "✅", Status.WARN: "⚠️", Status.FAIL: "❌", Status.SKIP: "⏭️", Status.ERROR: "❓"}
_MARKUP = re.compile(r"([\\`*_\[\]()#!|~{}])")


def cell(text: str) -> str:
    """Text that stays literal in a table cell: HTML escaped, Markdown punctuation backslashed, one line."""
    return _MARKUP.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))


def fenced(text: str, language: str = "") -> list[str]:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, text, fence]


def _matrix(fleet: Fleet) -> list[str]:
    if not fleet.rows:
        return []
    header = " | ".join(f"{cell(c)}" for c in fleet.checks)
    lines = ["", "### Nodes x checks", "", f"| node | state | {header} | first broken link |"]
    lines.append("|" + "---|" * (len(fleet.checks) + 3))
    for row in fleet.rows:
        cells = row.cells
        icons = " | ".join(ICONS[cells[c].status] if c in cells else "" for c in fleet.checks)
        lines.append(f"| {cell(row.node)} | {row.state.value} | {icons} | {cell(row.headline)} |")
    return lines


def _drain(fleet: Fleet) -> list[str]:
    if not fleet.drain:
        return []
    lines = ["", f"### Nodes to drain ({len(fleet.drain)})", "", "| node | first broken link | finding | fix |"]
    lines.append("|---|---|---|---|")
    for d in fleet.drain:
        lines.append(f"| {cell(d.node)} | {cell(d.check)} | {cell(d.summary)} | {cell(d.fix)} |")
    lines += ["", "Slurm:", "", *fenced("\n".join(d.slurm for d in fleet.drain), "sh")]
    kubectl = "\n".join(f"{d.cordon}\n{d.taint}" for d in fleet.drain)
    lines += ["", "Kubernetes:", "", *fenced(kubectl, "sh")]
    return lines


def _others(fleet: Fleet) -> list[str]:
    lines = []
    incomplete = [row for row in fleet.rows if row.state is NodeState.INCOMPLETE]
    if incomplete:
        lines += ["", "### Could not complete (not drained)", ""]
        lines += [f"- {cell(row.node)}: {cell(row.headline)}" for row in incomplete]
    if fleet.missing:
        lines += ["", "### No report (hung or unreachable)", "", ", ".join(cell(n) for n in fleet.missing)]
    if fleet.unreadable:
        lines += ["", "### Unreadable reports", ""]
        lines += [f"- {cell(u.origin)}: {cell(u.error)}" for u in fleet.unreadable]
    return lines


def _stragglers(fleet: Fleet) -> list[str]:
    if not fleet.stragglers:
        return []
    ratio = fleet.policy.straggler_ratio
    lines = ["", f"### Stragglers (below {ratio:g}x the fleet median)", ""]
    lines += ["| node | GPU | UUID | model | dtype | TFLOP/s | median | ratio |", "|---|---|---|---|---|---|---|---|"]
    for s in fleet.stragglers:
        lines.append(
            f"| {cell(s.node)} | {cell(s.gpu)} | {cell(s.uuid or '')} | {cell(s.model.label)} | {cell(s.dtype)} "
            f"| {s.tflops:.1f} | {s.median:.1f} | {s.ratio:.2f} |"
        )
    return lines


def _drift(fleet: Fleet) -> list[str]:
    if not fleet.drift:
        return []
    lines = ["", "### Drift", "", "| version | fleet | nodes that differ |", "|---|---|---|"]
    for d in fleet.drift:
        differing = ", ".join(
            f"{cell(x.node)} {cell(x.value)}" + (" (below the floor)" if x.status is Status.FAIL else "")
            for x in d.deviations
        )
        lines.append(f"| {cell(d.label)} | {cell(d.mode)} ({d.nodes_at_mode}/{d.nodes_known}) | {differing} |")
    return lines


def _allreduce(fleet: Fleet) -> list[str]:
    measured = fleet.allreduce
    if measured is None:
        return []
    lines = ["", "### All-reduce across nodes", "", f"{measured.status.value}: {cell(measured.summary)}"]
    lines += ["", "| pair | busbw (GB/s) | x median | |", "|---|---|---|---|"]
    for p in measured.pairs:
        figure = f"{p.busbw_gbps:.3g}" if p.busbw_gbps is not None else "not measured"
        ratio = p.shown_ratio if p.ratio is not None else ""
        mark = ", ".join(word for word, on in (("slow", p.slow), ("wrong sums", not p.ok)) if on)
        lines.append(f"| {cell(p.a)} – {cell(p.b)} | {figure} | {ratio} | {mark} |")
    if measured.suspects:
        lines += ["", "Suspect nodes (in two or more slow pairs):", ""]
        lines += [f"- {cell(s.node)}: {cell(s.describe())}" for s in measured.suspects]
    if measured.failed:
        lines += ["", "No result:", ""] + [f"- {cell(node)}: {cell(why)}" for node, why in measured.failed]
    return lines


def render(fleet: Fleet) -> str:
    lines = ["## mldoctor fleet", "", cell(fleet.summary_line())]
    for section in (_drain, _others, _stragglers, _drift, _allreduce, _matrix):
        lines += section(fleet)
    return "\n".join(lines) + "\n"
