"""NVIDIA facts: PCI devices, the kernel side, NVML (inventory and health), the container toolkit, fabric manager.

The chain is read link by link, each link on its own, so the rules can name the first broken one: sysfs says
whether there is NVIDIA hardware at all; /proc and /dev say whether the kernel driver is loaded and reachable;
NVML says whether user space agrees with the kernel; the toolkit and CDI say whether containers will get the GPU.

Files are read under `sysroot` (tests point it at a fake tree). NVML is reached through nvidia-ml-py
(`pynvml`), imported lazily, in a daemon thread with a deadline: NVML init on a wedged driver can hang, and the
other facts must still come back. Every NVML field may be "not supported" on some GPU: it is recorded as None
(n/a) and never fails the gather.
"""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mldoctor.facts.common import CommandOutput, read_text, run_command

NVIDIA_VENDOR = "0x10de"
PCI_CLASS_KIND = {"0x0300": "gpu", "0x0302": "gpu", "0x0680": "nvswitch"}
"""PCI class (base + subclass) -> what it is: VGA or 3D controller = a GPU; "other bridge" = an NVSwitch.
NVIDIA's HDMI audio functions (0x0403) and the like are kept as "other" and never counted."""
KERNEL_MODULES = ("nvidia", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia_peermem", "nouveau")
SECURE_BOOT_VAR = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0f2b4ab8c"
TOOLKIT_BINARIES = ("nvidia-ctk", "nvidia-container-runtime", "nvidia-container-runtime-hook", "nvidia-container-cli")
TOOLKIT_CONFIG = "etc/nvidia-container-runtime/config.toml"
CDI_DIRS = ("etc/cdi", "var/run/cdi")
FABRIC_STATES = {0: "not_supported", 1: "not_started", 2: "in_progress", 3: "completed"}
VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:[-~+][\w.]+)?")


@dataclass
class PciDevice:
    """One NVIDIA PCI function from sysfs: it is there whether or not a driver works, so it says whether there is
    NVIDIA hardware at all."""

    address: str
    device_id: str
    """PCI device id, e.g. 0x2330 (H100 SXM5 80GB)."""
    class_code: str
    kind: str
    """gpu, nvswitch or other."""
    driver: str | None = None
    """The kernel driver bound to it: nvidia, nouveau, vfio-pci, or None when none is."""


@dataclass
class DeviceNode:
    """One /dev/nvidia* node: its owner and mode, and whether this process can open it."""

    path: str
    mode: int
    owner: str
    group: str
    accessible: bool
    """Readable and writable by this process (what opening it for CUDA needs)."""
    major: int | None = None
    minor: int | None = None
    char_link: bool = False
    """/dev/char/<major>:<minor> points at it (systemd's device cgroup rules resolve nodes through these)."""


@dataclass
class KernelFacts:
    """The kernel side of the driver: the loaded modules and their version, the kernels they were built for,
    Secure Boot and the /dev nodes."""

    running_kernel: str
    version_text: str | None = None
    """First line of /proc/driver/nvidia/version; None when the nvidia module is not loaded."""
    module_version: str | None = None
    modules: list[str] = field(default_factory=list)
    """Loaded modules among nvidia, nvidia_uvm, nvidia_drm, nvidia_modeset, nvidia_peermem and nouveau."""
    module_kernels: list[str] = field(default_factory=list)
    """Installed kernels whose modules.dep lists an nvidia module (it was built or packaged for them)."""
    secure_boot: bool | None = None
    """None when the machine boots with EFI but the SecureBoot variable is unreadable."""
    nodes: list[DeviceNode] = field(default_factory=list)
    dev_char: bool = False
    """/dev/char exists (it does on every systemd host)."""


@dataclass
class GpuProcess:
    """A compute process on a GPU, as NVML lists it, with the GPU memory it holds."""

    pid: int
    name: str | None = None
    used_memory_bytes: int | None = None


@dataclass
class NvLink:
    """One NVLink link of a GPU: up or down, and its error counters since the driver loaded."""

    link: int
    active: bool
    replay_errors: int | None = None
    recovery_errors: int | None = None
    crc_errors: int | None = None
    """Flit and data CRC errors together."""


