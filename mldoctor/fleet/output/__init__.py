"""Fleet renderers: each module has `render(fleet) -> str`, looked up by name, and nothing else to call.

Every string that came from a report is escaped here for its destination (a terminal, Markdown, XML, a Prometheus
label, HTML); the summaries were already bounded and stripped of control characters when they were read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mldoctor.fleet.aggregate import Fleet

FORMATS = ("table", "json", "markdown", "junit", "prometheus", "html")


def renderer(name: str) -> Callable[[Fleet], str]:
    if name not in FORMATS:
        raise ValueError(f"no fleet renderer {name!r}; one of {', '.join(FORMATS)}")
    return importlib.import_module(f"mldoctor.fleet.output.{name}").render
