"""One per-node report -> a NodeSummary: the few things the fleet aggregate needs, bounded, the rest dropped.

A report is `mldoctor check --format json` output (or report.json of a bundle). It is untrusted input: any field
may be missing or of the wrong type, and this module must turn that into a summary or a `ReportError`, never an
exception of another kind.

The node's name is the scheduler's, where the report carries one (two Slurm nodes on one machine both report
`"host": "vm"`). Looked up in this order:

1. `node`: a string, or an object with a `name` (what `mldoctor check` writes once it records the scheduler's node:
   Slurm's `SLURMD_NODENAME`, Kubernetes' `NODE_NAME` from the downward API, Ray's node id);
2. `facts.host.node_name`;
3. the name of the file the report was read from, for a `.json` file (the documented sweep writes
   `DIR/$SLURMD_NODENAME.json`);
4. `host`, then `facts.host.hostname`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from mldoctor.fleet.text import bounded
from mldoctor.model import SCHEMA_VERSION, Status

SUMMARY_LIMIT = 240
FIX_LIMIT = 2000
NAME_LIMIT = 128
VALUE_LIMIT = 80
GIB = 1 << 30
TFLOPS = "TFLOP/s"


class ReportError(ValueError):
    """The document is not a per-node report this mldoctor can read (the message says why, in one line)."""


@dataclass(frozen=True, slots=True)
class CheckCell:
    """One check's outcome on one node; the summary is kept only where it explains something (WARN/FAIL/ERROR)."""

    id: str
    status: Status
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    """A node's first broken link: the check that failed first in the chain, what it saw, and its fix."""

    check: str
    summary: str
    fix: str


@dataclass(frozen=True, slots=True)
class GpuModel:
    """What makes GPUs comparable: the same name, memory and SM count (an H100 PCIe is not an H100 SXM)."""

    name: str
    memory_gib: int
    sm_count: int

    @property
    def label(self) -> str:
        parts = [self.name]
        if self.memory_gib:
            parts.append(f"{self.memory_gib} GiB")
        if self.sm_count:
            parts.append(f"{self.sm_count} SMs")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class GpuSummary:
    """One GPU of a node: its index, UUID, model, and the matmul rates it measured."""

    index: str
    uuid: str | None
    model: GpuModel
    tflops: tuple[tuple[str, float], ...]
    """(dtype, measured TFLOP/s) for each matmul the node's benchmark measured."""


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """What the fleet keeps of one node's report (bounded, the rest dropped): its checks, its first broken link, its
    versions and its GPUs."""

    node: str
    host: str
    origin: str
    """Where the report was read from (a path, `path:LINE`, `bundle.zip!report.json`)."""
    created: str
    checks: tuple[CheckCell, ...]
    link: Link | None
    """The first broken link among the node's own checks; None when nothing FAILed."""
    versions: tuple[tuple[str, str], ...]
    """(field, value) for each VERSIONS field the report knows."""
    gpus: tuple[GpuSummary, ...]

    def has(self, status: Status) -> bool:
        return any(cell.status is status for cell in self.checks)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _text(value: Any, limit: int = VALUE_LIMIT) -> str | None:
    """A non-empty string (numbers too, as some versions are), bounded and interned; None otherwise."""
    if type(value) is str and 0 < len(value) <= limit and value.isprintable() and value == value.strip():
        return sys.intern(value) if "  " not in value else sys.intern(bounded(value, limit))
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = bounded(value, limit)
    return sys.intern(text) if text else None


def _toolkit(data: Any) -> str | None:
    binaries = _get(data, "facts", "nvidia", "toolkit", "binaries")
    if not isinstance(binaries, list):
        return None
    return next((v for v in (_text(_get(b, "version")) for b in binaries) if v), None)


def _at(*path: str) -> Callable[[Any], str | None]:
    return lambda data: _text(_get(data, *path))