@dataclass
class GpuFacts:
    """One GPU as NVML sees it. None means "not supported" (or unreadable: then `errors` says why)."""

    index: int
    name: str | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    compute_capability: str | None = None
    persistence_mode: bool | None = None
    mig_mode: bool | None = None
    mig_mode_pending: bool | None = None
    temperature_c: int | None = None
    slowdown_temp_c: int | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    mem_clock_mhz: int | None = None
    mem_clock_max_mhz: int | None = None
    clock_event_reasons: int | None = None
    """Bitmask of nvmlClocksEventReason* (the "throttle reasons")."""
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    ecc_enabled: bool | None = None
    ecc_uncorrected_volatile: int | None = None
    """Uncorrected ECC errors since the last driver load."""
    ecc_uncorrected_aggregate: int | None = None
    retired_pages: int | None = None
    """Pages retired for ECC errors (Volta and older; Ampere and later remap rows instead)."""
    retired_pages_pending: bool | None = None
    remapped_rows_correctable: int | None = None
    remapped_rows_uncorrectable: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    fabric_state: str | None = None
    """NVLink fabric registration (Hopper and later): not_started, in_progress, completed or failed."""
    fabric_error: str | None = None
    """Why a registration that finished did not succeed (NVML's `status`, read only once the state is completed)."""
    processes: list[GpuProcess] = field(default_factory=list)
    nvlinks: list[NvLink] | None = None
    """Its NVLink links (None on a GPU without NVLink, or where NVML cannot say)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Fields NVML refused for a reason other than "not supported" (no permission, GPU is lost, ...)."""


@dataclass
class NvmlFacts:
    """What NVML (the driver's user-space library) reports: the driver and CUDA versions and every GPU;
    or why it could not be asked."""

    ok: bool = False
    error_kind: str | None = None
    """no_bindings, library_not_found, driver_not_loaded, no_permission, version_mismatch, timeout or other."""
    error: str | None = None
    library: str | None = None
    """The libnvidia-ml.so.1 that was loaded, resolved (its name ends in the library's version)."""
    library_version: str | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    nvml_version: str | None = None
    gpus: list[GpuFacts] = field(default_factory=list)
    elapsed_s: float = 0.0


@dataclass
class ToolBinary:
    """One NVIDIA Container Toolkit program: where it is on PATH, its version, and when it was installed."""

    name: str
    path: str | None = None
    version: str | None = None
    installed_at: float | None = None
    """The file's ctime: when it was put in place (dpkg and rpm keep the package's mtime, so not that). dockerd
    registers its GPU driver only if the hook existed when it started."""


@dataclass
class CdiSpec:
    """A CDI spec file from /etc/cdi or /var/run/cdi, and what it was generated for: a spec older than the driver
    names libraries that no longer exist."""

    path: str
    driver_version: str | None = None
    """The driver version the spec was generated for (from the versioned library paths it mounts)."""
    cdi_version: str | None = None
    """The spec's `cdiVersion`: the schema a runtime must understand to read it (0.7.0 added `additionalGids`)."""
    error: str | None = None


@dataclass
class ToolkitFacts:
    """The NVIDIA Container Toolkit: its programs, its config.toml, the CDI specs, and when dockerd started (the hook
    must predate it to be registered)."""

    binaries: list[ToolBinary] = field(default_factory=list)
    config_path: str = "/" + TOOLKIT_CONFIG
    config_found: bool = False
    no_cgroups: bool | None = None
    """nvidia-container-cli.no-cgroups in config.toml (rootless Docker needs true); None when not set."""
    cdi_specs: list[CdiSpec] = field(default_factory=list)
    dockerd_started: float | None = None
    """Start time (epoch seconds) of the running dockerd, when one runs on this host."""

    def binary(self, name: str) -> ToolBinary | None:
        return next((b for b in self.binaries if b.name == name and b.path), None)

    @property
    def installed(self) -> bool:
        return any(b.path for b in self.binaries)

    @property
    def version(self) -> str | None:
        return next((b.version for b in self.binaries if b.version), None)


@dataclass
class FabricManagerFacts:
    """NVIDIA Fabric Manager, which NVSwitch systems need before CUDA can start: installed, its version, running."""

    path: str | None = None
    version: str | None = None
    running: bool = False


@dataclass
class XidEvent:
    """One `NVRM: Xid (PCI:BUS): CODE, ...` line of the kernel log since boot."""

    pci_bus_id: str
    code: int
    text: str = ""


@dataclass
class KernelLog:
    """The driver's Xid reports since boot (dmesg, else the journal's kernel log; either may need privileges)."""

    xids: list[XidEvent] = field(default_factory=list)
    error: str | None = None
    """Why the kernel log could not be read (dmesg restricted to root, no journal)."""


