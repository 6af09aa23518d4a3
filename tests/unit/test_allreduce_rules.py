"""bench.allreduce and bench.p2p from documents shaped as the probe prints them (JSON in, typed by the same
parser the host uses), and the probe's all-reduce orchestration on this machine: deadline, kill, nothing left."""

from __future__ import annotations

import json
import os
import time

import pytest

from mldoctor.data.gpus import allreduce_expected, allreduce_pass_ratio
from mldoctor.facts.probe import ProbeRun
from mldoctor.facts.probe_document import parse_document
from mldoctor.model import Status
from mldoctor.policy import Policy
from mldoctor.probe import launch
from mldoctor.rules.bench import bench_rows
from tests.unit.helpers import result
from tests.unit.test_probe_rules import probe_facts

GIB = 1 << 30
H100_SXM = {"name": "NVIDIA H100 80GB HBM3", "major": 9, "minor": 0, "sm_count": 132, "memory_bytes": 80 * GIB}
H100_PCIE = {"name": "NVIDIA H100 PCIe", "major": 9, "minor": 0, "sm_count": 114, "memory_bytes": 80 * GIB}
RTX4090 = {"name": "NVIDIA GeForce RTX 4090", "major": 8, "minor": 9, "sm_count": 128, "memory_bytes": 24 * GIB}
SIZES = (1 << 20, 16 << 20, 128 << 20, 1 << 30)


def sizes(busbw_at_1gib: float, world: int, ok: bool = True) -> list[dict]:
    """Per size as the probe records it: busbw rising towards its plateau at the largest size."""
    factor = 2 * (world - 1) / world if world > 1 else 0.0
    out = []
    for nbytes, share in zip(SIZES, (0.1, 0.5, 0.85, 1.0), strict=True):
        busbw = busbw_at_1gib * share if factor else 0.0
        algbw = busbw / factor if factor else 40.0
        out.append({"bytes": nbytes, "median_ms": nbytes / algbw / 1e6, "iters": 20, "algbw_gbps": algbw,
                    "busbw_gbps": busbw, "ok": ok})  # fmt: skip
    return out


def ranks(world: int, killed: tuple[int, ...] = (), stage: str = "done", joined: bool = True) -> list[dict]:
    return [
        {"rank": r, "stage": stage if r in killed else "done", "exit_code": -9 if r in killed else 0,
         "joined": joined or r not in killed, "killed": r in killed, "error": None, "stderr_tail": ""}
        for r in range(world)
    ]  # fmt: skip


def allreduce(world: int = 8, busbw: float = 370.0, **changes) -> dict:
    data = {
        "backend": "nccl", "device": "cuda", "world_size": world, "timeout_s": 60.0, "elapsed_s": 14.2,
        "sizes": sizes(busbw, world), "hung": False, "unfinished": [], "ranks": ranks(world), "error": None,
    }  # fmt: skip
    data.update(changes)
    return data


def p2p(world: int = 8, holes: tuple[tuple[int, int], ...] = (), slow: dict | None = None) -> dict:
    slow = slow or {}
    access = [[None if i == j else (i, j) not in holes for j in range(world)] for i in range(world)]
    copies = [
        {"src": i, "dst": j, "gbps": slow.get((i, j), 380.0), "median_ms": 0.7, "iters": 30, "ok": True}
        for i in range(world) for j in range(world) if i != j
    ]  # fmt: skip
    return {"devices": world, "access": access, "copies": copies, "bytes": 256 << 20, "skipped": 0, "error": None}


def document(device: dict = H100_SXM, world: int = 8, bench: dict | None = None):
    """A probe document as the probe prints it, parsed the way the host parses it."""
    data = {
        "schema": "mldoctor-probe", "schema_version": 1, "errors": [], "elapsed_s": 40.0,
        "python": {"version": "3.11.2", "implementation": "CPython", "executable": "/usr/bin/python3"},
        "shm": {"total_bytes": 16 * GIB, "free_bytes": 16 * GIB, "error": None},
        "torch": {"found": True, "version": "2.7.1+cu128", "cuda": "12.8", "nccl": "2.26.2", "error": None},
        "cuda": {"available": True, "device_count": world, "arch_list": ["sm_80", "sm_90"], "error": None},
        "devices": [dict(device, index=i) for i in range(world)],
        "bench": {"duration_s": 10, "elapsed_s": 30, "gpus": [], "cpu": None, **(bench or {})},
    }  # fmt: skip
    doc, notes = parse_document("\n" + json.dumps(data) + "\n")
    assert notes == []
    return doc


