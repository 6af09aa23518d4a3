"""Thresholds the rules judge against. Defaults here; the CLI (and later a policy file) override them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mldoctor.text import GIB

if TYPE_CHECKING:
    from mldoctor.facts.common import DiskUsage


@dataclass(frozen=True)
class Band:
    """PASS at or above `passing`, WARN down to `warning`, FAIL below (ratios to a reference, or absolute)."""

    passing: float
    warning: float

    def grade(self, value: float) -> str:
        return "pass" if value >= self.passing else "warn" if value >= self.warning else "fail"


@dataclass(frozen=True)
class Policy:
    """The thresholds the rules judge by: disk, memory, CPU and GPU floors, versions, and the benchmark bands.
    Defaults here; the policy file and flags override them."""

    disk_fail_gib: float = 5.0
    disk_fail_pct: float = 5.0
    disk_warn_gib: float = 20.0
    disk_warn_pct: float = 10.0
    host_disk_fail_gib: float | None = None
    """host.disk's own FAIL floor (/, the working and the temp directory); None: the same as Docker's."""
    host_disk_warn_gib: float | None = None
    min_shm_gib: float = 1.0
    min_cpus: float = 4.0
    min_available_memory_gib: float = 4.0
    require_gpus: int = 0
    """NVIDIA GPUs this host must have; 0 lets a GPU-less host pass with the NVIDIA checks skipped."""
    require_gpu_models: tuple[str, ...] = ()
    """Every GPU's name must contain one of these (case-insensitive): `["H100", "H200"]` keeps a job off A100s."""
    min_driver_version: str = ""
    """The oldest NVIDIA driver allowed (e.g. "550.54"); empty: any."""
    min_cuda_version: str = ""
    """The oldest CUDA the driver must support (e.g. "12.4", what your images' CUDA needs); empty: any."""
    # Benchmarks (shared/reference/performance.md section 4): ratios to the expected achievable figure of the SKU.
    matmul: Band = Band(0.90, 0.75)
    matmul_by_dtype: tuple[tuple[str, Band], ...] = ()
    """Per-dtype bands that replace `matmul` / `matmul_fp32` for those dtypes (policy file: [matmul_by_dtype])."""
    matmul_fp32: Band = Band(0.85, 0.70)
    """FP32 and TF32 vary more between healthy cards (dual-issue FP32 on Ada and GA102 is rarely reached)."""
    d2d: Band = Band(0.80, 0.65)
    """Ratio to the datasheet memory bandwidth (DCGM fails near 0.57)."""
    host_copy: Band = Band(0.70, 0.50)
    """Ratio to the theoretical bandwidth of the host link (PCIe generation x width)."""
    suspect_ratio: float = 1.15
    """A measurement above this multiple of the datasheet peak is a timing bug, not a fast card."""
    outlier_ratio: float = 0.85
    """A GPU below this share of the other GPUs' median matmul rate is flagged."""
    expect_tflops: tuple[tuple[str, float], ...] = ()
    """Expected figures given on the command line (`--expect-tflops bf16=700`), for SKUs the table lacks."""

    def matmul_band(self, dtype: str) -> Band:
        return dict(self.matmul_by_dtype).get(dtype) or (self.matmul_fp32 if dtype in ("fp32", "tf32") else self.matmul)

    def disk_limits(self, host: bool = False) -> tuple[float, float]:
        """(FAIL, WARN) GiB floors: Docker's data-root, or the host's own where the policy sets them."""
        if host:
            return (
                self.disk_fail_gib if self.host_disk_fail_gib is None else self.host_disk_fail_gib,
                self.disk_warn_gib if self.host_disk_warn_gib is None else self.host_disk_warn_gib,
            )
        return self.disk_fail_gib, self.disk_warn_gib

    def disk_status(self, usage: DiskUsage, host: bool = False) -> str:
        """'fail', 'warn' or 'ok' for a filesystem: low when under the GiB floor *or* a percentage floor
        (of space or of inodes: a disk full of small files is as full as one full of bytes)."""
        fail_gib, warn_gib = self.disk_limits(host)
        free_gib = usage.free_bytes / GIB
        free_pct = min(usage.free_pct, usage.inodes_free_pct)
        if free_gib < fail_gib or free_pct < self.disk_fail_pct:
            return "fail"
        if free_gib < warn_gib or free_pct < self.disk_warn_pct:
            return "warn"
        return "ok"

    def disk_is_low(self, usage: DiskUsage) -> bool:
        return usage.error is None and self.disk_status(usage) != "ok"
