"""NVIDIA rules from facts: every status of every check, and the first-broken-link order between them.

`nvidia_facts()` is a healthy HGX-style host as the gatherer records it (see test_nvidia_facts.py for the same
values coming through a fake pynvml); each test changes the fields its case is about. `this_machine()` is what
the gatherer recorded on the CI machine: no NVIDIA device, Debian's libnvidia-ml1 535.309.01, no driver.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

import pytest
from factories import daemon, docker, down, facts, host
from helpers import result, results

from mldoctor.cli import main
from mldoctor.facts.docker import DaemonConfig, Endpoint
from mldoctor.facts.host import OsRelease
from mldoctor.facts.nvidia import (
    CdiSpec,
    DeviceNode,
    FabricManagerFacts,
    GpuFacts,
    GpuProcess,
    KernelFacts,
    KernelLog,
    NvidiaFacts,
    NvLink,
    NvmlFacts,
    PciDevice,
    PcieBridge,
    ToolBinary,
    ToolkitFacts,
    TopologyFacts,
)
from mldoctor.model import SCHEMA_VERSION, Status
from mldoctor.policy import Policy
from mldoctor.rules import REGISTRY
from mldoctor.runner import evaluate
from mldoctor.serde import to_data

DRIVER = "550.90.07"
KERNEL = "6.1.0-18-amd64"
DOCKERD_STARTED = 1_700_003_600.0
NVIDIA_IDS = [c for c in REGISTRY if c.startswith("nvidia.")]


def gpu(index: int = 0, **changes) -> GpuFacts:
    base = GpuFacts(
        index=index,
        name="NVIDIA H100 80GB HBM3",
        nvlinks=[NvLink(link=i, active=True, replay_errors=0, recovery_errors=0, crc_errors=0) for i in range(18)],
        uuid=f"GPU-5a7c1f3e-9b2d-4e61-8c0a-{index:012x}",
        pci_bus_id=f"00000000:{0x18 + index:02X}:00.0",
        memory_total_bytes=85520809984,
        memory_used_bytes=565182464,
        compute_capability="9.0",
        persistence_mode=True,
        mig_mode=False,
        mig_mode_pending=False,
        temperature_c=31,
        slowdown_temp_c=87,
        power_draw_w=69.85,
        power_limit_w=700.0,
        sm_clock_mhz=345,
        sm_clock_max_mhz=1980,
        mem_clock_mhz=2619,
        mem_clock_max_mhz=2619,
        clock_event_reasons=0x1,
        pcie_gen=5,
        pcie_gen_max=5,
        pcie_width=16,
        pcie_width_max=16,
        ecc_enabled=True,
        ecc_uncorrected_volatile=0,
        ecc_uncorrected_aggregate=0,
        remapped_rows_correctable=0,
        remapped_rows_uncorrectable=0,
        remap_pending=False,
        remap_failure=False,
        fabric_state="completed",
    )
    return replace(base, **changes)


def node(name: str, numbers: tuple[int, int], **changes) -> DeviceNode:
    base = DeviceNode(
        path=f"/dev/{name}", mode=0o666, owner="root", group="root", accessible=True, major=numbers[0], minor=numbers[1]
    )
    return replace(base, char_link=True, **changes)


def kernel(gpus: int = 2, **changes) -> KernelFacts:
    nodes = [node("nvidiactl", (195, 255)), node("nvidia-uvm", (508, 0)), node("nvidia-uvm-tools", (508, 1))]
    nodes += [node(f"nvidia{i}", (195, i)) for i in range(gpus)]
    base = KernelFacts(
        running_kernel=KERNEL,
        version_text=f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {DRIVER}  Fri May 31 09:35:42 UTC 2024",
        module_version=DRIVER,
        modules=["nvidia", "nvidia_uvm"],
        module_kernels=[KERNEL],
        secure_boot=False,
        nodes=nodes,
        dev_char=True,
    )
    return replace(base, **changes)


def toolkit(**changes) -> ToolkitFacts:
    base = ToolkitFacts(
        binaries=[
            ToolBinary(name=name, path=f"/usr/bin/{name}", version="1.16.2", installed_at=DOCKERD_STARTED - 86400)
            for name in (
                "nvidia-ctk",
                "nvidia-container-runtime",
                "nvidia-container-runtime-hook",
                "nvidia-container-cli",
            )
        ],
        config_found=True,
        cdi_specs=[CdiSpec(path="/etc/cdi/nvidia.yaml", driver_version=DRIVER)],
        dockerd_started=DOCKERD_STARTED,
    )
    return replace(base, **changes)


def no_toolkit() -> ToolkitFacts:
    return ToolkitFacts(binaries=[ToolBinary(name=b.name) for b in toolkit().binaries], dockerd_started=DOCKERD_STARTED)


def pci_gpu(index: int) -> PciDevice:
    return PciDevice(
        address=f"0000:{0x18 + index:02x}:00.0", device_id="0x2330", class_code="0x030200", kind="gpu", driver="nvidia"
    )


def nvidia_facts(gpus: int = 2, switches: int = 0, **changes) -> NvidiaFacts:
    base = NvidiaFacts(
        kernel=kernel(gpus),
        nvml=NvmlFacts(
            ok=True,
            library=f"/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.{DRIVER}",
            library_version=DRIVER,
            driver_version=DRIVER,
            cuda_driver_version="12.4",
            nvml_version=f"12.{DRIVER}",
            gpus=[gpu(i) for i in range(gpus)],
        ),
        toolkit=toolkit(),
        fabric_manager=FabricManagerFacts(path="/usr/bin/nv-fabricmanager", version=DRIVER, running=True)
        if switches
        else FabricManagerFacts(),
        kernel_log=KernelLog(),  # read, and no Xid since boot
        topology=TopologyFacts(  # one PCIe switch above all the GPUs, ACS off, the IOMMU in passthrough
            iommu="passthrough",
            bridges=[PcieBridge("0000:17:00.0", [f"0000:{0x18 + i:02x}:00.0" for i in range(gpus)], 0)],
        ),
        pci=[pci_gpu(i) for i in range(gpus)]
        + [
            PciDevice(address=f"0000:0{5 + i}:00.0", device_id="0x22a3", class_code="0x068000", kind="nvswitch")
            for i in range(switches)
        ],
    )
    return replace(base, **changes)


def with_nvml(nv: NvidiaFacts, **changes) -> NvidiaFacts:
    return replace(nv, nvml=replace(nv.nvml, **changes))


def with_kernel(nv: NvidiaFacts, **changes) -> NvidiaFacts:
    return replace(nv, kernel=replace(nv.kernel, **changes))


def with_toolkit(nv: NvidiaFacts, **changes) -> NvidiaFacts:
    return replace(nv, toolkit=replace(nv.toolkit, **changes))


def with_gpu(nv: NvidiaFacts, **changes) -> NvidiaFacts:
    """Change GPU 0."""
    return with_nvml(nv, gpus=[replace(nv.nvml.gpus[0], **changes), *nv.nvml.gpus[1:]])


def nvml_failed(nv: NvidiaFacts, kind: str, error: str, **changes) -> NvidiaFacts:
    """nvmlInit failed: no GPUs listed, the kind and text the gatherer recorded."""
    return with_nvml(nv, ok=False, error_kind=kind, error=error, gpus=[], **changes)


def not_loaded(nv: NvidiaFacts, **kernel_changes) -> NvidiaFacts:
    """NVML says Driver Not Loaded: no /proc/driver/nvidia, no modules, no nodes."""
    nv = nvml_failed(nv, "driver_not_loaded", "Driver Not Loaded")
    changes = {"version_text": None, "module_version": None, "modules": [], "nodes": []} | kernel_changes
    return with_kernel(nv, **changes)


def this_machine() -> NvidiaFacts:
    """As gathered on the CI machine (Debian 12 VM, no GPU) with Debian's libnvidia-ml1 installed."""
    nv = nvidia_facts(gpus=0, toolkit=no_toolkit())
    nv = not_loaded(nv, running_kernel="6.1.0-37-cloud-amd64", module_kernels=[])
    return with_nvml(
        nv,
        library="/usr/lib/x86_64-linux-gnu/nvidia/current/libnvidia-ml.so.535.309.01",
        library_version="535.309.01",
        driver_version=None,
        cuda_driver_version=None,
        nvml_version=None,
    )


