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
