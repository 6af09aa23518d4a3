"""node_exporter textfile format: one state set per check, counts, the time of the run, and the benchmark figures.

Timestamps are not allowed in textfiles (node_exporter rejects them); the run time is a gauge instead. Each family
has its HELP and TYPE once, its samples together. Benchmark figures are in base units (FLOP/s, bytes/s: the unit
label says which), so `mldoctor_bench_measured / mldoctor_bench_expected` and dashboards need no unit table.
Label values come from the report (a host name, a GPU name from NVML): untrusted, escaped as the format requires.
"""

from __future__ import annotations

import math
from datetime import datetime

from mldoctor.model import Report, Status
from mldoctor.output import DEFAULT, RenderOptions
from mldoctor.text import printable

BASE_UNITS = {
    "TFLOP/s": ("flop_per_second", 1e12),
    "GFLOP/s": ("flop_per_second", 1e9),
    "GB/s": ("bytes_per_second", 1e9),
}
"""A benchmark row's unit -> its base unit's label value and the factor to get there."""

BENCH_FAMILIES = (
    (
        "mldoctor_bench_measured",
        "measured",
        "Benchmark figure the probe measured (matmul per dtype, copies), in the unit label's base unit.",
    ),
    (
        "mldoctor_bench_expected",
        "expected",
        "Figure a healthy GPU of this model achieves in the same benchmark, in the unit label's base unit.",
    ),
    ("mldoctor_bench_peak", "peak", "Datasheet peak for the same benchmark, in the unit label's base unit."),
    ("mldoctor_bench_ratio", "ratio", "Measured over expected figure of the same benchmark (1 is as expected)."),
)
"""Family, the BenchRow field it shows, HELP text. All but the ratio are in the row's unit, converted."""


def _label(value: str) -> str:
    return printable(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{_label(value)}"' for name, value in labels.items()) + "}"


def _number(value: float) -> str:
    """Twelve significant digits: more than any benchmark resolves, without 50960000000000.01 from unit scaling."""
    return format(float(value), ".12g")


def _bench(report: Report, host: str) -> list[str]:
    lines: list[str] = []
    for name, attribute, help_text in BENCH_FAMILIES:
        samples: dict[str, str] = {}  # by label set: a series twice would make node_exporter drop the whole file
        for row in report.benchmarks:
            value = getattr(row, attribute)
            if value is None or not math.isfinite(value):
                continue
            unit, factor = BASE_UNITS.get(row.unit, (row.unit, 1.0))
            labels = {"host": host, "gpu": row.gpu, "model": row.device, "metric": row.metric}
            if attribute != "ratio":
                labels["unit"], value = unit, value * factor
            samples.setdefault(_labels(**labels), f"{name}{_labels(**labels)} {_number(value)}")
        if samples:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples.values()]
    return lines


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    host = report.host
    lines = [
        "# HELP mldoctor_check_status Outcome of each mldoctor check (1 for its status, 0 for the others).",
        "# TYPE mldoctor_check_status gauge",
    ]
    for result in report.results:
        for status in Status:
            value = 1 if result.status is status else 0
            labels = _labels(host=host, check=result.id, status=status.value.lower())
            lines.append(f"mldoctor_check_status{labels} {value}")
    counts = report.counts()
    lines += ["# HELP mldoctor_checks Number of checks per status in the last run.", "# TYPE mldoctor_checks gauge"]
    lines += [f"mldoctor_checks{_labels(host=host, status=s.value.lower())} {counts[s]}" for s in Status]
    lines += _bench(report, host)
    created = datetime.fromisoformat(report.created.replace("Z", "+00:00")).timestamp()
    lines += [
        "# HELP mldoctor_last_run_timestamp_seconds When the last mldoctor run finished, in Unix time.",
        "# TYPE mldoctor_last_run_timestamp_seconds gauge",
        f"mldoctor_last_run_timestamp_seconds{_labels(host=host)} {created:.0f}",
    ]
    return "\n".join(lines) + "\n"
