"""nvidia.p2p: PCIe ACS and the IOMMU, which make NCCL all_reduce hang on multi-GPU nodes (field-report row 13),
from facts shaped like sysfs (the configuration space bytes too)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from factories import facts, host
from helpers import result
from test_nvidia_rules import nvidia_facts

from mldoctor.facts import nvidia as nvidia_facts_module
from mldoctor.facts.host import OsRelease
from mldoctor.facts.nvidia import PcieBridge, TopologyFacts
from mldoctor.model import Status
from mldoctor.policy import Policy

GPUS = ["0000:18:00.0", "0000:19:00.0"]


def with_topology(**changes):
    topology = TopologyFacts(iommu="passthrough", bridges=[PcieBridge("0000:17:00.0", list(GPUS), 0)])
    return facts(nvidia=replace(nvidia_facts(gpus=2), topology=replace(topology, **changes)))


def test_a_clean_topology_passes():
    r = result(with_topology(), "nvidia.p2p", Policy(require_gpus=2))
    assert r.status is Status.PASS and r.summary == "2 GPUs: no ACS redirection above them, IOMMU passthrough"


def test_acs_redirection_above_the_gpus_warns_with_setpci_and_the_confirming_test():
    bridges = [PcieBridge("0000:17:00.0", list(GPUS), 0x001D)]  # SrcValid, ReqRedir, CmpltRedir, UpstreamFwd
    r = result(with_topology(bridges=bridges), "nvidia.p2p", Policy(require_gpus=2))
    assert r.status is Status.WARN and "0000:17:00.0 (above 2 GPUs)" in r.summary and "hang" in r.summary
    assert r.fix.startswith("sudo setpci -s 0000:17:00.0 ECAP_ACS+6.w=0000") and "NCCL_P2P_DISABLE=1" in r.fix


def test_a_translating_iommu_warns_with_the_distro_s_boot_loader_command():
    debian = result(with_topology(iommu="translated"), "nvidia.p2p")
    assert debian.status is Status.WARN and "update-grub" in debian.fix and "iommu=pt" in debian.fix
    rocky = facts(
        nvidia=with_topology(iommu="translated").nvidia, host=host(os=OsRelease(id="rocky", id_like=["rhel"]))
    )
    assert result(rocky, "nvidia.p2p").fix.startswith("sudo grubby --update-kernel=ALL --args=iommu=pt")


def test_one_gpu_and_unreadable_acs_skip_with_their_reasons():
    one = facts(nvidia=replace(nvidia_facts(gpus=1), topology=TopologyFacts()))
    assert result(one, "nvidia.p2p").status is Status.SKIP
    unreadable = result(with_topology(bridges=[PcieBridge("0000:17:00.0", list(GPUS), None)]), "nvidia.p2p")
    assert unreadable.status is Status.SKIP and "sudo mldoctor check --only nvidia.p2p" in unreadable.summary


def _config(acs_control: int | None, length: int = 4096) -> bytes:
    """A PCIe configuration space: an AER capability at 0x100 pointing at ACS (id 0x000D) at 0x140, or no ACS."""
    data = bytearray(length)
    if length > 0x100:
        next_offset = 0x140 if acs_control is not None else 0
        data[0x100:0x104] = (0x0001 | (1 << 16) | (next_offset << 20)).to_bytes(4, "little")
        if acs_control is not None:
            data[0x140:0x144] = (0x000D | (1 << 16)).to_bytes(4, "little")
            data[0x146:0x148] = acs_control.to_bytes(2, "little")
    return bytes(data)


def test_the_gatherer_reads_acs_and_the_iommu_mode_from_sysfs(tmp_path: Path):
    devices = tmp_path / "sys/devices/pci0000:00"
    switch_up, switch_down = devices / "0000:00:01.0", devices / "0000:00:01.0/0000:17:00.0"
    for gpu in GPUS:
        (switch_down / gpu / "iommu_group").mkdir(parents=True)
        (switch_down / gpu / "iommu_group/type").write_text("DMA\n")
        link = tmp_path / "sys/bus/pci/devices" / gpu
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(switch_down / gpu, link)
    for bridge, config in ((switch_up, _config(None)), (switch_down, _config(0x001D))):
        (tmp_path / "sys/bus/pci/devices" / bridge.name).symlink_to(bridge)
        (bridge / "config").write_bytes(config)
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text("quiet intel_iommu=on root=/dev/sda1\n")
    topology = nvidia_facts_module._topology(nvidia_facts_module.Root(str(tmp_path)), GPUS)
    assert topology.iommu == "translated" and topology.cmdline == ["intel_iommu=on"]
    by_address = {b.address: b for b in topology.bridges}
    assert by_address["0000:17:00.0"].acs_control == 0x001D and by_address["0000:17:00.0"].redirects
    assert by_address["0000:00:01.0"].acs_control == 0 and by_address["0000:00:01.0"].gpus == GPUS
    (switch_down / "config").write_bytes(_config(0x001D, length=64))  # what a user other than root reads
    again = nvidia_facts_module._topology(nvidia_facts_module.Root(str(tmp_path)), GPUS)
    assert {b.address: b.acs_control for b in again.bridges}["0000:17:00.0"] is None


def nvlinked(*down_and_errors):
    from mldoctor.facts.nvidia import NvLink

    nv = nvidia_facts(gpus=2)
    gpus = [replace(g, nvlinks=[NvLink(link=i, active=True, replay_errors=0, recovery_errors=0, crc_errors=0)
                                for i in range(18)]) for g in nv.nvml.gpus]  # fmt: skip
    for gpu_index, link, changes in down_and_errors:
        gpus[gpu_index].nvlinks[link] = replace(gpus[gpu_index].nvlinks[link], **changes)
    return facts(nvidia=replace(nv, nvml=replace(nv.nvml, gpus=gpus)))


def test_all_nvlinks_up_pass():
    r = result(nvlinked(), "nvidia.nvlink")
    assert r.status is Status.PASS and r.summary == "36 NVLink links on 2 GPUs, all up, no errors"


def test_a_link_down_among_active_siblings_fails_naming_gpu_and_link():
    r = result(nvlinked((1, 5, {"active": False})), "nvidia.nvlink")
    assert r.status is Status.FAIL and r.summary.startswith("GPU 1: NVLink link 5 down (17 of 18 up)")
    assert r.fix.startswith("nvidia-smi nvlink --status -i 1")


def test_link_recoveries_warn():
    r = result(nvlinked((0, 2, {"recovery_errors": 4, "replay_errors": 20, "crc_errors": 9})), "nvidia.nvlink")
    assert r.status is Status.WARN and "link 2: 4 recoveries, 20 replays, 9 CRC errors" in r.summary


def test_gpus_without_nvlink_skip():
    nv = nvidia_facts(gpus=2)
    pcie = replace(nv, nvml=replace(nv.nvml, gpus=[replace(g, nvlinks=None) for g in nv.nvml.gpus]))
    assert result(facts(nvidia=pcie), "nvidia.nvlink").status is Status.SKIP


def test_each_iommu_mode_is_told_apart(tmp_path: Path):
    from mldoctor.facts.nvidia import Root, _iommu_mode

    def mode(cmdline: list[str], group_type: str | None = None, units: list[str] | None = None) -> str:
        root = tmp_path / f"root{len(list(tmp_path.iterdir()))}"
        if group_type is not None:
            (root / "sys/bus/pci/devices" / GPUS[0] / "iommu_group").mkdir(parents=True)
            (root / "sys/bus/pci/devices" / GPUS[0] / "iommu_group/type").write_text(group_type + "\n")
        if units is not None:
            (root / "sys/class/iommu").mkdir(parents=True)
            for unit in units:
                (root / "sys/class/iommu" / unit).mkdir()
        root.mkdir(exist_ok=True)
        return _iommu_mode(Root(str(root)), GPUS[:1], cmdline)

    assert mode([], group_type="identity") == "passthrough"
    assert mode([], group_type="DMA-FQ") == "translated"
    assert mode(["iommu=pt"]) == "passthrough"
    assert mode(["intel_iommu=off"]) == "off"
    assert mode([], units=["dmar0"]) == "translated"
    assert mode([], units=[]) == "off"
    assert mode([]) == "unknown"
