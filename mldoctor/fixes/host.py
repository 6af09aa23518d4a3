"""Host-level fix builders: which distro family, how it installs packages, how its init system runs services."""

from __future__ import annotations

import re

from mldoctor.facts.host import HostFacts

SUDO = re.compile(r"(^|[\s;&|(`]|\$\()sudo\s+(?:-E\s+)?", re.MULTILINE)

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


def is_root(host: HostFacts | None) -> bool:
    """Whether the facts were gathered as root (uid 0): then a fix is typed as is, without `sudo`."""
    return host is not None and host.user is not None and host.user.uid == 0


AS_ROOT = "as root: "
"""How a fix that needs root begins on a host without sudo (run what follows in a root shell)."""


def for_host(command: str, host: HostFacts | None) -> str:
    """A fix as this host's user types it, line by line (each line is a step): as root every `sudo ` is dropped (root
    may have no sudo at all: containers, CI runners, minimal images, where a `sudo` line exits 127); for a user
    without sudo (the host facts say so) a line that needs root says "as root: " and drops its sudos.

    The one place a fix is rendered: the runner calls it on every finding's fix, and `mldoctor fix` on the restart
    it runs. The builders write `sudo` and never render, so that what they build composes into a longer line."""
    return "\n".join(_line_for_host(line, host) for line in command.split("\n"))


def _line_for_host(line: str, host: HostFacts | None) -> str:
    if not SUDO.search(line):
        return line
    if is_root(host):
        return SUDO.sub(lambda m: m.group(1), line)
    if host is not None and host.sudo is False and not line.startswith(AS_ROOT):
        return AS_ROOT + SUDO.sub(lambda m: m.group(1), line)
    return line


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
