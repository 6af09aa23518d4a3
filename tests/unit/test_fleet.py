"""mldoctor fleet: reading node reports and judging the fleet (first broken link, stragglers, drift, drain).

Node reports are built here with the real dataclasses and rendered by the real JSON renderer, so they are what
`mldoctor check --format json` writes; `node_report()` is shared with the other test_fleet_* modules.
"""

from __future__ import annotations

import json
import os
import shlex
import zipfile

import factories
import pytest

from mldoctor import __version__
from mldoctor.bundle.archive import MANIFEST, REPORT
from mldoctor.facts import Facts
from mldoctor.facts.nvidia import (
    FabricManagerFacts,
    GpuFacts,
    KernelFacts,
    NvidiaFacts,
    NvmlFacts,
    ToolBinary,
    ToolkitFacts,
)
from mldoctor.facts.probe import ProbeFacts, ProbeRun
from mldoctor.facts.probe_document import ProbeDevice, ProbeDocument, ProbeTorch
from mldoctor.fleet.aggregate import DRIFT_CHECK, STRAGGLER_CHECK, FleetPolicy, NodeState, aggregate, exit_code
from mldoctor.fleet.sources import Document, documents
from mldoctor.model import SCHEMA_VERSION, BenchRow, CheckResult, Report, Status
from mldoctor.output import json as json_output
from mldoctor.policy import Policy
from mldoctor.reload import load_report

H100 = "NVIDIA H100 80GB HBM3"
H100_MEMORY = 85_520_809_984
A100 = "NVIDIA A100-SXM4-80GB"
CHAIN = ("docker.daemon", "docker.permission", "nvidia.driver", "nvidia.toolkit", "probe.container", "probe.cuda")


def result(check_id: str, status: Status = Status.PASS, summary: str = "ok", **more) -> CheckResult:
    return CheckResult(check_id, check_id, check_id.split(".")[0], status, summary, docs="docs/checks.md", **more)


def healthy() -> list[CheckResult]:
    return [result(check_id) for check_id in (*CHAIN, "bench.matmul.bf16")]


def driver_failed(summary: str = "driver 470.82 is too old for CUDA 12", fix: str = "apt install nvidia-driver-550"):
    """nvidia.driver FAILs and blocks what follows; docker.logging, earlier in the chain, FAILs on its own."""
    return [
        result("docker.daemon"),
        result("docker.logging", Status.FAIL, "no log rotation", fix="set log-opts max-size"),
        result("nvidia.driver", Status.FAIL, summary, fix=fix),
        *(
            result(c, Status.SKIP, "skipped: nvidia.driver failed", blocked_by="nvidia.driver")
            for c in ("nvidia.toolkit", "probe.container", "probe.cuda")
        ),
    ]


def node_report(
    node: str | None = "gpu-001",
    *,
    bf16: tuple[float, ...] = (790.0,) * 8,
    gpu_name: str = H100,
    driver: str = "550.54.15",
    cuda: str = "12.4",
    kernel: str = "6.1.0-18-amd64",
    results: list[CheckResult] | None = None,
    host: str = "vm",
    created: str = "2026-11-30T10:00:00Z",
) -> dict:
    """A node's `check --format json` document; `node` is the scheduler's node name field (None: no such field)."""
    uuids = [f"GPU-{node or host}-{i}" for i in range(len(bf16))]
    gpus = [GpuFacts(index=i, name=gpu_name, uuid=u, memory_total_bytes=H100_MEMORY) for i, u in enumerate(uuids)]
    devices = [
        ProbeDevice(index=i, name=gpu_name, major=9, minor=0, sm_count=132, memory_bytes=H100_MEMORY, uuid=u)
        for i, u in enumerate(uuids)
    ]
    nvidia = NvidiaFacts(
        kernel=KernelFacts(running_kernel=kernel, module_version=driver),
        nvml=NvmlFacts(ok=True, driver_version=driver, cuda_driver_version=cuda, gpus=gpus),
        toolkit=ToolkitFacts(binaries=[ToolBinary("nvidia-ctk", "/usr/bin/nvidia-ctk", "1.17.3")]),
        fabric_manager=FabricManagerFacts(path="/usr/bin/nv-fabricmanager", version=driver, running=True),
    )
    probe = ProbeFacts(
        run=ProbeRun(image=f"mldoctor-probe:{__version__}", default_image=True, gpus="all"),
        document=ProbeDocument(
            torch=ProbeTorch(found=True, version="2.5.1+cu124", cuda="12.4", nccl="2.21.5"), devices=devices
        ),
    )
    rows = [
        BenchRow(str(i), gpu_name, dtype, "TFLOP/s", figure * scale, 790.0 * scale, 989.4 * scale, Status.PASS)
        for i, figure in enumerate(bf16)
        for dtype, scale in (("bf16", 1.0), ("fp8", 2.0))
    ]
    rows.append(BenchRow("0", gpu_name, "d2d", "GB/s", 2900.0, 3350.0, 3350.0, Status.PASS))
    facts = Facts(host=factories.host(hostname=host, kernel=kernel), docker=factories.docker(), nvidia=nvidia)
    facts.probe = probe
    report = Report(SCHEMA_VERSION, __version__, created, host, facts, results or healthy(), Policy(), rows)
    data = json.loads(json_output.render(report))
    if node is not None:
        data["node"] = node
    return data


