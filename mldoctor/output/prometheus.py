"""node_exporter textfile format: one state set per check, counts, and the time of the run.

Timestamps are not allowed in textfiles (node_exporter rejects them); the run time is a gauge instead.
"""

from __future__ import annotations

from datetime import datetime

from mldoctor.model import Report, Status
from mldoctor.output import DEFAULT, RenderOptions


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    host = _label(report.host)
    lines = [
        "# HELP mldoctor_check_status Outcome of each mldoctor check (1 for its status, 0 for the others).",
        "# TYPE mldoctor_check_status gauge",
    ]
    for result in report.results:
        for status in Status:
            value = 1 if result.status is status else 0
            lines.append(
                f'mldoctor_check_status{{host="{host}",check="{_label(result.id)}",'
                f'status="{status.value.lower()}"}} {value}'
            )
    counts = report.counts()
    lines += ["# HELP mldoctor_checks Number of checks per status in the last run.", "# TYPE mldoctor_checks gauge"]
    lines += [f'mldoctor_checks{{host="{host}",status="{s.value.lower()}"}} {counts[s]}' for s in Status]
    created = datetime.fromisoformat(report.created.replace("Z", "+00:00")).timestamp()
    lines += [
        "# HELP mldoctor_last_run_timestamp_seconds When the last mldoctor run finished, in Unix time.",
        "# TYPE mldoctor_last_run_timestamp_seconds gauge",
        f'mldoctor_last_run_timestamp_seconds{{host="{host}"}} {created:.0f}',
    ]
    return "\n".join(lines) + "\n"