def facts_of(doc, gpus: str = "all"):
    return probe_facts(run=ProbeRun(image="my/train:1", gpus=gpus, gpus_reason="8 GPUs"), doc=doc)


def allreduce_result(doc):
    return result(facts_of(doc), "bench.allreduce")


def test_the_table_holds_the_field_figures():
    assert allreduce_expected("H100 SXM", 8).ring_gbps == 370 and allreduce_expected("H100 SXM", 8).nvls_gbps == 480
    assert allreduce_expected("H200", 8).nvls_gbps == 475
    assert allreduce_expected("A100 SXM 80GB", 8).ring_gbps == 200
    assert allreduce_expected("H100 PCIe", 2).ring_gbps == 116
    assert allreduce_expected("H100 SXM", 3) is None and allreduce_pass_ratio() == 0.85


def test_eight_h100_at_370_pass_with_the_figure():
    found = allreduce_result(document(bench={"allreduce": allreduce(busbw=370.0)}))
    assert found.status is Status.PASS
    assert "8 GPUs, nccl: busbw 370 GB/s at 1 GiB = 1.00x expected 370" in found.summary
    assert "NVLS reaches ~480" in found.summary and len(found.details) == 4


@pytest.mark.parametrize(("busbw", "status"), [(315.0, Status.PASS), (314.0, Status.WARN), (120.0, Status.WARN)])
def test_the_pass_line_is_085_of_the_ring_figure(busbw, status):
    found = allreduce_result(document(bench={"allreduce": allreduce(busbw=busbw)}))
    assert found.status is status
    if status is Status.WARN:
        assert "below 0.85x" in found.summary
        assert "nvidia-smi topo -m" in found.fix and "mldoctor check --only nvidia.p2p" in found.fix


def test_a_hang_fails_naming_acs_iommu_nvidia_p2p_and_the_confirming_test():
    hung = allreduce(
        sizes=[], hung=True, unfinished=[0, 1, 2, 3, 4, 5, 6, 7], ranks=ranks(8, tuple(range(8)), "allreduce")
    )
    found = allreduce_result(document(bench={"allreduce": hung}))
    assert found.status is Status.FAIL
    assert "hung: rank 0, 1, 2, 3, 4, 5, 6, 7 did not finish within 60 s" in found.summary
    assert "ACS" in found.summary and "IOMMU" in found.summary and "nvidia.p2p" in found.summary
    assert "mldoctor check --only nvidia.p2p" in found.fix and "NCCL_P2P_DISABLE=1" in found.fix
    assert "rank 3: killed at the deadline, last at 'allreduce'" in found.details
    rows = bench_rows(document(bench={"allreduce": hung}), Policy())
    assert [(r.metric, r.status) for r in rows] == [("allreduce", Status.FAIL)]


def test_a_rank_that_never_joined_is_named():
    hung = allreduce(world=2, sizes=[], hung=True, unfinished=[0, 1], ranks=ranks(2, (0, 1), "init", joined=False))
    found = allreduce_result(document(world=2, bench={"allreduce": hung}))
    assert found.status is Status.FAIL and "rank 0, 1 never joined the process group" in found.summary


def test_wrong_sums_fail():
    bad = allreduce(sizes=sizes(370.0, 8, ok=False))
    found = allreduce_result(document(bench={"allreduce": bad}))
    assert found.status is Status.FAIL and "wrong sums" in found.summary and "NCCL_P2P_DISABLE=1" in found.fix


def test_an_nccl_error_without_a_hang_fails_with_the_shm_fix_when_shm_is_small():
    broken = allreduce(sizes=[], error="rank 0: DistBackendError: NCCL error: unhandled system error")
    doc = document(bench={"allreduce": broken})
    found = allreduce_result(doc)
    assert found.status is Status.FAIL and "unhandled system error" in found.summary
    assert found.fix.startswith("NCCL_DEBUG=INFO mldoctor gpu-bench")  # 16 GiB of /dev/shm: not the cause
    doc.shm.total_bytes = 64 << 20
    found = allreduce_result(doc)
    assert "/dev/shm is only 64 MiB" in found.summary and found.fix.startswith("mldoctor gpu-bench --shm-size 16g")


def test_gpu_bench_and_prometheus_show_the_rows():
    from mldoctor.output import bench as bench_output
    from mldoctor.output import prometheus
    from mldoctor.runner import build_report, select

    doc = document(bench={"allreduce": allreduce(busbw=370.0), "p2p": p2p()})
    report = build_report(select(["bench"]), facts_of(doc), Policy())
    text = bench_output.render(report)
    assert "allreduce 1 GiB" in text and "p2p" in text
    metrics = prometheus.render(report)
    assert 'gpu="all"' in metrics and 'metric="allreduce 1 GiB"' in metrics
    hung = allreduce(sizes=[], hung=True, unfinished=[1], ranks=ranks(8, (1,), "allreduce"))
    report = build_report(select(["bench"]), facts_of(document(bench={"allreduce": hung})), Policy())
    assert "hung: rank 1" in bench_output.render(report) and prometheus.render(report)


