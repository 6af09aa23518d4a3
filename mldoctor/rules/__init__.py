"""Rules: pure functions from facts to findings, one module per area, registered when imported.

Areas load on demand (`load`), so `mldoctor check --only docker,host` does not pay for importing the probe's, the
benchmarks' and the NVIDIA modules; `REGISTRY` loads every area.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from mldoctor.rules.registry import AREAS, Check, registered

__all__ = ["REGISTRY", "Check", "load"]


def load(areas: Iterable[str] | None = None) -> dict[str, Check]:
    """Import the rule modules of `areas` (all when None) in chain order; the registry, in that order."""
    wanted = set(AREAS) if areas is None else set(areas)
    for area in AREAS:
        if area in wanted:
            importlib.import_module(f"mldoctor.rules.{area}")
    return registered()


def __getattr__(name: str) -> Any:
    if name == "REGISTRY":  # every check: `from mldoctor.rules import REGISTRY`
        return load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
