"""The Report as versioned JSON: the machine-readable contract (stable check ids, schema_version).

Report text is kept exactly, escaped by JSON; the document is ASCII, so a lone surrogate (an environment byte that
is not UTF-8) or a control character in a fact can neither corrupt it nor fail to encode when it is written.
"""

from __future__ import annotations

import json

from mldoctor.model import Report, Status
from mldoctor.output import DEFAULT, RenderOptions
from mldoctor.serde import to_data


def render(report: Report, options: RenderOptions = DEFAULT) -> str:
    data = to_data(report)
    counts = report.counts()
    data["summary"] = {status.value: counts[status] for status in Status}
    return json.dumps(data, indent=2, ensure_ascii=True) + "\n"