@dataclass
class PcieBridge:
    """A PCIe bridge or switch port above one or more GPUs, and its ACS control register."""

    address: str
    gpus: list[str] = field(default_factory=list)
    """The GPUs (PCI addresses) below it."""
    acs_control: int | None = None
    """ACS Control (extended capability 0x000D, offset 6); 0 without the capability; None when this user cannot
    read the extended configuration space (root only)."""

    @property
    def redirects(self) -> bool:
        """Request or completion redirect on: peer-to-peer traffic goes up to the root complex (and may hang)."""
        return bool(self.acs_control is not None and self.acs_control & 0b1100)


@dataclass
class TopologyFacts:
    """What decides whether GPUs can talk peer to peer: the IOMMU's mode and ACS on the bridges above them."""

    iommu: str = "unknown"
    """off, passthrough (identity), translated (DMA: peer traffic is remapped), or unknown."""
    cmdline: list[str] = field(default_factory=list)
    """The kernel command line's IOMMU and ACS words (intel_iommu=, amd_iommu=, iommu=, pci=noacs)."""
    bridges: list[PcieBridge] = field(default_factory=list)


@dataclass
class NvidiaFacts:
    """The NVIDIA section of the facts: PCI hardware, the kernel driver, NVML, the container toolkit, Fabric
    Manager, the kernel log's Xids and the topology, each link read on its own."""

    kernel: KernelFacts
    nvml: NvmlFacts
    toolkit: ToolkitFacts
    fabric_manager: FabricManagerFacts
    pci: list[PciDevice] = field(default_factory=list)
    pci_error: str | None = None
    """Why the PCI bus could not be listed (no sysfs in this container, ...): then hardware is unknown."""
    kernel_log: KernelLog | None = None
    """Read only where an NVIDIA GPU or driver is present."""
    topology: TopologyFacts | None = None

    @property
    def pci_gpus(self) -> list[PciDevice]:
        return [d for d in self.pci if d.kind == "gpu"]

    @property
    def nvswitches(self) -> list[PciDevice]:
        return [d for d in self.pci if d.kind == "nvswitch"]


def gather(timeout: float, sysroot: str = "/") -> NvidiaFacts:
    """The PCI bus and the kernel first (cheap); NVML only where they show an NVIDIA GPU or driver, so a machine
    without one never loads pynvml and libnvidia-ml (a third of a GPU-less check's time)."""
    root = Root(sysroot)
    with ThreadPoolExecutor(max_workers=2) as pool:
        toolkit_future = pool.submit(_toolkit, root, timeout)
        fabric_future = pool.submit(_fabric_manager, root, timeout)
        pci, pci_error = _pci(root)
        kernel = _kernel(root)
        present = bool(pci or pci_error or kernel.version_text)
        log_future = pool.submit(_kernel_log, timeout) if present and root.sysroot == "/" else None
        nvml = _nvml_with_deadline(root, timeout) if present else _not_asked()
        toolkit, fabric_manager = toolkit_future.result(), fabric_future.result()
        kernel_log = log_future.result() if log_future else None
    return NvidiaFacts(
        topology=_topology(root, [d.address for d in pci if d.kind == "gpu"]),
        kernel=kernel,
        nvml=nvml,
        toolkit=toolkit,
        fabric_manager=fabric_manager,
        pci=pci,
        pci_error=pci_error,
        kernel_log=kernel_log,
    )


IOMMU_WORDS = re.compile(r"^(intel_iommu|amd_iommu|iommu|iommu\.passthrough|pci)=\S+$")
BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def _topology(root: Root, gpus: list[str]) -> TopologyFacts:
    """The IOMMU mode (kernel command line, the GPUs' IOMMU group type) and every bridge above the GPUs with its ACS
    control register, read from sysfs (the extended configuration space needs root)."""
    cmdline = [w for w in (root.read("proc/cmdline") or "").split() if IOMMU_WORDS.match(w)]
    facts = TopologyFacts(cmdline=cmdline, iommu=_iommu_mode(root, gpus, cmdline))
    bridges: dict[str, PcieBridge] = {}
    for gpu in gpus:
        real = os.path.realpath(root.path("sys/bus/pci/devices", gpu))
        for part in real.split(os.sep)[:-1]:
            if BDF.match(part):
                bridge = bridges.setdefault(part, PcieBridge(address=part, acs_control=_acs_control(root, part)))
                bridge.gpus.append(gpu)
    facts.bridges = list(bridges.values())
    return facts


