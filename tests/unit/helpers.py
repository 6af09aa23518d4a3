"""Evaluate one check the way the runner does (prerequisites and all), for rule tests."""

from __future__ import annotations

import pytest

from mldoctor.cli import main
from mldoctor.model import CheckResult
from mldoctor.policy import Policy
from mldoctor.rules import REGISTRY
from mldoctor.runner import evaluate


def results(facts, check_id: str, policy: Policy | None = None) -> list[CheckResult]:
    return evaluate([REGISTRY[check_id]], facts, policy or Policy())


def result(facts, check_id: str, policy: Policy | None = None) -> CheckResult:
    (only,) = results(facts, check_id, policy)
    return only


def call(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process as a user would: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err
