"""What the image must run on: a driver (hence the highest CUDA it supports) and GPU models (hence their compute
capability and class). Taken from `--driver`/`--gpu` when given, else this host's driver and GPUs (NVML), else the
policy file's fleet floor (`min_driver_version`, `require_gpu_models`). A CI builder has no GPU: the flags or the
policy describe the fleet the image is for.

`Targets` is plain data for the pure checks; `resolve` is the one impure part (it may ask NVML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mldoctor.data.gpus import min_driver_for_cuda
from mldoctor.image.data import CUDA_RELEASES, gpu_model
from mldoctor.policy import Policy
from mldoctor.text import version_tuple

DRIVER = re.compile(r"\d{3}(\.\d{1,3}){0,2}")


@dataclass(frozen=True)
class TargetGpu:
    """A GPU model the image must run on: its name, and its compute capability and class where the table knows them."""

    name: str
    compute_capability: str = ""
    """"major.minor"; "" when the model is unknown (its architecture is then not judged)."""
    consumer: bool = False


@dataclass(frozen=True)
class Targets:
    """The driver (hence the highest CUDA it runs) and GPU models the image must run on, and where they came from."""

    driver: str = ""
    """e.g. 550.90.07; "" when unknown."""
    driver_cuda: str = ""
    """The highest CUDA the driver runs (NVML's answer on a host; from the driver branch otherwise)."""
    gpus: tuple[TargetGpu, ...] = ()
    source: str = "none"
    """Where they came from: flags, host, policy or none."""
    notes: tuple[str, ...] = field(default=())


def cuda_for_driver(driver: str) -> str:
    """The highest CUDA a driver branch runs (550.90 -> 12.4), from the CUDA -> minimum driver table; "" if unknown."""
    branch = version_tuple(driver)[:1]
    if not branch:
        return ""
    fitting = [cuda for cuda in CUDA_RELEASES if (min_driver_for_cuda(cuda) or 10**6) <= branch[0]]
    return max(fitting, key=version_tuple, default="")


def target_gpu(name: str) -> TargetGpu:
    """A GPU named as --gpu, the policy file or NVML name it, with what the table knows of it."""
    model = gpu_model(name)
    if model is None:
        return TargetGpu(name=name)
    return TargetGpu(name=name, compute_capability=model.compute_capability, consumer=model.consumer)


def check_driver(text: str) -> str:
    """A --driver value as a version (550, 550.90, 550.90.07); raises ValueError for anything else."""
    if not DRIVER.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not an NVIDIA driver version (e.g. 550.90 or 550.90.07)")
    return text.strip()


def from_values(driver: str, gpus: list[str], source: str) -> Targets:
    """Targets from a driver version and GPU names (flags or the policy file)."""
    return Targets(
        driver=driver,
        driver_cuda=cuda_for_driver(driver) if driver else "",
        gpus=tuple(target_gpu(g) for g in gpus),
        source=source,
    )


def resolve(
    driver: str | None, gpus: list[str], policy: Policy, use_host: bool = True, timeout: float = 5.0
) -> Targets:
    """Flags first, then this host (when it has an NVIDIA driver that answers), then the policy file."""
    if driver or gpus:
        return from_values(driver or "", gpus, "flags")
    if use_host:
        host = _host(timeout)
        if host is not None:
            return host
    if policy.min_driver_version or policy.require_gpu_models:
        return from_values(policy.min_driver_version, list(policy.require_gpu_models), "policy")
    return Targets()


def _host(timeout: float) -> Targets | None:
    """This host's driver and GPUs through NVML, or None when it has none (a CI builder)."""
    try:
        from mldoctor.facts import nvidia

        nvml = nvidia.gather(timeout).nvml
    except Exception:  # no pynvml, no driver: no host targets, as on a CI builder
        return None
    if not nvml.ok or not nvml.driver_version:
        return None
    gpus = []
    for gpu in nvml.gpus:
        name = gpu.name or f"GPU {gpu.index}"
        known = target_gpu(name)
        cc = gpu.compute_capability or known.compute_capability
        gpus.append(TargetGpu(name=name, compute_capability=cc, consumer=known.consumer))
    cuda = nvml.cuda_driver_version or cuda_for_driver(nvml.driver_version)
    return Targets(driver=nvml.driver_version, driver_cuda=cuda, gpus=tuple(gpus), source="host")
