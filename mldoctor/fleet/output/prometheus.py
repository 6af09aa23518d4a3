"""node_exporter textfile format for the fleet: node states, per-check status, stragglers (node and GPU labels),
per-model medians, drift and the drain list. Label values are escaped as the exposition format requires
(backslash, double quote, newline); no timestamps (textfiles must not carry them).

Per-check status is one sample per node and check with its status as a label (value 1), not a full state set:
a fleet of 10,000 nodes would otherwise write five samples per check per node.
"""

from __future__ import annotations

from mldoctor.fleet.aggregate import Fleet, NodeState
from mldoctor.fleet.allreduce import Allreduce


def label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{label(value)}"' for key, value in labels.items()) + "}"


def _metric(lines: list[str], name: str, help_text: str) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]


def _allreduce(lines: list[str], measured: Allreduce) -> None:
    _metric(
        lines, "mldoctor_fleet_allreduce_busbw_gbps", "All-reduce bus bandwidth across nodes: the whole set, each pair."
    )
    if measured.whole is not None:
        lines.append(f"mldoctor_fleet_allreduce_busbw_gbps{_labels(scope='all')} {measured.whole.busbw_gbps:.6g}")
    for p in measured.pairs:
        if p.busbw_gbps is not None:
            lines.append(f"mldoctor_fleet_allreduce_busbw_gbps{_labels(scope='pair', a=p.a, b=p.b)} {p.busbw_gbps:.6g}")
    _metric(lines, "mldoctor_fleet_allreduce_suspect", "A node in two or more slow all-reduce pairs.")
    lines += [f"mldoctor_fleet_allreduce_suspect{_labels(node=s.node)} 1" for s in measured.suspects]


def render(fleet: Fleet) -> str:
    lines: list[str] = []
    _metric(lines, "mldoctor_fleet_nodes", "Nodes per state in the last fleet aggregation.")
    lines += [f"mldoctor_fleet_nodes{_labels(state=s.value)} {fleet.count(s)}" for s in NodeState]
    states = [s for s in NodeState if s is not NodeState.UNREADABLE]
    _metric(lines, "mldoctor_fleet_node_state", "State of each node (1 for its state, 0 for the others).")
    for node, state in [(row.node, row.state) for row in fleet.rows] + [(n, NodeState.MISSING) for n in fleet.missing]:
        lines += [f"mldoctor_fleet_node_state{_labels(node=node, state=s.value)} {int(s is state)}" for s in states]
    _metric(lines, "mldoctor_fleet_check_status", "Each check's status on each node (the status is a label).")
    for row in fleet.rows:
        for cell in row.cells.values():
            labels = _labels(node=row.node, check=cell.id, status=cell.status.value.lower())
            lines.append(f"mldoctor_fleet_check_status{labels} 1")
    _metric(lines, "mldoctor_fleet_model_median_tflops", "Fleet median matmul TFLOP/s per GPU model and dtype.")
    for g in fleet.groups:
        lines.append(f"mldoctor_fleet_model_median_tflops{_labels(model=g.model.label, dtype=g.dtype)} {g.median:.6g}")
    _metric(lines, "mldoctor_fleet_straggler_ratio", "A straggler GPU's matmul TFLOP/s over its model's fleet median.")
    for s in fleet.stragglers:
        labels = _labels(node=s.node, gpu=s.gpu, uuid=s.uuid or "", model=s.model.label, dtype=s.dtype)
        lines.append(f"mldoctor_fleet_straggler_ratio{labels} {s.ratio:.6g}")
    _metric(lines, "mldoctor_fleet_version_drift", "A node whose version differs from the fleet's (or a floor).")
    for d in fleet.drift:
        for x in d.deviations:
            labels = _labels(field=d.field, node=x.node, value=x.value, fleet=d.mode, status=x.status.value.lower())
            lines.append(f"mldoctor_fleet_version_drift{labels} 1")
    _metric(lines, "mldoctor_fleet_drain", "A node to drain, with its first broken link.")
    lines += [f"mldoctor_fleet_drain{_labels(node=d.node, check=d.check)} 1" for d in fleet.drain]
    if fleet.allreduce is not None:
        _allreduce(lines, fleet.allreduce)
    _metric(lines, "mldoctor_fleet_unreadable_reports", "Reports that could not be read.")
    lines.append(f"mldoctor_fleet_unreadable_reports {len(fleet.unreadable)}")
    return "\n".join(lines) + "\n"