def ubuntu():
    return host(os=OsRelease(id="ubuntu", id_like=["debian"], version_id="22.04"))


def rocky():
    return host(os=OsRelease(id="rocky", id_like=["rhel", "centos", "fedora"], version_id="9.3"))


def opensuse():
    return host(os=OsRelease(id="opensuse-leap", id_like=["suse", "opensuse"], version_id="15.5"))


def gentoo():
    """A distribution mldoctor has no package names for: fixes point at the docs instead of guessing."""
    return host(os=OsRelease(id="gentoo", version_id="2.15"))


def need(n: int) -> Policy:
    return Policy(require_gpus=n)


class TestGpu:
    def test_no_gpu_and_none_required_skips_with_the_reason(self):
        r = result(facts(nvidia=this_machine()), "nvidia.gpu")
        assert r.status is Status.SKIP and r.summary == "no NVIDIA GPU on this host"
        assert r.details == ["no NVIDIA device on the PCI bus (sysfs)"]

    def test_no_gpu_when_required_fails(self):
        r = result(facts(nvidia=this_machine()), "nvidia.gpu", need(1))
        assert r.status is Status.FAIL and r.summary == "no NVIDIA GPU on this host; required: 1"
        assert r.fix.startswith("lspci -nn | grep -i nvidia")

    def test_fewer_than_required_fails(self):
        r = result(facts(nvidia=nvidia_facts(gpus=2)), "nvidia.gpu", need(8))
        assert r.status is Status.FAIL
        assert r.summary == "2 NVIDIA GPUs (2 × NVIDIA H100 80GB HBM3); required: 8"

    def test_pass_names_the_gpus(self):
        nv = with_gpu(nvidia_facts(gpus=2), name="NVIDIA A100-SXM4-80GB")
        r = result(facts(nvidia=nv), "nvidia.gpu", need(2))
        assert r.status is Status.PASS and r.summary == "1 × NVIDIA A100-SXM4-80GB, 1 × NVIDIA H100 80GB HBM3"
        assert "0000:18:00.0: device 0x2330, driver nvidia" in r.details

    def test_without_nvml_names_come_from_pci(self):
        r = result(facts(nvidia=not_loaded(nvidia_facts(gpus=1))), "nvidia.gpu")
        assert r.status is Status.PASS and r.summary == "1 × PCI device 0x2330"

    def test_unreadable_pci_bus_counts_what_nvml_sees(self):
        nv = nvidia_facts(gpus=1, pci=[], pci_error="/sys/bus/pci/devices: No such file or directory")
        assert result(facts(nvidia=nv), "nvidia.gpu", need(1)).status is Status.PASS
        r = result(facts(nvidia=not_loaded(nv)), "nvidia.gpu")
        assert r.status is Status.SKIP and "could not be read" in r.details[0]