def _iommu_mode(root: Root, gpus: list[str], cmdline: list[str]) -> str:
    types = {(root.read("sys/bus/pci/devices", gpu, "iommu_group/type") or "").strip() for gpu in gpus} - {""}
    if types:
        return "passthrough" if types == {"identity"} else "translated"
    if any(w in ("iommu=pt", "iommu.passthrough=1") for w in cmdline):
        return "passthrough"
    if any(w in ("intel_iommu=off", "amd_iommu=off", "iommu=off") for w in cmdline):
        return "off"
    try:
        return "translated" if os.listdir(root.path("sys/class/iommu")) else "off"
    except OSError:
        return "unknown"


def _acs_control(root: Root, address: str) -> int | None:
    """Walk the extended capabilities from offset 0x100 to ACS (id 0x000D); its control register is at +6."""
    try:
        with open(root.path("sys/bus/pci/devices", address, "config"), "rb") as handle:
            config = handle.read(4096)
    except OSError:
        return None
    if len(config) <= 64:  # a user other than root reads only the standard header
        return None
    offset, seen = 0x100, set()
    while 0x100 <= offset <= len(config) - 8 and offset not in seen:
        seen.add(offset)
        header = int.from_bytes(config[offset : offset + 4], "little")
        if header in (0, 0xFFFFFFFF):
            break
        if header & 0xFFFF == 0x000D:
            return int.from_bytes(config[offset + 6 : offset + 8], "little")
        offset = (header >> 20) & 0xFFC
    return 0


XID_LINE = re.compile(r"NVRM: Xid \(PCI:([0-9A-Fa-f:.]{7,20})\): (\d{1,4})\b,?([^\n]{0,300})")
MAX_XIDS = 200


def _kernel_log(timeout: float) -> KernelLog:
    """Xid lines since boot, from dmesg or else the journal's kernel log; the last MAX_XIDS of them."""
    errors = []
    for argv in (["dmesg"], ["journalctl", "-k", "-b", "--no-pager", "-q", "-g", "NVRM: Xid"]):
        output = run_command(argv, timeout)
        if not output.ok:
            errors.append(output.error or f"{argv[0]}: {output.stderr.strip()[:200] or output.returncode}")
            continue
        events = [
            XidEvent(pci_bus_id=m.group(1).lower(), code=int(m.group(2)), text=m.group(3).strip(" ,"))
            for m in XID_LINE.finditer(output.stdout)
        ]
        return KernelLog(xids=events[-MAX_XIDS:])
    return KernelLog(error="; ".join(errors))


def _not_asked() -> NvmlFacts:
    return NvmlFacts(error_kind="not_asked", error="no NVIDIA device on the PCI bus and no NVIDIA driver loaded")


def _nvml_with_deadline(root: Root, timeout: float) -> NvmlFacts:
    """NVML in a daemon thread (a hung nvmlInit must not keep mldoctor from exiting), given two timeouts: without
    persistence mode, the first NVML session initialises every GPU, which takes seconds on an 8-GPU node."""
    result: list[NvmlFacts] = []
    thread = threading.Thread(target=lambda: result.append(_nvml(root)), name="gather-nvml", daemon=True)
    thread.start()
    thread.join(2 * timeout)
    return result[0] if result else NvmlFacts(error_kind="timeout", error=f"no answer within {2 * timeout:g} s")


class Root:
    """Paths of the host, under a prefix (a fake tree in tests)."""

    def __init__(self, sysroot: str) -> None:
        self.sysroot = sysroot

    def path(self, *parts: str) -> str:
        return os.path.join(self.sysroot, *(p.lstrip("/") for p in parts))

    def read(self, *parts: str) -> str | None:
        return read_text(self.path(*parts))

    def host_path(self, path: str) -> str:
        """A path under the root, as the host names it (what fixes print)."""
        return "/" + os.path.relpath(path, self.sysroot)


def _pci(root: Root) -> tuple[list[PciDevice], str | None]:
    base = root.path("sys/bus/pci/devices")
    try:
        addresses = sorted(os.listdir(base))
    except OSError as exc:
        return [], f"{root.host_path(base)}: {exc.strerror or exc}"
    devices = []
    for address in addresses:
        device = os.path.join(base, address)
        if (read_text(os.path.join(device, "vendor")) or "").strip() != NVIDIA_VENDOR:
            continue
        class_code = (read_text(os.path.join(device, "class")) or "").strip()
        link = os.path.join(device, "driver")
        devices.append(
            PciDevice(
                address=address,
                device_id=(read_text(os.path.join(device, "device")) or "").strip(),
                class_code=class_code,
                kind=PCI_CLASS_KIND.get(class_code[:6], "other"),
                driver=os.path.basename(os.readlink(link)) if os.path.islink(link) else None,
            )
        )
    return devices, None


