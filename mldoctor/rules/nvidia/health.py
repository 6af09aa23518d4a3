"""NVIDIA GPU health (per GPU: memory errors, clocks, temperature, processes, PCIe, MIG) and the NVSwitch fabric
manager."""

from __future__ import annotations

import re

from mldoctor.data.nvml_errors import plain_error
from mldoctor.data.xids import XIDS
from mldoctor.facts import Facts
from mldoctor.facts.host import HostFacts
from mldoctor.facts.nvidia import GpuFacts, XidEvent
from mldoctor.fixes import nvidia as fixes
from mldoctor.fixes.host import enable_service, restart_service, service_log, uses_systemd
from mldoctor.model import Finding, Problem, Status
from mldoctor.policy import Policy
from mldoctor.rules.nvidia import driver as _driver  # noqa: F401  (registers nvidia.gpu and nvidia.driver, required below)
from mldoctor.rules.registry import check
from mldoctor.text import gib, plural

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


def _gpu_problems(gpu: GpuFacts, host: HostFacts | None) -> list[Problem]:
    i = gpu.index
    reset = f"sudo nvidia-smi -r -i {i}   # resets GPU {i}; stop the processes on it first"
    problems = []
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
        enable = enable_service("nvidia-persistenced", host) if uses_systemd(host) else f"sudo nvidia-smi -pm 1 -i {i}"
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
        *(f"{name.replace('_', ' ')}: {plain_error(error)}" for name, error in gpu.errors.items()),
    )


@check("nvidia.health", "NVIDIA GPU health", facts=("nvidia", "host"), requires=("nvidia.gpu", "nvidia.driver"))
def nvidia_health(facts: Facts, policy: Policy) -> list[Finding]:
    """One result per GPU (nvidia.health.gpu0, ...), so a report and its history name the sick GPU."""
    return [
        Finding.combine(_gpu_problems(gpu, facts.host), _healthy(gpu), _gpu_details(gpu), subject=f"gpu{gpu.index}")
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
    what = plural(len(switches), "NVSwitch", "NVSwitches")
    error_802 = "CUDA fails with 'error 802: system not yet initialized'"
    if not fm.path and not fm.running:
        return Finding.fail(
            f"{what} and no fabric manager installed: {error_802}", fixes.fabric_manager_install(driver, facts.host)
        )
    if fm.version and driver and fm.version != driver:
        return Finding.fail(
            f"fabric manager {fm.version} does not match driver {driver}: it will not set up the fabric ({error_802})",
            fixes.fabric_manager_install(driver, facts.host),
        )
    if not fm.running:
        return Finding.fail(
            f"{what} and fabric manager is not running: {error_802}",
            f"{enable_service('nvidia-fabricmanager', facts.host)}   # if it exits: "
            + service_log("nvidia-fabricmanager", facts.host),
        )
    failed = [g for g in nv.nvml.gpus if g.fabric_state == "failed"]
    if failed:
        errors = ", ".join(f"GPU {g.index}: {g.fabric_error}" for g in failed)
        return Finding.fail(
            f"the NVLink fabric registration failed ({errors}): {error_802}",
            f"{service_log('nvidia-fabricmanager', facts.host)}   # why; then: "
            f"{restart_service('nvidia-fabricmanager', facts.host)}, and if it fails again, reboot",
        )
    unready = [g for g in nv.nvml.gpus if g.fabric_state in ("not_started", "in_progress")]
    if unready:
        states = ", ".join(f"GPU {g.index} {g.fabric_state.replace('_', ' ')}" for g in unready)
        return Finding(
            Status.WARN if all(g.fabric_state == "in_progress" for g in unready) else Status.FAIL,
            f"fabric manager runs, but the NVLink fabric is not ready: {states}",
            (),
            "nvidia-smi -q | grep -A 3 Fabric   # wait for State: Completed; if it stays: "
            + restart_service("nvidia-fabricmanager", facts.host),
        )
    return Finding.ok(f"fabric manager {fm.version or ''} running for {what}".replace("  ", " "))


@check("nvidia.xid", "NVIDIA Xid errors since boot", facts=("nvidia",), requires=("nvidia.gpu", "nvidia.driver"))
def nvidia_xid(facts: Facts, policy: Policy) -> Finding:
    """The driver's own error reports (kernel log `NVRM: Xid`), per GPU, with their meaning: a GPU that had a
    double-bit ECC error or fell off the bus since boot is named even when it answers again."""
    log = facts.nvidia.kernel_log
    if log is None:
        return Finding.skip("the kernel log was not read")
    if log.error:
        return Finding.skip(
            f"the kernel log is not readable by this user ({log.error}): sudo mldoctor check --only nvidia.xid"
        )
    if not log.xids:
        return Finding.ok("no Xid errors since boot")
    gpus = {(g.pci_bus_id or "").lower()[-12:]: g.index for g in facts.nvidia.nvml.gpus}
    problems = []
    for bus, codes in _xids_by_bus(log.xids).items():
        index = next((i for address, i in gpus.items() if address.startswith(bus[-10:])), None)
        where = f"GPU {index} ({bus})" if index is not None else f"the GPU at {bus}"
        for code, count in codes.items():
            known = XIDS.get(code)
            meaning = known.meaning if known else "see NVIDIA's Xid catalog"
            status = Status.FAIL if known and known.hardware else Status.WARN
            action = known.action if known else "look it up in NVIDIA's Xid catalog"
            problems.append(
                Problem(
                    status,
                    f"{where}: Xid {code}{f' ×{count}' if count > 1 else ''} ({meaning})",
                    f"{action}   # the lines: sudo dmesg | grep -i 'NVRM: Xid'",
                )
            )
    details = tuple(f"Xid {x.code} at {x.pci_bus_id}: {x.text}" for x in log.xids[-20:])
    return Finding.combine(problems, "no Xid errors since boot", details)


def _xids_by_bus(events: list[XidEvent]) -> dict[str, dict[int, int]]:
    grouped: dict[str, dict[int, int]] = {}
    for event in events:
        codes = grouped.setdefault(event.pci_bus_id, {})
        codes[event.code] = codes.get(event.code, 0) + 1
    return grouped
