"""Peer-to-peer readiness of a multi-GPU node: PCIe ACS redirecting GPU-to-GPU traffic through the root complex,
and an IOMMU translating it. Either makes NCCL's all_reduce hang or crawl (NVIDIA/nccl#2079, #667, #257, #631),
and `NCCL_P2P_DISABLE=1` "fixes" it slowly: the classic symptom of this cause."""

from __future__ import annotations

from mldoctor.facts import Facts
from mldoctor.fixes import nvidia as fixes
from mldoctor.model import Finding, Problem, Status
from mldoctor.policy import Policy
from mldoctor.rules.nvidia import driver as _driver  # noqa: F401  (registers nvidia.gpu and nvidia.driver, required below)
from mldoctor.rules.registry import check

CONFIRM = "confirm: NCCL_P2P_DISABLE=1 makes a hanging all_reduce finish (slowly)"


@check(
    "nvidia.p2p",
    "GPU peer-to-peer (PCIe ACS, IOMMU)",
    facts=("nvidia", "host"),
    requires=("nvidia.gpu", "nvidia.driver"),
)
def nvidia_p2p(facts: Facts, policy: Policy) -> Finding:
    nv = facts.nvidia
    gpus = nv.pci_gpus
    topology = nv.topology
    if len(gpus) < 2:
        return Finding.skip("fewer than 2 GPUs: no peer-to-peer traffic to check")
    if topology is None:
        return Finding.skip("no topology facts in this report")
    problems = []
    redirecting = [b for b in topology.bridges if b.redirects]
    if redirecting:
        listed = ", ".join(
            f"{b.address} (above {len(b.gpus)} GPU{'s' if len(b.gpus) != 1 else ''})" for b in redirecting
        )
        problems.append(
            Problem(
                Status.WARN,
                f"PCIe ACS redirects peer-to-peer traffic on {listed}: NCCL all_reduce can hang or crawl",
                fixes.disable_acs([b.address for b in redirecting], facts.host) + f"   # {CONFIRM}",
            )
        )
    if topology.iommu == "translated":
        problems.append(
            Problem(
                Status.WARN,
                "the IOMMU translates DMA (not passthrough): GPU peer-to-peer traffic is remapped, and NCCL can hang",
                fixes.kernel_argument("iommu=pt", facts.host) + f"   # {CONFIRM}",
            )
        )
    unreadable = [b.address for b in topology.bridges if b.acs_control is None]
    details = (
        f"IOMMU: {topology.iommu}; kernel command line: {' '.join(topology.cmdline) or 'no IOMMU/ACS words'}",
        *(
            f"bridge {b.address}: ACS control {_acs(b.acs_control)}, above {', '.join(b.gpus)}"
            for b in topology.bridges
        ),
    )
    if not problems and unreadable:
        return Finding.skip(
            f"PCIe ACS on {len(unreadable)} bridges can be read only as root: sudo mldoctor check --only nvidia.p2p",
            details=details,
        )
    ok = f"{len(gpus)} GPUs: no ACS redirection above them, IOMMU {topology.iommu}"
    return Finding.combine(problems, ok, details)


def _acs(value: int | None) -> str:
    return "unreadable" if value is None else f"{value:#06x}" if value else "none"


RECOVERY_WARN = 1
"""Any link recovery since the driver loaded: the link went down and came back (a marginal cable or bridge)."""
REPLAY_WARN = 1000
"""Replays are retransmissions; a few are normal on a busy link, thousands since boot are not."""


@check("nvidia.nvlink", "NVLink links", facts=("nvidia",), requires=("nvidia.gpu", "nvidia.driver"))
def nvidia_nvlink(facts: Facts, policy: Policy) -> Finding:
    """On NVLink GPUs (SXM, NVLink bridges): a link that is down while its siblings are up halves or stops the
    GPU's peer bandwidth (all-reduce runs over PCIe or crawls); recoveries and CRC errors foretell it."""
    gpus = [g for g in facts.nvidia.nvml.gpus if g.nvlinks]
    if not gpus:
        return Finding.skip("no GPU with NVLink links here")
    problems = []
    for gpu in gpus:
        links = gpu.nvlinks or []
        active = [link for link in links if link.active]
        down = [link.link for link in links if not link.active]
        if active and down:
            problems.append(
                Problem(
                    Status.FAIL,
                    f"GPU {gpu.index}: NVLink link{'s' if len(down) > 1 else ''} {', '.join(map(str, down))} down "
                    f"({len(active)} of {len(links)} up): its peer traffic falls back or crawls",
                    f"nvidia-smi nvlink --status -i {gpu.index}   # then reset the GPU (sudo nvidia-smi -r -i "
                    f"{gpu.index}) or reboot; a link that stays down means a reseat or a board repair",
                )
            )
        worn = [
            link
            for link in active
            if (link.recovery_errors or 0) >= RECOVERY_WARN or (link.replay_errors or 0) >= REPLAY_WARN
        ]
        if worn:
            counts = ", ".join(
                f"link {link.link}: {link.recovery_errors or 0} recoveries, {link.replay_errors or 0} replays, "
                f"{link.crc_errors or 0} CRC errors"
                for link in worn
            )
            problems.append(
                Problem(
                    Status.WARN,
                    f"GPU {gpu.index}: NVLink errors since the driver loaded ({counts})",
                    f"nvidia-smi nvlink -e -i {gpu.index}   # watch whether they grow under load; growing recoveries "
                    "mean a marginal link: reseat or have it checked",
                )
            )
    total = sum(len(g.nvlinks or []) for g in gpus)
    details = tuple(
        f"GPU {g.index}: " + " ".join(f"{link.link}{'+' if link.active else '-'}" for link in g.nvlinks or [])
        for g in gpus
    )
    return Finding.combine(problems, f"{total} NVLink links on {len(gpus)} GPUs, all up, no errors", details)