class TestDriver:
    def test_pass(self):
        r = result(facts(nvidia=nvidia_facts()), "nvidia.driver")
        assert r.status is Status.PASS and r.summary == f"driver {DRIVER} (CUDA 12.4), NVML sees 2 GPUs"

    def test_no_gpu_and_none_required_skips(self):
        r = result(facts(nvidia=this_machine()), "nvidia.driver")
        assert r.status is Status.SKIP and r.blocked_by == "nvidia.gpu"
        assert r.summary == "skipped: no NVIDIA GPU on this host"

    def test_this_machine_with_gpus_required_fails_the_gpu_not_the_driver(self):
        """No NVIDIA GPU on the bus: installing a driver fixes nothing; the one FAIL is nvidia.gpu's."""
        r = result(facts(nvidia=this_machine()), "nvidia.driver", need(1))
        assert (r.status, r.summary, r.blocked_by) == (Status.SKIP, "skipped: nvidia.gpu failed", "nvidia.gpu")

    def test_a_gpu_without_its_module_names_driver_not_loaded(self):
        nv = with_nvml(
            not_loaded(nvidia_facts(gpus=1, toolkit=no_toolkit()), module_kernels=[]),
            library_version="535.309.01",
        )
        r = result(facts(nvidia=nv), "nvidia.driver", need(1))
        assert r.status is Status.FAIL
        assert r.summary == (
            "NVML: Driver Not Loaded: no nvidia kernel module is installed (only its library, libnvidia-ml "
            "535.309.01, is)"
        )
        assert r.fix.startswith("sudo apt-get install -y linux-headers-$(uname -r) nvidia-driver && sudo reboot")

    def test_driver_install_follows_the_distro(self):
        nv = not_loaded(nvidia_facts(), module_kernels=[])
        assert (
            result(facts(nvidia=nv, host=ubuntu()), "nvidia.driver").fix == "sudo ubuntu-drivers install && sudo reboot"
        )
        assert "nvidia-driver:latest-dkms" in result(facts(nvidia=nv, host=rocky()), "nvidia.driver").fix

    def test_nouveau_holds_the_gpu(self):
        r = result(facts(nvidia=not_loaded(nvidia_facts(), modules=["nouveau"])), "nvidia.driver")
        assert r.status is Status.FAIL and "nouveau" in r.summary
        assert "blacklist nouveau" in r.fix and "sudo update-initramfs -u && sudo reboot" in r.fix
        assert r.effects == ["reboot"] and all(step.as_root for step in r.steps)
        without_sudo = facts(nvidia=not_loaded(nvidia_facts(), modules=["nouveau"]), host=host(sudo=False))
        r = result(without_sudo, "nvidia.driver")
        assert r.fix.startswith("as root: ") and "sudo" not in r.fix
        r = result(facts(nvidia=not_loaded(nvidia_facts(), modules=["nouveau"]), host=rocky()), "nvidia.driver")
        assert "sudo dracut --force" in r.fix

    def test_module_built_for_another_kernel(self):
        nv = not_loaded(nvidia_facts(), module_kernels=["6.1.0-17-amd64"])
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.summary == (
            "NVML: Driver Not Loaded: the nvidia module is built for 6.1.0-17-amd64, "
            f"not for the running kernel {KERNEL}"
        )
        assert r.fix.startswith("sudo apt-get install -y linux-headers-$(uname -r) && sudo dkms autoinstall")

    @pytest.mark.parametrize(
        ("make_host", "fix"),
        [
            (rocky, "sudo dnf install -y kernel-devel-$(uname -r) && sudo dkms autoinstall && sudo modprobe nvidia"),
            (opensuse, "sudo zypper install -y kernel-default-devel && sudo dkms autoinstall && sudo modprobe nvidia"),
            (
                gentoo,
                "# install the headers of the running kernel, then:\nsudo dkms autoinstall && sudo modprobe nvidia",
            ),
        ],
    )
    def test_module_rebuild_follows_the_distro(self, make_host, fix):
        nv = not_loaded(nvidia_facts(), module_kernels=["6.1.0-17-amd64"])
        assert result(facts(nvidia=nv, host=make_host()), "nvidia.driver").fix.startswith(fix)

    def test_driver_install_on_an_unknown_distro_points_at_the_guide(self):
        nv = not_loaded(nvidia_facts(), module_kernels=[])
        r = result(facts(nvidia=nv, host=gentoo()), "nvidia.driver")
        assert r.fix.startswith("install the NVIDIA driver for your distribution (https://docs.nvidia.com/")

    def test_secure_boot_blocks_the_module(self):
        r = result(facts(nvidia=not_loaded(nvidia_facts(), secure_boot=True), host=ubuntu()), "nvidia.driver")
        assert "Secure Boot" in r.summary
        assert r.fix.startswith("sudo mokutil --import /var/lib/shim-signed/mok/MOK.der && sudo reboot")

    def test_module_present_but_not_loaded(self):
        r = result(facts(nvidia=not_loaded(nvidia_facts())), "nvidia.driver")
        assert r.summary.endswith("installed for this kernel but not loaded")
        assert r.fix.startswith("sudo modprobe nvidia")

    def test_library_not_found_without_module_means_no_driver(self):
        nv = not_loaded(nvidia_facts(), module_kernels=[])
        nv = with_nvml(
            nv,
            error_kind="library_not_found",
            error="NVML Shared Library Not Found",
            library=None,
            library_version=None,
        )
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.summary == "NVML: NVML Shared Library Not Found: no NVIDIA driver is installed"
        assert "nvidia-driver" in r.fix

    def test_library_not_found_with_module_loaded(self):
        nv = nvml_failed(nvidia_facts(), "library_not_found", "NVML Shared Library Not Found")
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.status is Status.FAIL and "user-space libraries are not installed" in r.summary

    def test_version_mismatch_says_reboot_and_hold(self):
        nv = with_nvml(
            nvidia_facts(),
            ok=False,
            error_kind="version_mismatch",
            gpus=[],
            error="RM has detected an NVML/RM version mismatch.",
            library_version="550.127.05",
        )
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.summary.startswith(
            f"NVML: Driver/library version mismatch: kernel module {DRIVER}, libnvidia-ml 550.127.05"
        )
        first, hold = r.fix.splitlines()
        assert first.startswith("sudo reboot")
        assert "apt-mark hold" in hold
        assert "versionlock" in result(facts(nvidia=nv, host=rocky()), "nvidia.driver").fix

    def test_version_mismatch_found_from_versions_when_nvml_says_something_else(self):
        nv = nvml_failed(nvidia_facts(), "other", "Unknown Error", library_version="550.127.05")
        assert "version mismatch" in result(facts(nvidia=nv), "nvidia.driver").summary

    def test_no_permission(self):
        nv = nvml_failed(nvidia_facts(), "no_permission", "Insufficient Permissions")
        nv = with_kernel(nv, nodes=[node("nvidiactl", (195, 255), mode=0o600, accessible=False)])
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.summary == "NVML: Insufficient Permissions: this user cannot open /dev/nvidiactl"
        assert r.fix.startswith("sudo chmod 0666 /dev/nvidia* && ") and "NVreg_DeviceFileMode=0666" in r.fix

    def test_no_permission_with_a_group_says_join_it(self):
        """The same fix as nvidia.devices gives: that check is skipped once this one fails."""
        nv = nvml_failed(nvidia_facts(), "no_permission", "Insufficient Permissions")
        nv = with_kernel(nv, nodes=[node("nvidiactl", (195, 255), mode=0o660, group="video", accessible=False)])
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.fix == "sudo usermod -aG video alice   # then log out and back in"

    def test_hung_nvml(self):
        nv = nvml_failed(nvidia_facts(), "timeout", "no answer within 5 s")
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.status is Status.FAIL and "wedged" in r.summary and r.fix.startswith("sudo reboot")

    def test_other_init_error(self):
        nv = nvml_failed(nvidia_facts(), "other", "Unknown Error")
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.summary == "NVML failed to initialise: Unknown Error" and "dmesg" in r.fix

    def test_missing_bindings_is_an_error_of_mldoctor_not_the_host(self):
        nv = nvml_failed(nvidia_facts(), "no_bindings", "nvidia-ml-py is not installed")
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.status is Status.ERROR and "pip install nvidia-ml-py" in r.summary

    def test_gpu_on_the_bus_that_nvml_does_not_see(self):
        nv = with_nvml(nvidia_facts(gpus=2), gpus=[gpu(0)])
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.status is Status.FAIL
        assert r.summary == (
            f"driver {DRIVER} (CUDA 12.4), NVML sees 1 GPU, but not 0000:19:00.0 on the PCI bus: "
            "the driver did not initialise it"
        )
        assert r.fix.startswith("sudo dmesg")

    def test_gpu_given_to_a_vm_is_not_missing(self):
        nv = with_nvml(nvidia_facts(gpus=2), gpus=[gpu(0)])
        nv = replace(nv, pci=[nv.pci[0], replace(nv.pci[1], driver="vfio-pci")])
        r = result(facts(nvidia=nv), "nvidia.driver")
        assert r.status is Status.PASS and r.summary == f"driver {DRIVER} (CUDA 12.4), NVML sees 1 GPU"
        assert "0000:19:00.0: bound to vfio-pci, not to nvidia (passed through to a VM?)" in r.details


