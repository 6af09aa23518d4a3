"""mldoctor on a real terminal: each command runs in a pseudo-terminal and what it wrote is replayed on a small
terminal emulator (cursor moves, line erases, autowrap), so a test reads the screen the user is left with, not
the bytes: an error line that a spinner's clean-up erased is gone from the screen even though it was written."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import call

from mldoctor.probe import launch

ROOT = Path(__file__).resolve().parents[2]
SPINNER = re.compile("[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]")
CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


def screen(raw: bytes, columns: int = 80) -> list[str]:
    """The rows a VT100-style terminal `columns` wide shows after `raw` (colours dropped, trailing blanks cut)."""
    text = raw.decode("utf-8", errors="replace")
    rows, row, col, i = [""], 0, 0, 0
    while i < len(text):
        char = text[i]
        match = CSI.match(text, i) if char == "\x1b" else None
        if match:
            args, command = match.groups()
            count = int(args) if args.isdigit() else 1
            if command == "A":
                row = max(0, row - count)
            elif command == "B":
                row += count
            elif command == "G":
                col = count - 1
            elif command == "K":
                rows[row] = "" if args == "2" else rows[row][:col] if args in ("", "0") else rows[row]
            elif command == "J" and args in ("", "0"):
                rows[row], rows[row + 1 :] = rows[row][:col], []
            i = match.end()
            while len(rows) <= row:
                rows.append("")
            continue
        if char == "\x1b":  # another escape (charset, keypad): two characters
            i += 2
            continue
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
        elif char == "\b":
            col = max(0, col - 1)
        elif char >= " ":
            if col >= columns:  # autowrap
                row, col = row + 1, 0
            while len(rows) <= row:
                rows.append("")
            line = rows[row].ljust(col)
            rows[row] = line[:col] + char + line[col + 1 :]
            col += 1
        while len(rows) <= row:
            rows.append("")
        i += 1
    return [r.rstrip() for r in rows]


@dataclass
class Terminal:
    code: int
    raw: bytes
    stdout: str | None
    """stdout when it was a pipe, not the terminal."""
    columns: int
    pid: int

    @property
    def rows(self) -> list[str]:
        return [r for r in screen(self.raw, self.columns) if r]


def run_in_terminal(
    argv: list[str],
    *,
    columns: int = 80,
    env: dict[str, str] | None = None,
    stdout_pipe: bool = False,
    timeout: float = 60.0,
    interrupt_when: Callable[[bytes], bool] | None = None,
) -> Terminal:
    """Run `python argv...` with stdin, stderr (and stdout unless `stdout_pipe`) on a pseudo-terminal of
    `columns` x 40; `interrupt_when(output so far)` true sends Ctrl-C's SIGINT once, as the terminal would."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "CI")}
    environment.update({"PYTHONPATH": str(ROOT), "TERM": "xterm-256color", **(env or {})})
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdin=slave,
        stdout=subprocess.PIPE if stdout_pipe else slave,
        stderr=slave,
        env=environment,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    raw, interrupted, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    chunk = b""
                if not chunk:
                    break
                raw += chunk
            if interrupt_when and not interrupted and interrupt_when(raw):
                os.killpg(proc.pid, signal.SIGINT)
                interrupted = True
        stdout = proc.stdout.read().decode() if proc.stdout else None
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Terminal(code, raw, stdout, columns, proc.pid)


FAKE_BUILD = """
import sys, time
from mldoctor.probe import launch

def build_image(base, tag, version, wheelhouse=None, timeout=60.0, network=None):
    for text in ["Step 1/2 : ARG BASE_IMAGE=" + base, " ---> Running in 0123abcd",
                 "Removing intermediate container 0123abcd", "Step 2/2 : FROM " + base]:
        time.sleep(0.25)  # the spinner redraws between log lines
        yield launch.BuildEvent(text=text)
    yield launch.BuildEvent(text="pull access denied for " + base + " (network " + str(network) + ")", error=True)

launch.build_image = build_image
from mldoctor.cli import main
main(sys.argv[1:])
"""


def test_a_failed_build_on_a_terminal_leaves_its_log_and_its_error_on_the_screen():
    term = run_in_terminal(["-c", FAKE_BUILD, "image", "build", "--base-image", "nope:1", "--network", "host"])
    assert term.code == 1
    assert term.rows == [
        "Step 1/2 : ARG BASE_IMAGE=nope:1",
        " ---> Running in 0123abcd",
        "Removing intermediate container 0123abcd",
        "Step 2/2 : FROM nope:1",
        "mldoctor: build failed: pull access denied for nope:1 (network host)",
    ]
    assert b"\x1b[?25h" in term.raw  # the cursor the spinner hid is shown again


