"""The NVIDIA gatherer against a fake sysfs/proc/dev/etc tree and a fake `pynvml` built from recorded-shaped NVML
values (tests/data/nvidia). The fake replaces the module at its import boundary only; it reuses the real
module's error classes, constants and result types (ctypes structs, str not bytes, lists and tuples where the real
wrappers return them), so the gatherer is tested against what nvidia-ml-py actually returns and raises."""

from __future__ import annotations

import copy
import json
import os
import stat
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from mldoctor.facts import GatherOptions, gather
from mldoctor.facts import nvidia as nvidia_facts
from mldoctor.facts.nvidia import NvidiaFacts
from mldoctor.serde import from_data, to_data

DATA = Path(__file__).resolve().parent.parent / "data" / "nvidia"
real_pynvml = pytest.importorskip("pynvml")
ERRORS = {
    "NotSupported": real_pynvml.NVML_ERROR_NOT_SUPPORTED,
    "NoPermission": real_pynvml.NVML_ERROR_NO_PERMISSION,
    "GpuIsLost": real_pynvml.NVML_ERROR_GPU_IS_LOST,
}


def recording(name: str) -> dict:
    return json.loads((DATA / f"nvml-{name}.json").read_text())


class FakeNvml(types.ModuleType):
    """`pynvml` answering from a recording; counts init/shutdown so the tests see the library released."""

    def __init__(self, data: dict, init_error: int | None = None, init_blocks: threading.Event | None = None):
        super().__init__("pynvml")
        for name in dir(real_pynvml):
            if name.startswith(("NVML", "c_nvml")):
                setattr(self, name, getattr(real_pynvml, name))
        self.data, self.init_error, self.init_blocks = data, init_error, init_blocks
        self.inits = self.shutdowns = 0

    def _value(self, handle: int, key: str, sub: str | None = None):
        value = self.data["devices"][handle][key]
        if isinstance(value, str) and value in ERRORS:
            raise real_pynvml.NVMLError(ERRORS[value])
        return value if sub is None else value[sub]

    def nvmlInit(self):
        if self.init_blocks is not None:
            self.init_blocks.wait()
        if self.init_error is not None:
            raise real_pynvml.NVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return self.data["system"]["driver_version"]

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return self.data["system"]["cuda_driver_version"]

    def nvmlSystemGetNVMLVersion(self):
        return self.data["system"]["nvml_version"]

    def nvmlDeviceGetCount(self):
        return len(self.data["devices"])

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, h):
        return self._value(h, "name")

    def nvmlDeviceGetUUID(self, h):
        return self._value(h, "uuid")

    def nvmlDeviceGetPciInfo(self, h):
        info = real_pynvml.nvmlPciInfo_t()
        info.busId = self._value(h, "pci_bus_id").encode()  # a char array; the struct hands it back as str
        return info

    def nvmlDeviceGetMemoryInfo(self, h, version=None):
        return real_pynvml.c_nvmlMemory_t(**self._value(h, "memory"))

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return tuple(self._value(h, "compute_capability"))

    def nvmlDeviceGetPersistenceMode(self, h):
        return self._value(h, "persistence_mode")

    def nvmlDeviceGetMigMode(self, h):
        return list(self._value(h, "mig_mode"))

    def nvmlDeviceGetTemperature(self, h, sensor):
        assert sensor == real_pynvml.NVML_TEMPERATURE_GPU
        return self._value(h, "temperature")

    def nvmlDeviceGetTemperatureThreshold(self, h, threshold):
        assert threshold == real_pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
        return self._value(h, "slowdown_temp")

    def nvmlDeviceGetPowerUsage(self, h):
        return self._value(h, "power_usage_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self._value(h, "enforced_power_limit_mw")

    def _clock(self, h, key, clock):
        return self._value(h, key, {real_pynvml.NVML_CLOCK_SM: "sm", real_pynvml.NVML_CLOCK_MEM: "mem"}[clock])

    def nvmlDeviceGetClockInfo(self, h, clock):
        return self._clock(h, "clock", clock)

    def nvmlDeviceGetMaxClockInfo(self, h, clock):
        return self._clock(h, "max_clock", clock)

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return self._value(h, "clocks_event_reasons")

    nvmlDeviceGetCurrentClocksThrottleReasons = nvmlDeviceGetCurrentClocksEventReasons

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h):
        return self._value(h, "pcie", "gen")

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h):
        return self._value(h, "pcie", "gen_max")

    def nvmlDeviceGetCurrPcieLinkWidth(self, h):
        return self._value(h, "pcie", "width")

    def nvmlDeviceGetMaxPcieLinkWidth(self, h):
        return self._value(h, "pcie", "width_max")

    def nvmlDeviceGetEccMode(self, h):
        return list(self._value(h, "ecc_mode"))

    def nvmlDeviceGetTotalEccErrors(self, h, error_type, counter):
        assert error_type == real_pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
        key = {real_pynvml.NVML_VOLATILE_ECC: "volatile", real_pynvml.NVML_AGGREGATE_ECC: "aggregate"}[counter]
        return self._value(h, "ecc_uncorrected", key)

    def nvmlDeviceGetRetiredPages(self, h, cause):
        key = "dbe" if cause == real_pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR else "sbe"
        return self._value(h, "retired_pages", key)

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h):
        return self._value(h, "retired_pages_pending")

    def nvmlDeviceGetRemappedRows(self, h):
        return tuple(self._value(h, "remapped_rows"))

    def nvmlDeviceGetGpuFabricInfo(self, h, info_ref):
        """The real one fills the struct it is given by reference, and returns NVML_SUCCESS."""
        info_ref._obj.state = self._value(h, "fabric_state")
        info_ref._obj.status = self.data["devices"][h].get("fabric_status", real_pynvml.NVML_SUCCESS)
        return real_pynvml.NVML_SUCCESS

    def _link(self, h, link):
        links = self.data["devices"][h].get("nvlinks")
        if links is None:  # a GPU without NVLink (PCIe cards, GeForce)
            raise real_pynvml.NVMLError(real_pynvml.NVML_ERROR_NOT_SUPPORTED)
        if link >= len(links):  # past the GPU's link count, as the real driver answers
            raise real_pynvml.NVMLError(real_pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return links[link]

    def nvmlDeviceGetNvLinkState(self, h, link):
        return self._link(h, link)["active"]

    def nvmlDeviceGetNvLinkErrorCounter(self, h, link, counter):
        names = {
            real_pynvml.NVML_NVLINK_ERROR_DL_REPLAY: "replay",
            real_pynvml.NVML_NVLINK_ERROR_DL_RECOVERY: "recovery",
            real_pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT: "crc_flit",
            real_pynvml.NVML_NVLINK_ERROR_DL_CRC_DATA: "crc_data",
        }
        return self._link(h, link)[names[counter]]

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        """Friendly objects, as the real one builds from c_nvmlProcessInfo_v3_t (usedGpuMemory None when n/a)."""
        return [
            real_pynvml.nvmlFriendlyObject({"gpuInstanceId": 0xFFFFFFFF, "computeInstanceId": 0xFFFFFFFF} | p)
            for p in self._value(h, "processes")
        ]


@pytest.fixture
def use_nvml(monkeypatch):
    """Install a fake pynvml (the import boundary) and return it."""

    def install(fake: types.ModuleType | None) -> types.ModuleType | None:
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        return fake

    return install


def write(root: Path, rel: str, text: str | bytes, mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def link(root: Path, rel: str, target: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


VERSION_LINE = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  Fri May 31 09:35:42 UTC 2024"
OPEN_VERSION_LINE = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.90.07  Release Build  (dvs-builder@U16)"
)
KERNEL = "6.1.0-18-amd64"
DOCKERD_PID, FM_PID, TRAINER_PID = "1234", "2345", "4242"


def hgx_tree(root: Path, gpus: int = 8, switches: int = 4, version_line: str = VERSION_LINE) -> Path:
    """What an HGX H100 host shows under /sys, /proc, /dev, /lib/modules and /etc, trimmed to what is read."""
    pci = "sys/bus/pci/devices"
    write(root, f"{pci}/0000:00:04.0/vendor", "0x1af4\n")  # a virtio device: not NVIDIA, ignored
    write(root, f"{pci}/0000:00:04.0/class", "0x010000\n")
    (root / "sys/bus/pci/drivers/nvidia").mkdir(parents=True)
    for i in range(gpus):
        addr = f"0000:{[0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB][i]:02x}:00.0"
        write(root, f"{pci}/{addr}/vendor", "0x10de\n")
        write(root, f"{pci}/{addr}/device", "0x2330\n")
        write(root, f"{pci}/{addr}/class", "0x030200\n")
        link(root, f"{pci}/{addr}/driver", "../../../bus/pci/drivers/nvidia")
    for i in range(switches):
        addr = f"0000:0{5 + i}:00.0"
        write(root, f"{pci}/{addr}/vendor", "0x10de\n")
        write(root, f"{pci}/{addr}/device", "0x22a3\n")
        write(root, f"{pci}/{addr}/class", "0x068000\n")
    write(root, "proc/driver/nvidia/version", version_line + "\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n")
    write(root, "proc/modules", "".join(f"{m} 1531904 0 - Live 0x0 (PO)\n" for m in ("nvidia_uvm", "nvidia", "ext4")))
    write(root, "proc/sys/kernel/osrelease", KERNEL + "\n")
    write(root, f"lib/modules/{KERNEL}/modules.dep", "kernel/fs/ext4/ext4.ko.xz: \nupdates/dkms/nvidia.ko.xz:\n")
    write(root, "lib/modules/5.10.0-28-amd64/modules.dep", "kernel/fs/ext4/ext4.ko.xz: \n")
    (root / "sys/firmware/efi").mkdir(parents=True)
    write(root, f"{nvidia_facts.SECURE_BOOT_VAR}", b"\x06\x00\x00\x00\x01")
    nodes = {"nvidiactl": "195:255", "nvidia-uvm": "508:0", "nvidia-uvm-tools": "508:1"}
    nodes |= {f"nvidia{i}": f"195:{i}" for i in range(gpus)}
    for name, numbers in nodes.items():
        write(root, f"dev/{name}", "", mode=0o666)
        link(root, f"dev/char/{numbers}", f"../{name}")
    (root / "dev/nvidia-caps").mkdir()
    write(root, "proc/stat", "cpu  1 2 3\nbtime 1700000000\n")
    write(root, f"proc/{DOCKERD_PID}/comm", "dockerd\n")
    stat_fields = ["S", *["0"] * 18, "360000"]  # starttime (field 22) in clock ticks
    write(root, f"proc/{DOCKERD_PID}/stat", f"{DOCKERD_PID} (dockerd) " + " ".join(stat_fields) + " 0 0\n")
    write(root, f"proc/{FM_PID}/comm", "nv-fabricmanager\n")
    write(root, f"proc/{TRAINER_PID}/comm", "python3\n")
    write(
        root,
        "etc/nvidia-container-runtime/config.toml",
        "[nvidia-container-cli]\nenvironment = []\n#no-cgroups = false\nno-cgroups = true\n\n"
        "[nvidia-container-runtime]\nno-cgroups = false\n",
    )
    write(
        root,
        "etc/cdi/nvidia.yaml",
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ncontainerEdits:\n  mounts:\n"
        "  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.90.07\n",
    )
    write(root, "var/run/cdi/other.json", '{"kind": "vendor.example/fpga"}')
    write(
        root,
        "var/run/cdi/nvidia.json",
        '{"cdiVersion": "0.7.0", "kind": "nvidia.com/gpu", "containerEdits": {"additionalGids": [44]}}',
    )
    return root


@pytest.fixture
def toolbin(tmp_path, monkeypatch):
    """Toolkit and fabric manager binaries on PATH that print what the real ones print for --version."""
    bin_dir = tmp_path / "bin"
    outputs = {
        "nvidia-ctk": "NVIDIA Container Toolkit CLI version 1.16.2\ncommit: a5a5833",
        "nvidia-container-runtime": "NVIDIA Container Runtime version 1.16.2\ncommit: a5a5833\nspec: 1.2.0",
        "nvidia-container-runtime-hook": "NVIDIA Container Runtime Hook version 1.16.2\ncommit: a5a5833",
        "nvidia-container-cli": "cli-version: 1.16.2\nlib-version: 1.16.2\nbuild date: 2024-09-24",
        "nv-fabricmanager": "Fabric Manager version is : 550.90.07",
    }
    for name, text in outputs.items():
        write(bin_dir, name, f"#!/bin/sh\nprintf '%s\\n' '{text}'\n", mode=0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_hgx_h100_host(tmp_path, use_nvml, toolbin):
    data = recording("hgx-h100")
    data["devices"][3]["processes"] = [{"pid": int(TRAINER_PID), "usedGpuMemory": 42 << 30}]
    fake = use_nvml(FakeNvml(data))
    nv = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root")))

    assert [d.kind for d in nv.pci] == ["nvswitch"] * 4 + ["gpu"] * 8
    assert nv.pci_gpus[0].driver == "nvidia" and nv.pci_gpus[0].device_id == "0x2330"
    assert nv.pci_error is None

    kernel = nv.kernel
    assert kernel.module_version == "550.90.07" and kernel.running_kernel == KERNEL
    assert kernel.modules == ["nvidia", "nvidia_uvm"]
    assert kernel.module_kernels == [KERNEL]
    assert kernel.secure_boot is True
    nodes = {n.path: n for n in kernel.nodes}
    assert set(nodes) == {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"} | {
        f"/dev/nvidia{i}" for i in range(8)
    }
    assert all(n.char_link and n.mode == 0o666 and n.accessible for n in nodes.values())

    nvml = nv.nvml
    assert nvml.ok and nvml.error_kind is None
    assert (nvml.driver_version, nvml.cuda_driver_version, nvml.nvml_version) == ("550.90.07", "12.4", "12.550.90.07")
    assert len(nvml.gpus) == 8 and fake.inits == fake.shutdowns == 1
    gpu = nvml.gpus[0]
    assert gpu.errors == {}
    assert (gpu.name, gpu.pci_bus_id, gpu.compute_capability) == ("NVIDIA H100 80GB HBM3", "00000000:18:00.0", "9.0")
    assert (gpu.memory_total_bytes, gpu.memory_used_bytes) == (85520809984, 565182464)
    assert (gpu.persistence_mode, gpu.mig_mode, gpu.mig_mode_pending) == (True, False, False)
    assert (gpu.temperature_c, gpu.slowdown_temp_c, gpu.power_draw_w, gpu.power_limit_w) == (31, 87, 69.85, 700.0)
    assert (gpu.sm_clock_mhz, gpu.sm_clock_max_mhz, gpu.mem_clock_mhz, gpu.mem_clock_max_mhz) == (345, 1980, 2619, 2619)
    assert (gpu.pcie_gen, gpu.pcie_gen_max, gpu.pcie_width, gpu.pcie_width_max) == (5, 5, 16, 16)
    assert gpu.clock_event_reasons == 1
    assert (gpu.ecc_enabled, gpu.ecc_uncorrected_volatile, gpu.ecc_uncorrected_aggregate) == (True, 0, 0)
    assert gpu.retired_pages is None and gpu.retired_pages_pending is None  # Hopper: not supported, n/a
    assert (gpu.remapped_rows_correctable, gpu.remapped_rows_uncorrectable) == (0, 0)
    assert (gpu.remap_pending, gpu.remap_failure) == (False, False)
    assert gpu.fabric_state == "completed"
    (proc,) = nvml.gpus[3].processes
    assert (proc.pid, proc.name, proc.used_memory_bytes) == (4242, "python3", 42 << 30)

    toolkit = nv.toolkit
    assert toolkit.installed and toolkit.version == "1.16.2"
    assert {b.name: b.version for b in toolkit.binaries} == dict.fromkeys(nvidia_facts.TOOLKIT_BINARIES, "1.16.2")
    assert toolkit.binary("nvidia-container-runtime-hook").installed_at > 0
    assert toolkit.config_path == "/etc/nvidia-container-runtime/config.toml"
    assert toolkit.config_found and toolkit.no_cgroups is True
    specs = {s.path: s for s in toolkit.cdi_specs}
    assert specs["/etc/cdi/nvidia.yaml"].driver_version == "550.90.07"
    assert specs["/etc/cdi/nvidia.yaml"].cdi_version == "0.5.0"
    assert specs["/var/run/cdi/nvidia.json"].cdi_version == "0.7.0"  # JSON specs declare it in quotes
    assert specs["/var/run/cdi/other.json"].error == "not an NVIDIA spec"
    assert toolkit.dockerd_started == 1700000000 + 360000 / os.sysconf("SC_CLK_TCK")

    assert nv.fabric_manager.version == "550.90.07" and nv.fabric_manager.running


def test_facts_round_trip_through_json(tmp_path, use_nvml, toolbin):
    use_nvml(FakeNvml(recording("hgx-h100")))
    nv = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root")))
    data = json.loads(json.dumps(to_data(nv)))
    assert from_data(NvidiaFacts, data) == nv


def test_open_kernel_module_version_line(tmp_path, use_nvml):
    use_nvml(FakeNvml(recording("hgx-h100")))
    nv = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root", version_line=OPEN_VERSION_LINE)))
    assert nv.kernel.module_version == "550.90.07"


def test_geforce_fields_not_supported_are_na_not_errors(tmp_path, use_nvml):
    use_nvml(FakeNvml(recording("rtx4090")))
    nv = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root", gpus=1, switches=0)))
    (gpu,) = nv.nvml.gpus
    assert gpu.errors == {}
    assert gpu.name == "NVIDIA GeForce RTX 4090" and gpu.compute_capability == "8.9"
    assert gpu.mig_mode is None and gpu.ecc_enabled is False and gpu.ecc_uncorrected_volatile is None
    assert gpu.remap_pending is None and gpu.retired_pages is None and gpu.fabric_state is None
    assert (gpu.pcie_gen, gpu.pcie_gen_max) == (1, 4)


def test_page_retirement_on_older_gpus(tmp_path, use_nvml):
    data = recording("a100-sxm4")
    device = data["devices"][0]
    device |= {"retired_pages": {"sbe": [0x1F000], "dbe": [0x2A000, 0x2B000]}, "retired_pages_pending": 1}
    device["remapped_rows"] = "NotSupported"
    use_nvml(FakeNvml(data))
    (gpu,) = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root", gpus=1))).nvml.gpus
    assert (gpu.retired_pages, gpu.retired_pages_pending, gpu.remap_pending) == (3, True, None)


def test_field_refused_for_another_reason_is_recorded(tmp_path, use_nvml):
    data = recording("a100-sxm4")
    data["devices"][0]["processes"] = "NoPermission"
    use_nvml(FakeNvml(data))
    (gpu,) = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root", gpus=1))).nvml.gpus
    assert gpu.processes == []
    assert gpu.errors == {"processes": "Insufficient Permissions"}
    assert gpu.name == "NVIDIA A100-SXM4-80GB" and gpu.persistence_mode is False


def test_lost_gpu_is_recorded_in_the_words_the_health_rule_reads(tmp_path, use_nvml):
    data = recording("a100-sxm4")
    data["devices"][0]["temperature"] = "GpuIsLost"
    use_nvml(FakeNvml(data))
    (gpu,) = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root", gpus=1))).nvml.gpus
    assert gpu.errors == {"temperature": "GPU is lost"} and gpu.temperature_c is None


def test_process_memory_not_available_is_none(tmp_path, use_nvml):
    data = recording("a100-sxm4")
    data["devices"][0]["processes"] = [{"pid": int(TRAINER_PID), "usedGpuMemory": None}]
    use_nvml(FakeNvml(data))
    (gpu,) = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root", gpus=1))).nvml.gpus
    (proc,) = gpu.processes
    assert (proc.pid, proc.name, proc.used_memory_bytes) == (4242, "python3", None)


@pytest.mark.parametrize(
    ("state", "status", "expected"),
    [
        (real_pynvml.NVML_GPU_FABRIC_STATE_COMPLETED, real_pynvml.NVML_SUCCESS, ("completed", None)),
        (real_pynvml.NVML_GPU_FABRIC_STATE_COMPLETED, real_pynvml.NVML_ERROR_UNKNOWN, ("failed", "Unknown Error")),
        (real_pynvml.NVML_GPU_FABRIC_STATE_IN_PROGRESS, real_pynvml.NVML_ERROR_UNKNOWN, ("in_progress", None)),
        (real_pynvml.NVML_GPU_FABRIC_STATE_NOT_SUPPORTED, real_pynvml.NVML_SUCCESS, (None, None)),
    ],
)
def test_fabric_status_is_read_once_registration_completed(tmp_path, use_nvml, state, status, expected):
    data = recording("hgx-h100")
    data["devices"][0] |= {"fabric_state": state, "fabric_status": status}
    use_nvml(FakeNvml(data))
    gpu = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root"))).nvml.gpus[0]
    assert (gpu.fabric_state, gpu.fabric_error) == expected


class OldBindings(FakeNvml):
    """nvidia-ml-py from before the "clocks event" rename has only the throttle-reasons name."""

    @property
    def nvmlDeviceGetCurrentClocksEventReasons(self):
        raise AttributeError("nvmlDeviceGetCurrentClocksEventReasons")

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return 0x40


def test_old_bindings_fall_back_to_throttle_reasons(tmp_path, use_nvml):
    use_nvml(OldBindings(recording("a100-sxm4")))
    (gpu,) = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root", gpus=1))).nvml.gpus
    assert gpu.clock_event_reasons == 0x40


@pytest.mark.parametrize(
    ("code", "kind", "text"),
    [
        (real_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "library_not_found", "NVML Shared Library Not Found"),
        (real_pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver_not_loaded", "Driver Not Loaded"),
        (real_pynvml.NVML_ERROR_NO_PERMISSION, "no_permission", "Insufficient Permissions"),
        (real_pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "version_mismatch", "NVML/RM version mismatch"),
        (real_pynvml.NVML_ERROR_UNKNOWN, "other", "Unknown Error"),
    ],
)
def test_init_errors_map_to_their_cause(tmp_path, use_nvml, code, kind, text):
    fake = use_nvml(FakeNvml(recording("a100-sxm4"), init_error=code))
    nv = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root", gpus=1)))
    assert (nv.nvml.ok, nv.nvml.error_kind) == (False, kind)
    assert text in nv.nvml.error
    assert nv.nvml.gpus == [] and fake.shutdowns == 0
    assert nv.kernel.module_version == "550.90.07"  # the other links are still read


def test_missing_bindings_are_a_fact(tmp_path, use_nvml):
    use_nvml(None)  # `import pynvml` raises ImportError
    nv = nvidia_facts.gather(5.0, str(tmp_path))
    assert nv.nvml.error_kind == "no_bindings" and "nvidia-ml-py" in nv.nvml.error


def test_hung_nvml_init_is_bounded_and_the_rest_still_comes_back(tmp_path, use_nvml):
    release = threading.Event()
    use_nvml(FakeNvml(recording("a100-sxm4"), init_blocks=release))
    try:
        started = time.monotonic()
        nv = nvidia_facts.gather(0.2, str(hgx_tree(tmp_path / "root", gpus=1)))
        assert time.monotonic() - started < 1.5
    finally:
        release.set()
    assert (nv.nvml.ok, nv.nvml.error_kind) == (False, "timeout")
    assert len(nv.pci_gpus) == 1 and nv.kernel.module_version == "550.90.07"


def test_bare_tree_no_sysfs_no_driver(tmp_path, use_nvml, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    use_nvml(FakeNvml(recording("a100-sxm4"), init_error=real_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    nv = nvidia_facts.gather(5.0, str(tmp_path))
    assert nv.pci == [] and "sys/bus/pci/devices" in nv.pci_error
    assert nv.kernel.version_text is None and nv.kernel.modules == [] and nv.kernel.nodes == []
    assert nv.kernel.secure_boot is False  # no /sys/firmware/efi: legacy boot
    assert not nv.toolkit.installed and nv.toolkit.cdi_specs == [] and nv.toolkit.dockerd_started is None
    assert nv.fabric_manager.path is None and not nv.fabric_manager.running


def test_unreadable_secure_boot_variable_is_unknown(tmp_path, use_nvml):
    use_nvml(FakeNvml(recording("a100-sxm4")))
    root = hgx_tree(tmp_path / "root", gpus=1)
    (root / nvidia_facts.SECURE_BOOT_VAR).unlink()
    assert nvidia_facts.gather(5.0, str(root)).kernel.secure_boot is None


def test_dev_char_links_and_node_modes(tmp_path, use_nvml):
    use_nvml(FakeNvml(recording("a100-sxm4")))
    root = hgx_tree(tmp_path / "root", gpus=1)
    (root / "dev/char/195:0").unlink()
    (root / "dev/nvidia0").chmod(0o660)
    nodes = {n.path: n for n in nvidia_facts.gather(5.0, str(root)).kernel.nodes}
    assert not nodes["/dev/nvidia0"].char_link and nodes["/dev/nvidiactl"].char_link
    assert stat.S_IMODE(nodes["/dev/nvidia0"].mode) == 0o660


def test_orchestrator_passes_sysroot(tmp_path, use_nvml, toolbin):
    use_nvml(FakeNvml(copy.deepcopy(recording("rtx4090"))))
    facts = gather({"nvidia"}, GatherOptions(sysroot=str(hgx_tree(tmp_path / "root", gpus=1, switches=0))))
    assert facts.errors == {}
    assert facts.nvidia.nvml.gpus[0].name == "NVIDIA GeForce RTX 4090"
    assert facts.nvidia.kernel.running_kernel == KERNEL


def test_nvlink_links_are_read_until_the_driver_refuses_and_absent_without_nvlink(tmp_path, use_nvml):
    data = recording("hgx-h100")
    up = {"active": 1, "replay": 0, "recovery": 0, "crc_flit": 0, "crc_data": 0}
    data["devices"][0]["nvlinks"] = [up] * 17 + [up | {"active": 0}]  # H100 SXM: 18 links, the last one down
    data["devices"][1]["nvlinks"] = [up | {"recovery": 3, "replay": 12, "crc_flit": 5, "crc_data": 2}] * 18
    use_nvml(FakeNvml(data))
    facts = nvidia_facts.gather(5.0, str(hgx_tree(tmp_path / "root")))
    gpu0, gpu1, gpu2 = facts.nvml.gpus[:3]
    assert len(gpu0.nvlinks) == 18 and [link.link for link in gpu0.nvlinks if not link.active] == [17]
    assert gpu1.nvlinks[0].recovery_errors == 3 and gpu1.nvlinks[0].crc_errors == 7
    assert gpu2.nvlinks is None and "nvlink" not in " ".join(gpu2.errors)  # no NVLink: n/a, not an error
