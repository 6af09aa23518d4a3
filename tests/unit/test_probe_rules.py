"""probe.* rules from probe facts: each failure the probe can meet gets its own summary and a pasteable fix."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace

import pytest

from mldoctor.facts.probe import ProbeFacts, ProbeOptions, ProbeRun, decide_gpus
from mldoctor.facts.probe_document import (
    ProbeCuda,
    ProbeDevice,
    ProbeDocument,
    ProbePython,
    ProbeShm,
    ProbeTorch,
    parse_document,
)
from mldoctor.model import Status
from mldoctor.probe.launch import PROBE_FILE, probe_source
from mldoctor.rules.probe import cuda_cause, kernel_support
from mldoctor.serde import SchemaError, from_data, to_data
from tests.unit import factories
from tests.unit.helpers import result, results

GIB = 1 << 30
H100 = ProbeDevice(index=0, name="NVIDIA H100 80GB HBM3", major=9, minor=0, sm_count=132, memory_bytes=80 * GIB)


def document(**changes) -> ProbeDocument:
    base = ProbeDocument(
        python=ProbePython(version="3.11.2", implementation="CPython", executable="/usr/bin/python3"),
        shm=ProbeShm(total_bytes=16 * GIB, free_bytes=16 * GIB),
        torch=ProbeTorch(found=True, version="2.7.1+cu128", cuda="12.8", cudnn=90100, nccl="2.26.2"),
        cuda=ProbeCuda(available=True, device_count=1, arch_list=["sm_80", "sm_90", "sm_100", "sm_120"]),
        devices=[H100],
    )
    return replace(base, **changes)


def probe_facts(run: ProbeRun | None = None, doc: ProbeDocument | None = None, **sections):
    run = run or ProbeRun(image="mldoctor-probe:0.1.0", default_image=True, gpus="all", gpus_reason="1 GPU")
    return factories.facts(probe=ProbeFacts(run=run, document=doc), **sections)


def failed(run_changes: dict, check_id: str = "probe.container"):
    run = replace(ProbeRun(image="my/train:1", gpus="all", gpus_reason="this host has 8 NVIDIA GPUs"), **run_changes)
    return result(probe_facts(run=run), check_id)


def test_a_healthy_gpu_container_passes_every_probe_check():
    facts = probe_facts(doc=document())
    for check_id in ("probe.container", "probe.python", "probe.torch", "probe.cuda", "probe.arch", "probe.shm"):
        assert result(facts, check_id).status is Status.PASS, check_id
    assert "CUDA 12.8 works: 1 GPU (NVIDIA H100 80GB HBM3)" in result(facts, "probe.cuda").summary


def test_missing_default_image_is_a_warning_with_the_build_command_and_dependants_skip():
    run = ProbeRun(image="mldoctor-probe:0.1.0", default_image=True, stage="image", error="No such image")
    facts = probe_facts(run=run)
    container = result(facts, "probe.container")
    assert container.status is Status.WARN and container.fix.startswith("mldoctor image build")
    for check_id in ("probe.python", "probe.torch", "probe.cuda", "probe.arch", "probe.shm"):
        assert result(facts, check_id).status is Status.SKIP, check_id


def test_missing_user_image_fails_with_docker_pull():
    finding = failed({"stage": "image", "error": "No such image: my/train:1"})
    assert finding.status is Status.FAIL and finding.fix.startswith("docker pull my/train:1")


def test_docker_down_skips_the_probe_and_points_at_docker_daemon():
    facts = probe_facts(run=ProbeRun(stage="connect", error="refused"), docker=factories.down("refused"))
    finding = result(facts, "probe.container")
    assert finding.status is Status.SKIP and finding.blocked_by == "docker.daemon"


def test_no_toolkit_names_the_toolkit_fix():
    error = 'could not select device driver "" with capabilities: [[gpu]]'
    finding = failed({"stage": "start", "error": error})
    assert finding.status is Status.FAIL
    assert "nvidia-ctk runtime configure --runtime=docker" in finding.fix and "restart docker" in finding.fix


def test_image_cuda_newer_than_the_host_driver_names_both_sides():
    error = (
        "OCI runtime create failed: nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.8, "
        "please update your driver to a newer version, or use an earlier cuda container: unknown"
    )
    finding = failed({"stage": "start", "error": error})
    assert finding.status is Status.FAIL
    assert "requires CUDA >= 12.8" in finding.summary
    assert finding.fix == "upgrade the NVIDIA driver to 570 or newer"


def test_timeout_exit_and_garbage_each_fail_with_their_own_story():
    timeout = failed({"stage": "wait", "timed_out": True, "deadline_s": 30.0, "error": "killed"})
    assert timeout.status is Status.FAIL and "did not finish within 30 s" in timeout.summary
    garbage = failed({"stage": "output", "stdout_head": "hello\n{", "error": "not JSON"})
    assert garbage.status is Status.FAIL and "docker run --rm --entrypoint python3 my/train:1" in garbage.fix
    died = failed({"stage": "exit", "exit_code": 137, "stderr_tail": "Killed"}, "probe.python")
    assert died.status is Status.FAIL and "exit code 137" in died.summary


def test_no_python3_passes_the_container_and_fails_python():
    error = 'OCI runtime create failed: exec: "python3": executable file not found in $PATH: unknown'
    assert failed({"stage": "start", "error": error}).status is Status.PASS
    finding = failed({"stage": "start", "error": error}, "probe.python")
    assert finding.status is Status.FAIL and "no python3" in finding.summary


def test_old_python_fails_python():
    tail = "SyntaxError: future feature annotations is not defined"
    finding = failed({"stage": "exit", "exit_code": 1, "stderr_tail": tail}, "probe.python")
    assert finding.status is Status.FAIL and "older than 3.8" in finding.summary


@pytest.mark.parametrize(
    ("run", "fix_start"),
    [
        (ProbeRun(mode="host", gpus="host"), "python3 -m pip install torch"),
        (ProbeRun(image="mldoctor-probe:0.1.0", default_image=True), "mldoctor image build"),
        (ProbeRun(image="team/train:1"), "pip install torch in team/train:1's Dockerfile"),
    ],
)
def test_torch_missing_fix_depends_on_where_the_probe_ran(run, fix_start):
    doc = document(torch=ProbeTorch(found=False, error="No module named 'torch'"))
    missing = result(probe_facts(run=run, doc=doc), "probe.torch")
    assert missing.status is Status.FAIL and missing.fix.startswith(fix_start)


def test_torch_cpu_only():
    cpu_only = document(torch=ProbeTorch(found=True, version="2.13.0+cpu"), cuda=ProbeCuda(available=False))
    finding = result(probe_facts(doc=cpu_only), "probe.cuda")
    assert finding.status is Status.FAIL and "CPU-only build" in finding.summary and "whl/cu" in finding.fix


@pytest.mark.parametrize(
    ("error", "cause", "fix_part"),
    [
        (
            "The NVIDIA driver on your system is too old (found version 11040).",
            "driver_too_old",
            "upgrade the NVIDIA driver to 570",
        ),
        ("Error 802: system not yet initialized", "fabric_manager", "nvidia-fabricmanager"),
        ("Error 804: forward compatibility was attempted on non supported HW", "forward_compat", "cuda-compat"),
        ("Found no NVIDIA driver on your system.", "no_device", "NVIDIA_VISIBLE_DEVICES"),
        ("Failed to initialize NVML: Unknown Error", "nvml_unknown", "create-dev-char-symlinks"),
        ("something new", "other", "nvidia-smi"),
    ],
)
def test_cuda_errors_map_to_causes_and_fixes(error, cause, fix_part):
    assert cuda_cause(error) == cause
    doc = document(cuda=ProbeCuda(available=False, error=error), devices=[])
    finding = result(probe_facts(doc=doc), "probe.cuda")
    assert finding.status is Status.FAIL and fix_part in finding.fix


def test_driver_too_old_reads_the_drivers_cuda_from_torchs_message():
    doc = document(cuda=ProbeCuda(available=False, error="driver on your system is too old (found version 11040)"))
    assert "(the driver's CUDA is 11.4)" in result(probe_facts(doc=doc), "probe.cuda").summary


def test_no_gpu_given_skips_cuda_and_benchmarks_of_gpus():
    run = ProbeRun(image="x", gpus="none", gpus_reason="this host has no NVIDIA GPU")
    facts = probe_facts(run=run, doc=document(cuda=ProbeCuda(available=False), devices=[]))
    finding = result(facts, "probe.cuda")
    assert finding.status is Status.SKIP and "this host has no NVIDIA GPU" in finding.summary


@pytest.mark.parametrize(
    ("arch", "major", "minor", "support"),
    [
        (["sm_80", "sm_90"], 9, 0, "native"),
        (["sm_80"], 8, 6, "native"),  # a cubin runs on a later minor of the same major
        (["sm_86"], 8, 0, "none"),
        (["sm_80", "compute_80"], 9, 0, "ptx"),
        (["sm_50", "sm_90a"], 9, 0, "native"),
        (["sm_80", "sm_90"], 12, 0, "none"),
        ([], 9, 0, "none"),
    ],
)
def test_kernel_support(arch, major, minor, support):
    assert kernel_support(arch, major, minor) == support


def test_no_kernel_image_fails_arch_with_the_missing_sm():
    blackwell = ProbeDevice(index=0, name="NVIDIA RTX PRO 6000", major=12, minor=0, sm_count=188, memory_bytes=GIB)
    doc = document(devices=[blackwell], cuda=ProbeCuda(available=True, device_count=1, arch_list=["sm_80", "sm_90"]))
    finding = result(probe_facts(doc=doc), "probe.arch")
    assert finding.status is Status.FAIL and "sm_120" in finding.summary and "sm_120" in finding.fix


def test_small_shm_warns_with_the_daemon_wide_merge_and_the_per_container_flags():
    finding = result(probe_facts(doc=document(shm=ProbeShm(total_bytes=64 << 20, free_bytes=64 << 20))), "probe.shm")
    assert finding.status is Status.WARN and "--shm-size=16g" in finding.fix and "--ipc=host" in finding.fix
    assert finding.fix.startswith(
        'sudo "$(command -v mldoctor)" fix probe.shm --yes --restart   # every container gets'
    )
    assert "16G (default-shm-size in /etc/docker/daemon.json)" in finding.fix and '"16G"' not in finding.fix
    assert finding.effects == ["restarts-docker"]


def test_small_shm_on_a_daemon_elsewhere_gets_the_per_container_flags():
    remote = factories.docker(local=False, config=None)
    doc = document(shm=ProbeShm(total_bytes=64 << 20, free_bytes=64 << 20))
    finding = result(probe_facts(doc=doc, docker=remote), "probe.shm")
    assert finding.fix == "docker run --shm-size=16g ... (or --ipc=host)   # for each training container"


def test_host_mode_leaves_shm_to_host_shm():
    run = ProbeRun(mode="host", gpus="host")
    assert [r.id for r in _all(probe_facts(run=run, doc=document()))].count("probe.shm") == 0


def _all(facts):
    from mldoctor.policy import Policy
    from mldoctor.rules import REGISTRY
    from mldoctor.runner import evaluate

    return evaluate([c for c in REGISTRY.values() if c.area == "probe"], facts, Policy())


def test_decide_gpus_auto():
    assert decide_gpus("0,1", None, 8) == ("0,1", "--gpus 0,1")
    assert decide_gpus("auto", factories.docker(), 8)[0] == "all"
    assert decide_gpus("auto", factories.docker(), 0) == ("none", "this host has no NVIDIA GPU")
    remote = factories.docker(local=False, daemon=factories.daemon(runtimes=["nvidia", "runc"]))
    assert decide_gpus("auto", remote, 0) == ("all", "the remote daemon has the nvidia runtime")


def test_deadline_is_the_timeout_plus_the_benchmark_budget():
    """Matmul per device, plus the all-reduce's own 60 s deadline and 10 s of peer copies on several GPUs (so a hung
    all-reduce is bench.allreduce's FAIL, not a probe timeout), or 10 s of gloo on one GPU or the CPU."""
    assert ProbeOptions(timeout=60, duration=10).deadline(8) == 60 + 80 + 70
    assert ProbeOptions(timeout=60, duration=10).deadline(1) == 60 + 10 + 10
    assert ProbeOptions(timeout=60, duration=10, bench=False).deadline(8) == 60


