"""Host facts: OS, user and groups, CPU, memory, /dev/shm, disks and ports."""

from __future__ import annotations

import errno
import grp
import os
import platform
import pwd
import resource
import socket
import tempfile
from dataclasses import dataclass, field

from mldoctor.facts.common import DiskUsage, disk_usage, isolated, read_text


@dataclass
class OsRelease:
    """The distribution, from /etc/os-release: fixes pick their package commands by `id` and `id_like`."""

    id: str = ""
    id_like: list[str] = field(default_factory=list)
    version_id: str = ""
    pretty_name: str = ""


@dataclass
class UserFacts:
    """Who runs mldoctor, and the groups that decide whether the Docker socket is theirs to use: now, or after
    a new login."""

    uid: int
    name: str
    active_groups: list[str] = field(default_factory=list)
    """Groups this process carries (what the kernel checks on the socket)."""
    member_of: list[str] = field(default_factory=list)
    """Groups the account database lists for the user (what a fresh login would carry)."""


@dataclass
class CpuFacts:
    """The CPUs: how many the host has, how many this process may use, their model and the 1-minute load average."""

    logical: int
    usable: float
    """CPUs this process may use: the affinity mask, capped by a cgroup quota."""
    model: str = ""
    load_1m: float = 0.0


@dataclass
class MemoryFacts:
    """Memory from /proc/meminfo, and the cgroup limit and usage that may leave less of it to allocate."""

    total_bytes: int
    available_bytes: int
    swap_total_bytes: int = 0
    cgroup_limit_bytes: int | None = None
    """The tightest memory limit of this process's cgroup and those above it (a job, a slice, a container)."""
    cgroup_usage_bytes: int | None = None

    @property
    def usable_bytes(self) -> int:
        """What can still be allocated: the host's available memory, or what the cgroup limit leaves, if less."""
        if self.cgroup_limit_bytes is None:
            return self.available_bytes
        left = self.cgroup_limit_bytes - (self.cgroup_usage_bytes or 0)
        return max(0, min(self.available_bytes, left))


@dataclass
class PortFacts:
    """One port given with --port: free to bind, or why not and, where it can be found, the process that holds it."""

    port: int
    free: bool
    error: str | None = None
    pid: int | None = None
    process: str | None = None
    username: str | None = None


@dataclass
class LimitsFacts:
    """This process's resource limits (a training job started from here inherits them); None means unlimited."""

    nofile_soft: int | None
    nofile_hard: int | None
    memlock_soft: int | None
    """Bytes of memory that may be locked: RDMA (InfiniBand, RoCE) registers NCCL's buffers against it."""
    memlock_hard: int | None
    rdma_devices: list[str] = field(default_factory=list)
    """RDMA devices on this host (/sys/class/infiniband): where the locked-memory limit matters."""


@dataclass
class NcclEnvironment:
    """The NCCL settings a job started from here inherits, and what they name: the network interfaces and the RDMA
    devices this host has."""

    variables: dict[str, str] = field(default_factory=dict)
    """The NCCL_* variables from NCCL_VARIABLES that are set (no other: the environment can hold secrets)."""
    interfaces: list[str] = field(default_factory=list)
    rdma_devices: list[str] = field(default_factory=list)


NCCL_VARIABLES = (
    "NCCL_SOCKET_IFNAME",
    "NCCL_IB_HCA",
    "NCCL_IB_DISABLE",
    "NCCL_P2P_DISABLE",
    "NCCL_SHM_DISABLE",
    "NCCL_NET",
    "NCCL_DEBUG",
)


@dataclass
class HostFacts:
    """The host section of the facts: OS, user, CPU, memory, /dev/shm, disks, ports, limits and NCCL environment,
    and what fixes need to know to be typed right here (systemd, sudo)."""

    hostname: str
    kernel: str
    arch: str
    python: str
    os: OsRelease | None = None
    user: UserFacts | None = None
    cpu: CpuFacts | None = None
    memory: MemoryFacts | None = None
    shm: DiskUsage | None = None
    disks: list[DiskUsage] | None = None
    ports: list[PortFacts] | None = None
    limits: LimitsFacts | None = None
    nccl: NcclEnvironment | None = None
    systemd: bool = False
    """Whether systemd is the init system (decides `systemctl` vs `service` in fixes)."""
    sudo: bool | None = None
    """Whether a `sudo` command is on this host: where it is not (containers, CI runners, minimal images), a fix
    that needs root says "as root:" instead; None in reports from before it was recorded (`sudo` is kept)."""
    node_name: str | None = None
    """The scheduler's name for this node (two Slurm nodes on one machine share a host name): SLURMD_NODENAME under
    Slurm, NODE_NAME where a Kubernetes pod sets it from the downward API (spec.nodeName), or MLDOCTOR_NODE_NAME."""

    @property
    def wsl(self) -> bool:
        """Windows Subsystem for Linux: Docker Desktop there does pass GPUs through, unlike on Linux."""
        return "microsoft" in self.kernel.lower()


