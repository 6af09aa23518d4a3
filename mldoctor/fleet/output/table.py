"""Plain text for a terminal or a log: the matrix, then what to do. Lines are never wrapped, so a drain command
is always pasted whole; untrusted text was stripped of control characters (no terminal escapes get through)."""

from __future__ import annotations

from mldoctor.fleet.aggregate import Fleet, NodeState
from mldoctor.model import Status

GLYPHS = {Status.PASS: ".", Status.WARN: "W", Status.FAIL: "F", Status.SKIP: "s", Status.ERROR: "E"}
NOT_RUN = " "


def _matrix(fleet: Fleet) -> list[str]:
    if not fleet.rows:
        return []
    width = max(len(row.node) for row in fleet.rows)
    columns = len(fleet.checks)
    legend = "  ".join(f"{glyph} {status.value}" for status, glyph in GLYPHS.items())
    lines = ["", f"Nodes x checks ({legend}; blank: not run; columns numbered below)"]
    if columns >= 10:
        lines.append(
            " " * (width + 2) + "".join(str((i + 1) // 10 % 10) if (i + 1) >= 10 else " " for i in range(columns))
        )
    lines.append(" " * (width + 2) + "".join(str((i + 1) % 10) for i in range(columns)))
    for row in fleet.rows:
        cells = row.cells
        glyphs = "".join(GLYPHS[cells[c].status] if c in cells else NOT_RUN for c in fleet.checks)
        lines.append(f"{row.node:<{width}}  {glyphs}  {row.state.value:<10}  {row.headline}".rstrip())
    lines.append("columns: " + ", ".join(f"{i + 1} {check}" for i, check in enumerate(fleet.checks)))
    return lines


def _drain(fleet: Fleet) -> list[str]:
    if not fleet.drain:
        return []
    lines = ["", f"Nodes to drain ({len(fleet.drain)}):"]
    for line in fleet.drain:
        lines.append(f"{line.node}  {line.check}: {line.summary}")
        fix = line.fix.splitlines() or ["(no fix recorded)"]
        lines += [f"    fix: {fix[0]}", *(f"         {more}" for more in fix[1:])]
        lines += [f"    slurm: {line.slurm}", f"    k8s:   {line.cordon}", f"           {line.taint}"]
    return lines


def _not_judged(fleet: Fleet) -> list[str]:
    lines = []
    incomplete = [row for row in fleet.rows if row.state is NodeState.INCOMPLETE]
    if incomplete:
        lines += ["", f"Could not complete ({len(incomplete)}; not drained: rerun mldoctor check there):"]
        lines += [f"{row.node}  {row.headline}" for row in incomplete]
    if fleet.missing:
        lines += ["", f"No report, hung or unreachable ({len(fleet.missing)}; not drained):"]
        lines += ["  " + " ".join(fleet.missing)]
    if fleet.unreadable:
        lines += ["", f"Unreadable reports ({len(fleet.unreadable)}):"]
        lines += [f"{u.origin}: {u.error}" for u in fleet.unreadable]
    if fleet.duplicates:
        lines += ["", f"Nodes with several reports (the newest is used): {' '.join(fleet.duplicates)}"]
    return lines


def _stragglers(fleet: Fleet) -> list[str]:
    if not fleet.stragglers:
        return []
    lines = [
        "",
        f"Stragglers ({len(fleet.stragglers)} figures below {fleet.policy.straggler_ratio:g}x the fleet median;",
        "on the node, `nvidia-smi -q -d PERFORMANCE,CLOCK,POWER,TEMPERATURE -i GPU` shows throttling and caps):",
    ]
    for s in fleet.stragglers:
        uuid = f" {s.uuid}" if s.uuid else ""
        lines.append(
            f"{s.node}  GPU {s.gpu}{uuid}  {s.dtype} {s.tflops:.1f} TFLOP/s  {s.ratio:.2f}x of {s.median:.1f}  "
            f"({s.model.label})"
        )
    return lines


def _drift(fleet: Fleet) -> list[str]:
    if not fleet.drift:
        return []
    lines = ["", "Drift (the fleet's most common version, and the nodes that differ):"]
    for d in fleet.drift:
        floor = f"; floor {d.floor}" if d.floor else ""
        lines.append(f"{d.label}: {d.mode} on {d.nodes_at_mode} of {d.nodes_known} nodes{floor}")
        for deviation in d.deviations:
            below = "  FAIL: below the floor" if deviation.status is Status.FAIL else ""
            lines.append(f"    {deviation.node}  {deviation.value}{below}")
    return lines


def _allreduce(fleet: Fleet) -> list[str]:
    measured = fleet.allreduce
    if measured is None:
        return []
    size = f"{measured.bytes / (1 << 20):g} MiB x {measured.iters}" if measured.bytes else "not measured"
    lines = ["", f"All-reduce across nodes ({size}, {measured.seconds:.1f} s; busbw = algbw x 2(n-1)/n):"]
    lines.append(f"whole set: {measured.status.value}: {measured.summary}")
    median = f"{measured.median_pair_gbps:.3g} GB/s" if measured.median_pair_gbps is not None else "none"
    lines.append(f"pairs ({len(measured.pairs)}; median {median}; slow below {measured.slow_ratio:g}x the median):")
    for pair in measured.pairs:
        mark = "  SLOW" if pair.slow else ""
        mark += "  WRONG SUMS" if not pair.ok else ""
        figure = f"{pair.busbw_gbps:.3g} GB/s" if pair.busbw_gbps is not None else "not measured"
        ratio = f"  {pair.shown_ratio}x" if pair.ratio is not None else ""
        lines.append(f"    {pair.a} - {pair.b}  {figure}{ratio}{mark}")
    for suspect in measured.suspects:
        lines.append(f"suspect: {suspect.node} ({suspect.describe()})")
    for node, why in measured.failed:
        lines.append(f"no result: {node}: {why}")
    return lines


def render(fleet: Fleet) -> str:
    lines = [f"mldoctor fleet: {fleet.summary_line()}"]
    for section in (_matrix, _drain, _not_judged, _stragglers, _drift, _allreduce):
        lines += section(fleet)
    return "\n".join(lines) + "\n"