class TestDevices:
    def test_pass(self):
        r = result(facts(nvidia=nvidia_facts()), "nvidia.devices")
        assert r.status is Status.PASS and r.summary == "5 device nodes present and usable"

    def test_skipped_when_the_driver_failed(self):
        r = result(facts(nvidia=not_loaded(nvidia_facts())), "nvidia.devices")
        assert r.status is Status.SKIP and r.summary == "skipped: nvidia.driver failed"

    def test_missing_nodes(self):
        nv = with_kernel(nvidia_facts(), nodes=[node("nvidia-uvm", (508, 0)), node("nvidia0", (195, 0))])
        r = result(facts(nvidia=nv), "nvidia.devices")
        assert r.status is Status.FAIL and r.summary == "missing: /dev/nvidiactl, 1 of the /dev/nvidiaN nodes"
        assert r.fix.startswith("sudo nvidia-modprobe -u -c=0")

    def test_uvm_module_not_loaded_yet_warns(self):
        """Normal after boot: CUDA (and the container toolkit) load it on first use, through nvidia-modprobe."""
        r = result(facts(nvidia=with_kernel(nvidia_facts(), modules=["nvidia"])), "nvidia.devices")
        assert r.status is Status.WARN and r.summary.startswith("the nvidia_uvm module is not loaded yet")
        assert r.fix.startswith("sudo modprobe nvidia-uvm")

    def test_uvm_node_missing(self):
        nv = nvidia_facts()
        nv = with_kernel(nv, nodes=[n for n in nv.kernel.nodes if n.path != "/dev/nvidia-uvm"])
        assert result(facts(nvidia=nv), "nvidia.devices").summary == "missing: /dev/nvidia-uvm (CUDA needs it)"

    def test_nodes_this_user_cannot_open(self):
        nv = nvidia_facts()
        blocked = [replace(n, mode=0o660, group="video", accessible=False) for n in nv.kernel.nodes]
        r = result(facts(nvidia=with_kernel(nv, nodes=blocked)), "nvidia.devices")
        assert r.status is Status.WARN and r.fix == "sudo usermod -aG video alice   # then log out and back in"
        root_only = [replace(n, mode=0o600, accessible=False) for n in nv.kernel.nodes]
        fix = result(facts(nvidia=with_kernel(nv, nodes=root_only)), "nvidia.devices").fix
        assert fix.startswith("sudo chmod 0666 /dev/nvidia* && ")
        assert "options nvidia NVreg_DeviceFileMode=0666" in fix  # or the next boot brings the old mode back

    def test_systemd_cgroups_without_dev_char_links_warns(self):
        nv = nvidia_facts()
        nv = with_kernel(nv, nodes=[replace(n, char_link=False) for n in nv.kernel.nodes])
        r = result(facts(nvidia=nv), "nvidia.devices")
        assert r.status is Status.WARN and "Failed to initialize NVML: Unknown Error" in r.summary
        assert r.fix.splitlines()[0] == "sudo nvidia-ctk system create-dev-char-symlinks --create-all"
        assert "71-nvidia-dev-char.rules" in r.fix

    def test_dev_char_fix_installs_the_toolkit_first_when_missing(self):
        nv = nvidia_facts(toolkit=no_toolkit())
        nv = with_kernel(nv, nodes=[replace(n, char_link=False) for n in nv.kernel.nodes])
        fix = result(facts(nvidia=nv), "nvidia.devices").fix
        assert fix.index("apt-get install -y nvidia-container-toolkit") < fix.index("nvidia-ctk system")

    def test_dev_char_links_do_not_matter_with_cgroupfs(self):
        nv = nvidia_facts()
        nv = with_kernel(nv, nodes=[replace(n, char_link=False) for n in nv.kernel.nodes])
        cgroupfs = docker(daemon=daemon(cgroup_driver="cgroupfs"))
        assert result(facts(nvidia=nv, docker=cgroupfs), "nvidia.devices").status is Status.PASS

    def test_cgroup_driver_from_daemon_json_when_the_daemon_is_down(self):
        nv = nvidia_facts()
        nv = with_kernel(nv, nodes=[replace(n, char_link=False) for n in nv.kernel.nodes])
        config = DaemonConfig(
            path="/etc/docker/daemon.json", found=True, settings={"exec-opts": ["native.cgroupdriver=systemd"]}
        )
        r = result(facts(nvidia=nv, docker=down("missing_socket", config=config)), "nvidia.devices")
        assert r.status is Status.WARN


