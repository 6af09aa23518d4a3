"""The fleet as versioned JSON (schema `mldoctor-fleet`), for dashboards and scripts: every node's state and
first broken link, the per-check statuses, stragglers, drift and the drain commands."""

from __future__ import annotations

import json
from typing import Any

from mldoctor import __version__
from mldoctor.fleet.aggregate import Fleet, NodeRow, NodeState, exit_code
from mldoctor.serde import to_data

SCHEMA = "mldoctor-fleet"
SCHEMA_VERSION = 1


def _node(row: NodeRow) -> dict[str, Any]:
    cells = row.cells.values()
    return {
        "node": row.node,
        "host": row.summary.host,
        "origin": row.summary.origin,
        "created": row.summary.created,
        "state": row.state.value,
        "first_broken_link": to_data(row.link),
        "checks": {cell.id: cell.status.value for cell in cells},
        "findings": [to_data(cell) for cell in cells if cell.summary],
    }


def render(fleet: Fleet) -> str:
    data = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "summary": {state.value: fleet.count(state) for state in NodeState},
        "exit_code": exit_code(fleet),
        "policy": to_data(fleet.policy),
        "checks": list(fleet.checks),
        "nodes": [_node(row) for row in fleet.rows],
        "missing": list(fleet.missing),
        "unreadable": to_data(fleet.unreadable),
        "duplicates": list(fleet.duplicates),
        "stragglers": [{**to_data(s), "ratio": round(s.ratio, 4)} for s in fleet.stragglers],
        "models": to_data(fleet.groups),
        "drift": to_data(fleet.drift),
        "drain": [{**to_data(line), "commands": list(line.commands)} for line in fleet.drain],
        "allreduce": to_data(fleet.allreduce),
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
