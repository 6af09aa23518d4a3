"""Docker fix builders: start, restart and read the logs of the daemon the way it was started (its systemd unit,
its init script, the snap, the rootless user unit, or by hand: then its own command line again)."""

from __future__ import annotations

import shlex

from mldoctor.engine.daemon import DaemonProcess
from mldoctor.facts.docker import DockerFacts
from mldoctor.facts.host import HostFacts
from mldoctor.fixes.host import enable_service, restart_service, service_log, uses_systemd

ENGINE_DOCS = "https://docs.docker.com/engine/install/"
DEFAULT_SHM_SIZE = "16G"
"""The /dev/shm every container gets by default after `mldoctor fix probe.shm` (what NCCL and DataLoader workers
need on a multi-GPU node; Docker's own default is 64 MiB)."""
COMPOSE_DOCS = "https://docs.docker.com/compose/install/linux/"
HAND_LOG = "/var/log/dockerd.log"
"""Where a daemon started by hand is restarted to log (its own output had no file mldoctor could know)."""


def docker_service(action: str, flavour: str, host: HostFacts | None, process: DaemonProcess | None = None) -> str:
    """`start`, `restart` or `enable --now` the daemon of this flavour; `restart` the running `process` the way it
    was started when its facts say how (a daemon started by hand: stopped by pid, started again with its own
    command line)."""
    starting = action.startswith("enable") or action == "start"
    known = process if process is not None and process.pid else None
    if flavour == "rootless" or (known and known.rootless):
        return f"systemctl --user {action} docker"
    if flavour == "snap" or (known and known.snap):
        return f"sudo snap {'start' if starting else action} docker"
    if flavour == "desktop":
        return "restart Docker Desktop (its menu: Restart)"
    if flavour == "podman":
        return f"systemctl --user {action} podman.socket"
    if action == "restart" and known and known.systemd_unit:
        return f"sudo systemctl restart {known.systemd_unit}"
    if action == "restart" and known and known.init_script:
        return "sudo service docker restart"
    if action == "restart" and known and known.by_hand and known.command_line:
        return restart_by_hand(known, host)
    if starting:
        return enable_service("docker", host)
    if action == "restart":
        return restart_service("docker", host)
    return f"sudo systemctl {action} docker" if uses_systemd(host) else f"sudo service docker {action}"


def restart_by_hand(process: DaemonProcess, host: HostFacts | None) -> str:
    """Stop the daemon by its pid, wait until it is gone, start its own command line again in the background."""
    pid = process.pid
    inner = (
        f"kill {pid} && while kill -0 {pid} 2>/dev/null; do sleep 0.5; done && "
        f"(setsid {shlex.join(process.command_line)} >>{HAND_LOG} 2>&1 </dev/null &)"
    )
    return f"sudo sh -c {shlex.quote(inner)}" + "   # started by hand: the same command line again"


def docker_logs_hint(flavour: str, host: HostFacts | None) -> str:
    if flavour == "rootless":
        return "journalctl --user -u docker -n 50"
    if flavour == "snap":
        return "sudo snap logs docker -n 50"
    return service_log("docker", host)


def mldoctor_fix(check_id: str, docker: DockerFacts, host: HostFacts | None) -> str:
    """`mldoctor fix CHECK_ID`, as the user who can write the daemon's configuration: root for a system daemon
    (through sudo by mldoctor's full path: sudo's PATH does not have a virtualenv's), the user for a rootless one."""
    command = f"fix {check_id} --yes --restart"
    if docker.flavour == "rootless" or (host is not None and host.user is not None and host.user.uid == 0):
        return f"mldoctor {command}"
    return f'sudo "$(command -v mldoctor)" {command}'
