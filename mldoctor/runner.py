"""Select checks, gather the facts they need, evaluate them in dependency order, build the Report."""

from __future__ import annotations

import fnmatch
import socket
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from mldoctor import __version__
from mldoctor.facts import Facts, GatherOptions, gather
from mldoctor.facts.host import HostFacts
from mldoctor.fixes.host import for_host
from mldoctor.fixes.steps import plan
from mldoctor.model import AREAS, SCHEMA_VERSION, BenchRow, CheckResult, Finding, Report, Status
from mldoctor.policy import Policy
from mldoctor.rules import load
from mldoctor.rules.registry import REGISTRY, Check, RuleResult


class SelectionError(ValueError):
    """An --only/--skip pattern that matches no check (a typo would otherwise silently check nothing)."""


def _matches(pattern: str, check_id: str) -> bool:
    """A pattern matches an id exactly, as a glob, or as a dotted prefix (`docker` matches `docker.disk`)."""
    return fnmatch.fnmatchcase(check_id, pattern) or check_id.startswith(pattern.rstrip(".") + ".")


def _areas(only: list[str], skip: list[str]) -> set[str] | None:
    """The areas whose rule modules must be loaded, or None (all) when a pattern starts with a glob or an unknown
    word. A whole area skipped by name (`--no-probe` skips `probe` and `bench`) is not loaded at all."""
    heads = {pattern.split(".", 1)[0] for pattern in only + skip}
    if not heads <= set(AREAS):
        return None
    wanted = {pattern.split(".", 1)[0] for pattern in only} if only else set(AREAS)
    return wanted - set(skip)


