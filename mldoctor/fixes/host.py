"""Host-level fix builders: which distro family, how it installs packages, how its init system runs services."""

from __future__ import annotations

from mldoctor.facts.host import HostFacts

FAMILIES = {
    "debian": ("debian", "ubuntu"),
    "rhel": ("rhel", "fedora", "centos", "rocky", "almalinux"),
    "suse": ("suse", "opensuse", "sles"),
    "arch": ("arch",),
}

INSTALL = {
    "debian": "sudo apt-get install -y {}",
    "rhel": "sudo dnf install -y {}",
    "suse": "sudo zypper install -y {}",
    "arch": "sudo pacman -S --noconfirm {}",
}


def distro_family(host: HostFacts | None) -> str:
    """debian, rhel, suse, arch, or unknown."""
    if host is None or host.os is None:
        return "unknown"
    ids = [host.os.id, *host.os.id_like]
    for family, members in FAMILIES.items():
        if any(i in members or i.startswith(members) for i in ids):
            return family
    return "unknown"


def is_ubuntu(host: HostFacts | None) -> bool:
    return host is not None and host.os is not None and "ubuntu" in (host.os.id, *host.os.id_like)


def install(host: HostFacts | None, packages: dict[str, str], docs: str) -> str:
    """The install command for this distro family, or the docs page when the family is unknown."""
    family = distro_family(host)
    if family in packages and family in INSTALL:
        return INSTALL[family].format(packages[family])
    return f"see {docs}"


def uses_systemd(host: HostFacts | None) -> bool:
    """Whether PID 1 is systemd; unknown (an old report, no host facts) counts as yes, the common case."""
    return host is None or host.systemd


def enable_service(name: str, host: HostFacts | None) -> str:
    """Start a system service now and at every boot, with the init system that is there."""
    if uses_systemd(host):
        return f"sudo systemctl enable --now {name}"
    return f"sudo service {name} start"


def restart_service(name: str, host: HostFacts | None) -> str:
    if uses_systemd(host):
        return f"sudo systemctl restart {name}"
    return f"sudo service {name} restart"


def service_log(name: str, host: HostFacts | None) -> str:
    if uses_systemd(host):
        return f"sudo journalctl -u {name} -n 50"
    return f"/var/log/{name}.log"
