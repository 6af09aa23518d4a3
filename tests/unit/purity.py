"""A guard that makes any rule touching the world fail its test: rules are pure (DESIGN.md), so a saved report
re-diagnosed anywhere gives the same verdicts and fixes.

While a rule runs, an audit hook refuses file, directory, process and socket access (mldoctor's own package data,
such as the GPU table, excepted: it is part of the program; so is a module a rule imports where it is needed, such
as `statistics`), and the environment and the clock raise.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import mldoctor

PACKAGE = str(Path(mldoctor.__file__).resolve().parent)
FORBIDDEN_EVENTS = {
    "open",
    "os.listdir",
    "os.scandir",
    "os.walk",
    "glob.glob",
    "os.chdir",
    "os.remove",
    "os.rename",
    "os.mkdir",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.fork",
    "socket.connect",
    "socket.gethostname",
    "socket.getaddrinfo",
    "ctypes.dlopen",
}

_state = threading.local()


class ImpureRule(BaseException):
    """A rule read the environment, a file or the clock (a BaseException: crash isolation must not hide it)."""


def _hook(event: str, args: tuple) -> None:
    if not getattr(_state, "active", False) or event not in FORBIDDEN_EVENTS:
        return
    if _importing():
        return
    if event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
        path = os.fsdecode(args[0])
        if os.path.realpath(path).startswith(PACKAGE + os.sep):
            return
    raise ImpureRule(f"a rule is not pure: {event}{args[:1]!r}")


def _importing() -> bool:
    """The import system is at work (a module imported where it is needed): what it reads is the program."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


sys.addaudithook(_hook)  # audit hooks cannot be removed: this one acts only while a rule runs


class _GuardedEnviron(MutableMapping[str, str]):
    def _refuse(self, *args: object) -> None:
        raise ImpureRule("a rule is not pure: it read the environment")

    __getitem__ = __setitem__ = __delitem__ = __iter__ = __len__ = _refuse  # type: ignore[assignment]
    get = _refuse  # type: ignore[assignment]


def _no_clock(*args: object) -> float:
    raise ImpureRule("a rule is not pure: it read the clock")


@contextlib.contextmanager
def pure() -> Iterator[None]:
    """Run the body as a rule must run: without the environment, files, processes, sockets or the clock."""
    saved = os.environ, time.time, time.monotonic, time.time_ns
    os.environ = _GuardedEnviron()  # type: ignore[assignment]  # noqa: B003 (replaced, not cleared: restored below)
    time.time = time.monotonic = time.time_ns = _no_clock  # type: ignore[assignment]
    _state.active = True
    try:
        yield
    finally:
        _state.active = False
        os.environ, time.time, time.monotonic, time.time_ns = saved  # type: ignore[assignment]
