"""NVIDIA fix builders: the driver (install, rebuild, hold, sign), device nodes, the container toolkit and
fabric manager, per distro family. Package names and repositories are NVIDIA's and the distros' documented ones."""

from __future__ import annotations

from mldoctor.facts.docker import DockerFacts
from mldoctor.facts.host import HostFacts
from mldoctor.facts.nvidia import DeviceNode
from mldoctor.fixes.docker import docker_service
from mldoctor.fixes.host import distro_family, enable_service, install, is_ubuntu

DRIVER_DOCS = "https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/"
TOOLKIT_DOCS = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"
NODE_FIX = "sudo nvidia-modprobe -u -c=0 && sudo nvidia-smi >/dev/null   # root creates the missing /dev/nvidia* nodes"
NODE_MODE = (
    "sudo chmod 0666 /dev/nvidia* && "
    "echo 'options nvidia NVreg_DeviceFileMode=0666' | sudo tee /etc/modprobe.d/nvidia-device-mode.conf"
    "   # the driver's default mode, now and after reboots"
)
DEV_CHAR_LINKS = (
    "sudo nvidia-ctk system create-dev-char-symlinks --create-all\n"
    'echo \'ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", RUN+="/usr/bin/nvidia-ctk system '
    "create-dev-char-symlinks --create-all\"' | sudo tee /etc/udev/rules.d/71-nvidia-dev-char.rules"
)
"""The /dev/char links for the nvidia nodes, now and (udev) whenever the driver binds: without them the systemd
cgroup driver revokes containers' GPU access at the next `systemctl daemon-reload`."""


def driver_install(host: HostFacts | None) -> str:
    """The distribution's own driver packages (built for the running kernel by DKMS), then the reboot that loads
    them; NVIDIA's guide where mldoctor does not know the distribution."""
    if is_ubuntu(host):
        return "sudo ubuntu-drivers install && sudo reboot"
    packages = {"debian": "linux-headers-$(uname -r) nvidia-driver", "rhel": "kernel-devel-$(uname -r) kernel-headers"}
    if distro_family(host) not in packages:
        return f"install the NVIDIA driver for your distribution ({DRIVER_DOCS}), then reboot"
    first = install(host, packages, DRIVER_DOCS)
    if distro_family(host) == "rhel":
        return f"{first} && sudo dnf module install -y nvidia-driver:latest-dkms && sudo reboot   # NVIDIA's CUDA repo"
    return f"{first} && sudo reboot   # with contrib and non-free enabled in the apt sources"


def rebuild_module(host: HostFacts | None) -> str:
    """DKMS rebuilds the module for the running kernel once that kernel's headers are installed."""
    packages = {
        "debian": "linux-headers-$(uname -r)",
        "rhel": "kernel-devel-$(uname -r)",
        "suse": "kernel-default-devel",
        "arch": "linux-headers",
    }
    if distro_family(host) not in packages:
        return "# install the headers of the running kernel, then:\nsudo dkms autoinstall && sudo modprobe nvidia"
    return f"{install(host, packages, DRIVER_DOCS)} && sudo dkms autoinstall && sudo modprobe nvidia"


def blacklist_nouveau(host: HostFacts | None) -> str:
    initramfs = {"debian": "sudo update-initramfs -u", "arch": "sudo mkinitcpio -P"}.get(
        distro_family(host), "sudo dracut --force"
    )
    return (
        "printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | "
        f"sudo tee /etc/modprobe.d/blacklist-nouveau.conf && {initramfs} && sudo reboot"
    )


def hold_driver(host: HostFacts | None) -> str:
    """Pin the driver packages, so an unattended upgrade cannot replace the library under a loaded module."""
    family = distro_family(host)
    if family == "debian":
        return (
            "dpkg-query -W -f='${binary:Package}\\n' '*nvidia*' | grep -v container | xargs sudo apt-mark hold"
            "   # upgrades then wait for you"
        )
    if family == "rhel":
        return (
            "sudo dnf install -y python3-dnf-plugin-versionlock && "
            "sudo dnf versionlock add 'nvidia-driver*' 'kmod-nvidia*'   # upgrades then wait for you"
        )
    return "# pin the driver packages, so an upgrade cannot replace the library under a loaded module"


def enroll_mok(host: HostFacts | None) -> str:
    """Enroll the key DKMS signs modules with, for Secure Boot."""
    if is_ubuntu(host):
        key = "/var/lib/shim-signed/mok/MOK.der"
    elif distro_family(host) == "rhel":
        key = "/etc/pki/akmods/certs/public_key.der"
    else:
        key = "/var/lib/dkms/mok.pub"
    return (
        f"sudo mokutil --import {key} && sudo reboot"
        "   # enroll the key in the blue MOK screen at boot; or turn Secure Boot off in the firmware"
    )