FAKE_PULL = """
import sys, time
from mldoctor.probe import launch

def pull_image(image, timeout=60.0):
    for done in range(0, 100, 20):
        time.sleep(0.1)  # the bar redraws
        yield launch.BuildEvent(text="Downloading", layer="abc123", current=done << 20, total=100 << 20)
    yield launch.BuildEvent(text="unexpected EOF while pulling " + image, error=True)

launch.pull_image = pull_image
from mldoctor.cli import main
main(sys.argv[1:])
"""


def test_a_failed_pull_on_a_terminal_leaves_its_error_on_the_screen():
    term = run_in_terminal(["-c", FAKE_PULL, "image", "build", "--pull", "--base-image", "nope:1"])
    assert term.code == 1
    assert "pulling" in CSI.sub("", term.raw.decode())  # the bar was shown, then cleared
    assert term.rows == ["mldoctor: pull failed: unexpected EOF while pulling nope:1"]


def test_a_build_piped_prints_the_log_on_stdout_and_the_error_on_stderr(capsys, monkeypatch):
    chunks = [
        {"stream": "Step 1/2 : ARG BASE_IMAGE=b:1"},  # the legacy builder sends a step and its newline apart
        {"stream": "\n"},
        {"stream": " ---> Running in 0123\n"},
        {"stream": "half a "},
        {"stream": "line\nand another\n"},
        {"error": "The command '/bin/sh -c pip install' returned a non-zero code: 1"},
    ]
    seen: dict[str, object] = {}

    class Client:
        def build(self, **kwargs: object) -> object:
            seen.update(kwargs)
            return iter(chunks)

    class Connected:
        client = Client()

        def close(self) -> None:
            seen["closed"] = True

    monkeypatch.setattr(launch, "resolve_endpoint", lambda: None)
    monkeypatch.setattr(launch, "open_client", lambda endpoint, timeout: Connected())
    code, out, err = call(capsys, "image", "build", "--base-image", "b:1", "--network", "host")
    assert code == 1
    assert out.splitlines() == ["Step 1/2 : ARG BASE_IMAGE=b:1", " ---> Running in 0123", "half a line", "and another"]
    assert err == "mldoctor: build failed: The command '/bin/sh -c pip install' returned a non-zero code: 1\n"
    assert seen["network_mode"] == "host" and seen["closed"] is True


def test_build_events_keep_a_line_that_ends_without_a_newline():
    chunks = [{"stream": "Successfully built 0123"}, {"stream": "\r\n"}, {"stream": "x"}]
    events = list(launch.build_events(iter(chunks)))
    assert [e.text for e in events] == ["Successfully built 0123", "x"]


@pytest.mark.docker
def test_a_base_image_that_cannot_be_had_is_an_error_on_the_screen():
    """The issue's own reproduction, on the real daemon: the base cannot be pulled (no registry is reachable here,
    and the name does not exist anywhere)."""
    from provided import require_docker

    require_docker()
    term = run_in_terminal(
        ["-m", "mldoctor", "image", "build", "--base-image", "does-not-exist:1", "--tag", "mldoctor-test-never:1"],
        timeout=120,
    )
    assert term.code == 1
    assert any(row.startswith("mldoctor: build failed: ") for row in term.rows), term.rows
    assert not any(SPINNER.search(row) for row in term.rows), term.rows


SLOW_GATHER = """
import logging, os, sys, time
from mldoctor import runner

real_gather = runner.gather

def gather(sections, options):  # the probe's own words, as facts/probe.py logs them, at a pace a test can afford
    say = logging.getLogger("mldoctor.progress").info
    time.sleep(0.3)  # the daemon's facts first
    say("starting the probe container in fake:1 (GPUs: none)")
    time.sleep(0.3)
    say("waiting for the probe in fake:1: it imports torch", extra={"usual_s": 0.5})
    time.sleep(float(os.environ["SLOW_S"]))
    return real_gather(sections, options)

runner.gather = gather
from mldoctor.cli import main
main(sys.argv[1:])
"""


def spinner_lines(raw: bytes) -> list[str]:
    """Every distinct text the spinner showed, in order."""
    text = CSI.sub("", raw.decode("utf-8", errors="replace"))
    seen: list[str] = []
    for frame in re.findall(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] ([^\r\n]*)", text):
        if frame.strip() and frame not in seen:
            seen.append(frame)
    return seen