def _kernel(root: Root) -> KernelFacts:
    running = (root.read("proc/sys/kernel/osrelease") or platform.release()).strip()
    facts = KernelFacts(running_kernel=running)
    version = root.read("proc/driver/nvidia/version")
    if version:
        facts.version_text = version.splitlines()[0].strip()
        match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", facts.version_text)
        facts.module_version = match.group(1) if match else None
    loaded = {line.split()[0] for line in (root.read("proc/modules") or "").splitlines() if line.strip()}
    facts.modules = [m for m in KERNEL_MODULES if m in loaded]
    facts.module_kernels = _module_kernels(root)
    facts.secure_boot = _secure_boot(root)
    facts.nodes = _device_nodes(root)
    facts.dev_char = os.path.isdir(root.path("dev/char"))
    return facts


def _module_kernels(root: Root) -> list[str]:
    """Kernels that have an nvidia module: modules.dep is the kernel's own index, one read per kernel."""
    kernels = []
    for dep in sorted(glob.glob(root.path("lib/modules/*/modules.dep"))):
        if re.search(r"(^|/)nvidia\.ko(\.\w+)?:", read_text(dep, limit=64 << 20) or "", re.MULTILINE):
            kernels.append(os.path.basename(os.path.dirname(dep)))
    return kernels


