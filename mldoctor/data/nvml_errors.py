"""NVML's error texts in words a user reads: what pynvml raises or reports (`NVMLError_NoPermission`,
`Insufficient Permissions`, `NVML Error with code 28`) as recorded in the facts, for the checks' details and the
report page alike."""

from __future__ import annotations

import re

NVML_WORDS = {
    "Uninitialized": "NVML was not initialised",
    "InvalidArgument": "n/a (NVML refused the request)",
    "NotSupported": "n/a (not supported on this GPU)",
    "NoPermission": "n/a (this user may not read it; root may)",
    "AlreadyInitialized": "NVML was initialised twice",
    "NotFound": "n/a (not found)",
    "InsufficientSize": "n/a (NVML's answer did not fit)",
    "InsufficientPower": "the GPU lacks external power: check its power cables",
    "DriverNotLoaded": "the NVIDIA kernel driver is not loaded",
    "Timeout": "NVML did not answer in time",
    "IrqIssue": "the GPU does not answer interrupts",
    "LibraryNotFound": "the NVIDIA driver's libraries (libnvidia-ml.so.1) are not installed",
    "FunctionNotFound": "n/a (this driver's NVML cannot read it)",
    "CorruptedInforom": "the GPU's infoROM is corrupted",
    "GpuIsLost": "the GPU is lost (it fell off the bus)",
    "ResetRequired": "the GPU needs a reset",
    "OperatingSystem": "the operating system blocked the request",
    "LibRmVersionMismatch": "the driver's kernel module and its libraries are different versions (reboot)",
    "InUse": "n/a (the GPU is in use by another client)",
    "Memory": "NVML ran out of memory",
    "NoData": "n/a (no data yet)",
    "VgpuEccNotSupported": "n/a (not supported on this vGPU)",
    "InsufficientResources": "n/a (not enough resources)",
    "FreqNotSupported": "n/a (this clock frequency is not supported)",
    "ArgumentVersionMismatch": "n/a (this driver's NVML is older than the bindings)",
    "Deprecated": "n/a (deprecated by this driver)",
    "NotReady": "n/a (not ready yet)",
    "GpuNotFound": "the GPU was not found",
    "InvalidState": "n/a (the GPU is in a state that does not allow it)",
    "Unknown": "NVML failed with an unknown error",
}
"""NVML's error names (pynvml's NVMLError_* classes) in words a user reads."""
NVML_MESSAGES = {
    "Uninitialized": "Uninitialized",
    "Invalid Argument": "InvalidArgument",
    "Not Supported": "NotSupported",
    "Insufficient Permissions": "NoPermission",
    "Already Initialized": "AlreadyInitialized",
    "Not Found": "NotFound",
    "Insufficient Size": "InsufficientSize",
    "Insufficient External Power": "InsufficientPower",
    "Driver Not Loaded": "DriverNotLoaded",
    "Timeout": "Timeout",
    "Interrupt Request Issue": "IrqIssue",
    "NVML Shared Library Not Found": "LibraryNotFound",
    "Function Not Found": "FunctionNotFound",
    "Corrupted infoROM": "CorruptedInforom",
    "GPU is lost": "GpuIsLost",
    "GPU requires restart": "ResetRequired",
    "The operating system has blocked the request.": "OperatingSystem",
    "RM has detected an NVML/RM version mismatch.": "LibRmVersionMismatch",
    "Driver/library version mismatch": "LibRmVersionMismatch",
    "Insufficient Memory": "Memory",
    "Unknown Error": "Unknown",
}
"""pynvml's messages (str(NVMLError)) -> the error's name."""
NVML_CODES = {19: "InUse", 21: "NoData", 22: "VgpuEccNotSupported", 23: "InsufficientResources",
              24: "FreqNotSupported", 25: "ArgumentVersionMismatch", 26: "Deprecated", 27: "NotReady",
              28: "GpuNotFound", 29: "InvalidState"}  # fmt: skip
"""Codes pynvml has no message for ("NVML Error with code 28")."""
NVML_ERROR = re.compile(r"(?:NVMLError_(?P<name>\w+)(?::\s*(?P<rest>.*))?|NVML Error with code (?P<code>\d+))")


def nvml_words(error: str) -> str | None:
    """Plain words for an error text that is exactly one of NVML's (`Not Supported`, `NVMLError_NotSupported`,
    `NVMLError_NoPermission: Insufficient Permissions`, `NVML Error with code 28`); None for any other text."""
    text = error.strip()
    name = NVML_MESSAGES.get(text)
    match = NVML_ERROR.fullmatch(text)
    if name is None and match is not None:
        if match["code"]:
            name = NVML_CODES.get(int(match["code"]))
        elif match["rest"] is None or match["rest"].strip() in NVML_MESSAGES or match["name"] in NVML_WORDS:
            name = match["name"]
    return NVML_WORDS.get(name or "")


def plain_error(error: str) -> str:
    """An error text for people: NVML's own terms in words (also after the call that failed:
    `nvmlDeviceGetCount: Insufficient Permissions`), anything else as it was recorded."""
    words = nvml_words(error)
    if words is None and ": " in error:
        call, _, rest = error.rpartition(": ")
        words = f"{call}: {nvml_words(rest)}" if nvml_words(rest) and not call.startswith("NVMLError") else None
    return words or error
