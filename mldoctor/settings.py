"""Every setting, defined once: its key in the policy file, its type, its default, what values are allowed, its help
and its command-line flag. The policy file loader (`config`) checks file values against this table; the command
line (`options`) derives its click options from it; `mldoctor config show` lists it. Defaults are not repeated:
thresholds come from `Policy`, probe settings from `ProbeOptions`, the daemon timeout from `GatherOptions`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mldoctor.policy import Band, Policy
from mldoctor.text import VERSION

BENCH_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8")
"""Matmul dtypes the probe can benchmark."""

Check = Callable[[Any], "str | None"]
"""None when a value is allowed, else what is allowed ("a number >= 0"), for one error line naming the key."""


@dataclass(frozen=True)
class Setting:
    """One row of the settings table: its policy-file key, type, default, allowed values, help and command-line flag."""

    name: str
    """As written in the policy file: `disk_fail_gib`, or `probe.image` for a key in the [probe] table."""
    type: Any
    """The value's type as the policy file holds it (a table for per-dtype values)."""
    default: Any
    help: str = ""
    flag: str | None = None
    """The command-line flag that overrides it, when there is one."""
    check: Check | None = None
    parse: Callable[[str], Any] | None = None
    """How one command-line word becomes a value (DTYPE=N pairs, comma lists); else the type converts it."""
    repeatable: bool = False
    metavar: str | None = None
    suggest: tuple[str, ...] = ()
    """Values shell completion offers for the flag (the check may allow more, e.g. GPU indices)."""

    @property
    def param(self) -> str | None:
        """The click parameter name of the flag (`--probe-timeout` -> `probe_timeout`)."""
        return self.flag.lstrip("-").replace("-", "_") if self.flag else None

    def problem(self, value: Any) -> str | None:
        return self.check(value) if self.check else None


def number(minimum: float = 0.0, maximum: float = 1e6, inclusive: bool = True) -> Check:
    """A finite number within bounds (inf, nan and absurd values are refused, not crashed on later)."""

    def check(value: Any) -> str | None:
        low_ok = value >= minimum if inclusive else value > minimum
        if isinstance(value, bool) or not math.isfinite(value) or not low_ok or value > maximum:
            return f"a number {'>=' if inclusive else '>'} {minimum:g} and <= {maximum:g}"
        return None

    return check


def _band(value: Band) -> str | None:
    ok = all(math.isfinite(v) for v in (value.warning, value.passing)) and 0 <= value.warning <= value.passing
    return None if ok else "{passing = P, warning = W} with 0 <= W <= P"


def _pattern(allowed: str, description: str) -> Check:
    return lambda value: None if re.fullmatch(allowed, value, re.IGNORECASE) else description


def _version(value: str) -> str | None:
    return None if value == "" or VERSION.fullmatch(value) else 'a version such as "550.54" or "12.4"'


def _dtypes(value: list[str]) -> str | None:
    return None if set(value) <= set(BENCH_DTYPES) else f"a list of some of {', '.join(BENCH_DTYPES)}"


def _tflops_by_dtype(value: dict[str, float]) -> str | None:
    positive = number(0, 1e5, inclusive=False)
    if all(dtype in BENCH_DTYPES and positive(tflops) is None for dtype, tflops in value.items()):
        return None
    return f"a table of DTYPE = TFLOPS with DTYPE one of {', '.join(BENCH_DTYPES)} and 0 < TFLOPS <= 100000"


def _bands_by_dtype(value: dict[str, Band]) -> str | None:
    if all(dtype in BENCH_DTYPES and _band(band) is None for dtype, band in value.items()):
        return None
    return f"a table of DTYPE = {{passing = P, warning = W}} (0 <= W <= P) with DTYPE one of {', '.join(BENCH_DTYPES)}"


def _pair(word: str) -> dict[str, float]:
    """`bf16=700` on the command line -> {"bf16": 700.0} (an unparsable number fails the check below)."""
    dtype, _, figure = word.partition("=")
    try:
        return {dtype: float(figure)}
    except ValueError:
        return {dtype: math.nan}


def _words(word: str) -> list[str]:
    """`a,b` -> [a, b]: lists may be given comma-separated, the flag repeated, or both."""
    return [item.strip() for item in word.split(",") if item.strip()]


POLICY_HELP: dict[str, tuple[str, str]] = {
    "disk_fail_gib": ("--disk-fail-gib", "FAIL a disk with less free space, in GiB"),
    "disk_warn_gib": ("--disk-warn-gib", "WARN on a disk with less free space, in GiB"),
    "require_gpus": ("--require-gpus", "FAIL unless this host has at least N NVIDIA GPUs (0: a GPU-less host skips)"),
    "expect_tflops": ("--expect-tflops", "Expected matmul TFLOP/s for a GPU the spec table lacks, e.g. bf16=700"),
    "min_driver_version": ("--min-driver-version", "FAIL an NVIDIA driver older than this (mldoctor fleet: per node)"),
    "min_cuda_version": ("--min-cuda-version", "FAIL a driver that supports an older CUDA (mldoctor fleet: per node)"),
}
"""The policy fields that also have a flag, with that flag and its help; the others are set in the file."""

