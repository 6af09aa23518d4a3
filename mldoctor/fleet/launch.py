"""Collecting node reports from an engine's stdout, with a deadline.

The engine (srun) runs one task per node; each task prints `@mldoctor-fleet` lines (see `frames`). This module
reads them as they come, hands each finished report on at once (the aggregate keeps only its summary), and stops
at the deadline: a node that started and never finished is "hung", one the engine named but never heard from is
"unreachable"; both are "no report" in the fleet verdict. Unrelated output is ignored; the engine's stderr is kept
(its last lines) to explain a launch that failed.
"""

from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from mldoctor import interrupts
from mldoctor.fleet import frames, hostlist
from mldoctor.fleet.document import MAX_DOCUMENT, Document
from mldoctor.fleet.text import bounded

STDERR_LINES = 20
GRACE = 5.0
"""Seconds between asking the engine to stop (SIGTERM, which srun forwards to its tasks) and killing it."""


class LaunchError(RuntimeError):
    """The engine could not be started, or failed before any node started: one line, for the operator."""


@dataclass
class Collection:
    """One engine run's outcome besides the reports themselves, filled in while they are read."""

    command: Sequence[str]
    expected: set[str] = field(default_factory=set)
    started: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    stderr: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_LINES))
    returncode: int | None = None
    timed_out: bool = False
    seconds: float = 0.0

    def nodes(self) -> list[str]:
        """Every node that should have reported: those the engine named, those that started."""
        return sorted(self.expected | self.started)

    @property
    def silent(self) -> list[str]:
        return [node for node in self.nodes() if node not in self.reported]

    def stderr_tail(self) -> str:
        return " / ".join(line for line in self.stderr if line) or "(nothing on stderr)"


class Expected:
    """The expected nodes, known only once the run is over: an iterable the aggregate reads after the reports."""

    def __init__(self, collection: Collection, extra: Sequence[str] = ()) -> None:
        self.collection, self.extra = collection, list(extra)

    def __iter__(self) -> Iterator[str]:
        return iter([*self.collection.nodes(), *self.extra])


def _pump(stream: IO[str], sink: queue.Queue[tuple[str, str | None]], tag: str) -> None:
    """Move the lines of `stream` into `sink` (None at the end): a reader thread per pipe, so a deadline can be
    kept while neither pipe has a full line to give."""
    try:
        while line := stream.readline(MAX_DOCUMENT + 1):
            sink.put((tag, line))
    finally:
        sink.put((tag, None))


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM the engine's process group (srun forwards it to the tasks), then SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, GRACE), (signal.SIGKILL, GRACE)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _note_nodelist(collection: Collection, nodelist: str) -> None:
    if nodelist and nodelist != "-":
        try:
            collection.expected.update(n for n in hostlist.expand(nodelist) if frames.valid_node(n))
        except hostlist.HostlistError:
            collection.stderr.append(f"(a node sent a host list that cannot be read: {bounded(nodelist, 80)})")


def collect(command: Sequence[str], deadline: float, collection: Collection) -> Iterator[Document]:
    """Run `command` and yield each node's report as it completes, until the command ends or `deadline` seconds
    have passed; then stop it. `collection` records who started, who reported, and the command's stderr."""
    began = time.monotonic()
    try:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise LaunchError(f"cannot run {command[0]}: {exc.strerror or exc}") from None
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    pumps = [
        threading.Thread(target=_pump, args=(stream, lines, tag), daemon=True)
        for stream, tag in ((process.stdout, "out"), (process.stderr, "err"))
    ]
    for pump in pumps:
        pump.start()
    assembler = frames.Assembler(os.path.basename(command[0]))
    open_streams = 2
    try:
        while open_streams:
            left = deadline - (time.monotonic() - began)
            if left <= 0:
                collection.timed_out = True
                break
            try:
                tag, line = lines.get(timeout=min(left, interrupts.WAKE_S))  # Ctrl-C acts at once (see join)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
            elif tag == "err":
                collection.stderr.append(bounded(line, 300))
            elif frames.is_frame(line):
                for document in assembler.feed(line):
                    if document.name_hint:
                        collection.reported.add(document.name_hint)
                    yield document
                for node, nodelist in assembler.started.items():
                    if node not in collection.started:
                        collection.started.add(node)
                        _note_nodelist(collection, nodelist)
    finally:
        _stop(process)
        collection.returncode = process.wait()
        collection.seconds = time.monotonic() - began
        for pump, stream in zip(pumps, (process.stdout, process.stderr), strict=True):
            pump.join(GRACE)
            if not pump.is_alive() and stream is not None:
                stream.close()
    for document in assembler.unfinished():  # cut off at the deadline or by a task that died mid-report
        if document.name_hint and not collection.timed_out:
            collection.reported.add(document.name_hint)
            yield document