def gather(ports: list[int], errors: dict[str, str]) -> HostFacts:
    """Each fact on its own (`isolated`): an unreadable /proc file costs its own check, not every host check."""
    facts = isolated(
        "host",
        {
            "os": _os_release,
            "user": _user,
            "cpu": _cpu,
            "memory": _memory,
            "shm": _shm,
            "disks": lambda: [disk_usage(path) for path in _distinct(["/", os.getcwd(), tempfile.gettempdir()])],
            "ports": lambda: [_port(port) for port in ports],
            "limits": _limits,
            "nccl": _nccl,
        },
        errors,
    )
    return HostFacts(
        hostname=socket.gethostname(),
        kernel=platform.release(),
        arch=platform.machine(),
        python=platform.python_version(),
        systemd=os.path.isdir("/run/systemd/system"),
        sudo=any(os.access(os.path.join(d, "sudo"), os.X_OK) for d in _search_path("/usr/bin", "/usr/sbin", "/bin")),
        node_name=next((os.environ[k][:200] for k in NODE_NAME_VARIABLES if os.environ.get(k)), None),
        **facts,
    )


NODE_NAME_VARIABLES = ("MLDOCTOR_NODE_NAME", "SLURMD_NODENAME", "NODE_NAME")


def _search_path(*usual: str) -> list[str]:
    """PATH's directories, then the usual ones (a PATH stripped by sudo or cron still finds what is installed)."""
    return [d for d in [*os.environ.get("PATH", "").split(os.pathsep), *usual] if d]


def _limits() -> LimitsFacts:
    def value(limit: int) -> int | None:
        return None if limit == resource.RLIM_INFINITY else limit

    nofile, memlock = resource.getrlimit(resource.RLIMIT_NOFILE), resource.getrlimit(resource.RLIMIT_MEMLOCK)
    try:
        rdma = sorted(os.listdir("/sys/class/infiniband"))
    except OSError:
        rdma = []
    return LimitsFacts(value(nofile[0]), value(nofile[1]), value(memlock[0]), value(memlock[1]), rdma)


def _nccl() -> NcclEnvironment:
    def names(directory: str) -> list[str]:
        try:
            return sorted(os.listdir(directory))
        except OSError:
            return []

    variables = {k: os.environ[k][:200] for k in NCCL_VARIABLES if k in os.environ}
    return NcclEnvironment(variables, names("/sys/class/net"), names("/sys/class/infiniband"))


def _shm() -> DiskUsage:
    return disk_usage("/dev/shm") if os.path.isdir("/dev/shm") else DiskUsage("/dev/shm", error="missing")


def _distinct(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(os.path.realpath(p) for p in paths))


def _os_release() -> OsRelease:
    text = read_text("/etc/os-release") or read_text("/usr/lib/os-release") or ""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return OsRelease(
        id=values.get("ID", ""),
        id_like=values.get("ID_LIKE", "").split(),
        version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", ""),
    )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user() -> UserFacts:
    uid = os.getuid()
    try:
        entry = pwd.getpwuid(uid)
        name, primary = entry.pw_name, entry.pw_gid
    except KeyError:
        name, primary = str(uid), os.getgid()
    member_of = [_group_name(primary)] + [g.gr_name for g in grp.getgrall() if name in g.gr_mem]
    active = sorted({_group_name(gid) for gid in [os.getegid(), *os.getgroups()]})
    return UserFacts(uid=uid, name=name, active_groups=active, member_of=sorted(set(member_of)))


CGROUP = "/sys/fs/cgroup"