def node_access(blocked: list[DeviceNode], host: HostFacts | None) -> str:
    """Join the group the driver gave the nodes (NVreg_DeviceFileMode=0660 setups use video); where no group may
    open them, restore the driver's default 0666 through its module option, so it survives the next boot."""
    groups = sorted({n.group for n in blocked if n.mode & 0o060 and n.group != "root"})
    if groups and host is not None and host.user is not None:
        return f"sudo usermod -aG {groups[0]} {host.user.name}   # then log out and back in"
    return NODE_MODE


def toolkit_install(host: HostFacts | None) -> str:
    """NVIDIA's documented repository setup and install, per distro family."""
    repo = "https://nvidia.github.io/libnvidia-container"
    family = distro_family(host)
    if family == "debian":
        keyring = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
        return (
            f"curl -fsSL {repo}/gpgkey | sudo gpg --dearmor -o {keyring}\n"
            f"curl -fsSL {repo}/stable/deb/nvidia-container-toolkit.list | "
            f"sed 's#deb https://#deb [signed-by={keyring}] https://#g' | "
            "sudo tee /etc/apt/sources.list.d/nvidia-container-toolkit.list\n"
            "sudo apt-get update && sudo apt-get install -y nvidia-container-toolkit"
        )
    if family == "rhel":
        return (
            f"curl -fsSL {repo}/stable/rpm/nvidia-container-toolkit.repo | "
            "sudo tee /etc/yum.repos.d/nvidia-container-toolkit.repo\n"
            "sudo dnf install -y nvidia-container-toolkit"
        )
    if family == "suse":
        return (
            f"sudo zypper ar {repo}/stable/rpm/nvidia-container-toolkit.repo\n"
            "sudo zypper --gpg-auto-import-keys install -y nvidia-container-toolkit"
        )
    if family == "arch":
        return install(host, {"arch": "nvidia-container-toolkit"}, TOOLKIT_DOCS)
    return f"install the NVIDIA Container Toolkit: {TOOLKIT_DOCS}"


def configure_toolkit(docker: DockerFacts | None, host: HostFacts | None) -> str:
    """Register the nvidia runtime with *this* daemon (rootless and snap read their own daemon.json) and restart it
    the way it runs."""
    flavour = docker.flavour if docker is not None else "engine"
    path = docker.daemon_json() if docker is not None else None
    config = f" --config={path}" if path and path != "/etc/docker/daemon.json" else ""
    sudo = "" if flavour == "rootless" else "sudo "
    return f"{sudo}nvidia-ctk runtime configure --runtime=docker{config} && {docker_service('restart', flavour, host)}"


def dev_char_links(has_ctk: bool, host: HostFacts | None, docker: DockerFacts | None = None) -> str:
    """Create the /dev/char links (installing the toolkit first when nvidia-ctk is missing)."""
    steps = DEV_CHAR_LINKS if has_ctk else toolkit_install(host) + "\n" + DEV_CHAR_LINKS
    if docker is not None:
        steps += "\n" + docker_service("restart", docker.flavour, host) + "   # running containers get the GPU back"
    return steps


def fabric_manager_install(driver: str | None, host: HostFacts | None) -> str:
    """Fabric manager must be exactly the driver's version: Debian-family packages are per branch, RPMs per
    version. Without a known driver version, the command finds the branch itself."""
    branch = driver.split(".")[0] if driver else "$(cut -d. -f1 /sys/module/nvidia/version)"
    version = driver or "$(cat /sys/module/nvidia/version)"
    packages = {"debian": f"nvidia-fabricmanager-{branch}", "rhel": f"nvidia-fabric-manager-{version}"}
    step = (
        install(host, packages, DRIVER_DOCS)
        if distro_family(host) in packages
        else f"install NVIDIA fabric manager {driver or 'of the driver version'} ({DRIVER_DOCS})"
    )
    return f"{step} && {enable_service('nvidia-fabricmanager', host)}   # its version must be the driver's"


def disable_acs(bridges: list[str], host: HostFacts | None) -> str:
    """Clear ACS control on the bridges above the GPUs (until the next boot; the firmware's ACS setting, or
    `pci=noacs` on the kernel command line, makes it last)."""
    clear = " && ".join(f"sudo setpci -s {address} ECAP_ACS+6.w=0000" for address in bridges)
    return f"{clear}   # until reboot; for good: ACS off in the firmware, or {kernel_argument('pci=noacs', host)}"


def kernel_argument(argument: str, host: HostFacts | None) -> str:
    """Add a word to the kernel command line, the way the distro's boot loader tooling does, then reboot."""
    if distro_family(host) == "rhel":
        return f"sudo grubby --update-kernel=ALL --args={argument} && sudo reboot"
    if distro_family(host) == "debian":
        return (
            f"sudo sed -i 's/^GRUB_CMDLINE_LINUX=\"/&{argument} /' /etc/default/grub && sudo update-grub && sudo reboot"
        )
    return f"add {argument} to the kernel command line in your boot loader's configuration, then reboot"
