"""Host checks: disk, memory, CPU, /dev/shm, ports, resource limits."""

from __future__ import annotations

from mldoctor.facts import Facts
from mldoctor.model import Finding, Problem, Status
from mldoctor.policy import Policy
from mldoctor.rules.registry import check
from mldoctor.text import GIB, gib


@check("host.disk", "Host disk space", facts=("host.disks",))
def host_disk(facts: Facts, policy: Policy) -> Finding:
    """Free space where training writes: /, the working directory and the temp directory (one row each fs)."""
    rows, worst, worst_usage = [], "ok", None
    rank = {"ok": 0, "warn": 1, "fail": 2}
    seen: dict[int, list[str]] = {}
    for usage in facts.host.disks:
        if usage.error:
            rows.append(f"{usage.path}: {usage.error}")
            continue
        if usage.device in seen:
            seen[usage.device].append(usage.path)
            continue
        seen[usage.device] = [usage.path]
        status = policy.disk_status(usage, host=True)
        rows.append(
            f"{usage.path}: {gib(usage.free_bytes)} free of {gib(usage.total_bytes)} "
            f"({usage.free_pct:.0f}%, {usage.inodes_free_pct:.0f}% inodes free) {status.upper()}"
        )
        if worst_usage is None or rank[status] > rank[worst]:
            worst, worst_usage = status, usage
    if worst_usage is None:
        return Finding.error("could not read free space of any of " + ", ".join(u.path for u in facts.host.disks))
    summary = f"{gib(worst_usage.free_bytes)} free ({worst_usage.free_pct:.0f}%) on {worst_usage.path}"
    fail_gib, warn_gib = policy.disk_limits(host=True)
    details = (
        *rows,
        f"limits: FAIL under {fail_gib:g} GiB or {policy.disk_fail_pct:g}%, "
        f"WARN under {warn_gib:g} GiB or {policy.disk_warn_pct:g}%",
    )
    where = worst_usage.path
    fix = f"free space on {where}: `du -xh --max-depth=1 {where} | sort -h | tail` shows what uses it"
    if worst == "fail":
        return Finding.fail(summary, fix=fix, details=details)
    if worst == "warn":
        return Finding.warn(summary, fix=fix, details=details)
    return Finding.ok(summary if len(seen) == 1 else f"{summary}; {len(seen)} filesystems checked", details=details)


@check("host.memory", "Host memory", facts=("host.memory",))
def host_memory(facts: Facts, policy: Policy) -> Finding:
    memory = facts.host.memory
    limited = memory.cgroup_limit_bytes is not None and memory.cgroup_limit_bytes < memory.total_bytes
    if limited:
        summary = (
            f"{gib(memory.usable_bytes)} usable under this cgroup's {gib(memory.cgroup_limit_bytes or 0)} limit "
            f"(the host: {gib(memory.available_bytes)} available of {gib(memory.total_bytes)})"
        )
    else:
        summary = f"{gib(memory.available_bytes)} available of {gib(memory.total_bytes)}"
    details = [f"swap: {gib(memory.swap_total_bytes)}"]
    if limited:
        details.append("the limit is this process's cgroup or one above it: a Slurm job, a systemd slice, a container")
    if memory.usable_bytes < policy.min_available_memory_gib * GIB:
        return Finding.warn(
            f"{summary}: under {policy.min_available_memory_gib:g} GiB left for data loading and checkpoints",
            fix="stop what holds memory: `ps aux --sort=-rss | head` lists the largest processes",
            details=tuple(details),
        )
    return Finding.ok(summary, details=tuple(details))


@check("host.cpu", "Host CPU", facts=("host.cpu",))
def host_cpu(facts: Facts, policy: Policy) -> Finding:
    cpu = facts.host.cpu
    summary = f"{cpu.usable:g} usable of {cpu.logical} logical CPUs, load {cpu.load_1m:.1f}"
    details = (f"model: {cpu.model}",) if cpu.model else ()
    if cpu.usable < policy.min_cpus:
        return Finding.warn(
            f"{summary}: under {policy.min_cpus:g} CPUs, data-loader workers starve the GPU",
            fix="run on a machine (or a container/cgroup/Slurm allocation) with more CPUs per GPU",
            details=details,
        )
    if cpu.load_1m > 1.5 * cpu.logical:
        return Finding.warn(
            f"{summary}: the host is busy, benchmarks and input pipelines will be slow",
            fix="`top -o %CPU` shows what is running",
            details=details,
        )
    return Finding.ok(summary, details=details)