def docs(*reports: dict) -> list[Document]:
    return [Document(f"<test>:{i}", report) for i, report in enumerate(reports)]


def test_the_fixture_report_is_one_check_would_write(tmp_path):
    path = tmp_path / "gpu-001.json"
    path.write_text(json.dumps(node_report()))
    facts, policy = load_report(str(path))
    assert facts.nvidia.nvml.driver_version == "550.54.15"
    assert facts.probe.document.devices[3].sm_count == 132
    assert policy == Policy()


def test_first_broken_link_is_the_fail_others_are_blocked_by():
    fleet = aggregate(docs(node_report("n1", results=driver_failed())))
    (row,) = fleet.rows
    assert row.state is NodeState.FAIL
    assert row.link.check == "nvidia.driver"
    assert row.link.fix == "apt install nvidia-driver-550"
    assert [d.check for d in fleet.drain] == ["nvidia.driver"]


def test_first_broken_link_without_blocked_dependants_is_the_first_fail_in_chain_order():
    results = [
        result("docker.daemon"),
        result("docker.disk", Status.FAIL, "4 GiB free", fix="docker system prune"),
        result("host.shm", Status.FAIL, "64 MiB", fix="--shm-size 16g"),
    ]
    fleet = aggregate(docs(node_report("n1", results=results)))
    assert fleet.rows[0].link.check == "docker.disk"


def test_a_gpu_at_08x_of_its_siblings_on_another_node_is_a_straggler():
    slow = (790.0,) * 5 + (632.0,) + (790.0,) * 2
    fleet = aggregate(
        docs(
            node_report("n1"),
            node_report("n2", bf16=slow),
            node_report("n3", bf16=(780.0,) * 8),
            node_report("a100-1", bf16=(250.0,), gpu_name=A100),
        )
    )
    bf16 = [s for s in fleet.stragglers if s.dtype == "bf16"]
    assert [(s.node, s.gpu, s.uuid) for s in bf16] == [("n2", "5", "GPU-n2-5")]
    assert bf16[0].ratio == pytest.approx(0.8)
    assert bf16[0].median == 790.0
    assert bf16[0].model.sm_count == 132
    assert bf16[0].model.memory_gib == 80
    assert {s.dtype for s in fleet.stragglers} == {"bf16", "fp8"}  # every dtype, each against its own median
    rows = {row.node: row for row in fleet.rows}
    assert rows["n2"].state is NodeState.WARN
    assert rows["n2"].cells[STRAGGLER_CHECK].status is Status.WARN
    assert "GPU 5 (GPU-n2-5)" in rows["n2"].cells[STRAGGLER_CHECK].summary
    assert rows["a100-1"].state is NodeState.PASS  # a different model, alone: nothing to compare with
    assert exit_code(fleet) == 0


def test_a_benchmark_row_whose_gpu_is_not_an_index_is_left_out():
    report = node_report("n2", bf16=(632.0, 790.0))
    for row in report["benchmarks"]:
        row["gpu"] = "0;reboot" if row["gpu"] == "0" else row["gpu"]
    fleet = aggregate(docs(node_report("n1"), report))
    assert fleet.stragglers == ()
    assert [g.index for g in fleet.rows[1].summary.gpus] == ["1"]