class TestHealth:
    def test_one_pass_per_gpu(self):
        rs = results(facts(nvidia=nvidia_facts(gpus=2)), "nvidia.health")
        assert [(r.id, r.status) for r in rs] == [
            ("nvidia.health.gpu0", Status.PASS),
            ("nvidia.health.gpu1", Status.PASS),
        ]
        assert rs[0].summary == "NVIDIA H100 80GB HBM3: 31 °C, 70 of 700 W, no memory errors"
        assert any("retired pages n/a" in d for d in rs[0].details)

    def test_a_field_nvml_refused_is_said_in_words_in_the_details(self):
        """The table prints details as they are: NVML's `Insufficient Permissions` would mean little there."""
        nv = nvidia_facts(gpus=1)
        refused = {"power_draw": "NVMLError_NoPermission", "ecc": "Not Supported"}
        nv.nvml.gpus[0] = replace(nv.nvml.gpus[0], errors=refused)
        (r,) = results(facts(nvidia=nv), "nvidia.health")
        assert "power draw: n/a (this user may not read it; root may)" in r.details
        assert "ecc: n/a (not supported on this GPU)" in r.details
        assert not any("NVMLError" in d or "Not Supported" in d for d in r.details)

    @pytest.mark.parametrize(
        ("changes", "status", "summary", "fix"),
        [
            ({"ecc_uncorrected_volatile": 2}, Status.FAIL, "2 uncorrected ECC errors", "sudo nvidia-smi -r -i 0"),
            ({"remap_failure": True}, Status.FAIL, "row remapping failed", "nvidia-smi -q -d ROW_REMAPPER -i 0"),
            ({"remap_pending": True}, Status.WARN, "row remap is pending", "sudo nvidia-smi -r -i 0"),
            ({"retired_pages_pending": True}, Status.WARN, "page retirement is pending", "sudo nvidia-smi -r -i 0"),
            ({"clock_event_reasons": 0x40 | 0x1}, Status.FAIL, "hardware thermal slowdown", "nvidia-smi -q -d PERF"),
            ({"clock_event_reasons": 0x80}, Status.FAIL, "hardware power brake", "nvidia-smi -q -d PERF"),
            ({"temperature_c": 84}, Status.WARN, "84 °C, near the 87 °C slowdown", "nvidia-smi -q -d TEMPERATURE"),
            (
                {"persistence_mode": False},
                Status.WARN,
                "persistence mode is off",
                "sudo systemctl enable --now nvidia-pers",
            ),
            ({"pcie_width": 8}, Status.WARN, "PCIe link x8 of x16", "sudo lspci -vv -s 0000:18:00.0"),
            ({"mig_mode_pending": True}, Status.WARN, "MIG mode change is pending", "sudo nvidia-smi -r -i 0"),
        ],
    )
    def test_problems(self, changes, status, summary, fix):
        r = results(facts(nvidia=with_gpu(nvidia_facts(), **changes)), "nvidia.health")[0]
        assert r.status is status and summary in r.summary and r.fix.startswith(fix)

    def test_power_cap_and_idle_are_normal(self):
        r = results(facts(nvidia=with_gpu(nvidia_facts(), clock_event_reasons=0x4 | 0x1)), "nvidia.health")[0]
        assert r.status is Status.PASS

    def test_other_processes_on_the_gpu(self):
        procs = [GpuProcess(pid=4242, name="python3", used_memory_bytes=42 << 30), GpuProcess(pid=77)]
        r = results(facts(nvidia=with_gpu(nvidia_facts(), processes=procs)), "nvidia.health")[0]
        assert r.status is Status.WARN
        assert r.summary == "in use by pid 4242 python3 (42.0 GiB), pid 77: benchmarks will read low"
        assert r.fix.endswith("kill 4242 77")

    def test_persistence_without_systemd(self):
        nv = with_gpu(nvidia_facts(), persistence_mode=False)
        r = results(facts(nvidia=nv, host=host(systemd=False)), "nvidia.health")[0]
        assert r.fix == "sudo nvidia-smi -pm 1 -i 0"

    def test_persistence_off_on_a_geforce_is_fine(self):
        nv = with_gpu(nvidia_facts(), name="NVIDIA GeForce RTX 4090", persistence_mode=False)
        assert results(facts(nvidia=nv), "nvidia.health")[0].status is Status.PASS

    def test_mig_is_noted(self):
        r = results(facts(nvidia=with_gpu(nvidia_facts(), mig_mode=True, mig_mode_pending=True)), "nvidia.health")[0]
        assert r.status is Status.PASS and "MIG on: `--gpus all` gives its MIG instances" in r.summary

    def test_failures_come_first_and_every_fix_is_kept(self):
        nv = with_gpu(nvidia_facts(), remap_pending=True, remap_failure=True, temperature_c=86)
        r = results(facts(nvidia=nv), "nvidia.health")[0]
        assert r.status is Status.FAIL
        assert r.summary.startswith("row remapping failed") and "pending" in r.summary and "86 °C" in r.summary
        assert len(r.fix.splitlines()) == 3

    def test_all_na_geforce_fields_render(self):
        bare = GpuFacts(index=0, name="NVIDIA GeForce RTX 4090", pci_bus_id="00000000:18:00.0")
        r = results(facts(nvidia=with_nvml(nvidia_facts(gpus=1), gpus=[bare])), "nvidia.health")[0]
        assert r.status is Status.PASS and r.summary == "NVIDIA GeForce RTX 4090: n/a, ECC n/a"

    def test_pass_line_claims_no_more_than_ecc_reports(self):
        rs = results(facts(nvidia=with_gpu(nvidia_facts(), ecc_enabled=False)), "nvidia.health")
        assert rs[0].summary == "NVIDIA H100 80GB HBM3: 31 °C, 70 of 700 W, ECC off"
        nameless = GpuFacts(index=0, pci_bus_id="00000000:18:00.0", errors={"name": "Unknown Error"})
        r = results(facts(nvidia=with_nvml(nvidia_facts(gpus=1), gpus=[nameless])), "nvidia.health")[0]
        assert r.status is Status.PASS and r.summary == "GPU 0: n/a, ECC n/a"