def _secure_boot(root: Root) -> bool | None:
    if not os.path.isdir(root.path("sys/firmware/efi")):
        return False  # legacy BIOS boot: no Secure Boot
    try:
        with open(root.path(SECURE_BOOT_VAR), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return len(data) >= 5 and data[4] == 1  # 4 bytes of attributes, then the value


def _device_nodes(root: Root) -> list[DeviceNode]:
    import grp
    import pwd

    char_targets = {os.path.realpath(link) for link in glob.glob(root.path("dev/char/*")) if os.path.islink(link)}
    nodes = []
    for path in sorted(glob.glob(root.path("dev/nvidia*"))):
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue  # /dev/nvidia-caps: MIG capability nodes, not needed to start CUDA
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        is_char = stat.S_ISCHR(st.st_mode)
        nodes.append(
            DeviceNode(
                path=root.host_path(path),
                mode=stat.S_IMODE(st.st_mode),
                owner=owner,
                group=group,
                accessible=os.access(path, os.R_OK | os.W_OK),
                major=os.major(st.st_rdev) if is_char else None,
                minor=os.minor(st.st_rdev) if is_char else None,
                char_link=os.path.realpath(path) in char_targets,
            )
        )
    return nodes


def _nvml(root: Root) -> NvmlFacts:
    started = time.monotonic()
    facts = NvmlFacts()
    try:
        import pynvml
    except ImportError as exc:
        facts.error_kind, facts.error = "no_bindings", f"nvidia-ml-py is not installed: {exc}"
        return facts
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        facts.error_kind, facts.error = _init_error_kind(pynvml, exc), str(exc)
    except Exception as exc:  # a broken binding or library must read as a fact, not a crash
        facts.error_kind, facts.error = "other", f"{type(exc).__name__}: {exc}"
    else:
        try:
            _inventory(pynvml, facts, root)
        except Exception as exc:  # the inventory wraps each call; this is the net under a binding bug
            facts.ok, facts.error_kind, facts.error = False, "other", f"{type(exc).__name__}: {exc}"
        finally:
            _call(pynvml.nvmlShutdown)
    facts.library = _loaded_library()
    if facts.library:
        match = re.search(r"\.so\.(\d+\.\d+(?:\.\d+)?)$", facts.library)
        facts.library_version = match.group(1) if match else None
    facts.elapsed_s = time.monotonic() - started
    return facts


def _init_error_kind(pynvml: Any, exc: Exception) -> str:
    kinds = {
        "NVMLError_LibraryNotFound": "library_not_found",
        "NVMLError_DriverNotLoaded": "driver_not_loaded",
        "NVMLError_NoPermission": "no_permission",
        "NVMLError_LibRmVersionMismatch": "version_mismatch",
    }
    for name, kind in kinds.items():
        cls = getattr(pynvml, name, None)
        if cls is not None and isinstance(exc, cls):
            return kind
    return "other"


def _loaded_library() -> str | None:
    """The libnvidia-ml this process mapped (honours LD_LIBRARY_PATH, unlike a guess from ldconfig)."""
    for line in (read_text("/proc/self/maps", limit=16 << 20) or "").splitlines():
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if "libnvidia-ml.so" in path:
            return os.path.realpath(path)
    return None


class _Field:
    """Sentinel for a field NVML could not give."""


NA = _Field()


def _call(fn: Callable[..., Any], *args: Any, errors: dict[str, str] | None = None, name: str = "") -> Any:
    """One NVML call; NA when it fails. "Not supported" (and a function this driver lacks) is silent n/a;
    anything else is recorded in `errors` under `name`, so the report says why a value is missing."""
    import pynvml

    try:
        return fn(*args)
    except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
        return NA
    except Exception as exc:  # NoPermission, GpuIsLost, a binding bug: all facts about this field
        if errors is not None:
            errors[name or getattr(fn, "__name__", "?")] = str(exc) or type(exc).__name__
        return NA


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _inventory(pynvml: Any, facts: NvmlFacts, root: Root) -> None:
    errors: dict[str, str] = {}
    driver = _call(pynvml.nvmlSystemGetDriverVersion, errors=errors, name="driver_version")
    cuda = _call(pynvml.nvmlSystemGetCudaDriverVersion_v2, errors=errors, name="cuda_driver_version")
    nvml = _call(pynvml.nvmlSystemGetNVMLVersion, errors=errors, name="nvml_version")
    facts.driver_version = None if driver is NA else _text(driver)
    facts.cuda_driver_version = None if cuda is NA else f"{cuda // 1000}.{cuda % 1000 // 10}"
    facts.nvml_version = None if nvml is NA else _text(nvml)
    count = _call(pynvml.nvmlDeviceGetCount, errors=errors, name="count")
    if count is NA:
        facts.ok, facts.error_kind, facts.error = False, "other", f"nvmlDeviceGetCount: {errors['count']}"
        return
    facts.ok = True
    facts.gpus = [_gpu(pynvml, index, root) for index in range(count)]


def _gpu(pynvml: Any, index: int, root: Root) -> GpuFacts:
    gpu = GpuFacts(index=index)
    errors = gpu.errors
    handle = _call(pynvml.nvmlDeviceGetHandleByIndex, index, errors=errors, name="handle")
    if handle is NA:
        return gpu

    def get(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        return _call(fn, handle, *args, errors=errors, name=name)

    def value(name: str, fn: Callable[..., Any], *args: Any, convert: Callable[[Any], Any] = lambda v: v) -> Any:
        result = get(name, fn, *args)
        return None if result is NA else convert(result)

    gpu.name = value("name", pynvml.nvmlDeviceGetName, convert=_text)
    gpu.uuid = value("uuid", pynvml.nvmlDeviceGetUUID, convert=_text)
    gpu.pci_bus_id = value("pci_bus_id", pynvml.nvmlDeviceGetPciInfo, convert=lambda p: _text(p.busId))
    memory = get("memory", pynvml.nvmlDeviceGetMemoryInfo)
    if memory is not NA:
        gpu.memory_total_bytes, gpu.memory_used_bytes = int(memory.total), int(memory.used)
    gpu.compute_capability = value(
        "compute_capability", pynvml.nvmlDeviceGetCudaComputeCapability, convert=lambda cc: f"{cc[0]}.{cc[1]}"
    )
    gpu.persistence_mode = value("persistence_mode", pynvml.nvmlDeviceGetPersistenceMode, convert=bool)
    mig = get("mig_mode", pynvml.nvmlDeviceGetMigMode)
    if mig is not NA:
        gpu.mig_mode, gpu.mig_mode_pending = bool(mig[0]), bool(mig[1])
    gpu.temperature_c = value("temperature", pynvml.nvmlDeviceGetTemperature, pynvml.NVML_TEMPERATURE_GPU)
    gpu.slowdown_temp_c = value(
        "slowdown_temp",
        pynvml.nvmlDeviceGetTemperatureThreshold,
        pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
    )
    gpu.power_draw_w = value("power_draw", pynvml.nvmlDeviceGetPowerUsage, convert=lambda mw: mw / 1000)
    gpu.power_limit_w = value("power_limit", pynvml.nvmlDeviceGetEnforcedPowerLimit, convert=lambda mw: mw / 1000)
    for attr, fn, clock in (
        ("sm_clock_mhz", pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_SM),
        ("sm_clock_max_mhz", pynvml.nvmlDeviceGetMaxClockInfo, pynvml.NVML_CLOCK_SM),
        ("mem_clock_mhz", pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_MEM),
        ("mem_clock_max_mhz", pynvml.nvmlDeviceGetMaxClockInfo, pynvml.NVML_CLOCK_MEM),
    ):
        setattr(gpu, attr, value(attr, fn, clock))
    reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)  # the old name before NVML 12.2
    gpu.clock_event_reasons = value(
        "clock_event_reasons", reasons or pynvml.nvmlDeviceGetCurrentClocksThrottleReasons, convert=int
    )
    gpu.pcie_gen = value("pcie_gen", pynvml.nvmlDeviceGetCurrPcieLinkGeneration)
    gpu.pcie_gen_max = value("pcie_gen_max", pynvml.nvmlDeviceGetMaxPcieLinkGeneration)
    gpu.pcie_width = value("pcie_width", pynvml.nvmlDeviceGetCurrPcieLinkWidth)
    gpu.pcie_width_max = value("pcie_width_max", pynvml.nvmlDeviceGetMaxPcieLinkWidth)
    _memory_errors(pynvml, gpu, get)
    gpu.fabric_state, gpu.fabric_error = _fabric(pynvml, get)
    gpu.nvlinks = _nvlinks(pynvml, handle)
    processes = get("processes", pynvml.nvmlDeviceGetComputeRunningProcesses)
    if processes is not NA:
        gpu.processes = [
            GpuProcess(pid=p.pid, name=_process_name(root, p.pid), used_memory_bytes=p.usedGpuMemory) for p in processes
        ]
    return gpu


def _nvlinks(pynvml: Any, handle: Any) -> list[NvLink] | None:
    """Every NVLink link NVML knows for the GPU: the link indices stop at the first one NVML refuses (a GPU has
    fewer than NVML_NVLINK_MAX_LINKS); a GPU without NVLink answers "not supported" for link 0: None."""
    links, ignored = [], {}
    for index in range(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18)):
        state = _call(pynvml.nvmlDeviceGetNvLinkState, handle, index, errors=ignored)
        if state is NA:
            break

        def counter(kind: int, link: int = index) -> int | None:
            value = _call(pynvml.nvmlDeviceGetNvLinkErrorCounter, handle, link, kind, errors=ignored)
            return None if value is NA else int(value)

        crc = [counter(pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT), counter(pynvml.NVML_NVLINK_ERROR_DL_CRC_DATA)]
        links.append(
            NvLink(
                link=index,
                active=bool(state),
                replay_errors=counter(pynvml.NVML_NVLINK_ERROR_DL_REPLAY),
                recovery_errors=counter(pynvml.NVML_NVLINK_ERROR_DL_RECOVERY),
                crc_errors=None if None in crc else sum(c for c in crc if c is not None),
            )
        )
    return links or None