def test_one_gpu_is_world_size_one_and_says_so():
    doc = document(world=1, bench={"allreduce": allreduce(world=1), "p2p": p2p(world=1)})
    found = allreduce_result(doc)
    assert found.status is Status.PASS and "world size 1" in found.summary and "no peers" in found.summary
    p2p_found = result(facts_of(doc), "bench.p2p")
    assert p2p_found.status is Status.SKIP and "no peers" in p2p_found.summary


def test_a_system_without_a_figure_is_information():
    doc = document(world=4, bench={"allreduce": allreduce(world=4, busbw=300.0)})
    found = allreduce_result(doc)
    assert found.status is Status.PASS and "no figure for 4x H100 SXM: not graded" in found.summary


def test_gloo_on_the_cpu_is_information_with_the_figure():
    cpu = allreduce(world=2, backend="gloo", device="cpu", sizes=sizes(0.9, 2)[:1])
    doc = document(world=0, bench={"allreduce": cpu})
    run = ProbeRun(image="mldoctor-probe-test:cpu", gpus="none", gpus_reason="no GPU")
    found = result(probe_facts(run=run, doc=doc), "bench.allreduce")
    assert (
        found.status is Status.PASS and "gloo on the CPU: busbw" in found.summary and "not a verdict" in found.summary
    )
    (row,) = bench_rows(doc, Policy())
    assert (row.gpu, row.device, row.metric, row.unit) == ("all", "CPU (gloo, 2 processes)", "allreduce 1 MiB", "GB/s")
    assert row.measured == pytest.approx(0.09) and row.status is Status.PASS


def test_rows_per_size_with_the_largest_graded():
    rows = [r for r in bench_rows(document(bench={"allreduce": allreduce(busbw=300.0)}), Policy())]
    assert [r.metric for r in rows] == ["allreduce 1 MiB", "allreduce 16 MiB", "allreduce 128 MiB", "allreduce 1 GiB"]
    assert [r.expected for r in rows] == [None, None, None, 370.0]
    assert rows[-1].status is Status.WARN and rows[-1].ratio == pytest.approx(300 / 370)


def test_a_hole_in_the_peer_matrix_fails_on_an_nvlink_board_naming_the_pairs():
    doc = document(bench={"p2p": p2p(holes=((2, 5), (5, 2)))})
    found = result(facts_of(doc), "bench.p2p")
    assert found.status is Status.FAIL and "2 of 56 GPU pairs have no peer access: 2->5, 5->2" in found.summary
    assert "nvidia-smi nvlink --status" in found.fix and "nvidia-fabricmanager" in found.fix
    assert "peer access: y y - y y N y y  (GPU 2)" in found.details


def test_a_hole_on_a_pcie_node_warns_with_topo_and_nvidia_p2p():
    doc = document(device=H100_PCIE, world=4, bench={"p2p": p2p(world=4, holes=((0, 3), (3, 0)))})
    found = result(facts_of(doc), "bench.p2p")
    assert found.status is Status.WARN and "0->3, 3->0" in found.summary
    assert "nvidia-smi topo -p2p r" in found.fix and "mldoctor check --only nvidia.p2p" in found.fix


def test_geforce_without_any_peer_access_is_by_design():
    holes = tuple((i, j) for i in range(2) for j in range(2) if i != j)
    doc = document(device=RTX4090, world=2, bench={"p2p": p2p(world=2, holes=holes)})
    assert result(facts_of(doc), "bench.p2p").status is Status.PASS


def test_a_full_matrix_passes_and_a_slow_pair_warns():
    found = result(facts_of(document(bench={"p2p": p2p()})), "bench.p2p")
    assert found.status is Status.PASS and "every pair has peer access; copies 380-380 GB/s" in found.summary
    slow = result(facts_of(document(bench={"p2p": p2p(slow={(6, 1): 40.0})})), "bench.p2p")
    assert slow.status is Status.WARN and "GPU 6" in slow.summary and "nvidia-smi nvlink --status -i 6" in slow.fix
    rows = [r for r in bench_rows(document(bench={"p2p": p2p(slow={(6, 1): 40.0})}), Policy()) if r.metric == "p2p"]
    assert len(rows) == 8 and rows[6].measured == 40.0 and "slowest to GPU 1" in rows[6].note


