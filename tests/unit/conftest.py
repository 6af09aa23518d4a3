"""Invariants every rule test enforces: a WARN or FAIL always carries a fix the user can paste, and a rule never
touches the environment, a file, a process or the clock (see purity.py)."""

from __future__ import annotations

import pytest
from purity import pure

from mldoctor import runner
from mldoctor.model import Status


@pytest.fixture(autouse=True)
def every_warn_and_fail_has_a_fix(monkeypatch):
    original = runner._result

    def checked(check, finding, host):
        result = original(check, finding, host)
        if result.status in (Status.WARN, Status.FAIL):
            message = f"{result.id} {result.status.value} without a fix: {result.summary}"
            assert result.fix and result.fix.strip(), message
        return result

    monkeypatch.setattr(runner, "_result", checked)


@pytest.fixture(autouse=True)
def every_rule_is_pure(monkeypatch):
    original = runner._run_rule

    def guarded(check, facts, policy):
        with pure():
            return original(check, facts, policy)

    monkeypatch.setattr(runner, "_run_rule", guarded)