def select(only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[Check]:
    """The checks to run, loading only the rule modules of the areas that can contribute one."""
    only, skip = list(only), list(skip)
    registry = load(_areas(only, skip))
    for pattern in only + skip:
        if pattern not in AREAS and not any(_matches(pattern, check_id) for check_id in registry):
            raise SelectionError(f"no check matches {pattern!r}; `mldoctor checks` lists the check ids")
    return [
        c
        for c in registry.values()
        if (not only or any(_matches(p, c.id) for p in only)) and not any(_matches(p, c.id) for p in skip)
    ]


def covered_by(checks: list[Check], facts: Facts) -> list[Check]:
    """The checks a saved report has facts for: re-diagnosing a `--only docker` report, or one from before
    the probe existed, shows what it can judge instead of rows about facts it never had."""
    return [
        c for c in checks if all(_fact(facts, path)[0] is not None or path in _errors(facts, path) for path in c.facts)
    ]


def _fact(facts: Facts, path: str) -> tuple[Any, str]:
    """The fact at `section` or `section.field`, and the name of the first missing part ('' when found)."""
    section, _, name = path.partition(".")
    value = getattr(facts, section, None)
    if value is None:
        return None, section
    if name:
        value = getattr(value, name, None)
        return value, path if value is None else ""
    return value, ""


def _errors(facts: Facts, path: str) -> dict[str, str]:
    """Why the fact at `path` (or its section) could not be gathered, keyed by what failed."""
    section = path.partition(".")[0]
    return {key: facts.errors[key] for key in (section, path) if key in facts.errors}


def _with_prerequisites(selected: list[Check]) -> list[Check]:
    needed = {c.id for c in selected}
    for c in reversed(list(REGISTRY.values())):
        if c.id in needed:
            needed.update(c.requires)
    return [c for c in REGISTRY.values() if c.id in needed]


def _blocked(check: Check, results: dict[str, CheckResult]) -> Finding | None:
    """A SKIP pointing at the first broken link, when a prerequisite did not pass."""
    for prerequisite in check.requires:
        result = results.get(prerequisite)
        if result is None or not result.status.blocks_dependants:
            continue
        root_id = result.blocked_by if result.status is Status.SKIP and result.blocked_by else prerequisite
        root = results.get(root_id)
        if root is None:  # a root this selection did not evaluate (its rule named it as blocked_by)
            return Finding.skip(f"skipped: {root_id} failed", blocked_by=root_id)
        if root.status is Status.SKIP:  # not applicable here (no GPU): say why, not "was skipped"
            return Finding.skip(f"skipped: {root.summary.removeprefix('skipped: ')}", blocked_by=root_id)
        if root.status is Status.WARN:  # a rule skipped itself because of a warning upstream
            return Finding.skip(f"skipped: {root_id}: {root.summary}", blocked_by=root_id)
        return Finding.skip(f"skipped: {root_id} {_verb(root.status.value.lower())}", blocked_by=root_id)
    return None


def _explained(check: Check, finding: Finding, results: dict[str, CheckResult]) -> Finding:
    """A FAIL that an earlier failure explains (the check's `after`, when it was evaluated in this run) becomes a
    SKIP pointing at it: one broken link, one FAIL. A check that passes despite it stays as it is."""
    if finding.status is not Status.FAIL:
        return finding
    for earlier in check.after:
        result = results.get(earlier)
        if result is None:
            continue
        root_id = result.blocked_by if result.status is Status.SKIP and result.blocked_by else earlier
        root = results.get(root_id, result)
        if root.status in (Status.FAIL, Status.ERROR):
            return Finding.skip(f"skipped: {root_id} {_verb(root.status.value.lower())}", blocked_by=root_id)
    return finding


def _verb(state: str) -> str:
    return {"fail": "failed", "error": "could not run"}.get(state, state)


def _evaluate_one(check: Check, facts: Facts, policy: Policy) -> list[Finding]:
    """The rule's findings; ERROR when a fact it needs could not be gathered, SKIP when a saved report predates
    that fact (so a new check never reads as a crash on an old report)."""
    missing = [path for path in check.facts if _fact(facts, path)[0] is None]
    failed = [error for path in missing for error in _errors(facts, path).values()]
    if failed:
        return [Finding.error(f"facts unavailable: {'; '.join(dict.fromkeys(failed))}")]
    if missing:  # only when re-diagnosing a saved report made with --only, --no-probe or an older mldoctor
        return [Finding.skip(f"no {' or '.join(missing)} facts in this report")]
    try:
        outcome = _run_rule(check, facts, policy)
    except Exception as exc:  # crash isolation: one broken rule must not hide the others
        return [
            Finding.error(
                f"the check crashed: {type(exc).__name__}: {exc}",
                details=("this is a bug in mldoctor; please report it with `--format json`",),
            )
        ]
    if outcome is None:
        return []
    return [outcome] if isinstance(outcome, Finding) else list(outcome)


def _run_rule(check: Check, facts: Facts, policy: Policy) -> RuleResult:
    """The one place a rule is called (tests run it without the environment, files or the clock)."""
    return check.rule(facts, policy)


def _duration(check: Check, facts: Facts) -> float | None:
    """How long the facts this check reads took to gather: the longest of its sections (gathered in parallel), from
    the timings recorded with the facts, so a re-diagnosed report shows the user's run's figures."""
    sections = {path.partition(".")[0] for path in check.facts}
    if not sections or not sections <= set(facts.timings):
        return None
    return max(facts.timings[section] for section in sections)


def _result(check: Check, finding: Finding, host: HostFacts | None) -> CheckResult:
    """The finding as a result, its fix rendered for the host the facts came from (`fixes.steps.plan`)."""
    check_id = f"{check.id}.{finding.subject}" if finding.subject else check.id
    fix = plan(finding.fix, host) if finding.fix else None
    return CheckResult(
        id=check_id,
        title=check.title,
        area=check.area,
        status=finding.status,
        summary=finding.summary,
        details=[for_host(detail, host) for detail in finding.details],  # details name commands too
        fix=fix.text if fix else None,
        steps=fix.steps if fix else [],
        effects=fix.effects if fix else [],
        docs=check.docs,
        blocked_by=finding.blocked_by,
    )


def evaluate(checks: list[Check], facts: Facts, policy: Policy) -> list[CheckResult]:
    """Run `checks` (and, unreported, the prerequisites they need) against facts; pure, no I/O."""
    wanted = {c.id for c in checks}
    by_id: dict[str, CheckResult] = {}
    reported: list[CheckResult] = []
    for check in _with_prerequisites(checks):
        blocked = _blocked(check, by_id)
        judged = [] if blocked else _evaluate_one(check, facts, policy)
        findings = [blocked] if blocked else [_explained(check, f, by_id) for f in judged]
        results = [_result(check, f, facts.host) for f in findings]
        for result in results:
            result.duration_s = _duration(check, facts)
        if results:
            by_id[check.id] = _worst(results)
        if check.id in wanted:
            reported.extend(results)
    return reported


def _worst(results: list[CheckResult]) -> CheckResult:
    return max(results, key=lambda r: r.status.severity)


def needed_sections(checks: list[Check]) -> set[str]:
    return {path.partition(".")[0] for c in _with_prerequisites(checks) for path in c.facts}


def build_report(checks: list[Check], facts: Facts, policy: Policy) -> Report:
    host = facts.host.hostname if facts.host else socket.gethostname()
    return Report(
        schema_version=SCHEMA_VERSION,
        tool_version=__version__,
        created=datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        host=host,
        facts=facts,
        results=evaluate(checks, facts, policy),
        policy=policy,
        benchmarks=_benchmarks(facts, policy),
    )


def _benchmarks(facts: Facts, policy: Policy) -> list[BenchRow]:
    """Every graded measurement, when the probe benchmarked something (its module loads only then)."""
    if facts.probe is None or facts.probe.document is None:
        return []
    from mldoctor.rules.bench import bench_rows

    return bench_rows(facts.probe.document, policy)


def run(checks: list[Check], options: GatherOptions) -> Report:
    started = time.monotonic()
    facts = gather(needed_sections(checks), options)
    report = build_report(checks, facts, options.policy)
    report.elapsed_s = round(time.monotonic() - started, 3)
    return report
