"""For every test: a test that goes through the interrupt path (Ctrl-C in `main`, `interrupts.undo_all`) ends with
it in this process, which refuses anything new from then on, as a process that is ending must; the next test gets
a process that is not ending."""

from __future__ import annotations

import threading

import pytest

from mldoctor import interrupts


@pytest.fixture(autouse=True)
def a_process_that_is_not_ending(monkeypatch):
    monkeypatch.setattr(interrupts, "_closing", threading.Event())
