"""Facts for rule tests: a healthy machine by default, changed field by field in each test.

The defaults mirror what the gatherers recorded on this project's CI machine (Debian 12, Docker 20.10 from
Debian, root user); tests override exactly what their case is about.
"""

from __future__ import annotations

from dataclasses import replace

from mldoctor.facts import Facts
from mldoctor.facts.common import DiskUsage
from mldoctor.facts.docker import (
    CliFacts,
    Connection,
    DaemonConfig,
    DaemonInfo,
    DockerFacts,
    Endpoint,
    Reclaimable,
    SocketFacts,
)
from mldoctor.facts.host import (
    CpuFacts,
    HostFacts,
    LimitsFacts,
    MemoryFacts,
    NcclEnvironment,
    OsRelease,
    PortFacts,
    UserFacts,
)

GIB = 1 << 30


def disk(path: str = "/", free_gib: float = 80, total_gib: float = 250, inodes_free_pct: float = 90, device: int = 1):
    return DiskUsage(
        path=path,
        total_bytes=int(total_gib * GIB),
        free_bytes=int(free_gib * GIB),
        inodes_total=1000,
        inodes_free=int(10 * inodes_free_pct),
        device=device,
    )


def host(**changes) -> HostFacts:
    base = HostFacts(
        hostname="gpu-01",
        os=OsRelease(id="debian", version_id="12", pretty_name="Debian GNU/Linux 12 (bookworm)"),
        kernel="6.1.0-18-amd64",
        arch="x86_64",
        python="3.11.2",
        user=UserFacts(uid=1000, name="alice", active_groups=["alice", "docker"], member_of=["alice", "docker"]),
        cpu=CpuFacts(logical=32, usable=32, model="AMD EPYC 7763", load_1m=0.5),
        memory=MemoryFacts(total_bytes=256 * GIB, available_bytes=200 * GIB, swap_total_bytes=0),
        shm=disk("/dev/shm", free_gib=128, total_gib=128, device=9),
        disks=[disk("/")],
        ports=[],
        limits=LimitsFacts(nofile_soft=20000, nofile_hard=20000, memlock_soft=8 << 20, memlock_hard=8 << 20),
        nccl=NcclEnvironment(interfaces=["docker0", "eth0", "lo"]),
        systemd=True,
    )
    return replace(base, **changes)


def daemon(**changes) -> DaemonInfo:
    base = DaemonInfo(
        server_version="24.0.7",
        api_version="1.43",
        min_api_version="1.12",
        components=["Engine", "containerd", "runc", "docker-init"],
        operating_system="Debian GNU/Linux 12 (bookworm)",
        os_type="linux",
        kernel="6.1.0-18-amd64",
        name="gpu-01",
        storage_driver="overlay2",
        cgroup_driver="systemd",
        cgroup_version="2",
        docker_root_dir="/var/lib/docker",
        logging_driver="json-file",
        runtimes=["io.containerd.runc.v2", "runc"],
        default_runtime="runc",
        security_options=["name=apparmor", "name=seccomp,profile=builtin", "name=cgroupns"],
    )
    return replace(base, **changes)


def docker_socket(**changes) -> SocketFacts:
    base = SocketFacts(
        path="/var/run/docker.sock",
        exists=True,
        is_socket=True,
        mode=0o660,
        owner="root",
        group="docker",
        accessible=True,
    )
    return replace(base, **changes)


def docker(**changes) -> DockerFacts:
    base = DockerFacts(
        cli=CliFacts(path="/usr/bin/docker", version="24.0.7", compose_plugin="2.21.0"),
        endpoint=Endpoint(url="unix:///var/run/docker.sock"),
        connection=Connection(ok=True, elapsed_s=0.01),
        socket=docker_socket(),
        daemon=daemon(),
        flavour="engine",
        local=True,
        config=DaemonConfig(
            path="/etc/docker/daemon.json", found=True, settings={"log-opts": {"max-size": "100m", "max-file": "3"}}
        ),
        root_dir=disk("/var/lib/docker"),
        dockerd_installed=True,
    )
    return replace(base, **changes)


def down(kind: str, error: str = "boom", **changes) -> DockerFacts:
    """Docker facts of a daemon that could not be reached for `kind`."""
    return docker(connection=Connection(ok=False, error_kind=kind, error=error), daemon=None, root_dir=None, **changes)


def facts(**sections) -> Facts:
    sections.setdefault("host", host())
    sections.setdefault("docker", docker())
    return Facts(**sections)


__all__ = ["GIB", "PortFacts", "Reclaimable", "daemon", "disk", "docker", "docker_socket", "down", "facts", "host"]
