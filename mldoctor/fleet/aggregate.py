"""The fleet aggregate: one streaming pass over the documents, then the fleet-wide judgements.

Only NodeSummary objects are kept (a few KiB per node); each report is dropped as soon as its summary is taken.
The node states, the matrix columns, stragglers, drift and the drain list are computed from the summaries, and
the Fleet that comes out is everything a renderer needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from mldoctor.fleet import allreduce as allreduce_check
from mldoctor.fleet import drift, stragglers
from mldoctor.fleet.drain import DrainLine, drain_line
from mldoctor.fleet.node import NAME_LIMIT, CheckCell, Link, NodeSummary, ReportError, summarise
from mldoctor.fleet.policy import FleetPolicy
from mldoctor.fleet.sources import Document
from mldoctor.fleet.text import bounded, natural
from mldoctor.model import AREAS, Status

STRAGGLER_CHECK = "fleet.straggler"
DRIFT_CHECK = "fleet.drift"
ALLREDUCE_CHECK = allreduce_check.CHECK
EXIT_OK, EXIT_FAIL, EXIT_INCOMPLETE = 0, 1, 3
"""2 (usage) comes from click, before any report is read."""


class NodeState(str, Enum):
    FAIL = "fail"
    """A check FAILed on the node, or it is below a policy floor: drain it."""
    INCOMPLETE = "incomplete"
    """A check could not run (ERROR) and none FAILed: mldoctor could not complete there; never drained."""
    WARN = "warn"
    PASS = "pass"
    UNREADABLE = "unreadable"
    """A report came but could not be read."""
    MISSING = "no report"
    """Expected, but no report came: the node hung or is unreachable."""


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One node's row of the fleet matrix: its summary, its state, and what the fleet found about it."""

    summary: NodeSummary
    state: NodeState
    link: Link | None
    """The first broken link, for a FAIL node: its own first FAIL, else the fleet's finding against it."""
    fleet: tuple[CheckCell, ...]
    """What the fleet found about this node (fleet.straggler, fleet.drift)."""

    @property
    def node(self) -> str:
        return self.summary.node

    @property
    def headline(self) -> str:
        """What to look at on this node: its first broken link, else its first check that could not run (for a
        node that could not complete) or its first WARN; empty for a node that passed."""
        if self.link is not None:
            return f"{self.link.check}: {self.link.summary}"
        wanted = Status.ERROR if self.state is NodeState.INCOMPLETE else Status.WARN
        cell = next((c for c in (*self.summary.checks, *self.fleet) if c.status is wanted), None)
        return f"{cell.id}: {cell.summary}" if cell else ""

    @property
    def cells(self) -> dict[str, CheckCell]:
        return {cell.id: cell for cell in (*self.summary.checks, *self.fleet)}


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A report that came but could not be read: where it came from, and why."""

    origin: str
    error: str
    node: str | None = None
    """The node it was presumably for (its file name), so an expected node is not also reported missing."""


@dataclass(frozen=True)
class Fleet:
    """The fleet, judged: a row per node, the matrix's columns, the reports unreadable or missing, and the fleet-wide
    findings (stragglers, drift, nodes to drain, the all-reduce); everything a renderer needs."""

    policy: FleetPolicy
    rows: tuple[NodeRow, ...]
    """Worst first (FAIL, INCOMPLETE, WARN, PASS), then by node name."""
    checks: tuple[str, ...]
    """The matrix's columns, in chain order, then the fleet's own checks."""
    unreadable: tuple[Unreadable, ...]
    missing: tuple[str, ...]
    duplicates: tuple[str, ...]
    """Nodes with more than one report (the newest is used)."""
    groups: tuple[stragglers.ModelGroup, ...]
    stragglers: tuple[stragglers.Straggler, ...]
    drift: tuple[drift.Drift, ...]
    drain: tuple[DrainLine, ...]
    allreduce: allreduce_check.Allreduce | None = None
    """The all-reduce across the nodes, when the run measured it (`fleet run --slurm --allreduce`)."""

    def count(self, state: NodeState) -> int:
        if state is NodeState.UNREADABLE:
            return len(self.unreadable)
        if state is NodeState.MISSING:
            return len(self.missing)
        return sum(1 for row in self.rows if row.state is state)

    def summary_line(self) -> str:
        counts = [f"{self.count(state)} {state.value}" for state in NodeState if self.count(state)]
        return (
            f"{len(self.rows)} node report{'s' if len(self.rows) != 1 else ''}: {', '.join(counts) or 'none'}; "
            f"{len(self.stragglers)} straggler figure{'s' if len(self.stragglers) != 1 else ''}, "
            f"{len(self.drift)} drifted version{'s' if len(self.drift) != 1 else ''}, "
            f"{len(self.drain)} node{'s' if len(self.drain) != 1 else ''} to drain"
            + (f"; all-reduce {self.allreduce.status.value}" if self.allreduce else "")
        )


def exit_code(fleet: Fleet) -> int:
    """1 when a node FAILed (a host problem outranks a tool problem); else 3 when a node's run could not complete,
    its report could not be read or never came (a fleet preflight must not pass on nodes nobody checked); else 0."""
    if fleet.count(NodeState.FAIL):
        return EXIT_FAIL
    if fleet.count(NodeState.INCOMPLETE) or fleet.unreadable or fleet.missing:
        return EXIT_INCOMPLETE
    return EXIT_OK


@dataclass(frozen=True)
class Reading:
    """The reports, read: one summary per node, what could not be read, and the nodes with several reports."""

    nodes: dict[str, NodeSummary]
    unreadable: list[Unreadable]
    duplicates: set[str]


def read(documents: Iterable[Document]) -> Reading:
    """Read `documents` one at a time into summaries (each report is dropped once its summary is taken)."""
    nodes: dict[str, NodeSummary] = {}
    unreadable: list[Unreadable] = []
    duplicates: set[str] = set()
    for document in documents:
        try:
            if document.error is not None:
                raise ReportError(document.error)
            summary = summarise(document.data, document.origin, document.name_hint)
        except ReportError as exc:
            hint = bounded(document.name_hint, NAME_LIMIT) if document.name_hint else None
            unreadable.append(Unreadable(bounded(document.origin, 300), bounded(exc, 300), hint))
            continue
        previous = nodes.get(summary.node)
        if previous is not None:
            duplicates.add(summary.node)
            if previous.created > summary.created:
                continue
        nodes[summary.node] = summary
    return Reading(nodes, unreadable, duplicates)


def _columns(nodes: Iterable[NodeSummary], fleet_checks: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for node in nodes:
        for cell in node.checks:
            seen.setdefault(cell.id, None)
    order = list(AREAS)
    area = {check: order.index(a) if (a := check.split(".", 1)[0]) in order else len(order) for check in seen}
    return (*sorted(seen, key=lambda check: area[check]), *fleet_checks)


def _fleet_findings(
    found_stragglers: list[stragglers.Straggler], drifts: list[drift.Drift]
) -> tuple[dict[str, list[CheckCell]], dict[str, Link]]:
    """What the fleet found about each node (a fleet.straggler and a fleet.drift cell), and for a node below a
    policy floor the link to drain it by (with its fix)."""
    cells: dict[str, list[CheckCell]] = {}
    links: dict[str, Link] = {}
    by_node: dict[str, list[stragglers.Straggler]] = {}
    for straggler in found_stragglers:
        by_node.setdefault(straggler.node, []).append(straggler)
    for node, slow in by_node.items():
        cells.setdefault(node, []).append(
            CheckCell(STRAGGLER_CHECK, Status.WARN, bounded(stragglers.describe(slow), 400))
        )
    deviations: dict[str, list[tuple[drift.Drift, drift.Deviation]]] = {}
    for found in drifts:
        for deviation in found.deviations:
            deviations.setdefault(deviation.node, []).append((found, deviation))
    for node, items in deviations.items():
        status = Status.FAIL if any(d.status is Status.FAIL for _, d in items) else Status.WARN
        shown = [(f, d) for f, d in items if d.status is status]
        cell = CheckCell(DRIFT_CHECK, status, bounded("; ".join(f.describe(d) for f, d in shown), 400))
        cells.setdefault(node, []).append(cell)
        if status is Status.FAIL:
            needs = " and ".join(f"{f.label} >= {f.floor}" for f, _ in shown)
            fix = f"upgrade the NVIDIA driver on this node to meet {needs} (`mldoctor check` there prints how)"
            links[node] = Link(DRIFT_CHECK, cell.summary, fix)
    return cells, links


def _row(summary: NodeSummary, fleet_cells: tuple[CheckCell, ...], fleet_link: Link | None) -> NodeRow:
    link = summary.link or fleet_link
    if link is not None:
        state = NodeState.FAIL
    elif summary.has(Status.ERROR) or any(cell.status is Status.ERROR for cell in fleet_cells):
        state = NodeState.INCOMPLETE
    elif any(cell.status is Status.WARN for cell in (*summary.checks, *fleet_cells)):
        state = NodeState.WARN
    else:
        state = NodeState.PASS
    return NodeRow(summary, state, link, fleet_cells)


ORDER = (NodeState.FAIL, NodeState.INCOMPLETE, NodeState.WARN, NodeState.PASS)


def aggregate(
    documents: Iterable[Document],
    policy: FleetPolicy | None = None,
    expected: Iterable[str] = (),
    allreduce: allreduce_check.AllreduceRun | None = None,
) -> Fleet:
    """Read `documents` one at a time into summaries, then judge the fleet; `expected` names the nodes that should
    have reported (those that did not are "no report"); `allreduce` is what the nodes measured together, if any."""
    return judge(read(documents), policy, expected, allreduce)


def judge(
    reading: Reading,
    policy: FleetPolicy | None = None,
    expected: Iterable[str] = (),
    allreduce: allreduce_check.AllreduceRun | None = None,
) -> Fleet:
    """The fleet verdict on reports already read (pure): states, stragglers, drift, the all-reduce, the drain list."""
    policy = policy or FleetPolicy()
    nodes, unreadable, duplicates = reading.nodes, reading.unreadable, reading.duplicates
    groups, slow = stragglers.find(nodes.values(), policy.straggler_ratio)
    drifts = drift.find(nodes.values(), policy.floors())
    cells, links = _fleet_findings(slow, drifts)
    measured = None
    if allreduce is not None:
        measured = allreduce_check.judge(allreduce, policy.allreduce_slow_ratio, policy.allreduce_min_busbw)
        for node, (status, summary) in measured.cells().items():
            cells.setdefault(node, []).append(CheckCell(ALLREDUCE_CHECK, status, summary))
    rows = sorted(
        (_row(summary, tuple(cells.get(name, ())), links.get(name)) for name, summary in nodes.items()),
        key=lambda row: (ORDER.index(row.state), natural(row.node)),
    )
    accounted = set(nodes) | {u.node for u in unreadable if u.node}
    missing = sorted({n for n in expected if n not in accounted}, key=natural)
    found_ids = {cell.id for node_cells in cells.values() for cell in node_cells}
    fleet_checks = [check for check in (STRAGGLER_CHECK, DRIFT_CHECK, ALLREDUCE_CHECK) if check in found_ids]
    return Fleet(
        policy=policy,
        rows=tuple(rows),
        checks=_columns(nodes.values(), fleet_checks),
        unreadable=tuple(unreadable),
        missing=tuple(missing),
        duplicates=tuple(sorted(duplicates, key=natural)),
        groups=tuple(groups),
        stragglers=tuple(slow),
        drift=tuple(drifts),
        drain=tuple(drain_line(row.node, row.link) for row in rows if row.state is NodeState.FAIL and row.link),
        allreduce=measured,
    )
