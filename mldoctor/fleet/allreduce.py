"""The all-reduce across nodes, judged: the whole set's bus bandwidth against what is expected, every pair of nodes
against the median pair, and the suspect nodes (in two or more slow pairs).

Pure: what the nodes measured (`allreduce_program`, carried back by `allreduce_task`) comes in as plain values,
the verdict goes out; no I/O, no clock. Each node's result is untrusted input (it came through srun's stdout):
`node_result` turns any document into a bounded NodeResult or one whose error says why it is not one.

busbw = algbw x 2(n-1)/n for an all-reduce of n ranks (nccl-tests' definition), so the whole set's figure and a
pair's figure are on the same scale: on a healthy uniform fabric they are about equal. A slow link or NIC shows in
every pair its node is in; a node in two or more slow pairs is the suspect (a pair alone cannot say which of its
two nodes is slow). With three nodes, one bad node makes two of the three pairs slow, so the median pair is itself
slow: naming a suspect reliably takes four nodes or more.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mldoctor.fleet.document import Document
from mldoctor.fleet.frames import valid_node
from mldoctor.fleet.policy import ALLREDUCE_SLOW_RATIO
from mldoctor.fleet.text import bounded, natural
from mldoctor.model import Status

CHECK = "fleet.allreduce"
DEFAULT_SLOW_RATIO = ALLREDUCE_SLOW_RATIO
MAX_PAIRS_PER_NODE = 1024
TEXT = 300


@dataclass(frozen=True, slots=True)
class Figure:
    """One all-reduce figure: the slowest rank's median time per call, as bandwidth; whether the sums were right."""

    busbw_gbps: float
    algbw_gbps: float
    seconds: float
    ok: bool = True


@dataclass(frozen=True, slots=True)
class NodeResult:
    """What one node's rank measured, or why it measured nothing (`error`, with the `stage` it stopped in)."""

    node: str
    stage: str = ""
    error: str | None = None
    backend: str = ""
    device: str = ""
    bytes: int = 0
    iters: int = 0
    torch: str = ""
    whole: Figure | None = None
    pairs: tuple[tuple[str, Figure], ...] = ()
    """(the other node, the pair's figure)."""


@dataclass(frozen=True, slots=True)
class AllreduceRun:
    """One run, as it came back: each node's result, the nodes that should have answered, how long it took, and
    why the run as a whole failed (the engine could not start it), if it did."""

    results: tuple[NodeResult, ...]
    nodes: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str = ""


@dataclass(frozen=True, slots=True)
class Pair:
    """Two nodes' all-reduce bus bandwidth against the median pair: a bad pair says one of its nodes is at
    fault, not which."""

    a: str
    b: str
    busbw_gbps: float | None
    """None: not measured (a node of the pair failed before its round)."""
    ratio: float | None = None
    """To the median pair."""
    slow: bool = False
    ok: bool = True
    """False: an all-reduce of this pair returned wrong sums (counted as slow: the pair is bad either way)."""

    @property
    def bad(self) -> bool:
        return self.slow or not self.ok

    @property
    def shown_ratio(self) -> str:
        """The ratio to the median, cut (not rounded) to two decimals: a slow pair at 0.797 of a 0.8 line reads
        0.79, never 0.80."""
        return f"{math.floor((self.ratio or 0.0) * 100) / 100:.2f}"

    def other(self, node: str) -> str:
        return self.b if node == self.a else self.a

    def describe(self) -> str:
        if self.busbw_gbps is None:
            return f"{self.a}-{self.b}: not measured"
        ratio = f" = {self.shown_ratio}x the median pair" if self.ratio is not None else ""
        return f"{self.a}-{self.b} {self.busbw_gbps:.3g} GB/s{ratio}{'' if self.ok else ', wrong sums'}"


@dataclass(frozen=True, slots=True)
class Suspect:
    """A node in two or more bad pairs: the likely culprit, which no single pair can name."""

    node: str
    pairs: tuple[Pair, ...]
    """Its bad pairs (two or more)."""

    def describe(self) -> str:
        return f"in {len(self.pairs)} slow all-reduce pairs: " + "; ".join(p.describe() for p in self.pairs)