class TestFabricManager:
    def test_no_nvswitch_skips(self):
        r = result(facts(nvidia=nvidia_facts()), "nvidia.fabricmanager")
        assert r.status is Status.SKIP and "no NVSwitch" in r.summary

    def test_pass(self):
        r = result(facts(nvidia=nvidia_facts(switches=4)), "nvidia.fabricmanager")
        assert r.status is Status.PASS and r.summary == f"fabric manager {DRIVER} running for 4 NVSwitches"

    def test_not_installed(self):
        r = result(facts(nvidia=nvidia_facts(switches=4, fabric_manager=FabricManagerFacts())), "nvidia.fabricmanager")
        assert r.status is Status.FAIL and "error 802: system not yet initialized" in r.summary
        assert r.fix.startswith("sudo apt-get install -y nvidia-fabricmanager-550 && sudo systemctl enable --now")
        rhel = result(
            facts(nvidia=nvidia_facts(switches=4, fabric_manager=FabricManagerFacts()), host=rocky()),
            "nvidia.fabricmanager",
        )
        assert rhel.fix.startswith(f"sudo dnf install -y nvidia-fabric-manager-{DRIVER}")

    def test_not_running(self):
        fm = FabricManagerFacts(path="/usr/bin/nv-fabricmanager", version=DRIVER)
        r = result(facts(nvidia=nvidia_facts(switches=4, fabric_manager=fm)), "nvidia.fabricmanager")
        assert r.status is Status.FAIL and r.fix.startswith("sudo systemctl enable --now nvidia-fabricmanager")

    def test_other_version(self):
        fm = FabricManagerFacts(path="/usr/bin/nv-fabricmanager", version="550.54.15", running=True)
        r = result(facts(nvidia=nvidia_facts(switches=4, fabric_manager=fm)), "nvidia.fabricmanager")
        assert r.status is Status.FAIL and r.summary.startswith(
            f"fabric manager 550.54.15 does not match driver {DRIVER}"
        )

    def test_unknown_distro_gets_the_version_and_the_guide(self):
        nv = nvidia_facts(switches=4, fabric_manager=FabricManagerFacts())
        r = result(facts(nvidia=nv, host=gentoo()), "nvidia.fabricmanager")
        assert r.fix.startswith(f"install NVIDIA fabric manager {DRIVER} (https://docs.nvidia.com/")

    def test_registration_that_completed_with_an_error_fails(self):
        nv = with_gpu(nvidia_facts(switches=4), fabric_state="failed", fabric_error="Unknown Error")
        r = result(facts(nvidia=nv), "nvidia.fabricmanager")
        assert r.status is Status.FAIL
        assert r.summary.startswith("the NVLink fabric registration failed (GPU 0: Unknown Error)")
        assert r.fix.startswith("sudo journalctl -u nvidia-fabricmanager")

    @pytest.mark.parametrize(("state", "status"), [("not_started", Status.FAIL), ("in_progress", Status.WARN)])
    def test_fabric_not_ready(self, state, status):
        r = result(facts(nvidia=with_gpu(nvidia_facts(switches=4), fabric_state=state)), "nvidia.fabricmanager")
        assert r.status is status and f"GPU 0 {state.replace('_', ' ')}" in r.summary