def test_a_straggler_ratio_of_075_lets_08x_pass():
    slow = (790.0,) * 7 + (632.0,)
    fleet = aggregate(docs(node_report("n1"), node_report("n2", bf16=slow)), FleetPolicy(straggler_ratio=0.75))
    assert fleet.stragglers == ()


def test_drift_names_the_node_on_another_driver():
    reports = [node_report(f"n{i}") for i in range(1, 4)] + [node_report("n4", driver="535.129.03")]
    fleet = aggregate(docs(*reports))
    driver = next(d for d in fleet.drift if d.field == "driver")
    assert (driver.mode, driver.nodes_at_mode, driver.nodes_known) == ("550.54.15", 3, 4)
    assert [(x.node, x.value, x.status) for x in driver.deviations] == [("n4", "535.129.03", Status.WARN)]
    assert {d.field for d in fleet.drift} == {"driver", "fabric_manager"}  # the fabric manager follows the driver
    row = next(row for row in fleet.rows if row.node == "n4")
    assert row.state is NodeState.WARN
    assert fleet.drain == ()
    assert exit_code(fleet) == 0


def test_a_driver_floor_turns_drift_into_a_fail_and_a_drain_line():
    reports = [node_report(f"n{i}") for i in range(1, 4)] + [node_report("n4", driver="535.129.03")]
    fleet = aggregate(docs(*reports), FleetPolicy(min_driver_version="550.54"))
    row = fleet.rows[0]
    assert (row.node, row.state, row.link.check) == ("n4", NodeState.FAIL, DRIFT_CHECK)
    assert "below the required 550.54" in row.link.summary
    assert "NVIDIA driver >= 550.54" in row.link.fix
    assert [d.node for d in fleet.drain] == ["n4"]
    assert exit_code(fleet) == 1


def test_a_floor_fails_a_fleet_that_drifted_together():
    fleet = aggregate(
        docs(node_report("n1", cuda="12.2"), node_report("n2", cuda="12.2")), FleetPolicy(min_cuda_version="12.4")
    )
    assert [row.state for row in fleet.rows] == [NodeState.FAIL, NodeState.FAIL]


def test_expected_nodes_without_a_report_are_hung_or_unreachable():
    fleet = aggregate(docs(node_report("n1"), node_report("n2")), expected=["n1", "n2", "n3", "n10"])
    assert fleet.missing == ("n3", "n10")
    assert fleet.drain == ()
    assert exit_code(fleet) == 3


def test_a_node_whose_run_could_not_complete_is_never_drained():
    error_only = [result("docker.daemon"), result("nvidia.driver", Status.ERROR, "NVML crashed: NVMLError_Unknown")]
    fleet = aggregate(docs(node_report("n1", results=error_only), node_report("n2")))
    assert fleet.rows[0].state is NodeState.INCOMPLETE
    assert fleet.rows[0].headline == "nvidia.driver: NVML crashed: NVMLError_Unknown"
    assert fleet.drain == ()
    assert exit_code(fleet) == 3
    failing = aggregate(docs(node_report("n1", results=error_only), node_report("n2", results=driver_failed())))
    assert [d.node for d in failing.drain] == ["n2"]
    assert exit_code(failing) == 1


HOSTILE = 'driver "broken"; rm -rf / #$(reboot) `id` \\ !! \n next line\x1b[31m' + "x" * 500


def test_the_drain_reason_is_safe_in_a_shell_and_bounded():
    fleet = aggregate(docs(node_report("n1;reboot", results=driver_failed(summary=HOSTILE))))
    (line,) = fleet.drain
    words = shlex.split(line.slurm)
    assert words[:4] == ["scontrol", "update", "nodename=n1;reboot", "state=drain"]
    assert len(words) == 5
    reason = words[4].removeprefix("reason=")
    assert reason.startswith("mldoctor: nvidia.driver: driver broken rm -rf / #(reboot) id")
    for bad in ('"', "'", "$", "`", "\\", "\n", "\x1b", "!", ";"):
        assert bad not in reason
    assert len(reason) <= 100
    assert shlex.split(line.cordon) == ["kubectl", "cordon", "n1;reboot"]
    taint = ["kubectl", "taint", "nodes", "n1;reboot", "mldoctor=nvidia.driver:NoSchedule", "--overwrite"]
    assert shlex.split(line.taint) == taint


