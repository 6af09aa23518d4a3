"""Renderers: each takes a Report and returns text. Nothing here gathers or judges."""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomic(path: str, text: str) -> None:
    """Write via a temp file in the same directory and rename: readers never see half a report."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