@dataclass(frozen=True, slots=True)
class Allreduce:
    """The verdict: everything a renderer shows, and the fleet.allreduce cell of each node."""

    nodes: tuple[str, ...]
    backend: str
    device: str
    bytes: int
    iters: int
    whole: Figure | None
    status: Status
    """Of the whole set: PASS, WARN (below the expected figure, wrong sums, or a suspect), ERROR (not measured),
    SKIP (fewer than two nodes)."""
    summary: str
    min_busbw_gbps: float
    """The expected whole-set busbw (0: none given, not graded)."""
    pairs: tuple[Pair, ...]
    median_pair_gbps: float | None
    slow_ratio: float
    suspects: tuple[Suspect, ...]
    failed: tuple[tuple[str, str], ...]
    """(node, why it has no result), for nodes that should have taken part."""
    seconds: float

    def cells(self) -> dict[str, tuple[Status, str]]:
        """Each node's fleet.allreduce status and summary: ERROR where it could not take part, WARN for a suspect,
        else PASS."""
        if self.status is Status.SKIP:
            return {node: (Status.SKIP, self.summary) for node in self.nodes}
        cells: dict[str, tuple[Status, str]] = {}
        failed = dict(self.failed)
        suspects = {s.node: s for s in self.suspects}
        for node in self.nodes:
            if node in failed:
                cells[node] = (Status.ERROR, bounded(f"the all-reduce across nodes did not run here: {failed[node]}",
                                                     400))  # fmt: skip
            elif node in suspects:
                cells[node] = (Status.WARN, bounded(suspects[node].describe(), 400))
            else:
                cells[node] = (Status.PASS, "")
        return cells


def _number(value: Any, low: float = 0.0, high: float = 1e9) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if low <= value <= high else None


def _figure(data: Any) -> Figure | None:
    if not isinstance(data, Mapping):
        return None
    busbw, algbw, seconds = (_number(data.get(k)) for k in ("busbw_gbps", "algbw_gbps", "seconds"))
    if busbw is None or algbw is None or seconds is None:
        return None
    return Figure(busbw, algbw, seconds, data.get("ok") is not False)


def node_result(document: Document) -> NodeResult:
    """A node's result from what its task sent: bounded, every field checked; an error result otherwise."""
    node = document.name_hint or bounded(document.origin, 128)
    data = document.data
    if document.error is not None or not isinstance(data, Mapping):
        return NodeResult(node, "task", bounded(document.error or "not a result", TEXT))
    if isinstance(data.get("node"), str) and valid_node(data["node"]):
        node = data["node"]
    error = data.get("error")
    pairs = []
    for item in data.get("pairs") or []:
        if not isinstance(item, Mapping) or len(pairs) >= MAX_PAIRS_PER_NODE:
            continue
        peer, figure = item.get("peer_node"), _figure(item)
        if isinstance(peer, str) and valid_node(peer) and peer != node and figure is not None:
            pairs.append((peer, figure))
    nbytes, iters = _number(data.get("bytes"), 0, 1 << 40), _number(data.get("iters"), 0, 1e6)
    return NodeResult(
        node=node,
        stage=bounded(data.get("stage") or "", 40),
        error=bounded(error, TEXT) if error else None,
        backend=bounded(data.get("backend") or "", 20),
        device=bounded(data.get("device") or "", 20),
        bytes=int(nbytes or 0),
        iters=int(iters or 0),
        torch=bounded(data.get("torch") or "", 64),
        whole=_figure(data.get("whole")),
        pairs=tuple(pairs),
    )


def _pairs(results: Iterable[NodeResult], nodes: list[str], ratio: float) -> tuple[list[Pair], float | None]:
    """Every pair of `nodes` once: its figure is the lower of what its two nodes reported (they agree, each took the
    slowest rank's time), and slow when below `ratio` x the median of the measured pairs."""
    measured: dict[frozenset[str], Figure] = {}
    for result in results:
        for peer, figure in result.pairs:
            key = frozenset((result.node, peer))
            if key not in measured or figure.busbw_gbps < measured[key].busbw_gbps:
                measured[key] = Figure(figure.busbw_gbps, figure.algbw_gbps, figure.seconds,
                                       figure.ok and measured.get(key, figure).ok)  # fmt: skip
    known = [f.busbw_gbps for f in measured.values()]
    median = statistics.median(known) if known else None
    pairs = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            figure = measured.get(frozenset((a, b)))
            if figure is None or median is None:
                pairs.append(Pair(a, b, None))
                continue
            share = figure.busbw_gbps / median if median > 0 else None
            slow = share is not None and share < ratio
            pairs.append(Pair(a, b, figure.busbw_gbps, share, slow, figure.ok))
    return pairs, median


