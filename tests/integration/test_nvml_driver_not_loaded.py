"""The real NVML library on a machine with no NVIDIA driver: Debian's libnvidia-ml1 (installed by
scripts/ci/install-libnvidia-ml.sh) makes nvmlInit() fail with the real "Driver Not Loaded", and mldoctor must
name that cause and its fix. No fake anywhere on this path.

Where the library is missing the tests skip with the reason, except in CI (`CI=true`), where .ci/run installs
it: there a missing library is a broken CI and the tests fail loudly. On a host whose NVIDIA driver is loaded the
premise does not hold, and they skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from provided import require_libnvidia_ml


def nvidia_on_pci_bus() -> bool:
    return any(vendor.read_text().strip() == "0x10de" for vendor in Path("/sys/bus/pci/devices").glob("*/vendor"))


@pytest.fixture
def nvml_library() -> None:
    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("an NVIDIA driver is loaded here: NVML will not say 'Driver Not Loaded'")
    require_libnvidia_ml()


def mldoctor(*args: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "mldoctor", "check", "--only", "nvidia", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, {r["id"]: r for r in json.loads(proc.stdout)["results"]}


def test_real_nvml_says_driver_not_loaded(nvml_library):
    code = """
import pynvml
try:
    pynvml.nvmlInit()
except pynvml.NVMLError as exc:
    print(type(exc).__name__, exc, sep=": ")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "NVMLError_DriverNotLoaded: Driver Not Loaded"


def gpu_on_the_bus(root: Path) -> Path:
    """A host tree whose PCI bus shows one H100 and whose kernel has no nvidia module: what NVML's real "Driver
    Not Loaded" means on a GPU host. Only the bus is made up; the library and its error are real."""
    device = root / "sys/bus/pci/devices/0000:18:00.0"
    device.mkdir(parents=True)
    for name, value in (("vendor", "0x10de"), ("device", "0x2330"), ("class", "0x030200")):
        (device / name).write_text(value + "\n")
    (root / "proc").mkdir()
    (root / "proc/modules").write_text("ext4 1 0 - Live 0x0\n")
    return root


def test_a_gpu_without_a_driver_fails_driver_with_the_real_nvml_cause_and_fix(nvml_library, tmp_path):
    from mldoctor.facts import GatherOptions, gather
    from mldoctor.policy import Policy
    from mldoctor.runner import evaluate, select

    facts = gather({"nvidia", "host"}, GatherOptions(sysroot=str(gpu_on_the_bus(tmp_path))))
    assert (facts.nvidia.nvml.error_kind, facts.nvidia.nvml.error) == ("driver_not_loaded", "Driver Not Loaded")
    results = {r.id: r for r in evaluate(select(["nvidia"]), facts, Policy(require_gpus=1))}
    driver = results["nvidia.driver"]
    assert driver.status.value == "FAIL"
    assert driver.summary.startswith("NVML: Driver Not Loaded: no nvidia kernel module is installed")
    assert "libnvidia-ml 535." in driver.summary  # Debian bookworm's branch, read from the real library's name
    assert "nvidia-driver" in driver.fix and "reboot" in driver.fix
    assert results["nvidia.gpu"].status.value == "PASS"


def test_no_gpu_on_the_bus_fails_the_gpu_check_alone_and_never_loads_nvml():
    """On a GPU-less host `--require-gpus 1` has one broken link, nvidia.gpu; pynvml is not even imported."""
    if nvidia_on_pci_bus():
        pytest.skip("this host has NVIDIA hardware")
    code, results = mldoctor("--require-gpus", "1")
    assert code == 1
    assert results["nvidia.gpu"]["status"] == "FAIL"
    assert results["nvidia.driver"]["summary"] == "skipped: nvidia.gpu failed"
    assert results["nvidia.toolkit"]["summary"] == "skipped: nvidia.gpu failed"
    probe = (
        "import sys\nfrom mldoctor.cli import main\ntry:\n    main(['check', '--only', 'nvidia', '--format', 'json'])\n"
        "except SystemExit:\n    pass\nprint('pynvml' in sys.modules, file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert proc.stderr.strip().splitlines()[-1] == "False", proc.stderr


def test_gpu_less_host_skips_the_nvidia_checks_and_exits_0():
    """`mldoctor check` on a machine without NVIDIA hardware: SKIP with the reason, and nothing fails."""
    if nvidia_on_pci_bus():
        pytest.skip("this host has NVIDIA hardware")
    code, results = mldoctor()
    assert code == 0
    assert {r["status"] for r in results.values()} == {"SKIP"}
    assert results["nvidia.gpu"]["summary"] == "no NVIDIA GPU on this host"
    assert results["nvidia.driver"]["summary"] == "skipped: no NVIDIA GPU on this host"
