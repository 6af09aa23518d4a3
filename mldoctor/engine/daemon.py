"""The daemon in use: for a unix socket, the process at the other end of a connection to it (SO_PEERCRED), not
the first `dockerd` in /proc. Its command line names its --config-file and --data-root; its start time says
whether a config file edited since has been applied."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field


@dataclass
class DaemonProcess:
    pid: int | None = None
    command_line: list[str] = field(default_factory=list)
    started_at: float | None = None
    """Unix time the process started."""
    error: str | None = None


def peer_pid(path: str, timeout: float) -> int:
    """The pid of the process listening on the unix socket `path` (raises OSError)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", credentials)
    return pid


def daemon_process(path: str, timeout: float) -> DaemonProcess:
    """The process behind the socket (never raises: a socket in another namespace has no pid here)."""
    try:
        pid = peer_pid(path, timeout)
    except OSError as exc:
        return DaemonProcess(error=f"{type(exc).__name__}: {exc.strerror or exc}")
    if pid <= 0:  # the peer is in another PID namespace (a daemon in a VM or container)
        return DaemonProcess(error="the daemon runs in another PID namespace")
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
        started = os.stat(f"/proc/{pid}").st_mtime
    except OSError as exc:
        return DaemonProcess(pid=pid, error=f"/proc/{pid}: {exc.strerror or exc}")
    return DaemonProcess(pid=pid, command_line=argv, started_at=_start_time(pid) or started)


def _start_time(pid: int) -> float | None:
    """From /proc/PID/stat's starttime (clock ticks since boot) and the boot time in /proc/stat."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            fields = handle.read().rpartition(")")[2].split()
        with open("/proc/stat", encoding="utf-8") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