def _memory_errors(pynvml: Any, gpu: GpuFacts, get: Callable[..., Any]) -> None:
    """ECC counters, and the two ways a GPU retires bad memory: page retirement (up to Volta), row remapping
    (Ampere and later). A GPU supports one of them; the other reads "not supported"."""
    ecc = get("ecc_mode", pynvml.nvmlDeviceGetEccMode)
    if ecc is not NA:
        gpu.ecc_enabled = bool(ecc[0])
    for attr, counter in (
        ("ecc_uncorrected_volatile", pynvml.NVML_VOLATILE_ECC),
        ("ecc_uncorrected_aggregate", pynvml.NVML_AGGREGATE_ECC),
    ):
        count = get(attr, pynvml.nvmlDeviceGetTotalEccErrors, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, counter)
        setattr(gpu, attr, None if count is NA else int(count))
    retired = [
        get("retired_pages", pynvml.nvmlDeviceGetRetiredPages, cause)
        for cause in (
            pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
            pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
        )
    ]
    if all(pages is not NA for pages in retired):
        gpu.retired_pages = sum(len(pages) for pages in retired)
    pending = get("retired_pages_pending", pynvml.nvmlDeviceGetRetiredPagesPendingStatus)
    gpu.retired_pages_pending = None if pending is NA else bool(pending)
    rows = get("remapped_rows", pynvml.nvmlDeviceGetRemappedRows)
    if rows is not NA:
        correctable, uncorrectable, remap_pending, failure = rows
        gpu.remapped_rows_correctable, gpu.remapped_rows_uncorrectable = int(correctable), int(uncorrectable)
        gpu.remap_pending, gpu.remap_failure = bool(remap_pending), bool(failure)


def _fabric(pynvml: Any, get: Callable[..., Any]) -> tuple[str | None, str | None]:
    """The GPU's NVLink fabric registration: its state, and the error it finished with. NVML's `status` is
    meaningful only once the state is completed, and a completed registration can still have failed: then CUDA
    fails with error 802 exactly as if fabric manager had never run."""
    import ctypes  # here, not at the top: only a host with an NVIDIA driver gets this far (pynvml loaded it)

    info_type = getattr(pynvml, "c_nvmlGpuFabricInfo_t", None)
    if info_type is None:
        return None, None
    info = info_type()
    if get("fabric_state", pynvml.nvmlDeviceGetGpuFabricInfo, ctypes.byref(info)) is NA:
        return None, None
    state = FABRIC_STATES.get(int(info.state))
    if state == "completed" and int(info.status) != pynvml.NVML_SUCCESS:
        return "failed", str(pynvml.NVMLError(int(info.status)))
    return (None, None) if state == "not_supported" else (state, None)