def test_probe_facts_round_trip_through_json():
    facts = ProbeFacts(run=ProbeRun(image="x"), document=document())
    assert from_data(ProbeFacts, json.loads(json.dumps(to_data(facts)))) == facts


def test_parse_document_rejects_garbage_and_other_schemas():
    for text in ("hello", "[]", json.dumps({"schema": "other"}), json.dumps({"schema": "mldoctor-probe"})):
        with pytest.raises(SchemaError):
            parse_document(text)


def test_the_probe_program_is_python38_and_small_enough_for_argv():
    ast.parse(probe_source(), feature_version=(3, 8))
    assert len(probe_source().encode()) < 100_000  # Linux caps one argv string at 128 KiB


def test_the_probe_prints_only_its_document_on_stdout_without_torch(tmp_path):
    """Run with an interpreter that cannot import torch: stdout is exactly one probe document."""
    sitecustomize = tmp_path / "sitecustomize.py"
    sitecustomize.write_text("import sys\nsys.modules['torch'] = None\nprint('noise', file=sys.stderr)\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, str(PROBE_FILE), "--duration", "0.1"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0
    doc, notes = parse_document(proc.stdout)
    assert proc.stdout.count("\n") == 2 and proc.stdout.startswith("\n{") and "noise" in proc.stderr and notes == []
    assert doc.torch is not None and doc.torch.found is False and doc.bench is None
    assert doc.python.version.count(".") == 2 and doc.shm is not None


def test_noise_around_the_document_is_tolerated_and_noted():
    """NGC-style entrypoints and sitecustomize print banners on stdout: the document is still found, the rest is
    reported as a note instead of failing probe.container."""
    document = json.dumps({"schema": "mldoctor-probe", "schema_version": 1, "errors": []}, sort_keys=True)
    stdout = "=== NVIDIA Release 24.05 ===\n{not json\n" + document + "\nbye from atexit\n"
    doc, notes = parse_document(stdout)
    assert doc.schema == "mldoctor-probe"
    assert len(notes) == 2 and "before" in notes[0] and "NVIDIA Release" in notes[0] and "after" in notes[1]


def test_output_without_a_document_is_refused_in_linear_time():
    from mldoctor.serde import SchemaError

    with pytest.raises(SchemaError, match="not JSON"):
        parse_document("{" * 200_000 + "\n" + '{"a": ' * 50_000)


def test_a_hook_error_after_a_failed_driver_is_one_broken_link_not_two():
    """field-report row 4: `load library failed` while nvidia.driver already FAILed: probe.container points at it."""
    from mldoctor.facts.nvidia import FabricManagerFacts, KernelFacts, NvidiaFacts, NvmlFacts, PciDevice, ToolkitFacts
    from mldoctor.policy import Policy
    from mldoctor.runner import evaluate, select

    nvidia = NvidiaFacts(
        kernel=KernelFacts(running_kernel="6.1.0-18-amd64"),
        nvml=NvmlFacts(error_kind="driver_not_loaded", error="Driver Not Loaded"),
        toolkit=ToolkitFacts(),
        fabric_manager=FabricManagerFacts(),
        pci=[PciDevice(address="0000:18:00.0", device_id="0x2330", class_code="0x030200", kind="gpu")],
    )
    error = (
        "failed to create task for container: OCI runtime create failed: nvidia-container-cli: initialization "
        "error: load library failed: libnvidia-ml.so.1: cannot open shared object file: no such file or directory"
    )
    run = ProbeRun(image="my/train:1", gpus="all", gpus_reason="this host has 1 NVIDIA GPU", stage="start", error=error)
    facts = probe_facts(run=run, nvidia=nvidia)
    by_id = {r.id: r for r in evaluate(select(["nvidia", "probe"]), facts, Policy())}
    assert by_id["nvidia.driver"].status is Status.FAIL
    assert (by_id["probe.container"].status, by_id["probe.container"].summary) == (
        Status.SKIP,
        "skipped: nvidia.driver failed",
    )
    assert [r.id for r in by_id.values() if r.status is Status.FAIL] == ["nvidia.driver"]


def test_driver_files_baked_into_the_image_name_the_cause_and_the_image_check():
    """field-report row 16: the hook's `file exists` is the image shipping driver libraries, not a broken daemon."""
    error = (
        "OCI runtime create failed: nvidia-container-cli: mount error: file creation failed: "
        "/var/lib/docker/overlay2/abc/merged/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1: file exists: unknown"
    )
    finding = failed({"stage": "start", "error": error})
    assert finding.status is Status.FAIL
    assert "ships NVIDIA driver files" in finding.summary
    assert finding.fix.startswith("mldoctor image check my/train:1")
    assert any("detected by: probe.container" in d for d in finding.details)


@pytest.mark.parametrize(
    ("value", "hides"), [("all", True), ("1", True), ("0,5", True), ("0", False), ("GPU-3f2a", False)]
)
def test_a_bad_cuda_visible_devices_is_named_not_nvidia_visible_devices(value, hides):
    """field-report row 15: `No CUDA GPUs are available` with CUDA_VISIBLE_DEVICES=all (or a missing index)."""
    from mldoctor.facts.nvidia import FabricManagerFacts, GpuFacts, KernelFacts, NvidiaFacts, NvmlFacts, ToolkitFacts

    nvidia = NvidiaFacts(
        kernel=KernelFacts(running_kernel="6.1"),
        nvml=NvmlFacts(ok=True, driver_version="550.90.07", gpus=[GpuFacts(index=0, name="NVIDIA GeForce RTX 4090")]),
        toolkit=ToolkitFacts(),
        fabric_manager=FabricManagerFacts(),
    )
    doc = document(
        cuda=ProbeCuda(available=False, error="RuntimeError: No CUDA GPUs are available"),
        env={"CUDA_VISIBLE_DEVICES": value},
    )
    finding = result(probe_facts(doc=doc, nvidia=nvidia), "probe.cuda")
    assert finding.status is Status.FAIL
    assert ("CUDA_VISIBLE_DEVICES" in finding.summary) is hides
    assert ("NVIDIA_VISIBLE_DEVICES" in finding.fix) is not hides


def test_error_802_with_fabric_manager_running_does_not_blame_fabric_manager():
    from mldoctor.facts.nvidia import FabricManagerFacts, KernelFacts, NvidiaFacts, NvmlFacts, ToolkitFacts

    running = NvidiaFacts(
        kernel=KernelFacts(running_kernel="6.1"),
        nvml=NvmlFacts(ok=True, driver_version="550.90.07"),
        toolkit=ToolkitFacts(),
        fabric_manager=FabricManagerFacts(path="/usr/bin/nv-fabricmanager", version="550.90.07", running=True),
    )
    doc = document(cuda=ProbeCuda(available=False, error="Error 802: system not yet initialized"))
    finding = result(probe_facts(doc=doc, nvidia=running), "probe.cuda")
    assert "although fabric manager runs" in finding.summary and "grep -A 3 Fabric" in finding.fix
    stopped = replace(running, fabric_manager=FabricManagerFacts(path="/usr/bin/nv-fabricmanager", version="550.90.07"))
    assert "not running" in result(probe_facts(doc=doc, nvidia=stopped), "probe.cuda").summary


def test_a_cpu_torch_on_a_gpu_less_host_is_judged_alike_in_a_container_and_on_the_host():
    """gpu-bench --no-container with a CPU-only torch on a machine without GPUs: SKIP, as in a container."""
    doc = document(torch=ProbeTorch(found=True, version="2.13.0+cpu", cuda=None), cuda=ProbeCuda(available=False))
    for run in (
        ProbeRun(mode="host", gpus="none", gpus_reason="this host has no NVIDIA GPU"),
        ProbeRun(image="x", gpus="none", gpus_reason="this host has no NVIDIA GPU"),
    ):
        finding = result(probe_facts(run=run, doc=doc), "probe.cuda")
        assert finding.status is Status.SKIP and "no NVIDIA GPU" in finding.summary


class TestNetwork:
    """probe.network: a container on the default bridge resolves a name this host resolves."""

    @staticmethod
    def judged(lookup, **sections):
        from mldoctor.facts.probe import NameLookup

        facts = probe_facts(doc=document(), **sections)
        facts.probe.lookup = NameLookup(**lookup) if lookup is not None else None
        return results(facts, "probe.network")

    def test_a_container_that_resolves_passes(self):
        (r,) = self.judged({"name": "pypi.org", "host_resolves": True, "resolved": True, "elapsed_s": 0.8})
        assert (r.status, r.summary) == (Status.PASS, "a container on the default bridge resolves pypi.org (0.8 s)")

    def test_one_that_cannot_while_the_host_can_warns_with_the_dns_fix(self):
        lookup = {"name": "pypi.org", "host_resolves": True, "resolved": False, "error": "gaierror: [Errno -3] x"}
        (r,) = self.judged(lookup)
        assert r.status is Status.WARN and "cannot resolve pypi.org, which this host resolves" in r.summary
        assert "gaierror" in r.summary
        assert r.fix.startswith('add "dns": [the DNS servers of your network] to /etc/docker/daemon.json, then: ')

    def test_local_only_dns_is_docker_network_s_finding_not_a_second_one(self):
        from mldoctor.facts.docker import BridgeFacts

        bridge = BridgeFacts(found=True, interface="docker0", interface_present=True, nameservers=["127.0.0.1"])
        lookup = {"name": "pypi.org", "host_resolves": True, "resolved": False, "error": "timed out"}
        (r,) = self.judged(lookup, docker=factories.docker(bridge=bridge))
        assert r.status is Status.SKIP and r.blocked_by == "docker.network"

    def test_no_network_on_the_host_either_is_nothing_to_judge(self):
        (r,) = self.judged({"name": "pypi.org", "host_resolves": False})
        assert r.status is Status.SKIP and "this host does not resolve pypi.org either" in r.summary

    def test_no_lookup_no_row(self):
        assert self.judged(None) == []