def slow_check(*argv: str, slow_s: float = 1.5, **kwargs: object) -> Terminal:
    return run_in_terminal(["-c", SLOW_GATHER, "check", "--only", "host", *argv], env={"SLOW_S": str(slow_s)}, **kwargs)


def test_the_spinner_says_what_is_happening_for_how_long_and_when_it_is_late():
    term = slow_check(columns=120)
    frames = spinner_lines(term.raw)
    assert frames[0] == "checking host: gathering the facts of this host"
    assert "starting the probe container in fake:1 (GPUs: none)" in frames
    late = r"waiting for the probe in fake:1: it imports torch · \d\.\d s · taking longer than usual"
    assert [f for f in frames if re.fullmatch(late, f)]
    assert not [f for f in frames if f.startswith("starting the probe") and "longer than usual" in f]
    assert term.rows[0].startswith("mldoctor 0.1.0 · ")  # the spinner left nothing behind, above or below
    assert not any(SPINNER.search(row) for row in term.rows)
    assert term.raw.rindex(b"\x1b[?25h") > term.raw.rindex(b"\x1b[?25l")


def test_json_on_stdout_stays_parseable_while_the_terminal_shows_progress():
    term = slow_check("--format", "json", stdout_pipe=True)
    assert json.loads(term.stdout)["results"]
    assert "waiting for the probe in fake:1: it imports torch" in spinner_lines(term.raw)
    assert term.rows == []  # the spinner is gone, the JSON went to the pipe


def test_ci_prints_timed_lines_on_stderr_and_keeps_stdout_for_the_report():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_S": "1.2"}
    proc = subprocess.run(
        [sys.executable, "-c", SLOW_GATHER, "check", "--only", "host", "--ci", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(proc.stdout)["results"]
    lines = proc.stderr.splitlines()
    stamp = r"mldoctor: \d\d:\d\d:\d\d \+ *\d+\.\ds "
    expected = [
        "checking host: gathering the facts of this host",
        r"starting the probe container in fake:1 \(GPUs: none\)",
        "waiting for the probe in fake:1: it imports torch",
        r"taking longer than usual \([\d.]+ s so far\): waiting for the probe in fake:1: it imports torch",
        r"done in \d+\.\d s: \d+ checks",
    ]
    assert len(lines) == len(expected), proc.stderr
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(stamp + pattern, line), line


def test_a_pipe_gets_no_progress():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLOW_S": "0.8"}
    env.pop("CI", None)
    proc = subprocess.run(
        [sys.executable, "-c", SLOW_GATHER, "check", "--only", "host"], env=env, capture_output=True, text=True
    )
    assert proc.stderr == ""
    assert proc.stdout.startswith("mldoctor 0.1.0 · ")


def test_ctrl_c_ends_the_spinner_cleanly():
    started = time.monotonic()
    term = slow_check(slow_s=30, interrupt_when=lambda raw: b"waiting for the probe" in raw)
    assert term.code == 130 and time.monotonic() - started < 15  # at once, not when the slow work would end
    assert term.rows == ["mldoctor: interrupted"]
    assert term.raw.rindex(b"\x1b[?25h") > term.raw.rindex(b"\x1b[?25l")  # the cursor is back


def test_ctrl_c_in_ci_prints_nothing_after_the_interruption():
    started = time.monotonic()
    term = slow_check("--ci", slow_s=30, interrupt_when=lambda raw: b"longer than usual" in raw, columns=200)
    assert term.code == 130 and time.monotonic() - started < 15  # at once, even as the late notice is printed
    time.sleep(1)  # a late timer of the progress would print by now
    assert term.rows[-1] == "mldoctor: interrupted"
    assert re.search(  # the seconds shown depend on the machine's load: not asserted
        r"taking longer than usual \([\d.]+ s so far\): waiting for the probe in fake:1: it imports torch$",
        term.rows[-2],
    )


@pytest.mark.docker
def test_ctrl_c_while_a_probe_hangs_leaves_no_container():
    from provided import HANG_IMAGE, require_docker, require_images

    require_docker()
    require_images(HANG_IMAGE)
    term = run_in_terminal(
        ["-m", "mldoctor", "check", "--only", "probe", "--image", HANG_IMAGE, "--duration", "0"],
        interrupt_when=lambda raw: b"waiting for the probe" in raw,
        timeout=90,
    )
    assert term.code == 130 and term.rows == ["mldoctor: interrupted"]
    mine = f"label=mldoctor.probe.pid={term.pid}"  # other runs may share this daemon
    left = subprocess.run(["docker", "ps", "-aq", "--filter", mine], capture_output=True, text=True, check=True)
    assert left.stdout.strip() == ""