def test_node_name_lookup_order(tmp_path):
    with_field = node_report("slurm-7", host="vm")
    nested = node_report(None, host="vm")
    nested["facts"]["host"]["node_name"] = "k8s-node-3"
    by_file = node_report(None, host="vm")
    (tmp_path / "node2.json").write_text(json.dumps(by_file))
    fleet = aggregate([*docs(with_field, nested, node_report(None, host="plainhost")), *documents([str(tmp_path)])])
    assert sorted(row.node for row in fleet.rows) == ["k8s-node-3", "node2", "plainhost", "slurm-7"]


def test_of_two_reports_for_one_node_the_newest_counts():
    old = node_report("n1", results=driver_failed(), created="2026-11-30T09:00:00Z")
    new = node_report("n1", created="2026-11-30T10:00:00Z")
    fleet = aggregate(docs(new, old))
    assert [row.state for row in fleet.rows] == [NodeState.PASS]
    assert fleet.duplicates == ("n1",)


def test_corrupt_reports_are_listed_and_the_others_still_count(tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(node_report("n1")))
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    bad_status = node_report("n3")
    bad_status["results"][0]["status"] = "MAYBE"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "n3.json").write_text(json.dumps(bad_status))
    newer = node_report("n4")
    newer["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "sub" / "n4.json").write_text(json.dumps(newer))
    (tmp_path / "notes.txt").write_text("not a report, not read")
    fleet = aggregate(documents([str(tmp_path)]), expected=["n1", "n3", "garbage"])
    assert [row.node for row in fleet.rows] == ["n1"]
    errors = {u.origin.removeprefix(str(tmp_path) + "/"): u.error for u in fleet.unreadable}
    assert set(errors) == {"garbage.json", "list.json", "sub/n3.json", "sub/n4.json"}
    assert errors["garbage.json"].startswith("not JSON")
    assert "MAYBE" in errors["sub/n3.json"]
    assert "upgrade mldoctor" in errors["sub/n4.json"]
    assert fleet.missing == ()  # n3 and garbage did report, unreadably: not also "no report"
    assert exit_code(fleet) == 3


def test_bundles_and_json_lines_files_in_a_folder(tmp_path):
    bundle = tmp_path / "mldoctor-report-n1-20261130T100000Z.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr(REPORT, json.dumps(node_report("n1")))
        archive.writestr(MANIFEST, json.dumps({"bundle_format": 1}))
    other = tmp_path / "mldoctor-report-n2-20261130T100000Z.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("hello.txt", "a zip, but no report")
    (tmp_path / "sweep.jsonl").write_text("\n".join(json.dumps(node_report(f"n{i}")) for i in (3, 4)) + "\nnot json\n")
    fleet = aggregate(documents([str(tmp_path)]))
    assert [row.node for row in fleet.rows] == ["n1", "n3", "n4"]
    assert [u.origin for u in fleet.unreadable] == [str(other), f"{tmp_path}/sweep.jsonl:3"]


def test_a_stream_of_pretty_printed_reports_with_a_bad_one_in_the_middle(tmp_path):
    pretty = json.dumps(node_report("n1"), indent=2) + "\n{\n  broken\n}\n" + json.dumps(node_report("n2"), indent=2)
    path = tmp_path / "all.json"
    path.write_text(pretty + "\n")
    fleet = aggregate(documents([str(path)]))
    assert [row.node for row in fleet.rows] == ["n1", "n2"]
    assert len(fleet.unreadable) == 1


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch):
    (tmp_path / "n1.json").write_text(json.dumps(node_report("n1")))
    locked = tmp_path / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # as root, chmod 000 would not lock anything
    fleet = aggregate(documents([str(tmp_path)]))
    assert [row.node for row in fleet.rows] == ["n1"]
    assert [(u.origin, u.error) for u in fleet.unreadable] == [
        (str(locked), "cannot list the folder: Permission denied")
    ]
