"""NVIDIA hardware and driver checks, in the order the chain breaks: GPUs on the bus -> kernel driver and NVML ->
device nodes.

Only the first broken link FAILs: the later checks name it and SKIP. With no NVIDIA GPU on the PCI bus there is no
driver to judge (installing one fixes nothing): nvidia.driver SKIPs, pointing at nvidia.gpu, which FAILs when GPUs
are required. Only where the bus cannot be read is the driver judged without a GPU in sight.
"""

from __future__ import annotations

import re

from mldoctor.facts import Facts
from mldoctor.facts.docker import DockerFacts
from mldoctor.facts.host import HostFacts
from mldoctor.facts.nvidia import GpuFacts, NvidiaFacts, PciDevice
from mldoctor.fixes import nvidia as fixes
from mldoctor.model import Finding, Problem, Status
from mldoctor.policy import Policy
from mldoctor.rules.registry import check
from mldoctor.text import plural, version_tuple


def gpu_count(nv: NvidiaFacts) -> int:
    """GPUs on this host: on the PCI bus or seen by NVML, whichever sees more."""
    return max(len(nv.pci_gpus), len(nv.nvml.gpus))


@check("nvidia.gpu", "NVIDIA GPUs", facts=("nvidia",))
def nvidia_gpu(facts: Facts, policy: Policy) -> Finding:
    nv = facts.nvidia
    count, required = gpu_count(nv), policy.require_gpus
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
    names = [g.name or "an unnamed GPU" for g in nv.nvml.gpus] or [f"PCI device {d.device_id}" for d in nv.pci_gpus]
    described = ", ".join(f"{names.count(n)} × {n}" for n in dict.fromkeys(names))
    details = tuple(
        f"{d.address}: device {d.device_id}, driver {d.driver or 'none bound'}" for d in nv.pci_gpus
    ) + tuple(f"{d.address}: NVSwitch" for d in nv.nvswitches)
    if count < required:
        return Finding.fail(
            f"{plural(count, 'NVIDIA GPU')} ({described}); required: {required}",
            fix="lspci -nn | grep -i nvidia   # every GPU the host has; one missing there is unseated or dead",
            details=details,
        )
    wanted = policy.require_gpu_models
    others = sorted(
        {g.name or "?" for g in nv.nvml.gpus if not any(m.lower() in (g.name or "").lower() for m in wanted)}
    )
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
            fixes.blacklist_nouveau(host),
        )
    if not kernel.module_kernels:
        only = f" (only its library, libnvidia-ml {library}, is)" if library else ""
        return f"no nvidia kernel module is installed{only}", fixes.driver_install(host)
    if kernel.running_kernel not in kernel.module_kernels:
        return (
            f"the nvidia module is built for {', '.join(kernel.module_kernels)}, "
            f"not for the running kernel {kernel.running_kernel}",
            fixes.rebuild_module(host) + "   # or boot the kernel it was built for",
        )
    if kernel.secure_boot:
        return (
            "Secure Boot is on and the nvidia module is not signed by an enrolled key",
            fixes.enroll_mok(host),
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
            f"sudo reboot   # loads the installed module {nvml.library_version or ''}\n{fixes.hold_driver(host)}",
        )
    if nvml.error_kind == "library_not_found":
        if kernel.version_text:
            return (
                f"NVML: {nvml.error}: the nvidia kernel module {kernel.module_version or ''} is loaded, but the "
                "driver's user-space libraries are not installed",
                fixes.driver_install(host),
            )
        return f"NVML: {nvml.error}: no NVIDIA driver is installed", fixes.driver_install(host)
    if nvml.error_kind == "driver_not_loaded":
        cause, fix = _not_loaded(nv, host)
        return f"NVML: {nvml.error}: {cause}", fix
    if nvml.error_kind == "no_permission":
        blocked = [n for n in kernel.nodes if not n.accessible]
        return (
            f"NVML: {nvml.error}: this user cannot open {', '.join(n.path for n in blocked) or 'the GPU device nodes'}",
            fixes.node_access(blocked, host),
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
    if gpu_count(nv) == 0 and nv.pci_error is None:
        why = "nvidia.gpu failed" if policy.require_gpus else "no NVIDIA GPU on this host"
        return Finding.skip(f"skipped: {why}", blocked_by="nvidia.gpu")
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
    summary = (
        f"driver {nvml.driver_version or '(version unknown)'} (CUDA {nvml.cuda_driver_version or '?'}), NVML sees "
        + plural(len(nvml.gpus), "GPU")
    )
    seen = {(g.pci_bus_id or "").lower()[-12:] for g in nvml.gpus}
    elsewhere = _elsewhere(nv)
    unseen = [d.address for d in nv.pci_gpus if d.address.lower()[-12:] not in seen and d not in elsewhere]
    lost = [g for g in nvml.gpus if any("GPU is lost" in error for error in g.errors.values())]
    if lost:
        return _lost(lost, unseen, details)
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
        return Finding.fail(
            f"{summary}: {too_old}", fix=fixes.driver_install(host) + "   # a newer driver", details=details
        )
    return Finding.ok(summary, details=details)


def _lost(lost: list[GpuFacts], unseen: list[str], details: tuple[str, ...]) -> Finding:
    """NVML's "GPU is lost": the GPU stopped answering on PCIe (Xid 79, fallen off the bus). NVML then refuses its
    handle, so its bus id is unknown too: it is the address on the bus that no answering GPU claims."""
    named = []
    for i, gpu in enumerate(lost):
        address = gpu.pci_bus_id or (unseen[i] if len(unseen) == len(lost) else "bus id unknown")
        named.append(f"GPU {gpu.index} ({address.lower()[-12:]})")
    return Finding.fail(
        f"{', '.join(named)} {'is' if len(lost) == 1 else 'are'} lost: fallen off the bus (Xid 79); "
        "every job on this node that uses it fails until a reboot",
        fix="sudo reboot   # the GPU is gone until then; if it falls off again, check its power and cooling, reseat it "
        "or have it replaced: sudo dmesg | grep -iE 'NVRM|Xid' | tail -20 shows the history",
        details=details,
    )


def _older_than_policy(driver: str | None, cuda: str | None, policy: Policy) -> str | None:
    """The policy's driver and CUDA floors (what the team's images need), when the host is below one."""
    if policy.min_driver_version and driver and version_tuple(driver) < version_tuple(policy.min_driver_version):
        return f"older than the required driver {policy.min_driver_version}"
    if policy.min_cuda_version and cuda and version_tuple(cuda) < version_tuple(policy.min_cuda_version):
        return f"supports CUDA {cuda}, older than the required {policy.min_cuda_version}"
    return None


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


@check("nvidia.devices", "NVIDIA device nodes", facts=("nvidia", "host.user"), requires=("nvidia.gpu", "nvidia.driver"))
def nvidia_devices(facts: Facts, policy: Policy) -> Finding:
    nv, host = facts.nvidia, facts.host
    nodes = {n.path: n for n in nv.kernel.nodes}
    gpu_nodes = [p for p in nodes if re.fullmatch(r"/dev/nvidia\d+", p)]
    problems = []
    missing = [p for p in ("/dev/nvidiactl",) if p not in nodes]
    if len(gpu_nodes) < len(nv.nvml.gpus):
        missing.append(f"{len(nv.nvml.gpus) - len(gpu_nodes)} of the /dev/nvidiaN nodes")
    if missing:
        problems.append(Problem(Status.FAIL, f"missing: {', '.join(missing)}", fixes.NODE_FIX))
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
        problems.append(Problem(Status.FAIL, "missing: /dev/nvidia-uvm (CUDA needs it)", fixes.NODE_FIX))
    blocked = [n for n in nodes.values() if not n.accessible]
    if blocked:
        problems.append(
            Problem(
                Status.WARN,
                f"{host.user.name} cannot open {', '.join(n.path for n in blocked)}: host-side CUDA and NVML fail "
                "for this user",
                fixes.node_access(blocked, host),
            )
        )
    unlinked = [n.path for n in nodes.values() if not n.char_link]
    if unlinked and _cgroup_driver(facts.docker) == "systemd":
        create = fixes.dev_char_links(nv.toolkit.binary("nvidia-ctk") is not None, host)
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
    return Finding.combine(problems, f"{len(nodes)} device nodes present and usable", details)