PAIRS: dict[str, tuple[Any, Check]] = {
    "expect_tflops": (float, _tflops_by_dtype),
    "matmul_by_dtype": (Band, _bands_by_dtype),
}
"""Policy fields held as (dtype, value) pairs, written as tables in the file: expect_tflops = { bf16 = 700 }."""


def _policy_settings() -> list[Setting]:
    hints = typing.get_type_hints(Policy)
    table = []
    for f in dataclasses.fields(Policy):
        kind, default = hints[f.name], f.default
        flag, text = POLICY_HELP.get(f.name, (None, ""))
        if f.name in PAIRS:
            value_type, check = PAIRS[f.name]
            setting = Setting(f.name, dict[str, value_type], dict(default), text, flag, check, _pair, True, "DTYPE=N")
        elif kind is Band:
            setting = Setting(f.name, Band, default, text, flag, _band)
        elif kind is str:
            version = f.name.endswith("_version")
            setting = Setting(f.name, str, default, text, flag, _version if version else None,
                              metavar="VERSION" if version else None)  # fmt: skip
        elif kind == tuple[str, ...]:
            setting = Setting(f.name, list[str], list(default), text, flag, parse=_words, repeatable=True)
        elif kind in (int, float):
            setting = Setting(f.name, kind, default, text, flag, number(0, 1e6), metavar="N")
        else:  # float | None: a floor that follows another one when unset
            setting = Setting(f.name, float, default, text, flag, number(0, 1e6), metavar="N")
        table.append(setting)
    return table


def _fleet_settings() -> list[Setting]:
    """The `[fleet]` table: what `mldoctor fleet` judges with besides the version floors (its own flags)."""
    from mldoctor.fleet.policy import FleetPolicy

    fleet = FleetPolicy()
    ratio = number(0, 1, inclusive=False)
    return [
        Setting("fleet.straggler_ratio", float, fleet.straggler_ratio, "A GPU below this share of its model's fleet "
                "median is a straggler.", "--straggler-ratio", ratio),
        Setting("fleet.allreduce_slow_ratio", float, fleet.allreduce_slow_ratio, "A pair of nodes below this share "
                "of the median pair's all-reduce busbw is slow; a node in two slow pairs is suspect.",
                "--allreduce-slow-ratio", ratio),
        Setting("fleet.allreduce_min_busbw", float, fleet.allreduce_min_busbw, "Expected busbw of the whole set's "
                "all-reduce across nodes, GB/s (below it: WARN; 0: not graded).", "--allreduce-min-busbw",
                number(0, 1e6), metavar="GBPS"),
    ]  # fmt: skip


def _table() -> list[Setting]:
    from mldoctor.facts.options import GatherOptions, ProbeOptions

    probe = ProbeOptions()
    return [
        Setting("only", list[str], [], "Run only these checks (id, glob or prefix; repeatable).", "--only",
                parse=_words, repeatable=True, metavar="ID"),
        Setting("skip", list[str], [], "Leave these checks out (id, glob or prefix; repeatable).", "--skip",
                parse=_words, repeatable=True, metavar="ID"),
        Setting("strict", bool, False, "Treat warnings as failures.", "--strict"),
        Setting("timeout", float, GatherOptions.timeout, "Seconds to wait for each answer from the daemon or a "
                "helper command.", "--timeout", number(0.1, 600)),
        *_policy_settings(),
        Setting("probe.image", str, probe.image, "Run the probe in this image (yours) instead of mldoctor's.",
                "--image", metavar="IMAGE"),
        Setting("probe.gpus", str, probe.gpus, "GPUs for the probe container: auto (all when this host has any), "
                "all, none or 0,1.", "--gpus",
                _pattern(r"auto|all|none|\d+(,\d+)*", "auto, all, none or GPU indices such as 0,1"),
                suggest=("auto", "all", "none")),
        Setting("probe.shm_size", str, probe.shm_size, "The probe container's /dev/shm (16g).", "--shm-size",
                _pattern(r"\d+[bkmg]?", "a size such as 16g, 512m or a number of bytes"), metavar="SIZE"),
        Setting("probe.duration", float, probe.duration, "Benchmark seconds per GPU (or for the CPU when there is "
                "none); 0 skips the benchmarks.", "--duration", number(0, 3600)),
        Setting("probe.dtypes", list[str], list(probe.dtypes), "Matmul dtypes to benchmark, e.g. bf16,fp8 "
                "[default: all the GPU supports].", "--dtypes", _dtypes, _words, True, "LIST"),
        Setting("probe.timeout", float, probe.timeout, "Seconds the probe may take besides its benchmarks; then "
                "its container is killed and removed.", "--probe-timeout", number(1, 3600)),
        *_fleet_settings(),
    ]  # fmt: skip


_SETTINGS: dict[str, Setting] = {}


def settings() -> dict[str, Setting]:
    """The table by name (built once: it reads the dataclasses' defaults)."""
    if not _SETTINGS:
        _SETTINGS.update((s.name, s) for s in _table())
    return _SETTINGS


def by_param() -> dict[str, Setting]:
    """The settings that have a flag, by click parameter name."""
    return {s.param: s for s in settings().values() if s.param}