def _cgroup_dirs(controller: str) -> list[str]:
    """This process's cgroup directories for `controller`, from its own up to the root: a limit anywhere above
    applies too (a Slurm job step inside the job, a container inside a systemd slice). cgroup v2's single hierarchy
    when it is mounted alone, else v1's per-controller one (`/proc/self/cgroup` names the path in each)."""
    lines = [line.split(":", 2) for line in (read_text("/proc/self/cgroup") or "").splitlines() if line.count(":") >= 2]
    if os.path.exists(f"{CGROUP}/cgroup.controllers"):
        paths = [(CGROUP, path) for _, controllers, path in lines if controllers == ""]
    else:
        mounts = (
            [f"{CGROUP}/{controller}", f"{CGROUP}/cpu,cpuacct"] if controller == "cpu" else [f"{CGROUP}/{controller}"]
        )
        paths = [(m, path) for _, controllers, path in lines if controller in controllers.split(",") for m in mounts]
    dirs = []
    for mount, path in paths:
        if not os.path.isdir(mount):
            continue
        parts = [p for p in path.split("/") if p and p != ".."]
        dirs += [os.path.join(mount, *parts[:depth]) for depth in range(len(parts), -1, -1)]
    return dirs


def _cgroup_cpu_quota() -> float | None:
    """The tightest CPU quota (CPUs' worth of time) on this process's cgroup or any above it."""
    quotas = []
    for directory in _cgroup_dirs("cpu"):
        parts = (read_text(f"{directory}/cpu.max") or "").split()
        if len(parts) == 2 and parts[0] != "max":
            quotas.append(int(parts[0]) / int(parts[1]))
        quota, period = read_text(f"{directory}/cpu.cfs_quota_us"), read_text(f"{directory}/cpu.cfs_period_us")
        if quota and period and int(quota) > 0:
            quotas.append(int(quota) / int(period))
    return min(quotas, default=None)


def _cpu() -> CpuFacts:
    logical = os.cpu_count() or 1
    usable: float = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    quota = _cgroup_cpu_quota()
    if quota is not None:
        usable = min(usable, quota)
    model = ""
    for line in (read_text("/proc/cpuinfo", limit=64 << 10) or "").splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return CpuFacts(logical=logical, usable=usable, model=model, load_1m=os.getloadavg()[0])


def _cgroup_memory_limit() -> int | None:
    """The tightest memory limit on this process's cgroup or any above it (v2 memory.max, v1 limit_in_bytes)."""
    limits = []
    for directory in _cgroup_dirs("memory"):
        for name in ("memory.max", "memory.limit_in_bytes"):
            text = (read_text(f"{directory}/{name}") or "").strip()
            if text.isdigit() and int(text) < 1 << 60:
                limits.append(int(text))
    return min(limits, default=None)


def _cgroup_memory_usage() -> int | None:
    """What this process's own cgroup already uses (its limit minus this is what is left to allocate)."""
    for directory in _cgroup_dirs("memory")[:1]:
        for name in ("memory.current", "memory.usage_in_bytes"):
            text = (read_text(f"{directory}/{name}") or "").strip()
            if text.isdigit():
                return int(text)
    return None


def _memory() -> MemoryFacts:
    """From /proc/meminfo (MemAvailable is the kernel's own estimate of what can be allocated without swapping)."""
    values = {}
    for line in (read_text("/proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[key] = int(fields[0]) * 1024
    return MemoryFacts(
        total_bytes=values.get("MemTotal", 0),
        available_bytes=values.get("MemAvailable", values.get("MemFree", 0)),
        swap_total_bytes=values.get("SwapTotal", 0),
        cgroup_limit_bytes=_cgroup_memory_limit(),
        cgroup_usage_bytes=_cgroup_memory_usage(),
    )


def _port(port: int) -> PortFacts:
    """Try to bind the port like a server would; when it is taken, find who holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return PortFacts(port=port, free=False, error=exc.strerror or str(exc))
        else:
            return PortFacts(port=port, free=True)
    return _port_holder(port)


def _port_holder(port: int) -> PortFacts:
    import psutil

    facts = PortFacts(port=port, free=False)
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return facts
    for conn in connections:
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            facts.pid = conn.pid
            try:
                proc = psutil.Process(conn.pid)
                facts.process, facts.username = proc.name(), proc.username()
            except (psutil.Error, KeyError):
                pass
            break
    return facts
