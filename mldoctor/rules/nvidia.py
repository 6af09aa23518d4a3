"""NVIDIA checks, in the order the chain breaks: hardware -> kernel driver and NVML -> device nodes ->
GPU health and the NVLink fabric -> the container toolkit.

Only the first broken link FAILs: the later checks name it and SKIP. One exception is deliberate: when GPUs are
required, nvidia.driver is judged even if the PCI bus shows no NVIDIA device, because "no GPU" and "a driver that
is not there" are fixed differently and the user needs both answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mldoctor.facts import Facts
from mldoctor.facts.docker import DockerFacts, daemon_json_path
from mldoctor.facts.host import HostFacts
from mldoctor.facts.nvidia import DeviceNode, GpuFacts, NvidiaFacts, PciDevice
from mldoctor.model import Finding, Status
from mldoctor.policy import Policy
from mldoctor.rules.fixes import distro_family, docker_service, gib, install
from mldoctor.rules.registry import check

DRIVER_DOCS = "https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/"
TOOLKIT_DOCS = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"
NEAR_SLOWDOWN_C = 5
"""WARN when a GPU is this close to its slowdown temperature: under load it will start throttling."""
SLOWDOWN_REASONS = {
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}
"""Clock-event bits that mean trouble; GpuIdle, SwPowerCap and friends are normal operation."""
DATACENTER = re.compile(r"\b(Tesla|[ABHL]\d{1,3}S?|GH\d{3}|GB\d{3}|V100|P100|T4)\b")
"""Datacenter GPU names: A100, H100, H200, L40S, B200, GH200, V100, T4... (GeForce and RTX cards don't match)."""
NODE_FIX = "sudo nvidia-modprobe -u -c=0 && sudo nvidia-smi >/dev/null   # root creates the missing /dev/nvidia* nodes"
NODE_MODE = (
    "sudo chmod 0666 /dev/nvidia* && "
    "echo 'options nvidia NVreg_DeviceFileMode=0666' | sudo tee /etc/modprobe.d/nvidia-device-mode.conf"
    "   # the driver's default mode, now and after reboots"
)


@dataclass(frozen=True)
class Problem:
    status: Status
    summary: str
    fix: str


def _combine(problems: list[Problem], ok: str, details: tuple[str, ...], subject: str | None = None) -> Finding:
    """One finding for several independent problems: the worst status, every summary, every fix."""
    if not problems:
        return Finding.ok(ok, details=details, subject=subject)
    worst = Status.FAIL if any(p.status is Status.FAIL for p in problems) else Status.WARN
    ordered = sorted(problems, key=lambda p: p.status is not Status.FAIL)
    fixes = "\n".join(dict.fromkeys(p.fix for p in ordered))
    return Finding(worst, "; ".join(p.summary for p in ordered), details, fixes, subject=subject)


def _gpu_count(nv: NvidiaFacts) -> int:
    return max(len(nv.pci_gpus), len(nv.nvml.gpus))


def _plural(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _is_ubuntu(host: HostFacts | None) -> bool:
    return host is not None and "ubuntu" in (host.os.id, *host.os.id_like)


def _driver_install(host: HostFacts | None) -> str:
    """The distribution's own driver packages (built for the running kernel by DKMS), then the reboot that loads
    them; NVIDIA's guide where mldoctor does not know the distribution."""
    if _is_ubuntu(host):
        return "sudo ubuntu-drivers install && sudo reboot"
    packages = {"debian": "linux-headers-$(uname -r) nvidia-driver", "rhel": "kernel-devel-$(uname -r) kernel-headers"}
    if distro_family(host) not in packages:
        return f"install the NVIDIA driver for your distribution ({DRIVER_DOCS}), then reboot"
    first = install(host, packages, DRIVER_DOCS)
    if distro_family(host) == "rhel":
        return f"{first} && sudo dnf module install -y nvidia-driver:latest-dkms && sudo reboot   # NVIDIA's CUDA repo"
    return f"{first} && sudo reboot   # with contrib and non-free enabled in the apt sources"


def _rebuild_module(host: HostFacts | None) -> str:
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


def _initramfs(host: HostFacts | None) -> str:
    return {"debian": "sudo update-initramfs -u", "arch": "sudo mkinitcpio -P"}.get(
        distro_family(host), "sudo dracut --force"
    )


def _hold_driver(host: HostFacts | None) -> str:
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


def _mok_key(host: HostFacts | None) -> str:
    if _is_ubuntu(host):
        return "/var/lib/shim-signed/mok/MOK.der"
    if distro_family(host) == "rhel":
        return "/etc/pki/akmods/certs/public_key.der"
    return "/var/lib/dkms/mok.pub"


def _toolkit_install(host: HostFacts | None) -> str:
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


def _daemon_json(docker: DockerFacts) -> str | None:
    """The daemon.json the running daemon reads (as gathered; else where its flavour keeps it)."""
    if docker.config is not None and docker.config.path:
        return docker.config.path
    return daemon_json_path(docker.flavour, [])


def _configure_toolkit(docker: DockerFacts, host: HostFacts | None) -> str:
    """Register the nvidia runtime with *this* daemon: rootless and snap read their own daemon.json."""
    path = _daemon_json(docker)
    config = f" --config={path}" if path and path != "/etc/docker/daemon.json" else ""
    sudo = "" if docker.flavour == "rootless" else "sudo "
    restart = docker_service("restart", docker.flavour, host)
    return f"{sudo}nvidia-ctk runtime configure --runtime=docker{config} && {restart}"


@check("nvidia.gpu", "NVIDIA GPUs", facts=("nvidia",))
def nvidia_gpu(facts: Facts, policy: Policy) -> Finding:
    nv = facts.nvidia
    count, required = _gpu_count(nv), policy.require_gpus
    where = (
        f"the PCI bus could not be read ({nv.pci_error})" if nv.pci_error else "no NVIDIA device on the PCI bus (sysfs)"
    )
    if count == 0:
        if not required:
            return Finding.skip("no NVIDIA GPU on this host", details=(where,))
        return Finding.fail(
            f"no NVIDIA GPU on this host; required: {required}",
            fix="lspci -nn | grep -i nvidia   # empty: run on a GPU host; in a VM, pass the GPU through to it",
            details=(where,),
        )
    names = [g.name for g in nv.nvml.gpus if g.name] or [f"PCI device {d.device_id}" for d in nv.pci_gpus]
    described = ", ".join(f"{names.count(n)} × {n}" for n in dict.fromkeys(names))
    details = tuple(
        f"{d.address}: device {d.device_id}, driver {d.driver or 'none bound'}" for d in nv.pci_gpus
    ) + tuple(f"{d.address}: NVSwitch" for d in nv.nvswitches)
    if count < required:
        return Finding.fail(
            f"{_plural(count, 'NVIDIA GPU')} ({described}); required: {required}",
            fix="lspci -nn | grep -i nvidia   # every GPU the host has; one missing there is unseated or dead",
            details=details,
        )
    wanted = policy.require_gpu_models
    others = sorted({g.name for g in nv.nvml.gpus if not any(m.lower() in g.name.lower() for m in wanted)})
    if wanted and (others or not nv.nvml.gpus):
        found = ", ".join(others) if nv.nvml.gpus else "unknown models (NVML cannot name them: see nvidia.driver)"
        return Finding.fail(
            f"{described}: {found} is not one of the required models ({', '.join(wanted)})",
            fix="run this job on a node with the required GPUs, or change require_gpu_models in the policy file",
            details=details,
        )
    return Finding.ok(described, details=details)


def _not_loaded(nv: NvidiaFacts, host: HostFacts | None) -> tuple[str, str]:
    """Why the nvidia kernel module is not loaded, and its fix; the causes in the order they hide each other."""
    kernel, library = nv.kernel, nv.nvml.library_version
    if "nouveau" in kernel.modules or any(d.driver == "nouveau" for d in nv.pci_gpus):
        return (
            "the open-source nouveau driver holds the GPU",
            "printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' | "
            f"sudo tee /etc/modprobe.d/blacklist-nouveau.conf && {_initramfs(host)} && sudo reboot",
        )
    if not kernel.module_kernels:
        only = f" (only its library, libnvidia-ml {library}, is)" if library else ""
        return f"no nvidia kernel module is installed{only}", _driver_install(host)
    if kernel.running_kernel not in kernel.module_kernels:
        return (
            f"the nvidia module is built for {', '.join(kernel.module_kernels)}, "
            f"not for the running kernel {kernel.running_kernel}",
            _rebuild_module(host) + "   # or boot the kernel it was built for",
        )
    if kernel.secure_boot:
        return (
            "Secure Boot is on and the nvidia module is not signed by an enrolled key",
            f"sudo mokutil --import {_mok_key(host)} && sudo reboot"
            "   # enroll the key in the blue MOK screen at boot; or turn Secure Boot off in the firmware",
        )
    return (
        "the nvidia module is installed for this kernel but not loaded",
        "sudo modprobe nvidia   # if it refuses, the reason is in: sudo dmesg | grep -i nvidia | tail",
    )


def _driver_details(nv: NvidiaFacts) -> tuple[str, ...]:
    """Each link the driver check looked at, so a support desk sees the whole chain, not only the verdict."""
    kernel, nvml = nv.kernel, nv.nvml
    secure_boot = "unknown" if kernel.secure_boot is None else "on" if kernel.secure_boot else "off"
    lines = (
        f"kernel module: {kernel.version_text or 'not loaded'}",
        f"libnvidia-ml: {nvml.library or 'not found'}",
        f"loaded modules: {', '.join(kernel.modules) or 'none'}",
        f"kernels with an nvidia module: {', '.join(kernel.module_kernels) or 'none'}"
        f" (running: {kernel.running_kernel})",
        f"Secure Boot: {secure_boot}",
        *(f"{d.address}: bound to {d.driver}, not to nvidia (passed through to a VM?)" for d in _elsewhere(nv)),
        "" if nv.pci_gpus else "no NVIDIA device on the PCI bus either (see nvidia.gpu)",
    )
    return tuple(line for line in lines if line)


def _version_mismatch(nv: NvidiaFacts) -> bool:
    """NVML says so, or the versions do (NVML's message varies by driver branch, the two version numbers do not)."""
    kernel, nvml = nv.kernel, nv.nvml
    if nvml.error_kind == "version_mismatch":
        return True
    return bool(
        not nvml.ok and kernel.module_version and nvml.library_version and kernel.module_version != nvml.library_version
    )


def _init_failure(nv: NvidiaFacts, host: HostFacts | None) -> tuple[str, str]:
    """Why NVML did not initialise, and the fix: the summary leads with NVML's own words, which users search for."""
    kernel, nvml = nv.kernel, nv.nvml
    if _version_mismatch(nv):
        return (
            f"NVML: Driver/library version mismatch: kernel module {kernel.module_version or '?'}, "
            f"libnvidia-ml {nvml.library_version or '?'} (the driver was upgraded under the running module)",
            f"sudo reboot   # loads the installed module {nvml.library_version or ''}\n{_hold_driver(host)}",
        )
    if nvml.error_kind == "library_not_found":
        if kernel.version_text:
            return (
                f"NVML: {nvml.error}: the nvidia kernel module {kernel.module_version or ''} is loaded, but the "
                "driver's user-space libraries are not installed",
                _driver_install(host),
            )
        return f"NVML: {nvml.error}: no NVIDIA driver is installed", _driver_install(host)
    if nvml.error_kind == "driver_not_loaded":
        cause, fix = _not_loaded(nv, host)
        return f"NVML: {nvml.error}: {cause}", fix
    if nvml.error_kind == "no_permission":
        blocked = [n for n in kernel.nodes if not n.accessible]
        return (
            f"NVML: {nvml.error}: this user cannot open {', '.join(n.path for n in blocked) or 'the GPU device nodes'}",
            _node_access_fix(blocked, host),
        )
    if nvml.error_kind == "timeout":
        return (
            f"NVML did not answer ({nvml.error}): the driver is wedged",
            "sudo reboot   # first see why: sudo dmesg | grep -iE 'NVRM|Xid' | tail -20",
        )
    return (
        f"NVML failed to initialise: {nvml.error}",
        "sudo dmesg | grep -iE 'NVRM|Xid' | tail -20   # the driver's account; a reboot clears most wedged states",
    )


@check("nvidia.driver", "NVIDIA driver and NVML", facts=("nvidia", "host"))
def nvidia_driver(facts: Facts, policy: Policy) -> Finding:
    nv = facts.nvidia
    if _gpu_count(nv) == 0 and not policy.require_gpus:
        return Finding.skip("skipped: no NVIDIA GPU on this host", blocked_by="nvidia.gpu")
    details = _driver_details(nv)
    if nv.nvml.ok:
        return _driver_ok(nv, details, policy, facts.host)
    if nv.nvml.error_kind == "no_bindings":  # mldoctor's environment, not the host: the check could not run
        return Finding.error(f"cannot query NVML: {nv.nvml.error} (python3 -m pip install nvidia-ml-py)")
    summary, fix = _init_failure(nv, facts.host)
    return Finding.fail(summary, fix=fix, details=details)


def _elsewhere(nv: NvidiaFacts) -> list[PciDevice]:
    """GPUs bound to another kernel driver (vfio-pci for a VM): NVML is not meant to see them. nouveau is not one
    of these: it is a cause the driver check names."""
    return [d for d in nv.pci_gpus if d.driver not in (None, "nvidia", "nouveau")]


def _driver_ok(nv: NvidiaFacts, details: tuple[str, ...], policy: Policy, host: HostFacts | None) -> Finding:
    """NVML works; FAIL still when it misses a GPU the nvidia driver should have taken (fell off the bus, failed
    to initialise), since that GPU is silently absent from every container."""
    nvml = nv.nvml
    summary = f"driver {nvml.driver_version} (CUDA {nvml.cuda_driver_version or '?'}), NVML sees " + _plural(
        len(nvml.gpus), "GPU"
    )
    seen = {(g.pci_bus_id or "").lower()[-12:] for g in nvml.gpus}
    elsewhere = _elsewhere(nv)
    unseen = [d.address for d in nv.pci_gpus if d.address.lower()[-12:] not in seen and d not in elsewhere]
    if unseen:
        return Finding.fail(
            f"{summary}, but not {', '.join(unseen)} on the PCI bus: the driver did not initialise "
            + ("it" if len(unseen) == 1 else "them"),
            fix="sudo dmesg | grep -iE 'NVRM|Xid' | tail -20   # why the driver left them out; "
            "a GPU that fell off the bus (Xid 79) needs a reboot, then reseating",
            details=details,
        )
    too_old = _older_than_policy(nvml.driver_version, nvml.cuda_driver_version, policy)
    if too_old:
        return Finding.fail(f"{summary}: {too_old}", fix=_driver_install(host) + "   # a newer driver", details=details)
    return Finding.ok(summary, details=details)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def _older_than_policy(driver: str | None, cuda: str | None, policy: Policy) -> str | None:
    """The policy's driver and CUDA floors (what the team's images need), when the host is below one."""
    if policy.min_driver_version and driver and _version_tuple(driver) < _version_tuple(policy.min_driver_version):
        return f"older than the required driver {policy.min_driver_version}"
    if policy.min_cuda_version and cuda and _version_tuple(cuda) < _version_tuple(policy.min_cuda_version):
        return f"supports CUDA {cuda}, older than the required {policy.min_cuda_version}"
    return None


def _node_access_fix(blocked: list[DeviceNode], host: HostFacts | None) -> str:
    """Join the group the driver gave the nodes (NVreg_DeviceFileMode=0660 setups use video); where no group may
    open them, restore the driver's default 0666 through its module option, so it survives the next boot."""
    groups = sorted({n.group for n in blocked if n.mode & 0o060 and n.group != "root"})
    if groups and host is not None:
        return f"sudo usermod -aG {groups[0]} {host.user.name}   # then log out and back in"
    return NODE_MODE


def _cgroup_driver(docker: DockerFacts | None) -> str | None:
    """Docker's cgroup driver: from the daemon, else from its configuration (an opportunistic read: the devices
    check does not require docker facts, a GPU host without Docker still has device nodes to check)."""
    if docker is None:
        return None
    if docker.daemon is not None and docker.daemon.cgroup_driver:
        return docker.daemon.cgroup_driver
    exec_opts = (docker.config.settings.get("exec-opts") if docker.config else None) or []
    for opt in exec_opts if isinstance(exec_opts, list) else []:
        if str(opt).startswith("native.cgroupdriver="):
            return str(opt).partition("=")[2]
    return None


@check("nvidia.devices", "NVIDIA device nodes", facts=("nvidia", "host"), requires=("nvidia.gpu", "nvidia.driver"))
def nvidia_devices(facts: Facts, policy: Policy) -> Finding:
    nv, host = facts.nvidia, facts.host
    nodes = {n.path: n for n in nv.kernel.nodes}
    gpu_nodes = [p for p in nodes if re.fullmatch(r"/dev/nvidia\d+", p)]
    problems = []
    missing = [p for p in ("/dev/nvidiactl",) if p not in nodes]
    if len(gpu_nodes) < len(nv.nvml.gpus):
        missing.append(f"{len(nv.nvml.gpus) - len(gpu_nodes)} of the /dev/nvidiaN nodes")
    if missing:
        problems.append(Problem(Status.FAIL, f"missing: {', '.join(missing)}", NODE_FIX))
    if "nvidia_uvm" not in nv.kernel.modules:
        problems.append(
            Problem(
                Status.WARN,
                "the nvidia_uvm module is not loaded yet: CUDA loads it on first use through the setuid "
                "nvidia-modprobe (the container toolkit too), and cannot start where that is missing or blocked",
                "sudo modprobe nvidia-uvm && sudo nvidia-modprobe -u -c=0   # at every boot: "
                "echo nvidia-uvm | sudo tee /etc/modules-load.d/nvidia-uvm.conf",
            )
        )
    elif "/dev/nvidia-uvm" not in nodes:
        problems.append(Problem(Status.FAIL, "missing: /dev/nvidia-uvm (CUDA needs it)", NODE_FIX))
    blocked = [n for n in nodes.values() if not n.accessible]
    if blocked:
        problems.append(
            Problem(
                Status.WARN,
                f"{host.user.name} cannot open {', '.join(n.path for n in blocked)}: host-side CUDA and NVML fail "
                "for this user",
                _node_access_fix(blocked, host),
            )
        )
    unlinked = [n.path for n in nodes.values() if not n.char_link]
    if unlinked and _cgroup_driver(facts.docker) == "systemd":
        create = (
            "sudo nvidia-ctk system create-dev-char-symlinks --create-all\n"
            'echo \'ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", RUN+="/usr/bin/nvidia-ctk system '
            "create-dev-char-symlinks --create-all\"' | sudo tee /etc/udev/rules.d/71-nvidia-dev-char.rules"
        )
        if not nv.toolkit.binary("nvidia-ctk"):
            create = _toolkit_install(host) + "\n" + create
        problems.append(
            Problem(
                Status.WARN,
                f"systemd cgroup driver and no /dev/char link for {', '.join(unlinked)}: after the next "
                "`systemctl daemon-reload`, running containers lose the GPU ('Failed to initialize NVML: Unknown "
                "Error')",
                create,
            )
        )
    details = tuple(
        f"{n.path}: {n.owner}:{n.group} {n.mode:04o}"
        + (f" ({n.major}:{n.minor})" if n.major is not None else "")
        + ("" if n.char_link else ", no /dev/char link")
        for n in nodes.values()
    )
    return _combine(problems, f"{len(nodes)} device nodes present and usable", details)


def _gpu_problems(gpu: GpuFacts, host: HostFacts | None) -> list[Problem]:
    i = gpu.index
    reset = f"sudo nvidia-smi -r -i {i}   # resets GPU {i}; stop the processes on it first"
    problems = []
    if "GPU is lost" in gpu.errors.values():
        problems.append(
            Problem(
                Status.FAIL,
                "NVML: GPU is lost (it fell off the bus)",
                "sudo reboot   # if it is lost again (Xid 79), reseat or replace it",
            )
        )
    if gpu.ecc_uncorrected_volatile:
        problems.append(
            Problem(
                Status.FAIL,
                f"{gpu.ecc_uncorrected_volatile} uncorrected ECC errors since the driver loaded",
                reset + "; if errors return, drain the node and RMA the GPU",
            )
        )
    if gpu.remap_failure:
        problems.append(
            Problem(
                Status.FAIL,
                "row remapping failed: no spare memory rows left",
                f"nvidia-smi -q -d ROW_REMAPPER -i {i}   # attach to an RMA request: this GPU needs replacing",
            )
        )
    if gpu.remap_pending:
        problems.append(Problem(Status.WARN, "a memory row remap is pending until the GPU is reset", reset))
    if gpu.retired_pages_pending:
        problems.append(Problem(Status.WARN, "a page retirement is pending until the GPU is reset", reset))
    slowdowns = [name for bit, name in SLOWDOWN_REASONS.items() if (gpu.clock_event_reasons or 0) & bit]
    if slowdowns:
        problems.append(
            Problem(
                Status.FAIL,
                f"clocks held down by {', '.join(slowdowns)}",
                f"nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER -i {i}   # thermal: fans, airflow, inlet "
                "temperature; power brake: the BMC or the power supply",
            )
        )
    elif (
        gpu.temperature_c is not None
        and gpu.slowdown_temp_c
        and gpu.temperature_c >= gpu.slowdown_temp_c - NEAR_SLOWDOWN_C
    ):
        problems.append(
            Problem(
                Status.WARN,
                f"{gpu.temperature_c} °C, near the {gpu.slowdown_temp_c} °C slowdown temperature",
                f"nvidia-smi -q -d TEMPERATURE -i {i}   # check fans, airflow and the inlet temperature",
            )
        )
    if gpu.processes:
        users = ", ".join(
            f"pid {p.pid}"
            + (f" {p.name}" if p.name else "")
            + (f" ({gib(p.used_memory_bytes)})" if p.used_memory_bytes else "")
            for p in gpu.processes
        )
        problems.append(
            Problem(
                Status.WARN,
                f"in use by {users}: benchmarks will read low",
                f"nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv -i {i}"
                f"   # stop them before measuring: kill {' '.join(str(p.pid) for p in gpu.processes)}",
            )
        )
    if gpu.persistence_mode is False and gpu.name and DATACENTER.search(gpu.name):
        enable = (
            "sudo systemctl enable --now nvidia-persistenced"
            if host is None or host.systemd
            else f"sudo nvidia-smi -pm 1 -i {i}"
        )
        problems.append(
            Problem(
                Status.WARN,
                "persistence mode is off: every CUDA start re-initialises the GPU (seconds, and clocks reset)",
                enable,
            )
        )
    if gpu.pcie_width and gpu.pcie_width_max and gpu.pcie_width < gpu.pcie_width_max:
        problems.append(
            Problem(
                Status.WARN,
                f"PCIe link x{gpu.pcie_width} of x{gpu.pcie_width_max}: host transfers run at a fraction of speed",
                f"sudo lspci -vv -s {(gpu.pci_bus_id or '')[-12:]} | grep -E 'LnkCap|LnkSta'"
                "   # reseat the card or its riser",
            )
        )
    if gpu.mig_mode_pending is not None and gpu.mig_mode_pending != gpu.mig_mode:
        problems.append(Problem(Status.WARN, "a MIG mode change is pending until the GPU is reset", reset))
    return problems


def _na(value: object, unit: str = "") -> str:
    return "n/a" if value is None else f"{value}{unit}"


def _gpu_details(gpu: GpuFacts) -> tuple[str, ...]:
    memory = (
        f"{gib(gpu.memory_used_bytes)} of {gib(gpu.memory_total_bytes)} used"
        if gpu.memory_total_bytes is not None and gpu.memory_used_bytes is not None
        else "memory n/a"
    )
    remap = (
        "n/a"
        if gpu.remap_pending is None
        else f"{gpu.remapped_rows_uncorrectable} uncorrectable, {gpu.remapped_rows_correctable} correctable, "
        f"pending {gpu.remap_pending}, failure {gpu.remap_failure}"
    )
    return (
        f"{gpu.name} {gpu.uuid or ''} at {gpu.pci_bus_id or '?'}, compute capability {_na(gpu.compute_capability)}",
        f"{memory}; persistence {_na(gpu.persistence_mode)}; MIG {_na(gpu.mig_mode)}",
        f"temperature {_na(gpu.temperature_c, ' °C')} (slowdown at {_na(gpu.slowdown_temp_c, ' °C')}); "
        f"power {_na(gpu.power_draw_w, ' W')} of {_na(gpu.power_limit_w, ' W')}",
        f"SM clock {_na(gpu.sm_clock_mhz)}/{_na(gpu.sm_clock_max_mhz)} MHz, memory clock "
        f"{_na(gpu.mem_clock_mhz)}/{_na(gpu.mem_clock_max_mhz)} MHz; clock events "
        + ("n/a" if gpu.clock_event_reasons is None else f"{gpu.clock_event_reasons:#x}"),
        f"PCIe gen {_na(gpu.pcie_gen)} of {_na(gpu.pcie_gen_max)}, "
        f"x{_na(gpu.pcie_width)} of x{_na(gpu.pcie_width_max)}",
        f"ECC {_na(gpu.ecc_enabled)}: uncorrected {_na(gpu.ecc_uncorrected_volatile)} since boot, "
        f"{_na(gpu.ecc_uncorrected_aggregate)} lifetime; retired pages {_na(gpu.retired_pages)} "
        f"(pending {_na(gpu.retired_pages_pending)}); remapped rows {remap}",
        *(f"{name}: {error}" for name, error in gpu.errors.items()),
    )


@check("nvidia.health", "NVIDIA GPU health", facts=("nvidia", "host"), requires=("nvidia.gpu", "nvidia.driver"))
def nvidia_health(facts: Facts, policy: Policy) -> list[Finding]:
    """One result per GPU (nvidia.health.gpu0, ...), so a report and its history name the sick GPU."""
    return [
        _combine(_gpu_problems(gpu, facts.host), _healthy(gpu), _gpu_details(gpu), subject=f"gpu{gpu.index}")
        for gpu in facts.nvidia.nvml.gpus
    ]


def _healthy(gpu: GpuFacts) -> str:
    """The PASS line: what a glance needs, claiming nothing the GPU could not report (GeForce cards have no ECC)."""
    power = f", {gpu.power_draw_w:.0f} of {gpu.power_limit_w:.0f} W" if gpu.power_draw_w and gpu.power_limit_w else ""
    memory = {True: "no memory errors", False: "ECC off"}.get(gpu.ecc_enabled, "ECC n/a")
    summary = f"{gpu.name or f'GPU {gpu.index}'}: {_na(gpu.temperature_c, ' °C')}{power}, {memory}"
    if gpu.mig_mode:
        summary += "; MIG on: `--gpus all` gives its MIG instances, not the whole GPU"
    return summary


def _fabric_manager_install(nv: NvidiaFacts, host: HostFacts | None) -> str:
    """Fabric manager must be exactly the driver's version: Debian-family packages are per branch, RPMs per
    version."""
    driver = nv.nvml.driver_version or nv.kernel.module_version or "<driver version>"
    packages = {"debian": f"nvidia-fabricmanager-{driver.split('.')[0]}", "rhel": f"nvidia-fabric-manager-{driver}"}
    step = (
        install(host, packages, DRIVER_DOCS)
        if distro_family(host) in packages
        else f"install NVIDIA fabric manager {driver} ({DRIVER_DOCS})"
    )
    return f"{step} && sudo systemctl enable --now nvidia-fabricmanager   # its version must be {driver}"


@check(
    "nvidia.fabricmanager",
    "NVIDIA fabric manager (NVSwitch)",
    facts=("nvidia", "host"),
    requires=("nvidia.gpu", "nvidia.driver"),
)
def nvidia_fabricmanager(facts: Facts, policy: Policy) -> Finding:
    """On NVSwitch systems (HGX/DGX) CUDA fails with "error 802: system not yet initialized" until fabric
    manager, of exactly the driver's version, has set up the NVLink fabric."""
    nv, fm = facts.nvidia, facts.nvidia.fabric_manager
    switches = nv.nvswitches
    if not switches:
        return Finding.skip("no NVSwitch on this host: fabric manager is not needed")
    driver = nv.nvml.driver_version or nv.kernel.module_version
    what = _plural(len(switches), "NVSwitch", "NVSwitches")
    error_802 = "CUDA fails with 'error 802: system not yet initialized'"
    if not fm.path and not fm.running:
        return Finding.fail(
            f"{what} and no fabric manager installed: {error_802}", _fabric_manager_install(nv, facts.host)
        )
    if fm.version and driver and fm.version != driver:
        return Finding.fail(
            f"fabric manager {fm.version} does not match driver {driver}: it will not set up the fabric ({error_802})",
            _fabric_manager_install(nv, facts.host),
        )
    if not fm.running:
        return Finding.fail(
            f"{what} and fabric manager is not running: {error_802}",
            "sudo systemctl enable --now nvidia-fabricmanager   # if it exits: "
            "sudo journalctl -u nvidia-fabricmanager -n 50",
        )
    failed = [g for g in nv.nvml.gpus if g.fabric_state == "failed"]
    if failed:
        errors = ", ".join(f"GPU {g.index}: {g.fabric_error}" for g in failed)
        return Finding.fail(
            f"the NVLink fabric registration failed ({errors}): {error_802}",
            "sudo journalctl -u nvidia-fabricmanager -n 50   # why; then: sudo systemctl restart "
            "nvidia-fabricmanager, and if it fails again, reboot",
        )
    unready = [g for g in nv.nvml.gpus if g.fabric_state in ("not_started", "in_progress")]
    if unready:
        states = ", ".join(f"GPU {g.index} {g.fabric_state.replace('_', ' ')}" for g in unready)
        return Finding(
            Status.WARN if all(g.fabric_state == "in_progress" for g in unready) else Status.FAIL,
            f"fabric manager runs, but the NVLink fabric is not ready: {states}",
            (),
            "nvidia-smi -q | grep -A 3 Fabric   # wait for State: Completed; if it stays: "
            "sudo systemctl restart nvidia-fabricmanager",
        )
    return Finding.ok(f"fabric manager {fm.version or ''} running for {what}".replace("  ", " "))


NO_GPU_DRIVER = "`docker run --gpus all` fails with 'could not select device driver \"\" with capabilities: [[gpu]]'"
"""What users see when dockerd has no GPU driver registered: the toolkit is missing, or came after dockerd."""


@check(
    "nvidia.toolkit",
    "NVIDIA Container Toolkit",
    facts=("nvidia", "docker", "host"),
    requires=("nvidia.gpu", "nvidia.driver"),
)
def nvidia_toolkit(facts: Facts, policy: Policy) -> Finding:
    """Judged against the daemon that runs (its flavour, its daemon.json), or against its configuration when it
    is down: a GPU host whose daemon is stopped still has a toolkit to get right."""
    nv, docker, host = facts.nvidia, facts.docker, facts.host
    toolkit = nv.toolkit
    if docker.flavour == "desktop" and not host.wsl:
        return Finding.fail(
            "Docker Desktop on Linux cannot give containers NVIDIA GPUs (the toolkit does not support it)",
            fix="docker context use default   # Docker Engine on this host, with the NVIDIA Container Toolkit",
        )
    if not docker.connection.ok and not docker.dockerd_installed and docker.connection.error_kind == "missing_socket":
        return Finding.skip("skipped: Docker is not installed here (see docker.daemon)", blocked_by="docker.daemon")
    if not toolkit.installed:
        return Finding.fail(
            f"the NVIDIA Container Toolkit is not installed: {NO_GPU_DRIVER}",
            fix=_toolkit_install(host) + "\n" + _configure_toolkit(docker, host),
        )
    if docker.flavour == "podman":
        return _podman(nv)
    problems = _registration(nv, docker, host) + _cdi_problems(nv, Status.WARN) + _rootless_cgroups(nv, docker)
    details = tuple(f"{b.name}: {b.path} {b.version or ''}".rstrip() for b in toolkit.binaries if b.path) + tuple(
        f"CDI spec {s.path}: driver {s.driver_version or '?'}" for s in toolkit.cdi_specs if not s.error
    )
    return _combine(problems, f"NVIDIA Container Toolkit {toolkit.version or ''}, registered with Docker", details)


def _rootless_cgroups(nv: NvidiaFacts, docker: DockerFacts) -> list[Problem]:
    """A rootless daemon may not program the device cgroup, so nvidia-container-cli must be told not to try."""
    if docker.flavour != "rootless" or nv.toolkit.no_cgroups is True:
        return []
    return [
        Problem(
            Status.FAIL,
            f"rootless Docker, and no-cgroups is not set in {nv.toolkit.config_path}: GPU containers fail with "
            "'bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted'",
            "sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place"
            "   # breaks rootful Docker's GPU containers on this host; use CDI to serve both",
        )
    ]


def _registration(nv: NvidiaFacts, docker: DockerFacts, host: HostFacts | None) -> list[Problem]:
    """dockerd offers `--gpus` only if nvidia-container-runtime-hook was on its PATH when it started; the nvidia
    runtime (for `--runtime=nvidia` and compose `runtime: nvidia`) only if its daemon.json names it."""
    hook = nv.toolkit.binary("nvidia-container-runtime-hook")
    restart = docker_service("restart", docker.flavour, host)
    registered, where = _runtime_registered(docker)
    problems = []
    if hook is None:
        problems.append(
            Problem(
                Status.FAIL,
                f"no nvidia-container-runtime-hook on PATH: {NO_GPU_DRIVER}",
                _toolkit_install(host).splitlines()[-1] + f" && {restart}   # the hook is in nvidia-container-toolkit",
            )
        )
    elif _hook_newer_than_dockerd(nv, docker):
        problems.append(_late_hook(registered, restart))
    if not registered:
        problems.append(
            Problem(
                Status.WARN,
                f"the nvidia runtime is not registered with {where}: `--runtime=nvidia` and compose "
                "`runtime: nvidia` fail with 'unknown or invalid runtime name: nvidia'",
                _configure_toolkit(docker, host),
            )
        )
    return problems


def _runtime_registered(docker: DockerFacts) -> tuple[bool, str]:
    """Whether the nvidia runtime is registered, asking the running daemon, else reading its daemon.json."""
    if docker.daemon is not None:
        return "nvidia" in docker.daemon.runtimes, "the running daemon"
    runtimes = (docker.config.settings.get("runtimes") if docker.config else None) or {}
    where = _daemon_json(docker) or "the daemon's configuration"
    return "nvidia" in runtimes, f"{where} (the daemon is not reachable to ask)"


def _hook_newer_than_dockerd(nv: NvidiaFacts, docker: DockerFacts) -> bool:
    hook, started = nv.toolkit.binary("nvidia-container-runtime-hook"), nv.toolkit.dockerd_started
    return bool(docker.daemon is not None and started and hook and hook.installed_at and hook.installed_at > started)


def _late_hook(registered: bool, restart: str) -> Problem:
    """The hook's file is newer than the running dockerd. With the nvidia runtime not registered either, nothing
    has been applied since the install: dockerd has no GPU driver, FAIL. With it registered, the toolkit was most
    likely upgraded in place (the file is new, but a hook was there when dockerd started): WARN, restart to be
    sure."""
    if not registered:
        return Problem(
            Status.FAIL, f"the toolkit was installed after dockerd started: {NO_GPU_DRIVER} until it restarts", restart
        )
    return Problem(
        Status.WARN,
        "the container hook was replaced after dockerd started (a toolkit upgrade?): dockerd uses what it found "
        "when it started",
        restart,
    )


def _cdi_problems(nv: NvidiaFacts, status: Status) -> list[Problem]:
    """A CDI spec lists the driver's files by their versioned names: after a driver upgrade it points at files
    that no longer exist, and CDI requests (`--device nvidia.com/gpu=all`) fail with 'unresolvable CDI devices'.
    FAIL for Podman, whose only GPU path is CDI; WARN for Docker, whose `--gpus` does not read the specs."""
    driver = nv.nvml.driver_version or nv.kernel.module_version
    return [
        Problem(
            status,
            f"{spec.path} was generated for driver {spec.driver_version}, the driver is {driver}: CDI GPU requests "
            "fail with 'unresolvable CDI devices'",
            f"sudo nvidia-ctk cdi generate --output={spec.path}",
        )
        for spec in nv.toolkit.cdi_specs
        if driver and spec.driver_version and spec.driver_version != driver
    ]


def _podman(nv: NvidiaFacts) -> Finding:
    """Podman reaches GPUs through CDI only."""
    specs = [s for s in nv.toolkit.cdi_specs if not s.error]
    if not specs:
        return Finding.fail(
            "Podman gives containers GPUs through CDI, and there is no NVIDIA CDI spec",
            fix="sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"
            "   # then: podman run --device nvidia.com/gpu=all ...",
        )
    return _combine(_cdi_problems(nv, Status.FAIL), f"NVIDIA CDI spec {specs[0].path} for Podman", ())
