"""NVIDIA Xid error codes that matter to a training node: what each means and what to do (from NVIDIA's Xid catalog
and the DCGM / GPU health-check practice). Reference data, read by the nvidia.xid check."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Xid:
    """What one Xid code means, what to do about it, and whether the hardware is to blame."""

    meaning: str
    action: str
    hardware: bool
    """The GPU or its board is at fault (reset, drain, RMA), rather than the application that ran on it."""


XIDS: dict[int, Xid] = {
    13: Xid("graphics engine exception (usually the application: an illegal memory access)", "check the job's code; "
            "if it recurs with different jobs, run the GPU's diagnostics", False),
    31: Xid("GPU memory page fault (usually the application)", "check the job's code (an out-of-bounds access)", False),
    43: Xid("the GPU stopped processing (the application was killed)", "usually harmless after a crash", False),
    45: Xid("preemptive cleanup after an error", "follows another Xid: look at the one before it", False),
    48: Xid("double-bit ECC error: memory returned corrupted data", "reset the GPU (nvidia-smi -r); if it "
            "recurs, drain the node and have the GPU replaced", True),
    61: Xid("internal microcontroller breakpoint", "reset the GPU; if it recurs, update the driver", True),
    62: Xid("internal microcontroller halt", "reset the GPU; if it recurs, update the driver or replace the GPU", True),
    63: Xid("a memory page retirement or row remapping was recorded", "reset the GPU to apply it", False),
    64: Xid("a memory page retirement or row remapping failed", "drain the node: the GPU needs replacing", True),
    74: Xid("NVLink error", "reset the GPUs; if it recurs, check the NVLink bridge or baseboard", True),
    79: Xid("the GPU has fallen off the bus", "reboot; if it recurs, check power and cooling, reseat or replace it",
            True),
    92: Xid("high single-bit ECC error rate", "watch it; a GPU that keeps it up needs replacing", False),
    94: Xid("contained ECC error: the application on that GPU was stopped", "restart the application", False),
    95: Xid("uncontained ECC error: every application on the GPU is affected", "reset the GPU (nvidia-smi -r) "
            "or reboot; if it recurs, replace the GPU", True),
    119: Xid("GSP firmware timeout", "reset the GPU or reboot; update the driver if it recurs", True),
    120: Xid("GSP firmware error", "reset the GPU or reboot; update the driver if it recurs", True),
}  # fmt: skip