VERSIONS: dict[str, tuple[str, Callable[[Any], str | None]]] = {
    "driver": ("NVIDIA driver", _at("facts", "nvidia", "nvml", "driver_version")),
    "cuda_driver": ("CUDA driver version", _at("facts", "nvidia", "nvml", "cuda_driver_version")),
    "toolkit": ("NVIDIA Container Toolkit", _toolkit),
    "kernel": ("kernel", _at("facts", "host", "kernel")),
    "fabric_manager": ("Fabric Manager", _at("facts", "nvidia", "fabric_manager", "version")),
    "docker": ("Docker", _at("facts", "docker", "daemon", "server_version")),
    "torch": ("torch", _at("facts", "probe", "document", "torch", "version")),
    "nccl": ("NCCL", _at("facts", "probe", "document", "torch", "nccl")),
    "image_digest": ("probe image digest", _at("facts", "probe", "run", "image_digest")),
}
"""Versions compared across the fleet: field -> (label, where a report keeps it). The image digest is read from
`facts.probe.run.image_digest`, which reports carry once the probe records it."""


def node_name(data: dict[str, Any], name_hint: str | None) -> str:
    """The scheduler's node name when the report has one, else the file's name, else the host name."""
    node = data.get("node")
    candidates = (
        _get(node, "name") if isinstance(node, dict) else node,
        _get(data, "facts", "host", "node_name"),
        name_hint,
        data.get("host"),
        _get(data, "facts", "host", "hostname"),
    )
    name = next((t for t in (_text(c, NAME_LIMIT) for c in candidates) if t), None)
    if name is None:
        raise ReportError("no node name: neither node, facts.host.node_name nor host is set")
    return name


STATUSES = {status.value: status for status in Status}
EXPLAINED = (Status.WARN, Status.FAIL, Status.ERROR)


def _status(value: Any) -> Status:
    status = STATUSES.get(value) if isinstance(value, str) else None
    if status is None:
        shown = bounded(repr(value), 40)
        raise ReportError(f"a result has status {shown}, not one of PASS/WARN/FAIL/SKIP/ERROR")
    return status


@lru_cache(maxsize=4096)
def _plain(check_id: str, status: Status) -> CheckCell:
    """One shared cell per check and status without a summary: most of a fleet's cells are the same PASS."""
    return CheckCell(check_id, status)


def _checks(results: list[Any]) -> tuple[tuple[CheckCell, ...], Link | None]:
    """The cells, and the first broken link: the FAIL that other results name as `blocked_by` (the cause of their
    SKIPs), else the first FAIL in the report's order, which is the chain's order."""
    cells = []
    fails: list[dict[str, Any]] = []
    blockers = set()
    for result in results:
        check_id = _text(result.get("id"), NAME_LIMIT) if isinstance(result, dict) else None
        if check_id is None:
            raise ReportError("a result has no id")
        status = _status(result.get("status"))
        if status in EXPLAINED:
            cells.append(CheckCell(check_id, status, bounded(result.get("summary") or "", SUMMARY_LIMIT)))
        else:
            cells.append(_plain(check_id, status))
        if status is Status.FAIL:
            fails.append(result)
        blocker = result.get("blocked_by")
        if isinstance(blocker, str):
            blockers.add(blocker)
    first = next((r for r in fails if r.get("id") in blockers), fails[0] if fails else None)
    link = None
    if first is not None:
        fix = first.get("fix")
        link = Link(
            check=_text(first.get("id"), NAME_LIMIT) or "?",
            summary=bounded(first.get("summary") or "", SUMMARY_LIMIT),
            fix=bounded(fix, FIX_LIMIT, keep_newlines=True) if isinstance(fix, str) else "",
        )
    return tuple(cells), link


@cache
def _model(name: str, memory_gib: int, sm_count: int) -> GpuModel:
    """One GpuModel object per distinct model, shared by every GPU of the fleet."""
    return GpuModel(name, memory_gib, sm_count)


