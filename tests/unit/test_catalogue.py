"""The catalogue of known error texts: each real failure from the field maps to its cause, the check that detects
it and a fix; the rules and `mldoctor explain` read the same entries."""

from __future__ import annotations

import time

import pytest

from mldoctor import catalogue
from mldoctor.catalogue import CATALOGUE, match
from mldoctor.rules import REGISTRY

FIELD_REPORT = [  # shared/reference/field-report.md section (b): the exact texts users pasted, and the check
    ('docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
     "nvidia.toolkit"),
    ("docker: Error response from daemon: unknown or invalid runtime name: nvidia.", "nvidia.toolkit"),
    ("Failed to initialize NVML: Unknown Error", "nvidia.devices"),
    ("nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open shared "
     "object file: no such file or directory: unknown", "nvidia.driver"),
    ("nvidia-container-cli: initialization error: nvml error: driver not loaded: unknown", "nvidia.driver"),
    ("RuntimeError: The NVIDIA driver on your system is too old (found version 12040).", "probe.cuda"),
    ("nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.8, please update your driver to a "
     "newer version, or use an earlier cuda container: unknown", "probe.container"),
    ("RuntimeError: Unexpected error from cudaGetDeviceCount(). Error 802: system not yet initialized",
     "nvidia.fabricmanager"),
    ("Error 804: forward compatibility was attempted on non supported HW", "probe.cuda"),
    ("CUDA error: no kernel image is available for execution on the device", "probe.arch"),
    ("RuntimeError: DataLoader worker (pid 1234) is killed by signal: Bus error. It is possible that dataloader's "
     "workers are out of shared memory.", "probe.shm"),
    ("torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, "
     "unhandled system error (run with NCCL_DEBUG=INFO for details)", "probe.shm"),
    ("NVRM: Xid (PCI:0000:1f:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
     "nvidia.driver"),
    ("RuntimeError: No CUDA GPUs are available", "probe.cuda"),
    ("nvidia-container-cli: mount error: file creation failed: /var/lib/docker/overlay2/abc/merged/usr/lib/"
     "x86_64-linux-gnu/libnvidia-ml.so.1: file exists: unknown", "probe.container"),
    ("nvidia-container-cli: mount error: failed to add device rules: unable to find any existing device filters "
     "attached to the cgroup: bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted: unknown",
     "nvidia.toolkit"),
    ("Failed to initialize NVML: Driver/library version mismatch", "nvidia.driver"),
    ("Error: crun: error executing hook using CDI: unresolvable CDI devices nvidia.com/gpu=all", "nvidia.toolkit"),
    ("write /var/lib/docker/tmp/GetImageBlob123: no space left on device", "docker.disk"),
    ("docker: Error response from daemon: failed to create endpoint sad_ritchie on network bridge: adding interface "
     "veth0 to bridge docker0 failed: could not find bridge docker0: route ip+net: no such network interface.",
     "docker.network"),
    ("nvidia-container-cli: mount error: stat failed: /usr/lib/wsl/lib/libcuda.so.1: no such file or directory: "
     "unknown", "nvidia.driver"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "check_id"), FIELD_REPORT, ids=[t[:40] for t, _ in FIELD_REPORT])
def test_each_field_report_text_is_known_and_names_its_check(text, check_id):
    found = match(text)
    assert found, f"not in the catalogue: {text}"
    assert found[0].check == check_id


@pytest.mark.parametrize("entry", CATALOGUE, ids=[e.id for e in CATALOGUE])
def test_each_entry_matches_its_own_example_first_and_names_a_real_check(entry):
    assert match(entry.example)[0] is entry
    assert entry.check in REGISTRY, f"{entry.id} names {entry.check}, which is no check"
    assert entry.cause and entry.fix


def test_ids_are_unique():
    assert len({e.id for e in CATALOGUE}) == len(CATALOGUE)


def test_matching_stays_linear_on_hostile_text():
    """Pasted text is untrusted: near-misses of every pattern, repeated, cost no more than plain text of the size."""
    hostile = "".join(
        [
            'could not select device driver "' + "x" * 5000,
            "mount error: file creation failed: " + "/a" * 20000,
            "NCCL error " + "y" * 50000,
            "Xid " + " " * 50000,
            "failed to create endpoint " + "z" * 50000,
        ]
        * 8
    )
    plain = "lorem ipsum dolor sit amet " * (len(hostile) // 27)
    started = time.perf_counter()
    match(plain)
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    match(hostile)
    assert time.perf_counter() - started < 50 * baseline + 0.05


def test_lookup_by_id():
    assert catalogue.by_id("fabric-manager").check == "nvidia.fabricmanager"
