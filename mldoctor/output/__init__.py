"""Renderers: each module's `render(report, options) -> str` turns a Report into one format; nothing here gathers
or judges. They are looked up by name (`render("junit", report, options)`), imported only when asked for, and
written with `write_output`, which never clobbers what is not a regular file.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mldoctor.model import Report


@dataclass(frozen=True)
class RenderOptions:
    """What a renderer may be told: the same for every format (each reads what applies to it)."""

    verbose: bool = False
    """Every finding's details (table, bench)."""
    width: int = 120
    """Columns for plain text; commands are never wrapped, only prose."""
    strict: bool = False
    """Warnings count as failures (JUnit failures, GitHub errors), as they do for the exit code."""


DEFAULT = RenderOptions()

RENDERERS = {
    "table": "mldoctor.output.table",
    "json": "mldoctor.output.json",
    "junit": "mldoctor.output.junit",
    "markdown": "mldoctor.output.markdown",
    "prometheus": "mldoctor.output.prometheus",
    "github": "mldoctor.output.github",
    "bench": "mldoctor.output.bench",
}
"""Format name -> the module whose `render` produces it."""

Renderer = Callable[["Report", RenderOptions], str]


def renderer(name: str) -> Renderer:
    return importlib.import_module(RENDERERS[name]).render


def render(name: str, report: Report, options: RenderOptions = DEFAULT) -> str:
    return renderer(name)(report, options)


def write_output(path: str, text: str, private: bool = False) -> None:
    """Write `text` to `path` so that readers never see half of it and nothing but a file is replaced.

    `-` is stdout. A device, FIFO or socket (`/dev/null`, `/dev/stdout`, a named pipe) is written in place: as
    root, renaming over /dev/null would replace the machine's /dev/null. A regular file or a new path is written
    to a temp file beside it and renamed over it (a symlink is replaced, its target left alone). The file gets the
    umask's mode (a node_exporter running as its own user must read a .prom file), or 0600 when `private`.
    """
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    _replace(path, text.encode("utf-8"), 0o600 if private else 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace(path: str, data: bytes, mode: int) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
