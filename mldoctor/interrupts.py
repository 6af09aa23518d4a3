"""Ending a run that was interrupted (Ctrl-C, SIGTERM): undo what it started outside itself, then end at once.

What a run starts outside the process (a probe container, a host probe, an image check's container) is registered
here with the way to undo it, and forgotten once the run has undone it itself. Ctrl-C raises KeyboardInterrupt in
the main thread and SIGTERM raises `Terminated` there (`sigterm_raises`), wherever the main thread is: usually
waiting for a gatherer thread that is still doing the work. `cli.main` then calls `undo_all`, and the entry point
ends the process with `end`:
- every pending undo runs in a thread of its own, all of them within UNDO_DEADLINE_S whatever the daemon does
  (not the run's --timeout per call, which may be a minute);
- the process ends with os._exit, not a normal interpreter exit, which would first join worker threads and flush
  logging handlers that the abandoned gatherer threads may still hold, for as long as their daemon calls take.
An undo that does not finish in time is named on stderr with the command that finishes it by hand. The atexit hook
runs whatever is still pending on any other way out (an exception inside a library, a test calling `main`).

A run that ends normally ends through `finish`: once it has nothing left to undo and no other thread is still
working, the process ends at once too, without the interpreter's teardown (freeing every module of docker-py,
requests and click one by one: about 25 ms, a sixth of a `check`, for nothing a finished run needs).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from concurrent.futures import Future

UNDO_DEADLINE_S = 15.0
"""All undos together, from the interrupt: removing a container takes well under a second on a daemon that answers;
a daemon that does not is not waited for longer (the next run removes what is left)."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread the way Ctrl-C raises KeyboardInterrupt: a BaseException, so that no
    `except Exception` in a gatherer swallows it, and every `finally` on the way out runs."""

    code = 128 + signal.SIGTERM


@dataclass(frozen=True)
class Undo:
    """How to undo what a run started outside itself, and what to tell the user when it is not undone in time."""

    what: str
    """What is left if this never runs: `probe container mldoctor-probe-1a2b`."""
    by_hand: str
    """The command that undoes it by hand: `docker rm -f mldoctor-probe-1a2b`."""
    run: Callable[[], None]


_pending: dict[str, Undo] = {}
_lock = threading.Lock()
_closing = threading.Event()


class Closing(RuntimeError):
    """The run is being undone: nothing new may start (a thread still running would start what no one undoes)."""


def register(key: str, undo: Undo) -> None:
    """Before starting what `undo` undoes; refused (Closing) once the interrupt path has begun."""
    with _lock:
        if _closing.is_set():
            raise Closing(f"not started: mldoctor is ending ({undo.what})")
        _pending[key] = undo


def forget(key: str) -> None:
    """The run undid it itself."""
    with _lock:
        _pending.pop(key, None)


@atexit.register
def undo_all(deadline_s: float = UNDO_DEADLINE_S) -> list[Undo]:
    """Run every pending undo, side by side, for at most `deadline_s` in all. Those that failed or were still
    running then are named on stderr, with the command that finishes them by hand, and returned; their threads are
    left to the process's end."""
    with _lock:
        _closing.set()
        pending = list(_pending.values())
        _pending.clear()
    failures: dict[int, str] = {}
    threads = []
    for index, undo in enumerate(pending):
        thread = threading.Thread(target=_attempt, args=(undo, index, failures), name="mldoctor-undo", daemon=True)
        thread.start()
        threads.append(thread)
    ends = time.monotonic() + deadline_s
    for thread in threads:
        thread.join(max(0.0, ends - time.monotonic()))
    unfinished = []
    for index, (undo, thread) in enumerate(zip(pending, threads, strict=True)):
        why = f"no answer within {deadline_s:g} s" if thread.is_alive() else failures.get(index)
        if why is None:
            continue
        unfinished.append(undo)
        with contextlib.suppress(Exception):
            print(
                f"mldoctor: the {undo.what} is still there ({why}); `{undo.by_hand}` removes it "
                "(the next run of mldoctor does too)",
                file=sys.stderr,
            )
    return unfinished


def _attempt(undo: Undo, index: int, failures: dict[int, str]) -> None:
    try:
        undo.run()
    except Exception as exc:  # named by undo_all; the next run cleans up what is left
        failures[index] = f"{type(exc).__name__}: {exc}"[:300]


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM (a CI job cancelled, `timeout`, `kill`) raises `Terminated` in the main thread, so the
    run ends through its `finally` clauses and `undo_all`, like Ctrl-C; the previous handler comes back afterwards.
    Nested uses and other threads change nothing."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is _raise:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise(signum: int, frame: Any) -> None:
    raise Terminated


def finish(code: int) -> NoReturn:
    """End a run that finished (exit `code`): what it left pending is undone first, normally nothing. With no other
    thread still working, the process ends now (`end`); a thread still working (a helper command that outlived its
    section's deadline) is waited for by the usual interpreter exit, as it kills its command at its own timeout."""
    undo_all()
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    end(code)


WAKE_S = 0.2
"""How long the main thread sleeps at most in one wait (`join`, `wait`)."""


def join(thread: threading.Thread, timeout: float) -> None:
    """`thread.join(timeout)` for the main thread, in slices of WAKE_S. Python runs signal handlers in the main
    thread only, and a wait there is cut short only by a signal the kernel delivers to that thread; the kernel may
    deliver SIGTERM or SIGINT to any thread, and one delivered to a gatherer left Ctrl-C waiting for the whole
    timeout (the probe's: over a minute). Each slice ends with a bytecode, where a pending handler runs."""
    _in_slices(thread.is_alive, thread.join, timeout)


def wait(future: Future[Any], timeout: float) -> None:
    """`concurrent.futures.wait([future], timeout)` for the main thread, in slices of WAKE_S (see `join`)."""
    from concurrent.futures import wait as wait_for

    _in_slices(lambda: not future.done(), lambda seconds: wait_for([future], seconds), timeout)


def _in_slices(pending: Callable[[], bool], wait_at_most: Callable[[float], object], timeout: float) -> None:
    ends = time.monotonic() + timeout
    while pending():
        remaining = ends - time.monotonic()
        if remaining <= 0:
            return
        wait_at_most(min(remaining, WAKE_S))


def end(code: int) -> NoReturn:
    """End the process now with `code`, once what was printed is flushed: after an interrupt, nothing that other
    threads are still doing is waited for (see the module's docstring)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
