"""Figures the image check judges by, kept as data (as `mldoctor/data/gpus.json` is for the benchmarks).

A Python module rather than a JSON file so the wheel needs no new package-data entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mldoctor.text import version_tuple

CUDA_RELEASES = tuple(f"11.{m}" for m in range(9)) + tuple(f"12.{m}" for m in range(10)) + ("13.0", "13.1", "13.2")
"""CUDA releases asked of `min_driver_for_cuda` to find the newest one a driver runs (unknown ones answer None)."""

WHEEL_ARCH_LISTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    # CUDA -> ((min_torch inclusive or "", below_torch exclusive or "", TORCH_CUDA_ARCH_LIST), ...): first match.
    # Source: PyTorch's official Linux x86_64 wheels, pytorch/pytorch .ci/manywheel/build_cuda.sh across releases.
    "11.8": (("", "", "3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0"),),
    "12.1": (("", "", "5.0;6.0;7.0;7.5;8.0;8.6;9.0"),),
    "12.4": (("", "", "5.0;6.0;7.0;7.5;8.0;8.6;9.0"),),
    "12.6": (("", "", "5.0;6.0;7.0;7.5;8.0;8.6;9.0"),),
    "12.8": (("", "2.8", "7.5;8.0;8.6;9.0;10.0;12.0+PTX"), ("2.8", "", "7.0;7.5;8.0;8.6;9.0;10.0;12.0")),
    "12.9": (("", "", "7.0;7.5;8.0;8.6;9.0;10.0;12.0+PTX"),),
    "13.0": (("", "", "7.5;8.0;8.6;9.0;10.0;11.0;12.0+PTX"),),
}
"""The arch lists PyTorch's published CUDA wheels are built with. torch's own arch list lives in a compiled library
(`torch._C._cuda_getArchFlags()`), which cannot be read without importing torch; the wheel's CUDA version
(version.py's `cuda`) and release select it here instead."""


@dataclass(frozen=True)
class GpuModel:
    """A GPU family matched by name: its compute capability and whether it is a consumer (GeForce) card."""

    pattern: str
    compute_capability: str
    """"major.minor", or "" when only the class is known (a GeForce card of an unknown generation)."""
    consumer: bool
    """GeForce-class: CUDA forward compatibility (cuda-compat) is not supported on it (CUDA error 804)."""


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel(r"GB10\b|DGX Spark", "12.1", False),
    GpuModel(r"RTX PRO \d+", "12.0", False),
    GpuModel(r"RTX 50\d0", "12.0", True),
    GpuModel(r"B300|GB300", "10.3", False),
    GpuModel(r"B200|GB200|B100", "10.0", False),
    GpuModel(r"\bThor\b", "11.0", False),
    GpuModel(r"H100|H200|H800|\bH20\b|GH200", "9.0", False),
    GpuModel(r"L40S|\bL40\b|\bL4\b|\bL20\b|RTX \d000 Ada", "8.9", False),
    GpuModel(r"RTX 40\d0", "8.9", True),
    GpuModel(r"A100|A800|\bA30\b", "8.0", False),
    GpuModel(r"A10G|\bA10\b|\bA40\b|\bA16\b|\bA2\b|RTX A\d000", "8.6", False),
    GpuModel(r"RTX 30\d0", "8.6", True),
    GpuModel(r"\bT4\b|Quadro RTX", "7.5", False),
    GpuModel(r"RTX 20\d0|TITAN RTX|GTX 16\d0", "7.5", True),
    GpuModel(r"V100|TITAN V\b", "7.0", False),
    GpuModel(r"P100", "6.0", False),
    GpuModel(r"\bP40\b|\bP4\b", "6.1", False),
    GpuModel(r"GTX 10\d0|TITAN X", "6.1", True),
    GpuModel(r"GeForce|TITAN", "", True),
)
"""GPU name -> compute capability (NVIDIA's CUDA GPUs table), most specific names first."""


def gpu_model(name: str) -> GpuModel | None:
    """The table's entry for a GPU name as `--gpu`, the policy file or NVML spell it ("H100", "NVIDIA H100 80GB
    HBM3", "GeForce RTX 4090"), or None."""
    return next((m for m in GPU_MODELS if re.search(m.pattern, name, re.IGNORECASE)), None)


def wheel_arch_list(cuda: str, torch_version: str) -> list[str] | None:
    """torch's arch list (`sm_80`, `compute_90` for +PTX) for an official wheel of this CUDA and release."""
    cuda = ".".join(cuda.split(".")[:2])
    release = version_tuple(torch_version.split("+")[0])[:2]
    for low, high, arch in WHEEL_ARCH_LISTS.get(cuda, ()):
        if low and release < version_tuple(low):
            continue
        if high and release >= version_tuple(high):
            continue
        return parse_arch_list(arch)
    return None


def parse_arch_list(text: str) -> list[str]:
    """TORCH_CUDA_ARCH_LIST ("7.0;8.0 9.0+PTX", "8.6 9.0a") -> torch's spelling (sm_70, sm_80, sm_90, compute_90).
    Names that are not numbers ("Ampere") are skipped rather than guessed."""
    out: list[str] = []
    for item in re.split(r"[;\s,]+", text.strip())[:64]:
        match = re.fullmatch(r"(\d+)\.(\d+)([a-z]?)(\+PTX)?", item, re.IGNORECASE)
        if not match:
            continue
        code = f"{match.group(1)}{match.group(2)}{match.group(3).lower()}"
        out.append(f"sm_{code}")
        if match.group(4):
            out.append(f"compute_{code}")
    return out