@check("host.shm", "Host shared memory (/dev/shm)", facts=("host.shm",))
def host_shm(facts: Facts, policy: Policy) -> Finding:
    shm = facts.host.shm
    fix = f"sudo mount -o remount,size={max(8, int(policy.min_shm_gib * 2))}G /dev/shm"
    if shm.error:
        return Finding.warn(
            "no /dev/shm: PyTorch DataLoader workers pass batches through it",
            fix="sudo mount -t tmpfs -o size=8G tmpfs /dev/shm",
        )
    summary = f"{gib(shm.total_bytes)} ({gib(shm.free_bytes)} free)"
    if shm.total_bytes < policy.min_shm_gib * GIB:
        return Finding.warn(
            f"/dev/shm is {summary}: under {policy.min_shm_gib:g} GiB, DataLoader workers die with a bus error",
            fix=fix,
        )
    return Finding.ok(summary)


@check("host.port", "Host ports", facts=("host.ports",))
def host_port(facts: Facts, policy: Policy) -> Finding | None:
    """Only with --port: a training or notebook server's port must be free before it starts."""
    ports = facts.host.ports
    if not ports:
        return None
    busy = [p for p in ports if not p.free]
    rows = []
    for p in ports:
        if p.free:
            rows.append(f"{p.port}: free")
        elif p.error:
            rows.append(f"{p.port}: cannot bind ({p.error})")
        elif p.pid:
            rows.append(f"{p.port}: held by {p.process or 'a process'} (pid {p.pid}, user {p.username or '?'})")
        else:
            rows.append(f"{p.port}: in use by a process this user cannot see")
    if not busy:
        return Finding.ok(", ".join(str(p.port) for p in ports) + " free", details=tuple(rows))
    fixes = []
    for p in busy:
        if p.error:
            fixes.append(f"port {p.port}: {p.error} (ports under 1024 need root) - choose another port")
        elif p.process == "docker-proxy":
            fixes.append(f"port {p.port} is published by a container: docker ps --filter publish={p.port}")
        elif p.pid:
            fixes.append(f"kill {p.pid}   # {p.process or 'the process'} holds port {p.port}; or choose another port")
        else:
            fixes.append(f"sudo ss -ltnp 'sport = :{p.port}'   # shows who holds port {p.port}")
    summary = "; ".join(rows[ports.index(p)] for p in busy)
    return Finding(Status.FAIL, summary, tuple(rows), "\n".join(fixes))


MIN_OPEN_FILES = 4096
"""Below this, DataLoader workers sharing tensors through file descriptors run out ("Too many open files",
"received 0 items of ancdata"): the common default of 1024 is the trap."""
OPEN_FILES_TARGET = 65536


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def _bytes(value: int | None) -> str:
    return "unlimited" if value is None else gib(value) if value >= GIB else f"{value >> 20} MiB"


@check("host.ulimit", "Host resource limits", facts=("host.limits",))
def host_ulimit(facts: Facts, policy: Policy) -> Finding:
    """The open-files and locked-memory limits a training job started from this shell inherits."""
    limits = facts.host.limits
    memlock = _bytes(limits.memlock_soft)
    summary = f"open files {_limit(limits.nofile_soft)} (hard {_limit(limits.nofile_hard)}), locked memory {memlock}"
    details = (f"RDMA devices: {', '.join(limits.rdma_devices) or 'none'}",)
    problems = []
    if limits.nofile_soft is not None and limits.nofile_soft < MIN_OPEN_FILES:
        hard = limits.nofile_hard
        target = OPEN_FILES_TARGET if hard is None else min(hard, OPEN_FILES_TARGET)
        fix = f"ulimit -n {target}   # in this shell, before training"
        if target < MIN_OPEN_FILES:  # the hard limit is low too: only root raises it, for the next login
            fix = (
                f"echo '* soft nofile {OPEN_FILES_TARGET}' | sudo tee /etc/security/limits.d/90-nofile.conf && "
                f"echo '* hard nofile {OPEN_FILES_TARGET}' | sudo tee -a /etc/security/limits.d/90-nofile.conf"
                "   # then log out and back in"
            )
        problems.append(
            Problem(
                Status.WARN,
                f"open files limited to {limits.nofile_soft}: DataLoader workers fail with 'Too many open files'",
                fix,
            )
        )
    if limits.rdma_devices and limits.memlock_soft is not None:
        problems.append(
            Problem(
                Status.WARN,
                f"locked memory limited to {memlock} on a host with RDMA ({', '.join(limits.rdma_devices)}): NCCL "
                "over InfiniBand/RoCE cannot register its buffers",
                "ulimit -l unlimited   # needs the hard limit unlimited too: "
                "echo '* - memlock unlimited' | sudo tee /etc/security/limits.d/90-memlock.conf, then log in again",
            )
        )
    return Finding.combine(problems, summary, details)