def _devices(data: Any) -> dict[str, tuple[str | None, int, int, str | None]]:
    """GPU index -> (name, memory bytes, SM count, UUID): from the probe's devices (what the benchmark ran on),
    else from NVML's inventory (which lacks the SM count)."""
    out: dict[str, tuple[str | None, int, int, str | None]] = {}
    nvml = _get(data, "facts", "nvidia", "nvml", "gpus")
    probe = _get(data, "facts", "probe", "document", "devices")
    for devices, memory_key, sm_key in ((nvml, "memory_total_bytes", None), (probe, "memory_bytes", "sm_count")):
        for device in devices if isinstance(devices, list) else ():
            index = _get(device, "index")
            if isinstance(index, int) and not isinstance(index, bool):
                memory = _get(device, memory_key)
                sm = _get(device, sm_key) if sm_key else 0
                out[str(index)] = (
                    _text(_get(device, "name")),
                    memory if isinstance(memory, int) else 0,
                    sm if isinstance(sm, int) else 0,
                    _text(_get(device, "uuid")),
                )
    return out


def _gpus(data: Any) -> tuple[GpuSummary, ...]:
    """Each GPU's matmul figures from the report's graded benchmark rows (rows that could not run, or whose
    timing was suspect, are ERROR there and left out here)."""
    rows = data.get("benchmarks")
    figures: dict[str, list[tuple[str, float]]] = {}
    names: dict[str, str] = {}
    dtypes: dict[Any, str | None] = {}
    for row in rows if isinstance(rows, list) else ():
        if not isinstance(row, dict) or row.get("unit") != TFLOPS or row.get("status") == Status.ERROR.value:
            continue
        measured, gpu, metric = row.get("measured"), row.get("gpu"), row.get("metric")
        if isinstance(metric, str) and metric not in dtypes:
            dtypes[metric] = _text(metric)
        dtype = dtypes.get(metric) if isinstance(metric, str) else None
        if isinstance(measured, bool) or not isinstance(measured, int | float):
            continue
        if not isinstance(gpu, str) or not (gpu.isascii() and gpu.isdigit() and len(gpu) < 6):
            continue  # a GPU index, as BenchRow writes it ("cpu" and anything else are not a GPU)
        if dtype is None or measured != measured or measured <= 0:  # NaN or nothing measured
            continue
        if gpu not in figures:
            figures[gpu] = []
            names[gpu] = _text(row.get("device")) or "?"
        figures[gpu].append((dtype, float(measured)))
    if not figures:
        return ()
    devices = _devices(data)
    gpus = []
    for index, tflops in figures.items():
        name, memory, sm, uuid = devices.get(index, (None, 0, 0, None))
        model = _model(name or names[index], round(memory / GIB), sm)
        gpus.append(GpuSummary(sys.intern(index), uuid, model, tuple(tflops)))
    return tuple(gpus)


def summarise(data: Any, origin: str, name_hint: str | None = None) -> NodeSummary:
    """The NodeSummary of one report document; ReportError when it is not one."""
    if not isinstance(data, dict):
        raise ReportError(f"not a report: a JSON {type(data).__name__}, not an object")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not isinstance(data.get("results"), list):
        raise ReportError("not an mldoctor report (no schema_version or results)")
    if version > SCHEMA_VERSION:
        raise ReportError(f"report schema {version}; this mldoctor reads {SCHEMA_VERSION} and older: upgrade mldoctor")
    checks, link = _checks(data["results"])
    versions = tuple((name, value) for name, (_, read) in VERSIONS.items() if (value := read(data)) is not None)
    return NodeSummary(
        node=node_name(data, name_hint),
        host=_text(data.get("host"), NAME_LIMIT) or "",
        origin=bounded(origin, 300),
        created=_text(data.get("created")) or "",
        checks=checks,
        link=link,
        versions=versions,
        gpus=_gpus(data),
    )