def judge(run: AllreduceRun, slow_ratio: float = DEFAULT_SLOW_RATIO, min_busbw_gbps: float = 0.0) -> Allreduce:
    """The verdict on one run: the whole set's busbw (graded against `min_busbw_gbps` when it is given), every
    pair against the median pair, the suspects, and the nodes that could not take part."""
    by_node = {r.node: r for r in run.results}
    nodes = sorted(set(run.nodes) | set(by_node), key=natural)
    if len(nodes) < 2 and not run.error:
        summary = f"{len(nodes)} node{'' if len(nodes) == 1 else 's'}: an all-reduce across nodes needs two or more"
        return Allreduce(tuple(nodes), "", "", 0, 0, None, Status.SKIP, summary, min_busbw_gbps, (), None, slow_ratio,
                         (), (), run.seconds)  # fmt: skip
    failed: list[tuple[str, str]] = []
    for node in nodes:
        result = by_node.get(node)
        if run.error and (result is None or result.error):
            failed.append((node, run.error))
        elif result is None:
            failed.append((node, "no result came (the task hung or never started)"))
        elif result.error:
            stage = f" (stage {result.stage})" if result.stage not in ("", "task") else ""
            failed.append((node, f"{result.error}{stage}"))
    pairs, median = _pairs(by_node.values(), nodes, slow_ratio)
    bad_pairs: dict[str, list[Pair]] = {}
    for pair in pairs:
        if pair.bad:
            bad_pairs.setdefault(pair.a, []).append(pair)
            bad_pairs.setdefault(pair.b, []).append(pair)
    suspects = [Suspect(node, tuple(bad_pairs[node])) for node in nodes if len(bad_pairs.get(node, ())) >= 2]
    wholes = [r.whole for r in by_node.values() if r.whole is not None]
    whole = min(wholes, key=lambda f: f.busbw_gbps) if wholes else None
    if whole is not None:
        whole = Figure(whole.busbw_gbps, whole.algbw_gbps, whole.seconds, all(f.ok for f in wholes))
    first = next((r for r in by_node.values() if r.backend), NodeResult(""))
    status, summary = _grade(whole, min_busbw_gbps, suspects, failed, len(nodes), first.backend, first.device)
    return Allreduce(
        nodes=tuple(nodes),
        backend=first.backend,
        device=first.device,
        bytes=first.bytes,
        iters=first.iters,
        whole=whole,
        status=status,
        summary=summary,
        min_busbw_gbps=min_busbw_gbps,
        pairs=tuple(pairs),
        median_pair_gbps=median,
        slow_ratio=slow_ratio,
        suspects=tuple(suspects),
        failed=tuple(failed),
        seconds=run.seconds,
    )


def _grade(
    whole: Figure | None,
    expected: float,
    suspects: list[Suspect],
    failed: list[tuple[str, str]],
    count: int,
    backend: str,
    device: str,
) -> tuple[Status, str]:
    if whole is None:
        why = f"; {failed[0][0]}: {failed[0][1]}" if failed else ""
        return Status.ERROR, bounded(f"the all-reduce across {count} nodes did not complete{why}", 400)
    text = f"{backend} on the {device.upper() or '?'} across {count} nodes: busbw {whole.busbw_gbps:.3g} GB/s"
    problems = []
    if expected and whole.busbw_gbps < expected:
        problems.append(f"below the expected {expected:g} GB/s ({whole.busbw_gbps / expected:.2f}x)")
    if not whole.ok:
        problems.append("wrong sums")
    if suspects:
        problems.append(f"suspect node{'s' if len(suspects) > 1 else ''}: {', '.join(s.node for s in suspects)}")
    if failed:
        problems.append(f"{len(failed)} node{'s' if len(failed) > 1 else ''} without a result")
    status = Status.ERROR if failed else Status.WARN if problems else Status.PASS
    return status, bounded(text + (f"; {'; '.join(problems)}" if problems else ""), 400)