def test_an_older_report_without_these_fields_skips():
    doc = document(bench={})
    assert result(facts_of(doc), "bench.allreduce").status is Status.SKIP
    assert result(facts_of(doc), "bench.p2p").status is Status.SKIP


def test_every_warn_and_fail_carries_a_fix():
    docs = [
        document(bench={"allreduce": allreduce(busbw=100.0)}),
        document(bench={"allreduce": allreduce(sizes=[], hung=True, unfinished=[1], ranks=ranks(8, (1,), "init"))}),
        document(bench={"p2p": p2p(holes=((0, 1),))}),
    ]
    for doc in docs:
        for check_id in ("bench.allreduce", "bench.p2p"):
            found = result(facts_of(doc), check_id)
            assert found.status not in (Status.WARN, Status.FAIL) or found.fix, (check_id, found.summary)


# --- the probe's orchestration, on this machine (no torch needed: the ranks fail to import it, or stall) --------


def probe_module():
    namespace: dict = {"__name__": "mldoctor_probe_under_test", "__file__": str(launch.PROBE_FILE)}
    exec(compile(launch.probe_source(), str(launch.PROBE_FILE), "exec"), namespace)
    return namespace


class FakeDistributed:
    @staticmethod
    def is_available() -> bool:
        return True


class FakeTorch:
    distributed = FakeDistributed


def test_busbw_factor_and_sizes():
    probe = probe_module()
    assert probe["busbw_factor"](8) == pytest.approx(1.75) and probe["busbw_factor"](2) == 1.0
    assert probe["busbw_factor"](1) == 0.0
    small = [{"index": 0, "free_bytes": 2 * GIB}]
    assert probe["allreduce_sizes"]("nccl", 1, small, None) == [1 << 20, 16 << 20, 128 << 20]
    assert probe["allreduce_sizes"]("gloo", 2, [], 64 << 20) == [1 << 20, 4 << 20]
    assert probe["allreduce_sizes"]("gloo", 2, [], 1 << 20) == [1 << 20]  # the smallest always
    assert probe["_allreduce_args"](["--duration", "2", "--allreduce-timeout", "7", "--allreduce-stall-rank", "1"]) == {
        "allreduce": True, "allreduce_timeout": 7.0, "stall_rank": 1}  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_rank_that_never_joins_is_killed_at_the_deadline_and_nothing_is_left(monkeypatch):
    """Rank 1 stalls; rank 0 ends with an error where torch is missing, or waits for rank 1 where it is: every rank
    still running is killed at the deadline (with its process group), the call returns then, and no worker process
    survives it."""
    probe = probe_module()
    spawned = []
    real_popen = probe["subprocess"].Popen

    def popen(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        spawned.append(proc.pid)
        return proc

    monkeypatch.setattr(probe["subprocess"], "Popen", popen)
    started = time.monotonic()
    args = {"allreduce_timeout": 3.0, "duration": 1.0, "stall_rank": 1}
    found = probe["_allreduce"](FakeTorch, {"devices": []}, args)
    elapsed = time.monotonic() - started
    assert 3.0 <= elapsed < 8.0, elapsed
    assert found["hung"] is True and 1 in found["unfinished"] and found["world_size"] == 2
    by_rank = {r["rank"]: r for r in found["ranks"]}
    assert by_rank[1]["killed"] and by_rank[1]["stage"] == "stalled" and not by_rank[1]["joined"]
    assert by_rank[0]["killed"] or (by_rank[0]["stage"] == "error" and "torch" in by_rank[0]["error"])
    assert len(spawned) == 2 and not any(_alive(pid) for pid in spawned)
    assert os.getpid() not in spawned


def test_the_confirming_test_reads_as_such():
    """NCCL_P2P_DISABLE=1 set for the probe: a finish is not graded and points back at nvidia.p2p; a hang even
    then is not the peer-to-peer path."""
    env = {"nccl_env": {"NCCL_P2P_DISABLE": "1"}, "p2p_disabled": True}
    found = allreduce_result(document(bench={"allreduce": allreduce(busbw=60.0, **env)}))
    assert found.status is Status.PASS and "NCCL_P2P_DISABLE=1" in found.summary and "nvidia.p2p" in found.summary
    hung = allreduce(sizes=[], hung=True, unfinished=[2], ranks=ranks(8, (2,), "allreduce"), **env)
    found = allreduce_result(document(bench={"allreduce": hung}))
    assert found.status is Status.FAIL and "peer-to-peer is not the cause" in found.summary
    assert found.fix.startswith("NCCL_DEBUG=INFO") and "NCCL environment: NCCL_P2P_DISABLE=1" in found.details
