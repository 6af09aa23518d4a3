"""The fleet's policy: what the fleet judgement takes from the policy file and the flags, and its defaults.

A module of its own, light (no report model, no judgement), because the settings table (`mldoctor.settings`)
reads its defaults for `mldoctor config show` and for checking a policy file's `[fleet]` table, on every command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

STRAGGLER_RATIO = 0.90
ALLREDUCE_SLOW_RATIO = 0.8
"""A pair below this share of the median pair is slow. Pairs of a healthy fabric agree within a few percent; 0.8
leaves room for the noise of a short run."""

SETTINGS = {
    "straggler_ratio": "fleet.straggler_ratio",
    "min_driver_version": "min_driver_version",
    "min_cuda_version": "min_cuda_version",
    "allreduce_slow_ratio": "fleet.allreduce_slow_ratio",
    "allreduce_min_busbw": "fleet.allreduce_min_busbw",
}
"""Each field's key in the settings table: `[fleet]` in the policy file, and the two version floors that a node's
own check reads too (`min_driver_version`, `min_cuda_version` at the top level)."""


@dataclass(frozen=True)
class FleetPolicy:
    """What the fleet is judged by: the straggler and slow-pair ratios, the version floors, the all-reduce minimum."""

    straggler_ratio: float = STRAGGLER_RATIO
    min_driver_version: str = ""
    min_cuda_version: str = ""
    allreduce_slow_ratio: float = ALLREDUCE_SLOW_RATIO
    allreduce_min_busbw: float = 0.0
    """GB/s expected of the whole set's all-reduce (0: not graded)."""

    def floors(self) -> dict[str, str]:
        return {"driver": self.min_driver_version, "cuda_driver": self.min_cuda_version}

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> FleetPolicy:
        """From the settings' effective values (defaults < policy file < flags), by their keys in the table."""
        return cls(**{f.name: values[SETTINGS[f.name]] for f in fields(cls)})
