"""A self-contained HTML page for the fleet (no script, no external resource): the drain list, a heatmap of
nodes x checks, a ratio histogram per GPU model with the stragglers listed, the drift table, and the all-reduce's
pair matrix.

Every piece of report text goes through `esc` (html.escape with quotes), in element text and attributes alike.
"""

from __future__ import annotations

from html import escape

from mldoctor import __version__
from mldoctor.fleet.aggregate import Fleet, NodeState
from mldoctor.fleet.stragglers import BINS, ModelGroup
from mldoctor.model import Status

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
pre{background:#f6f6f6;padding:4px 6px;margin:2px 0;white-space:pre;overflow-x:auto}
.hm td{width:12px;height:12px;padding:0}.hm td.n{width:auto;padding:0 6px;white-space:nowrap}
.hm th.c{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;font-size:11px;padding:2px 0}
.PASS{background:#3a3}.WARN{background:#e6b400}.FAIL{background:#d22}.SKIP{background:#ccc}.ERROR{background:#a3c}
.x{background:#fff}.fail{color:#d22;font-weight:bold}.incomplete{color:#a3c}.warn{color:#b58900}
"""


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def _drain(fleet: Fleet) -> list[str]:
    if not fleet.drain:
        return []
    out = [f"<h2>Nodes to drain ({len(fleet.drain)})</h2>", "<table><tr><th>node</th><th>first broken link</th>"]
    out.append("<th>fix</th><th>commands</th></tr>")
    for d in fleet.drain:
        commands = esc("\n".join(d.commands))
        out.append(
            f"<tr><td>{esc(d.node)}</td><td><b>{esc(d.check)}</b>: {esc(d.summary)}</td>"
            f"<td><pre>{esc(d.fix)}</pre></td><td><pre>{commands}</pre></td></tr>"
        )
    return [*out, "</table>"]


def _heatmap(fleet: Fleet) -> list[str]:
    if not fleet.rows:
        return []
    out = ["<h2>Nodes x checks</h2>", '<table class="hm"><tr><th>node</th>']
    out += [f'<th class="c">{esc(check)}</th>' for check in fleet.checks]
    out.append("<th>first broken link / finding</th></tr>")
    for row in fleet.rows:
        cells = row.cells
        tds = []
        for check in fleet.checks:
            cell = cells.get(check)
            if cell is None:
                tds.append('<td class="x" title="not run"></td>')
            else:
                title = f"{check}: {cell.status.value}" + (f": {cell.summary}" if cell.summary else "")
                tds.append(f'<td class="{cell.status.value}" title="{esc(title)}"></td>')
        state = row.state.value
        out.append(
            f'<tr><td class="n {esc(state)}">{esc(row.node)}</td>{"".join(tds)}'
            f'<td class="n">{esc(row.headline)}</td></tr>'
        )
    return [*out, "</table>"]


def _histogram(group: ModelGroup, ratio: float) -> str:
    """An SVG bar chart of the GPUs' ratios to their median, bins below the straggler line in red."""
    width, height, bar = 16 * len(BINS), 90, 16
    top = max(group.histogram) or 1
    parts = [f'<svg width="{width + 40}" height="{height + 30}" role="img">']
    for i, count in enumerate(group.histogram):
        h = round((height - 10) * count / top)
        colour = "#d22" if BINS[i] + 0.05 <= ratio + 1e-9 else "#3a3"
        parts.append(
            f'<rect x="{i * bar}" y="{height - h}" width="{bar - 2}" height="{h}" fill="{colour}">'
            f"<title>{BINS[i]:.2f}x: {count} GPUs</title></rect>"
        )
    x = round((ratio - BINS[0]) / 0.05 * bar)
    parts.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{height}" stroke="#000" stroke-dasharray="3"/>')
    parts.append(f'<text x="0" y="{height + 14}" font-size="10">{BINS[0]:.2f}x</text>')
    parts.append(f'<text x="{width - 30}" y="{height + 14}" font-size="10">{BINS[-1]:.2f}x+</text>')
    return "".join(parts) + "</svg>"


def _stragglers(fleet: Fleet) -> list[str]:
    if not fleet.groups:
        return []
    ratio = fleet.policy.straggler_ratio
    out = [f"<h2>GPU speed against the fleet median (stragglers below {ratio:g}x)</h2>"]
    for group in fleet.groups:
        out.append(
            f"<h3>{esc(group.model.label)}, {esc(group.dtype)}: {group.gpus} GPUs, median {group.median:.1f} TFLOP/s"
            f"</h3>{_histogram(group, ratio)}"
        )
    if fleet.stragglers:
        out.append("<table><tr><th>node</th><th>GPU</th><th>UUID</th><th>model</th><th>dtype</th>")
        out.append("<th>TFLOP/s</th><th>median</th><th>ratio</th></tr>")
        for s in fleet.stragglers:
            out.append(
                f"<tr><td>{esc(s.node)}</td><td>{esc(s.gpu)}</td><td>{esc(s.uuid or '')}</td>"
                f"<td>{esc(s.model.label)}</td><td>{esc(s.dtype)}</td><td>{s.tflops:.1f}</td><td>{s.median:.1f}</td>"
                f"<td>{s.ratio:.2f}</td></tr>"
            )
        out.append("</table>")
    return out


def _drift(fleet: Fleet) -> list[str]:
    if not fleet.drift:
        return []
    out = ["<h2>Drift</h2>", "<table><tr><th>version</th><th>fleet</th><th>floor</th><th>nodes that differ</th></tr>"]
    for d in fleet.drift:
        differing = ", ".join(
            f'<span class="{"fail" if x.status is Status.FAIL else "warn"}">{esc(x.node)} {esc(x.value)}</span>'
            for x in d.deviations
        )
        out.append(
            f"<tr><td>{esc(d.label)}</td><td>{esc(d.mode)} ({d.nodes_at_mode}/{d.nodes_known})</td>"
            f"<td>{esc(d.floor or '')}</td><td>{differing}</td></tr>"
        )
    return [*out, "</table>"]


MATRIX_NODES = 64
"""Above this many nodes the pair matrix would be too large to read: only the slow pairs are listed."""


def _allreduce(fleet: Fleet) -> list[str]:
    measured = fleet.allreduce
    if measured is None:
        return []
    out = ["<h2>All-reduce across nodes</h2>", f'<p class="{esc(measured.status.value.lower())}">'
           f"{esc(measured.status.value)}: {esc(measured.summary)}</p>"]  # fmt: skip
    median = measured.median_pair_gbps
    out.append(
        f"<p>busbw = algbw x 2(n-1)/n per pair of nodes, GB/s; median pair {median or 0:.3g}; "
        f"slow (amber) below {measured.slow_ratio:g}x the median.</p>"
    )
    pairs = {frozenset((p.a, p.b)): p for p in measured.pairs}
    if len(measured.nodes) <= MATRIX_NODES:
        out.append("<table><tr><th></th>" + "".join(f"<th>{esc(n)}</th>" for n in measured.nodes) + "</tr>")
        for a in measured.nodes:
            tds = []
            for b in measured.nodes:
                pair = pairs.get(frozenset((a, b)))
                if pair is None or pair.busbw_gbps is None:
                    tds.append('<td class="x"></td>' if a == b else '<td class="SKIP" title="not measured"></td>')
                    continue
                kind = "WARN" if pair.bad else "x"
                tds.append(f'<td class="{kind}" title="{esc(pair.describe())}">{pair.busbw_gbps:.3g}</td>')
            out.append(f"<tr><th>{esc(a)}</th>{''.join(tds)}</tr>")
        out.append("</table>")
    else:
        out += ["<ul>", *(f"<li>{esc(p.describe())}</li>" for p in measured.pairs if p.bad), "</ul>"]
    if measured.suspects:
        out += ["<ul>", *(f'<li class="warn">suspect {esc(s.node)}: {esc(s.describe())}</li>'
                          for s in measured.suspects), "</ul>"]  # fmt: skip
    if measured.failed:
        out += ["<ul>", *(f"<li>no result: {esc(node)}: {esc(why)}</li>" for node, why in measured.failed), "</ul>"]
    return out


def _others(fleet: Fleet) -> list[str]:
    out = []
    incomplete = [row for row in fleet.rows if row.state is NodeState.INCOMPLETE]
    if incomplete:
        out.append("<h2>Could not complete (not drained)</h2><ul>")
        out += [f"<li>{esc(row.node)}: {esc(row.headline)}</li>" for row in incomplete]
        out.append("</ul>")
    if fleet.missing:
        out.append(f"<h2>No report (hung or unreachable)</h2><p>{esc(' '.join(fleet.missing))}</p>")
    if fleet.unreadable:
        out.append("<h2>Unreadable reports</h2><ul>")
        out += [f"<li>{esc(u.origin)}: {esc(u.error)}</li>" for u in fleet.unreadable]
        out.append("</ul>")
    return out


def render(fleet: Fleet) -> str:
    body = [f"<h1>mldoctor fleet</h1><p>{esc(fleet.summary_line())}</p>"]
    for section in (_drain, _others, _heatmap, _stragglers, _drift, _allreduce):
        body += section(fleet)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="generator" content="mldoctor {esc(__version__)}"><title>mldoctor fleet</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
