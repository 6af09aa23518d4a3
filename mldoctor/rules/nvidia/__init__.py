"""NVIDIA checks, one module per reason to change: the driver chain (GPUs, driver and NVML, device nodes), GPU
health and the fabric manager, and the container toolkit. Importing the area registers them in chain order."""

from mldoctor.rules.nvidia import driver, health, p2p, toolkit

__all__ = ["driver", "health", "p2p", "toolkit"]
