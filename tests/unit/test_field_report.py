"""The failures people actually hit (shared/reference/field-report.md section (b)): each ends in ONE broken link,
with its fix, and the checks after it SKIP pointing at it. Facts shaped like the gathered ones for each case."""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import docker, host
from test_nvidia_rules import no_toolkit, not_loaded, nvidia_facts, nvml_failed, with_kernel, with_toolkit
from test_probe_rules import ProbeCuda, ProbeRun, document, probe_facts

from mldoctor.model import Status
from mldoctor.policy import Policy
from mldoctor.runner import evaluate, select

GPU_RUN = ProbeRun(image="team/train:1", gpus="all", gpus_reason="this host has 2 NVIDIA GPUs")


def start_failure(error: str) -> ProbeRun:
    return replace(GPU_RUN, stage="start", error=f"OCI runtime create failed: nvidia-container-cli: {error}")


def judged(**sections):
    return {r.id: r for r in evaluate(select(["docker", "nvidia", "host", "probe", "bench"]), probe_facts(**sections),
                                      Policy(require_gpus=2))}  # fmt: skip


ROWS = [
    # (field-report row, the facts, the first broken link, a words of its fix)
    (1, {"nvidia": with_toolkit(nvidia_facts(), binaries=no_toolkit().binaries),
         "run": start_failure('could not select device driver "" with capabilities: [[gpu]]')},
     "nvidia.toolkit", "nvidia-container-toolkit"),
    (4, {"nvidia": not_loaded(nvidia_facts(), module_kernels=[]),
         "run": start_failure("initialization error: load library failed: libnvidia-ml.so.1: cannot open shared")},
     "nvidia.driver", "nvidia-driver"),
    (5, {"nvidia": not_loaded(nvidia_facts()),
         "run": start_failure("initialization error: nvml error: driver not loaded: unknown")},
     "nvidia.driver", "sudo modprobe nvidia"),
    (8, {"nvidia": replace(nvidia_facts(switches=4), fabric_manager=replace(nvidia_facts(switches=4).fabric_manager,
                                                                            running=False)),
         "doc": document(cuda=ProbeCuda(available=False, error="Error 802: system not yet initialized"))},
     "nvidia.fabricmanager", "nvidia-fabricmanager"),
    (17, {"nvidia": nvidia_facts(), "docker": replace(docker(), flavour="rootless"),
          "run": start_failure("mount error: failed to add device rules: bpf_prog_query(BPF_CGROUP_DEVICE) failed")},
     "nvidia.toolkit", "no-cgroups"),
    (18, {"nvidia": with_kernel(nvml_failed(nvidia_facts(), "version_mismatch", "Driver/library version mismatch"),
                                module_version="550.90.07"),
          "run": start_failure("initialization error: nvml error: driver/library version mismatch")},
     "nvidia.driver", "sudo reboot"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "sections", "first", "fix"), ROWS, ids=[f"row {r[0]}" for r in ROWS])
def test_one_broken_link_with_its_fix(row, sections, first, fix):
    sections = dict(sections)
    run, doc = sections.pop("run", GPU_RUN), sections.pop("doc", None)
    if doc is None and run.stage == "done":
        doc = document()
    results = judged(run=run, doc=doc, host=host(), **sections)
    failed = [r.id for r in results.values() if r.status is Status.FAIL]
    assert failed == [first], [(r.id, r.summary) for r in results.values() if r.status is Status.FAIL]
    assert fix in results[first].fix
    for later in ("probe.container", "probe.cuda"):
        if later in results and results[later].status is Status.SKIP and results[later].blocked_by:
            assert results[later].blocked_by == first


def test_row_21_a_deleted_bridge_is_docker_network_s_alone():
    from mldoctor.facts.docker import BridgeFacts

    bridge = BridgeFacts(found=True, interface="docker0", subnet="172.17.0.0/16", interface_present=False)
    results = judged(run=replace(GPU_RUN, gpus="none"), doc=document(), docker=replace(docker(), bridge=bridge),
                     nvidia=nvidia_facts())  # fmt: skip
    assert [r.id for r in results.values() if r.status is Status.FAIL] == ["docker.network"]