def _matches_none(spec: str, names: list[str]) -> list[str]:
    """NCCL's interface/HCA list: comma-separated prefixes, `=name` exact, `^` a list to exclude. The entries that
    select something and match no name here (an exclusion list selects everything else: never reported)."""
    exact = spec.startswith("=")
    if spec.startswith("^"):
        return []
    entries = [e.split(":")[0].strip() for e in spec.lstrip("=").split(",") if e.strip()]
    return [e for e in entries if not any(n == e if exact else n.startswith(e) for n in names)]


VIRTUAL = ("lo", "docker", "veth", "br-", "virbr", "ifb", "cni", "flannel", "cali", "tun", "tap")
"""Interfaces NCCL should not be pointed at: loopback, container bridges and veths, shapers, tunnels."""


def _usable(interfaces: list[str]) -> str:
    """The first interface that is the host's own network, not a bridge, veth or loopback."""
    return next((name for name in interfaces if not name.startswith(VIRTUAL)), "eth0")


@check("host.nccl", "NCCL settings", facts=("host.nccl",))
def host_nccl(facts: Facts, policy: Policy) -> Finding:
    """NCCL variables a job inherits from this shell or job script: one naming an interface or HCA this host does
    not have stops NCCL at start; NCCL_P2P_DISABLE=1 left from a workaround makes every all-reduce slow."""
    nccl = facts.host.nccl
    settings = nccl.variables
    problems = []
    ifname = settings.get("NCCL_SOCKET_IFNAME")
    missing = _matches_none(ifname, nccl.interfaces) if ifname else []
    if missing:
        problems.append(
            Problem(
                Status.FAIL,
                f"NCCL_SOCKET_IFNAME={ifname} names {', '.join(missing)}, which no interface here matches: NCCL fails "
                "at start ('no socket interface found')",
                f"export NCCL_SOCKET_IFNAME={_usable(nccl.interfaces)}   # the host's own interfaces: "
                + (", ".join(nccl.interfaces) or "ip -br link lists them"),
            )
        )
    hca = settings.get("NCCL_IB_HCA")
    missing_hca = _matches_none(hca, nccl.rdma_devices) if hca else []
    if missing_hca:
        problems.append(
            Problem(
                Status.WARN,
                f"NCCL_IB_HCA={hca} names {', '.join(missing_hca)}, which this host does not have: NCCL falls back "
                "to TCP sockets",
                "unset NCCL_IB_HCA   # or name one of: " + (", ".join(nccl.rdma_devices) or "(no RDMA device here)"),
            )
        )
    for variable, what in (("NCCL_P2P_DISABLE", "GPU peer-to-peer"), ("NCCL_SHM_DISABLE", "shared-memory")):
        if settings.get(variable, "0") not in ("0", ""):
            problems.append(
                Problem(
                    Status.WARN,
                    f"{variable}={settings[variable]}: NCCL's {what} transport is off and collectives run slower "
                    "(a workaround left in place? nvidia.p2p names the cause it works around)",
                    f"unset {variable}   # then confirm all_reduce no longer hangs",
                )
            )
    shown = " ".join(f"{k}={v}" for k, v in settings.items()) or "none set"
    return Finding.combine(problems, f"NCCL variables: {shown}", (f"interfaces: {', '.join(nccl.interfaces)}",))
