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
    """The dockerd behind the socket in use: its command line, when it started (to tell whether an edited config is
    applied) and how it was started, so a fix restarts it the same way."""

    pid: int | None = None
    command_line: list[str] = field(default_factory=list)
    started_at: float | None = None
    """Unix time the process started."""
    error: str | None = None
    systemd_unit: str = ""
    """The systemd unit it runs in (`docker.service`), when systemd started it."""
    init_script: bool = False
    """Started by the distro's init script (`service docker start`: its pid file names this process)."""
    rootless: bool = False
    """Started by rootlesskit (a rootless daemon: `systemctl --user`)."""
    snap: bool = False

    @property
    def by_hand(self) -> bool:
        """Started by none of the above: restarted by stopping it and running its own command line again."""
        return bool(self.pid) and not (self.systemd_unit or self.init_script or self.rootless or self.snap)

    @property
    def how(self) -> str:
        """How it was started, in words (for a fix's details)."""
        if self.systemd_unit:
            return f"systemd unit {self.systemd_unit}"
        if self.init_script:
            return "the init script (service docker)"
        if self.rootless:
            return "rootlesskit"
        if self.snap:
            return "the snap"
        return "by hand" if self.pid else "unknown"


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
    return DaemonProcess(
        pid=pid, command_line=argv, started_at=process_start_time(pid) or started, **started_by(pid, argv)
    )


ROOTLESSKIT = os.fsencode("rootlesskit")
SERVICE_PID_FILES = ("/run/docker-ssd.pid", "/var/run/docker-ssd.pid")
"""Where Debian's init script (start-stop-daemon) records the daemon it started; dockerd's own pid file
(/var/run/docker.pid) says nothing, a daemon started by hand writes it too."""


def started_by(pid: int, argv: list[str]) -> dict[str, object]:
    """How the process `pid` was started (DaemonProcess fields): its systemd unit (its cgroup), a snap,
    rootlesskit (its parent), or an init script's pid file naming it; none of them: by hand."""
    if argv and argv[0].startswith("/snap/"):
        return {"snap": True}
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as handle:
            cgroups = handle.read()
    except OSError:
        cgroups = ""
    for line in cgroups.splitlines():
        path = line.rpartition(":")[2]
        unit = path.rstrip("/").rpartition("/")[2]
        if unit.endswith(".service") and os.path.isdir("/run/systemd/system"):
            return {"rootless": True} if "/user@" in path else {"systemd_unit": unit}
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            ppid = next((int(line.split()[1]) for line in handle if line.startswith("PPid:")), 0)
        with open(f"/proc/{ppid}/cmdline", "rb") as handle:
            parent = handle.read().split(b"\0")[0]
        if os.path.basename(parent) == ROOTLESSKIT:
            return {"rootless": True}
    except (OSError, ValueError):
        pass
    for path in SERVICE_PID_FILES:
        try:
            with open(path, encoding="utf-8") as handle:
                recorded = handle.read().strip()
        except OSError:
            continue
        if recorded == str(pid) and os.path.exists("/etc/init.d/docker"):
            return {"init_script": True}
    return {}


def process_start_time(pid: int) -> float | None:
    """From /proc/PID/stat's starttime (clock ticks since boot) and the boot time in /proc/stat."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            fields = handle.read().rpartition(")")[2].split()
        with open("/proc/stat", encoding="utf-8") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
