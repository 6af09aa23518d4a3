"""Docker fix builders: start, restart and read the logs of the daemon the way its flavour runs it."""

from __future__ import annotations

from mldoctor.facts.host import HostFacts
from mldoctor.fixes.host import enable_service, restart_service, service_log, uses_systemd

ENGINE_DOCS = "https://docs.docker.com/engine/install/"
COMPOSE_DOCS = "https://docs.docker.com/compose/install/linux/"


def docker_service(action: str, flavour: str, host: HostFacts | None) -> str:
    """`start`, `restart` or `enable --now` the daemon of this flavour."""
    starting = action.startswith("enable") or action == "start"
    if flavour == "rootless":
        return f"systemctl --user {action} docker"
    if flavour == "snap":
        return f"sudo snap {'start' if starting else action} docker"
    if flavour == "desktop":
        return "restart Docker Desktop (its menu: Restart)"
    if flavour == "podman":
        return f"systemctl --user {action} podman.socket"
    if starting:
        return enable_service("docker", host)
    if action == "restart":
        return restart_service("docker", host)
    return f"sudo systemctl {action} docker" if uses_systemd(host) else f"sudo service docker {action}"


def docker_logs_hint(flavour: str, host: HostFacts | None) -> str:
    if flavour == "rootless":
        return "journalctl --user -u docker -n 50"
    if flavour == "snap":
        return "sudo snap logs docker -n 50"
    return service_log("docker", host)
