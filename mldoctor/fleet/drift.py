"""Drift: versions that differ across the fleet, against the fleet's most common value.

A node on another driver, kernel or NCCL than its peers is where a job behaves differently; the mode is what the
fleet "is", the others are listed. A policy floor (the oldest driver or CUDA version the team's images need)
turns a node below it into a FAIL whatever the mode is, so a fleet that drifted together is still caught.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mldoctor.fleet.node import VERSIONS, NodeSummary
from mldoctor.model import Status


@dataclass(frozen=True, slots=True)
class Deviation:
    """A node whose value differs from the fleet's most common one, or is below the policy floor."""

    node: str
    value: str
    status: Status
    """WARN: differs from the mode; FAIL: below the policy floor."""


@dataclass(frozen=True, slots=True)
class Drift:
    """One version (driver, kernel, NCCL, ...) that differs across the fleet: the mode, how many nodes have it, the
    policy floor, and the nodes that deviate."""

    field: str
    label: str
    mode: str
    nodes_at_mode: int
    nodes_known: int
    floor: str | None
    deviations: tuple[Deviation, ...]

    def describe(self, deviation: Deviation) -> str:
        if deviation.status is Status.FAIL:
            return f"{self.label} {deviation.value} is below the required {self.floor}"
        return f"{self.label} {deviation.value} differs from the fleet's {self.mode}"


def version_tuple(version: str) -> tuple[int, ...]:
    """Numeric parts, so 550.54.15 > 535.129.03 and 12.10 > 12.4 (strings compare neither right)."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def _below(value: str, floor: str | None) -> bool:
    return bool(floor) and bool(version_tuple(value)) and version_tuple(value) < version_tuple(floor or "")


def find(nodes: Iterable[NodeSummary], floors: Mapping[str, str]) -> list[Drift]:
    """Each VERSIONS field on which some node differs from the mode or is below its floor (`floors`: field ->
    oldest allowed version). Nodes whose report lacks the field are not counted. Ties go to the newer value."""
    values: dict[str, dict[str, str]] = {name: {} for name in VERSIONS}
    for node in nodes:
        for name, value in node.versions:
            values[name][node.node] = value
    drifts = []
    for name, by_node in values.items():
        if not by_node:
            continue
        counts = Counter(by_node.values())
        mode = max(counts, key=lambda v: (counts[v], version_tuple(v), v))
        floor = floors.get(name) or None
        deviations = tuple(
            Deviation(node, value, Status.FAIL if _below(value, floor) else Status.WARN)
            for node, value in sorted(by_node.items())
            if value != mode or _below(value, floor)
        )
        if deviations:
            drifts.append(Drift(name, VERSIONS[name][0], mode, counts[mode], len(by_node), floor, deviations))
    return drifts
