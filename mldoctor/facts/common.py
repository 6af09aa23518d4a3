"""Small I/O helpers shared by the gatherers: every one has a deadline and returns errors as data."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class DiskUsage:
    """Free space and inodes of the filesystem holding `path`."""

    path: str
    total_bytes: int = 0
    free_bytes: int = 0
    inodes_total: int = 0
    inodes_free: int = 0
    device: int = 0
    error: str | None = None

    @property
    def free_pct(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def inodes_free_pct(self) -> float:
        return 100.0 * self.inodes_free / self.inodes_total if self.inodes_total else 100.0


def disk_usage(path: str) -> DiskUsage:
    """statvfs of `path`, or of its nearest existing parent (a data-root that is not created yet)."""
    probe = path
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        st = os.statvfs(probe)
        dev = os.stat(probe).st_dev
    except OSError as exc:
        return DiskUsage(path=path, error=f"{type(exc).__name__}: {exc.strerror or exc}")
    return DiskUsage(
        path=path,
        total_bytes=st.f_blocks * st.f_frsize,
        free_bytes=st.f_bavail * st.f_frsize,
        inodes_total=st.f_files,
        inodes_free=st.f_favail,
        device=dev,
    )


@dataclass
class CommandOutput:
    """What a helper command printed, or why it could not be run."""

    argv: list[str]
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0


def run_command(argv: list[str], timeout: float) -> CommandOutput:
    """Run a short read-only command with a hard deadline; never raises."""
    result = CommandOutput(argv=argv)
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except FileNotFoundError:
        result.error = f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        result.error = f"{' '.join(argv)}: no answer within {timeout:g} s"
    except OSError as exc:
        result.error = f"{argv[0]}: {exc.strerror or exc}"
    else:
        result.returncode = proc.returncode
        result.stdout = proc.stdout.strip()
        result.stderr = proc.stderr.strip()
    return result


def read_text(path: str, limit: int = 1 << 20) -> str | None:
    """A small text file's content, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(limit)
    except OSError:
        return None


def isolated(section: str, gatherers: dict[str, Callable[[], Any]], errors: dict[str, str]) -> dict[str, Any]:
    """Each fact of a section gathered on its own: one that raises is None, its reason under `section.name` in
    `errors`, and the others are still read (one unreadable file must not blank a whole section)."""
    values: dict[str, Any] = {}
    for name, gather in gatherers.items():
        try:
            values[name] = gather()
        except Exception as exc:  # recorded for the checks that need this fact; they report ERROR with it
            values[name] = None
            errors[f"{section}.{name}"] = f"reading {section}.{name} failed: {type(exc).__name__}: {exc}"
    return values
