"""The interrupt path: Ctrl-C and SIGTERM undo what the run started, within a deadline, and end the process without
waiting for the threads still doing the abandoned work."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from mldoctor import interrupts

ENTRY = """
import os, signal, sys, threading, time
from mldoctor import cli, interrupts

marker, how = sys.argv[1:3]
# a thread that is not a daemon: a normal interpreter exit would wait the full minute for it
threading.Thread(target=time.sleep, args=(60,), name="abandoned-work").start()
interrupts.register("x", interrupts.Undo("marker", "touch marker", lambda: open(marker, "w").close()))

def interrupted(*args, **kwargs):
    if how == "term":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
    raise KeyboardInterrupt

cli.cli.main = interrupted
sys.argv = ["mldoctor", "check"]
cli.entry()
"""


@pytest.mark.parametrize(("how", "code"), [("int", 130), ("term", 143)])
def test_an_interrupt_undoes_what_the_run_started_and_ends_without_waiting_for_its_threads(tmp_path, how, code):
    marker = tmp_path / "undone"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", ENTRY, str(marker), how], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == code, proc.stderr
    assert time.monotonic() - started < 20  # not the abandoned thread's minute
    assert marker.exists()
    assert proc.stderr.strip() == "mldoctor: interrupted"


def test_undos_run_side_by_side_and_one_that_hangs_is_named_not_waited_for(capsys):
    released = threading.Event()
    done: list[str] = []
    hangs = interrupts.Undo("container mldoctor-probe-1", "docker rm -f mldoctor-probe-1", released.wait)
    interrupts.register("hangs", hangs)
    interrupts.register("quick", interrupts.Undo("host probe (pid 1)", "kill 1", lambda: done.append("quick")))
    try:
        started = time.monotonic()
        unfinished = interrupts.undo_all(deadline_s=0.5)
        took = time.monotonic() - started
    finally:
        released.set()
    assert done == ["quick"]
    assert [undo.what for undo in unfinished] == ["container mldoctor-probe-1"]
    assert 0.5 <= took < 5
    err = capsys.readouterr().err
    expected = "the container mldoctor-probe-1 is still there (no answer within 0.5 s); `docker rm -f mldoctor-probe-1`"
    assert expected + " removes it (the next run of mldoctor does too)" in err
    assert interrupts.undo_all(deadline_s=0.5) == []  # each undo runs once


def test_a_failing_undo_is_named_and_does_not_stop_the_others(capsys):
    done: list[str] = []

    def fails() -> None:
        raise OSError("the daemon went away")

    failing = interrupts.Undo("container a", "docker rm -f a", fails)
    interrupts.register("a", failing)
    interrupts.register("b", interrupts.Undo("container b", "docker rm -f b", lambda: done.append("b")))
    assert interrupts.undo_all(deadline_s=5) == [failing]
    assert done == ["b"]
    err = capsys.readouterr().err
    assert "the container a is still there (OSError: the daemon went away); `docker rm -f a` removes it" in err


def test_a_forgotten_undo_does_not_run():
    done: list[str] = []
    interrupts.register("a", interrupts.Undo("a", "a", lambda: done.append("a")))
    interrupts.forget("a")
    interrupts.undo_all(deadline_s=1)
    assert done == []


def test_sigterm_raises_terminated_inside_and_the_previous_handler_comes_back():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(interrupts.Terminated), interrupts.sigterm_raises():
        with interrupts.sigterm_raises():  # nested: changes nothing, restores nothing
            pass
        signal.raise_signal(signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is previous
    assert interrupts.Terminated.code == 143


def test_nothing_new_is_registered_once_the_run_is_being_undone():
    """A gatherer thread still running after Ctrl-C must not start a container no one will remove."""
    interrupts.undo_all(deadline_s=1)
    with pytest.raises(interrupts.Closing):
        interrupts.register("late", interrupts.Undo("container late", "docker rm -f late", lambda: None))
    assert interrupts.undo_all(deadline_s=1) == []


FINISH = """
import atexit, sys, threading, time
from mldoctor import interrupts

atexit.register(lambda: print("teardown", flush=True))
interrupts.register("x", interrupts.Undo("marker", "true", lambda: print("undone", file=sys.stderr, flush=True)))
if sys.argv[1] == "working":  # a thread still doing work that a normal exit waits for
    threading.Thread(target=lambda: (time.sleep(0.5), print("work done", flush=True))).start()
print("report", end="")  # buffered: `finish` must flush it
interrupts.finish(5)
"""


@pytest.mark.parametrize(
    ("threads", "printed"),
    [("none", "report"), ("working", "reportwork done\nteardown\n")],
)
def test_a_finished_run_ends_without_the_teardown_unless_a_thread_is_still_working(threads, printed):
    """With nothing left running, `finish` undoes what is pending, flushes, and skips the interpreter's teardown
    (the atexit hook does not run); a thread still working is waited for by the normal exit, teardown and all."""
    proc = subprocess.run([sys.executable, "-c", FINISH, threads], capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, printed, "undone\n")


GATHER_SIGNALLED = """
import signal, threading, time
from mldoctor import facts, interrupts

blocked = threading.Event()

def hangs(options, earlier, errors):  # a gatherer waiting on something that does not answer
    blocked.set()
    threading.Event().wait(60)

facts.GATHERERS["host"] = hangs
def signal_the_gatherer():  # the kernel may hand a process's SIGTERM to any of its threads: here, the gatherer's
    blocked.wait(10)
    time.sleep(0.5)  # the main thread is waiting for the gatherers by now
    worker = next(t for t in threading.enumerate() if t.name == "gather-host")
    signal.pthread_kill(worker.ident, signal.SIGTERM)

threading.Thread(target=signal_the_gatherer, daemon=True).start()
started = time.monotonic()
with interrupts.sigterm_raises():
    try:
        facts.gather({"host"}, facts.GatherOptions(timeout=30))
        print("gathered")
    except interrupts.Terminated:
        print(f"terminated after {time.monotonic() - started:.1f} s")
"""


def test_sigterm_delivered_to_a_gatherer_thread_still_ends_the_wait_at_once():
    """The main thread's wait for the gatherers wakes in slices, so a SIGTERM the kernel delivered to another thread
    takes effect within a fraction of a second, not at the section's deadline (61 s here)."""
    proc = subprocess.run([sys.executable, "-c", GATHER_SIGNALLED], capture_output=True, text=True, timeout=90)
    words = proc.stdout.split()
    assert words[:2] == ["terminated", "after"], proc.stdout + proc.stderr
    assert float(words[2]) < 5


def test_waiting_for_a_future_in_slices_ends_when_it_is_done_or_at_the_timeout():
    from concurrent.futures import Future

    never, done = Future(), Future()
    done.set_result(1)
    started = time.monotonic()
    interrupts.wait(done, 5)
    assert time.monotonic() - started < 0.1
    interrupts.wait(never, 0.5)
    assert 0.5 <= time.monotonic() - started < 1.5 and not never.done()
