"""One document as read from a source: the parsed report, or why it could not be read.

A module of its own so that both the file readers (`sources`) and the engine-output reader (`frames`) make them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_DOCUMENT = 64 << 20
"""The largest report read (a real one is tens of KiB): garbage or a wrong file must not exhaust memory."""


@dataclass(frozen=True, slots=True)
class Document:
    """One document as read from a source (a file, an engine's output): the parsed report, or why it could
    not be read."""

    origin: str
    data: Any = None
    error: str | None = None
    name_hint: str | None = None
    """The file's stem for a single-report `.json` file (the sweep names each after its node), or the node an
    engine's task said it ran on."""
