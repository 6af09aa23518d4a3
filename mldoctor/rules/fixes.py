"""Fix commands tailored to the host: distro family, Docker flavour, init system.

Rules call these instead of hard-coding `systemctl`/`apt-get`, so a fix pastes on the machine it was made for.
"""

from __future__ import annotations

from mldoctor.facts.host import HostFacts

GIB = 1 << 30


def gib(nbytes: float) -> str:
    value = nbytes / GIB
    return f"{value:.1f} GiB" if value < 100 else f"{value:.0f} GiB"


def distro_family(host: HostFacts | None) -> str:
    """debian, rhel, suse, arch, or unknown."""
    if host is None:
        return "unknown"
    ids = [host.os.id, *host.os.id_like]
    for family, members in {
        "debian": ("debian", "ubuntu"),
        "rhel": ("rhel", "fedora", "centos", "rocky", "almalinux"),
        "suse": ("suse", "opensuse", "sles"),
        "arch": ("arch",),
    }.items():
        if any(i in members or i.startswith(members) for i in ids):
            return family
    return "unknown"


INSTALL = {
    "debian": "sudo apt-get install -y {}",
    "rhel": "sudo dnf install -y {}",
    "suse": "sudo zypper install -y {}",
    "arch": "sudo pacman -S --noconfirm {}",
}


def install(host: HostFacts | None, packages: dict[str, str], docs: str) -> str:
    """The install command for this distro family, or the docs page when the family is unknown."""
    family = distro_family(host)
    if family in packages and family in INSTALL:
        return INSTALL[family].format(packages[family])
    return f"see {docs}"


def docker_service(action: str, flavour: str, host: HostFacts | None) -> str:
    """`start`, `restart` or `enable --now` the daemon of this flavour."""
    if flavour == "rootless":
        return f"systemctl --user {action} docker"
    if flavour == "snap":
        return f"sudo snap {'start' if action.startswith('enable') else action} docker"
    if flavour == "desktop":
        return "restart Docker Desktop (its menu: Restart)"
    if flavour == "podman":
        return f"systemctl --user {action} podman.socket"
    if host is not None and not host.systemd:
        return f"sudo service docker {'start' if action.startswith('enable') else action}"
    return f"sudo systemctl {action} docker"


def docker_logs_hint(flavour: str, host: HostFacts | None) -> str:
    if flavour == "rootless":
        return "journalctl --user -u docker -n 50"
    if flavour == "snap":
        return "sudo snap logs docker -n 50"
    if host is not None and not host.systemd:
        return "/var/log/docker.log"
    return "sudo journalctl -u docker -n 50"
