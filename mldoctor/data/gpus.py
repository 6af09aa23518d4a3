"""The GPU spec table (gpus.json): datasheet peaks and expected achievable figures per SKU, matched on the
device name, SM count and memory (H100 SXM, PCIe and NVL share a name prefix but not their figures).

Rules grade measurements against this table at evaluation time, so `mldoctor check --facts OLD.json` re-grades
yesterday's measurements with today's table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

GIB = 1 << 30


@dataclass(frozen=True)
class GpuSpec:
    """One SKU of gpus.json: its datasheet peaks and expected figures, and the name pattern, SM count and memory
    that tell it apart from SKUs sharing its name."""

    sku: str
    klass: str
    peak_tflops: dict[str, float]
    expected_tflops: dict[str, float]
    expected_ratio: float
    memory_gbps: float | None
    host_gbps: float | None
    """Theoretical host<->device bandwidth per direction: PCIe x16 of the SKU's generation, or its own link."""
    pattern: str = ""
    sm_count: int | None = None
    memory_gib: tuple[float, float] | None = None

    def peak(self, dtype: str) -> float | None:
        return self.peak_tflops.get(dtype)

    def expected(self, dtype: str) -> float | None:
        """The figure a healthy card reaches: measured where known, else a share of the peak."""
        if dtype in self.expected_tflops:
            return self.expected_tflops[dtype]
        peak = self.peak(dtype)
        return round(peak * self.expected_ratio, 1) if peak else None

    def matches(self, name: str, sm_count: int, memory_bytes: int) -> bool:
        if not re.search(self.pattern, name, re.IGNORECASE):
            return False
        if self.sm_count is not None and sm_count != self.sm_count:
            return False
        if self.memory_gib is not None:
            low, high = self.memory_gib
            return low <= memory_bytes / GIB <= high
        return True


@cache
def _table() -> dict[str, Any]:
    return json.loads(resources.files("mldoctor.data").joinpath("gpus.json").read_text(encoding="utf-8"))


def pcie_gbps(gen: int | None, width: int | None = 16) -> float | None:
    """Theoretical bandwidth per direction of a PCIe link."""
    per_x16 = _table()["pcie_gbps_per_direction_x16"].get(str(gen)) if gen else None
    return per_x16 * (width or 16) / 16 if per_x16 else None


@cache
def gpu_specs() -> tuple[GpuSpec, ...]:
    table = _table()
    specs = []
    for entry in table["gpus"]:
        match = entry["match"]
        memory = match.get("memory_gib")
        specs.append(
            GpuSpec(
                sku=entry["sku"],
                klass=entry["class"],
                peak_tflops={k: float(v) for k, v in entry["peak_tflops"].items()},
                expected_tflops={k: float(v) for k, v in entry.get("expected_tflops", {}).items()},
                expected_ratio=entry.get("expected_ratio", table["class_expected_ratio"][entry["class"]]),
                memory_gbps=entry.get("memory_gbps"),
                host_gbps=entry.get("host_link_gbps") or pcie_gbps(entry.get("pcie_gen")),
                pattern=match["name"],
                sm_count=match.get("sm_count"),
                memory_gib=tuple(memory) if memory else None,
            )
        )
    return tuple(specs)


def match_gpu(name: str, sm_count: int, memory_bytes: int) -> GpuSpec | None:
    """The first table entry for this device, or None for a SKU the table does not know."""
    return next((spec for spec in gpu_specs() if spec.matches(name, sm_count, memory_bytes)), None)


def has_nvlink(sku: str) -> bool:
    """The SKU's GPUs reach each other over NVLink (an SXM board): every pair should have peer access."""
    return sku in _table()["nvlink_skus"]["skus"]


def no_peer_access_by_design(spec: GpuSpec) -> bool:
    """GeForce cards: the driver gives them no peer access, so NCCL goes through host memory on any node."""
    return spec.klass in _table()["no_peer_access_classes"]["classes"]


@dataclass(frozen=True)
class AllreduceSpec:
    """What a healthy node of `gpus` x `sku` reaches in an all-reduce at large sizes (nccl-tests' busbw)."""

    sku: str
    gpus: int
    ring_gbps: float
    nvls_gbps: float | None = None
    note: str = ""


def allreduce_pass_ratio() -> float:
    return float(_table()["allreduce_busbw"]["pass_ratio"])


def allreduce_expected(sku: str, gpus: int) -> AllreduceSpec | None:
    """The expected all-reduce figure for this system (GPU model and count), or None when the table has none."""
    for entry in _table()["allreduce_busbw"]["systems"]:
        if sku in entry["skus"] and gpus in entry["gpus"]:
            return AllreduceSpec(sku, gpus, float(entry["ring_gbps"]), entry.get("nvls_gbps"), entry.get("note", ""))
    return None


def min_driver_for_cuda(cuda: str) -> int | None:
    """The oldest driver branch that runs CUDA `cuda` (e.g. "12.4" -> 550), or None when unknown."""
    table = _table()["cuda_min_driver"]
    major_minor = ".".join(cuda.split(".")[:2])
    value = table.get(major_minor)
    return value if isinstance(value, int) else None