class TestToolkit:
    def test_pass(self):
        r = result(
            facts(nvidia=nvidia_facts(), docker=docker(daemon=daemon(runtimes=["nvidia", "runc"]))), "nvidia.toolkit"
        )
        assert r.status is Status.PASS and r.summary == "NVIDIA Container Toolkit 1.16.2, registered with Docker"

    def test_not_installed_gives_install_steps_before_any_nvidia_ctk(self):
        r = result(facts(nvidia=nvidia_facts(toolkit=no_toolkit())), "nvidia.toolkit")
        assert r.status is Status.FAIL and "could not select device driver" in r.summary
        assert r.fix.index("sudo apt-get install -y nvidia-container-toolkit") < r.fix.index("nvidia-ctk")
        assert r.fix.splitlines()[-1] == (
            "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
        )
        assert (
            "dnf install -y nvidia-container-toolkit"
            in result(facts(nvidia=nvidia_facts(toolkit=no_toolkit()), host=rocky()), "nvidia.toolkit").fix
        )

    def test_runtime_not_registered(self):
        r = result(facts(nvidia=nvidia_facts()), "nvidia.toolkit")
        assert r.status is Status.WARN and "unknown or invalid runtime name: nvidia" in r.summary
        assert r.fix == "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"

    def test_rootless_configures_its_own_daemon_json(self):
        d = docker(flavour="rootless", config=DaemonConfig(path="/home/alice/.config/docker/daemon.json"))
        nv = with_toolkit(nvidia_facts(), no_cgroups=True)
        r = result(facts(nvidia=nv, docker=d), "nvidia.toolkit")
        assert r.fix == (
            "nvidia-ctk runtime configure --runtime=docker --config=/home/alice/.config/docker/daemon.json && "
            "systemctl --user restart docker"
        )

    def test_rootless_without_no_cgroups(self):
        d = docker(flavour="rootless", daemon=daemon(runtimes=["nvidia", "runc"]))
        r = result(facts(nvidia=nvidia_facts(), docker=d), "nvidia.toolkit")
        assert r.status is Status.FAIL and "bpf_prog_query" in r.summary
        assert r.fix.startswith("sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place")

    def test_snap(self):
        d = docker(flavour="snap", config=DaemonConfig(path="/var/snap/docker/current/config/daemon.json"))
        r = result(facts(nvidia=nvidia_facts(), docker=d), "nvidia.toolkit")
        assert r.fix == (
            "sudo nvidia-ctk runtime configure --runtime=docker --config=/var/snap/docker/current/config/daemon.json"
            " && sudo snap restart docker"
        )

    def test_hook_missing(self):
        nv = nvidia_facts()
        nv = with_toolkit(nv, binaries=[b for b in nv.toolkit.binaries if b.name != "nvidia-container-runtime-hook"])
        r = result(facts(nvidia=nv, docker=docker(daemon=daemon(runtimes=["nvidia"]))), "nvidia.toolkit")
        assert r.status is Status.FAIL and "could not select device driver" in r.summary
        assert r.fix.endswith("sudo systemctl restart docker   # the hook is in nvidia-container-toolkit")

    def test_installed_after_dockerd_started(self):
        """Nothing applied since the install (no nvidia runtime either): dockerd has no GPU driver."""
        nv = nvidia_facts()
        late = with_toolkit(nv, binaries=[replace(b, installed_at=DOCKERD_STARTED + 60) for b in nv.toolkit.binaries])
        r = result(facts(nvidia=late), "nvidia.toolkit")
        assert r.status is Status.FAIL
        assert r.summary.startswith("the toolkit was installed after dockerd started: `docker run --gpus all` fails")
        assert r.fix.splitlines() == [
            "sudo systemctl restart docker",
            "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker",
        ]

    def test_hook_upgraded_after_dockerd_started_warns(self):
        """The nvidia runtime is registered, so dockerd was set up after a hook existed: an in-place upgrade."""
        nv = nvidia_facts()
        late = with_toolkit(nv, binaries=[replace(b, installed_at=DOCKERD_STARTED + 60) for b in nv.toolkit.binaries])
        r = result(facts(nvidia=late, docker=docker(daemon=daemon(runtimes=["nvidia"]))), "nvidia.toolkit")
        assert r.status is Status.WARN and "replaced after dockerd started" in r.summary
        assert r.fix == "sudo systemctl restart docker"

    def test_daemon_down_judges_its_daemon_json(self):
        config = DaemonConfig(
            path="/etc/docker/daemon.json",
            found=True,
            settings={"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}},
        )
        r = result(facts(nvidia=nvidia_facts(), docker=down("missing_socket", config=config)), "nvidia.toolkit")
        assert r.status is Status.PASS
        r = result(facts(nvidia=nvidia_facts(), docker=down("missing_socket", config=DaemonConfig())), "nvidia.toolkit")
        assert r.status is Status.WARN and "the daemon is not reachable" in r.summary

    def test_docker_not_installed_skips(self):
        r = result(
            facts(nvidia=nvidia_facts(), docker=down("missing_socket", dockerd_installed=False)), "nvidia.toolkit"
        )
        assert r.status is Status.SKIP and r.blocked_by == "docker.daemon"

    def test_docker_desktop_on_linux_fails(self):
        d = docker(flavour="desktop", endpoint=Endpoint(url="unix:///home/alice/.docker/desktop/docker.sock"))
        r = result(facts(nvidia=nvidia_facts(), docker=d), "nvidia.toolkit")
        assert r.status is Status.FAIL and r.fix.startswith("docker context use default")
        wsl = host(kernel="5.15.146.1-microsoft-standard-WSL2")
        assert result(facts(nvidia=nvidia_facts(), docker=d, host=wsl), "nvidia.toolkit").status is not Status.FAIL

    def test_stale_cdi_spec(self):
        """Docker's `--gpus` does not read CDI specs: WARN. Podman's only GPU path is CDI: FAIL."""
        nv = with_toolkit(nvidia_facts(), cdi_specs=[CdiSpec(path="/etc/cdi/nvidia.yaml", driver_version="535.104.05")])
        r = result(facts(nvidia=nv, docker=docker(daemon=daemon(runtimes=["nvidia"]))), "nvidia.toolkit")
        assert r.status is Status.WARN and "generated for driver 535.104.05" in r.summary
        assert r.fix == "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"
        r = result(facts(nvidia=nv, docker=docker(flavour="podman")), "nvidia.toolkit")
        assert r.status is Status.FAIL and r.fix == "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"

    def test_podman_needs_a_cdi_spec(self):
        podman = docker(flavour="podman")
        r = result(facts(nvidia=with_toolkit(nvidia_facts(), cdi_specs=[]), docker=podman), "nvidia.toolkit")
        assert r.status is Status.FAIL and r.fix.startswith("sudo nvidia-ctk cdi generate")
        assert result(facts(nvidia=nvidia_facts(), docker=podman), "nvidia.toolkit").status is Status.PASS

    def test_a_cdi_spec_newer_than_podman_reads_fails_naming_both(self):
        """Field report row 19: toolkit 1.19.1 writes CDI spec 0.7.0, which Podman 4.9.3 refuses."""
        spec = CdiSpec(path="/etc/cdi/nvidia.yaml", driver_version=DRIVER, cdi_version="0.7.0")
        nv = with_toolkit(nvidia_facts(), cdi_specs=[spec])
        podman4 = docker(flavour="podman", daemon=daemon(server_version="4.9.3"))
        r = result(facts(nvidia=nv, docker=podman4), "nvidia.toolkit")
        assert r.status is Status.FAIL
        assert "CDI spec 0.7.0, newer than Podman 4.9.3 reads" in r.summary and "unresolvable CDI devices" in r.summary
        assert r.fix.startswith("upgrade Podman to 5")
        assert r.fix.endswith("\nsudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml")
        podman5 = docker(flavour="podman", daemon=daemon(server_version="5.7.0"))
        assert result(facts(nvidia=nv, docker=podman5), "nvidia.toolkit").status is Status.PASS
        older = with_toolkit(nvidia_facts(), cdi_specs=[dataclasses.replace(spec, cdi_version="0.5.0")])
        assert result(facts(nvidia=older, docker=podman4), "nvidia.toolkit").status is Status.PASS


class TestFirstBrokenLink:
    def chain(self, nv, policy=None, **sections):
        rs = evaluate([REGISTRY[c] for c in NVIDIA_IDS], facts(nvidia=nv, **sections), policy or Policy())
        return {r.id: (r.status, r.summary) for r in rs}

    def test_order(self):
        assert NVIDIA_IDS == [
            "nvidia.gpu",
            "nvidia.driver",
            "nvidia.devices",
            "nvidia.health",
            "nvidia.fabricmanager",
            "nvidia.xid",
            "nvidia.p2p",
            "nvidia.nvlink",
            "nvidia.toolkit",
        ]

    def test_no_gpu_skips_everything_with_the_reason(self):
        chain = self.chain(this_machine())
        assert chain["nvidia.gpu"] == (Status.SKIP, "no NVIDIA GPU on this host")
        assert {s for s, _ in chain.values()} == {Status.SKIP}
        assert all(summary.endswith("no NVIDIA GPU on this host") for _, summary in chain.values())

    def test_required_gpu_on_this_machine(self):
        chain = self.chain(this_machine(), need(1))
        assert chain["nvidia.gpu"][0] is Status.FAIL
        assert chain["nvidia.driver"] == (Status.SKIP, "skipped: nvidia.gpu failed")
        assert chain["nvidia.toolkit"] == (Status.SKIP, "skipped: nvidia.gpu failed")

    def test_driver_failure_stops_the_chain(self):
        chain = self.chain(not_loaded(nvidia_facts(toolkit=no_toolkit())))
        assert chain["nvidia.gpu"][0] is Status.PASS and chain["nvidia.driver"][0] is Status.FAIL
        for later in ("nvidia.devices", "nvidia.health", "nvidia.fabricmanager", "nvidia.toolkit"):
            assert chain[later] == (Status.SKIP, "skipped: nvidia.driver failed")

    def test_healthy_hgx(self):
        nv = nvidia_facts(gpus=8, switches=4)
        chain = self.chain(nv, need(8), docker=docker(daemon=daemon(runtimes=["nvidia", "runc"])))
        assert {s for s, _ in chain.values()} == {Status.PASS}
        assert len(chain) == 8 + 8  # eight checks, nvidia.health once per GPU


def test_cli_rejects_a_negative_gpu_count(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--require-gpus", "-1"])
    assert exit_info.value.code == 2


def test_cli_re_diagnoses_saved_nvidia_facts(tmp_path, capsys):
    """`--facts` round trip: a support bundle from a broken HGX node re-diagnosed with today's rules."""
    nv = with_gpu(nvidia_facts(gpus=8, switches=4), remap_failure=True)
    report = {"schema_version": SCHEMA_VERSION, "facts": to_data(facts(nvidia=nv))}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--facts", str(path), "--only", "nvidia", "--format", "json", "--require-gpus", "8"])
    assert exit_info.value.code == 1
    by_id = {r["id"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert by_id["nvidia.health.gpu0"]["status"] == "FAIL"
    assert by_id["nvidia.health.gpu1"]["status"] == "PASS"
    assert by_id["nvidia.gpu"]["status"] == "PASS"


class TestPolicyFloors:
    """The policy file's GPU models and driver/CUDA floors (issue 5)."""

    def test_required_models(self):
        healthy = facts(nvidia=nvidia_facts(gpus=2))
        assert result(healthy, "nvidia.gpu", Policy(require_gpu_models=("h100", "H200"))).status is Status.PASS
        r = result(healthy, "nvidia.gpu", Policy(require_gpu_models=("A100",)))
        assert r.status is Status.FAIL
        assert "NVIDIA H100 80GB HBM3 is not one of the required models (A100)" in r.summary

    def test_driver_and_cuda_floors(self):
        nv = nvidia_facts(gpus=2)
        healthy = facts(nvidia=nv)
        driver = nv.nvml.driver_version
        assert result(healthy, "nvidia.driver", Policy(min_driver_version=driver)).status is Status.PASS
        r = result(healthy, "nvidia.driver", Policy(min_driver_version="999.1"))
        assert r.status is Status.FAIL and "older than the required driver 999.1" in r.summary
        r = result(healthy, "nvidia.driver", Policy(min_cuda_version="99.0"))
        assert r.status is Status.FAIL and "older than the required 99.0" in r.summary


class TestLostGpu:
    """Xid 79: NVML refuses a lost GPU's handle, so every one of its fields is missing."""

    @staticmethod
    def hgx_with_gpu_3_lost(policy_models=()):
        nv = nvidia_facts(gpus=8, switches=4)
        gpus = list(nv.nvml.gpus)
        gpus[3] = GpuFacts(index=3, errors={"handle": "GPU is lost"})
        return with_nvml(nv, gpus=gpus)

    def test_one_fail_naming_the_gpu_and_its_bus_id_and_the_rest_skip(self):
        chain = {
            r.id: r
            for r in evaluate(
                [REGISTRY[i] for i in REGISTRY if i.startswith("nvidia.")],
                facts(nvidia=self.hgx_with_gpu_3_lost()),
                need(8),
            )
        }
        driver = chain["nvidia.driver"]
        assert driver.status is Status.FAIL
        assert driver.summary.startswith("GPU 3 (0000:1b:00.0) is lost: fallen off the bus (Xid 79)")
        assert driver.fix.startswith("sudo reboot")
        assert [r.id for r in chain.values() if r.status in (Status.FAIL, Status.ERROR)] == ["nvidia.driver"]
        assert chain["nvidia.gpu"].status is Status.PASS and "an unnamed GPU" in chain["nvidia.gpu"].summary

    def test_required_models_do_not_crash_on_a_nameless_gpu(self):
        r = result(facts(nvidia=self.hgx_with_gpu_3_lost()), "nvidia.gpu", Policy(require_gpu_models=("H100",)))
        assert r.status is Status.FAIL and "?" in r.summary

    @pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(GpuFacts) if f.name != "index"])
    def test_any_field_missing_on_any_gpu_never_crashes_a_check(self, field):
        nv = nvidia_facts(gpus=2, switches=0)
        empty = {"processes": [], "errors": {}}.get(field)
        gpus = [replace(nv.nvml.gpus[0], **{field: empty}), nv.nvml.gpus[1]]
        results = evaluate(
            [REGISTRY[i] for i in REGISTRY if i.startswith("nvidia.")], facts(nvidia=with_nvml(nv, gpus=gpus)), need(2)
        )
        crashed = [r for r in results if r.status is Status.ERROR]
        assert crashed == [], crashed


class TestXid:
    """nvidia.xid: the driver's Xid reports since boot, per GPU, with their meaning."""

    @staticmethod
    def with_log(*lines, error=None):
        from mldoctor.facts.nvidia import XID_LINE, KernelLog, XidEvent

        events = [
            XidEvent(m.group(1).lower(), int(m.group(2)), m.group(3).strip(" ,"))
            for line in lines
            for m in [XID_LINE.search(line)]
            if m
        ]
        return facts(nvidia=replace(nvidia_facts(gpus=8), kernel_log=KernelLog(xids=events, error=error)))

    def test_none_since_boot_passes(self):
        assert result(self.with_log(), "nvidia.xid").summary == "no Xid errors since boot"

    def test_a_double_bit_ecc_error_names_the_gpu_and_fails(self):
        line = "[  812.4] NVRM: Xid (PCI:0000:1b:00): 48, pid=4242, name=python3, An uncorrectable double bit error"
        r = result(self.with_log(line, line), "nvidia.xid")
        assert r.status is Status.FAIL and r.summary.startswith("GPU 3 (0000:1b:00): Xid 48 ×2 (double-bit ECC")
        assert "nvidia-smi -r" in r.fix

    def test_an_application_xid_only_warns(self):
        line = "NVRM: Xid (PCI:0000:18:00): 13, pid=99, name=python3, Graphics Exception: ESR 0x405840=0x80000"
        r = result(self.with_log(line), "nvidia.xid")
        assert r.status is Status.WARN and r.summary.startswith("GPU 0 (0000:18:00): Xid 13")

    def test_an_unreadable_kernel_log_skips_with_the_command_that_reads_it(self):
        r = result(self.with_log(error="dmesg: read kernel buffer failed: Operation not permitted"), "nvidia.xid")
        assert r.status is Status.SKIP and "sudo mldoctor check --only nvidia.xid" in r.summary