def _process_name(root: Root, pid: int) -> str | None:
    """The process's name, when it is in this PID namespace (NVML reports host PIDs)."""
    name = root.read("proc", str(pid), "comm")
    return name.strip() if name else None


def _pids_named(root: Root, name: str) -> list[str]:
    try:
        pids = [p for p in os.listdir(root.path("proc")) if p.isdigit()]
    except OSError:
        return []
    return [pid for pid in pids if (root.read("proc", pid, "comm") or "").strip() == name]


def _toolkit(root: Root, timeout: float) -> ToolkitFacts:
    facts = ToolkitFacts(config_path=root.host_path(root.path(TOOLKIT_CONFIG)))
    paths = {name: shutil.which(name) for name in TOOLKIT_BINARIES}
    installed = {name: path for name, path in paths.items() if path}
    outputs: dict[str, CommandOutput] = {}
    if installed:  # each one's --version side by side; no threads where the toolkit is not installed
        with ThreadPoolExecutor(max_workers=len(installed)) as pool:
            versions = pool.map(lambda path: run_command([path, "--version"], timeout), installed.values())
            outputs = dict(zip(installed, versions, strict=True))
    for name, path in paths.items():
        binary = ToolBinary(name=name, path=path)
        output = outputs.get(name)
        if output is not None and output.ok:
            match = VERSION.search(output.stdout.splitlines()[0] if output.stdout else "")
            binary.version = match.group(0) if match else None
        if path:
            with contextlib.suppress(OSError):
                binary.installed_at = os.stat(path).st_ctime
        facts.binaries.append(binary)
    config = root.read(TOOLKIT_CONFIG)
    facts.config_found = config is not None
    facts.no_cgroups = _no_cgroups(config or "")
    facts.cdi_specs = [_cdi_spec(root, path) for d in CDI_DIRS for path in sorted(glob.glob(root.path(d, "*")))]
    facts.dockerd_started = _dockerd_started(root)
    return facts


def _no_cgroups(config: str) -> bool | None:
    """`no-cgroups` in the [nvidia-container-cli] table (a line scan: tomllib is not in Python 3.10)."""
    section = ""
    for raw in config.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[] ")
        elif section == "nvidia-container-cli" and line.replace(" ", "").startswith("no-cgroups="):
            return line.partition("=")[2].strip().lower() == "true"
    return None


def _cdi_spec(root: Root, path: str) -> CdiSpec:
    spec = CdiSpec(path=root.host_path(path))
    text = read_text(path, limit=16 << 20)
    if text is None:
        spec.error = "not readable by this user"
        return spec
    if "nvidia.com" not in text:
        spec.error = "not an NVIDIA spec"
        return spec
    match = re.search(r"lib(?:cuda|nvidia-ml)\.so\.(\d+\.\d+(?:\.\d+)?)", text)
    spec.driver_version = match.group(1) if match else None
    declared = re.search(r"""(?:^|[{,])\s*["']?cdiVersion["']?\s*:\s*["']?(\d+\.\d+\.\d+)""", text, re.MULTILINE)
    spec.cdi_version = declared.group(1) if declared else None
    return spec


def _dockerd_started(root: Root) -> float | None:
    """Start time of the running dockerd, from /proc (boot time + start ticks)."""
    boot = next(
        (float(line.split()[1]) for line in (root.read("proc/stat") or "").splitlines() if line.startswith("btime ")),
        None,
    )
    if boot is None:
        return None
    for pid in _pids_named(root, "dockerd"):
        fields = (root.read("proc", pid, "stat") or "").rpartition(")")[2].split()
        if len(fields) > 19:  # field 22 of stat, starttime, counted after the ")" that ends the name
            return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return None


def _fabric_manager(root: Root, timeout: float) -> FabricManagerFacts:
    facts = FabricManagerFacts(path=shutil.which("nv-fabricmanager"))
    if facts.path:
        output = run_command([facts.path, "--version"], timeout)
        match = VERSION.search(output.stdout) if output.ok else None
        facts.version = match.group(0) if match else None
    facts.running = bool(_pids_named(root, "nv-fabricmanager"))
    return facts
