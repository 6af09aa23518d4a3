"""Thresholds the rules judge against. Defaults here; the CLI (and later a policy file) override them."""

from __future__ import annotations

from dataclasses import dataclass

from mldoctor.facts.common import DiskUsage

GIB = 1 << 30


@dataclass(frozen=True)
class Policy:
    disk_fail_gib: float = 5.0
    disk_fail_pct: float = 5.0
    disk_warn_gib: float = 20.0
    disk_warn_pct: float = 10.0
    min_shm_gib: float = 1.0
    min_cpus: float = 4.0
    min_available_memory_gib: float = 4.0

    def disk_status(self, usage: DiskUsage) -> str:
        """'fail', 'warn' or 'ok' for a filesystem: low when under the GiB floor *or* a percentage floor
        (of space or of inodes: a disk full of small files is as full as one full of bytes)."""
        free_gib = usage.free_bytes / GIB
        free_pct = min(usage.free_pct, usage.inodes_free_pct)
        if free_gib < self.disk_fail_gib or free_pct < self.disk_fail_pct:
            return "fail"
        if free_gib < self.disk_warn_gib or free_pct < self.disk_warn_pct:
            return "warn"
        return "ok"

    def disk_is_low(self, usage: DiskUsage) -> bool:
        return usage.error is None and self.disk_status(usage) != "ok"
