"""The report model: what every rule produces and every renderer consumes.

Statuses follow DCGM's vocabulary. ERROR is reserved for "the check itself could not run" (a rule that
crashed, a fact that could not be read) and never describes the host: a host problem is FAIL or WARN.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mldoctor.facts import Facts
    from mldoctor.policy import Policy

SCHEMA_VERSION = 1

DOCS_URL = "https://github.com/mldoctor/mldoctor/blob/main/docs/checks.md"
"""The published page with one section per check (the project's Documentation URL in pyproject.toml): a wheel
carries no docs/ directory, so results link here, never to a path inside the repository."""


def heading_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading (github-slugger): its text lower-cased, every character other than a
    letter, a digit, a space, `-` or `_` dropped (the backticks and dots of "### `docker.disk`"), spaces made `-`."""
    text = heading.lstrip("#").strip().lower()
    return "".join("-" if c == " " else c for c in text if c.isalnum() or c in " -_")


def docs_url(check_id: str) -> str:
    """Where a check is explained: its section of the published docs/checks.md (headed "### `<check id>`")."""
    return f"{DOCS_URL}#{heading_anchor(f'`{check_id}`')}"


AREAS = {
    "report": "Saved report",
    "docker": "Docker",
    "nvidia": "NVIDIA",
    "host": "Host",
    "probe": "Probe container",
    "bench": "Benchmarks",
    "image": "Image",
}
"""Check areas in chain order (a check id starts with its area), with the title every output shows."""


def areas_of(results: Iterable[CheckResult]) -> list[tuple[str, str]]:
    """(area, title) of the areas these results fall in, in chain order; an area this version does not list (a
    newer report's) comes last under its own name: renderers group by area and must never drop a row."""
    present = dict.fromkeys(result.area for result in results)
    known = [(area, title) for area, title in AREAS.items() if area in present]
    return known + [(area, area.title()) for area in present if area not in AREAS]


class Status(str, Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"

    @property
    def blocks_dependants(self) -> bool:
        """A check in this state leaves nothing for the checks that depend on it to look at."""
        return self in (Status.FAIL, Status.ERROR, Status.SKIP)

    @property
    def severity(self) -> int:
        """How bad: PASS < SKIP < WARN < ERROR < FAIL. The worst of several results is the max by this."""
        return _SEVERITY[self]


_SEVERITY = {Status.PASS: 0, Status.SKIP: 1, Status.WARN: 2, Status.ERROR: 3, Status.FAIL: 4}


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status (PASS for none)."""
    return max(statuses, key=lambda status: status.severity, default=Status.PASS)


@dataclass(frozen=True)
class Finding:
    """What a rule says about the host, before the runner gives it an id, a title and a docs link.

    `subject` names one of several results of the same check (`bench.matmul` + `bf16`); `blocked_by` is the id
    of the check whose failure made this one moot, so the report can point at the first broken link.
    """

    status: Status
    summary: str
    details: tuple[str, ...] = ()
    fix: str | None = None
    subject: str | None = None
    blocked_by: str | None = None

    @classmethod
    def ok(cls, summary: str, details: tuple[str, ...] = (), subject: str | None = None) -> Finding:
        return cls(Status.PASS, summary, details, subject=subject)

    @classmethod
    def warn(cls, summary: str, fix: str, details: tuple[str, ...] = (), subject: str | None = None) -> Finding:
        return cls(Status.WARN, summary, details, fix, subject=subject)

    @classmethod
    def fail(cls, summary: str, fix: str, details: tuple[str, ...] = (), subject: str | None = None) -> Finding:
        return cls(Status.FAIL, summary, details, fix, subject=subject)

    @classmethod
    def skip(cls, summary: str, blocked_by: str | None = None, details: tuple[str, ...] = ()) -> Finding:
        return cls(Status.SKIP, summary, details, blocked_by=blocked_by)

    @classmethod
    def error(cls, summary: str, details: tuple[str, ...] = ()) -> Finding:
        return cls(Status.ERROR, summary, details)

    @classmethod
    def combine(
        cls, problems: Iterable[Problem], ok: str, details: tuple[str, ...] = (), subject: str | None = None
    ) -> Finding:
        """One finding for several independent problems of one check: the worst status, every summary (FAILs
        first), every distinct fix; PASS with `ok` when there is none (flutter doctor's merged validators)."""
        ordered = sorted(problems, key=lambda p: -p.status.severity)
        if not ordered:
            return cls.ok(ok, details=details, subject=subject)
        fixes = "\n".join(dict.fromkeys(p.fix for p in ordered))
        return cls(ordered[0].status, "; ".join(p.summary for p in ordered), details, fixes, subject=subject)


@dataclass(frozen=True)
class Problem:
    """One thing wrong within a check that can find several (a GPU both hot and short of ECC): a WARN or FAIL,
    its summary and its fix, to be merged by `Finding.combine`."""

    status: Status
    summary: str
    fix: str


@dataclass(frozen=True)
class Step:
    """One step of a fix: a line the user types, as this host's user types it (`sudo` where they need it and have
    it, "as root: " where they need root and have no sudo, neither for root)."""

    command: str
    """The command, without its trailing comment."""
    as_root: bool = False
    """It needs root."""
    note: str = ""
    """Its trailing comment: why, or what to do first or after."""


EFFECTS = {
    "relogin": "takes effect in a new login session",
    "restarts-docker": "restarts the Docker daemon: its running containers stop unless live-restore is on",
    "reboot": "reboots the machine",
}
"""What applying a fix does beyond its own lines, for whoever decides when to apply it (an operator draining a node
first, a CI job that must not restart a shared daemon)."""


@dataclass
class CheckResult:
    """One row of a report: a check's finding with its id, title, area and docs link, and its fix written for the
    host the facts came from."""

    id: str
    title: str
    area: str
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    fix: str | None = None
    """The fix as printed, for the host the facts came from: one step per line."""
    steps: list[Step] = field(default_factory=list)
    """The same fix as data: each line a step, who types it, and its note."""
    effects: list[str] = field(default_factory=list)
    """What applying it does beyond its lines: keys of EFFECTS."""
    docs: str = ""
    blocked_by: str | None = None
    location: str | None = None
    """Where in a file the finding is, `path:line` (a Dockerfile's instruction), for annotations that point at it."""
    duration_s: float | None = None
    """How long gathering the facts this check reads took: the longest of the fact sections it reads (they are
    gathered in parallel), from `Facts.timings`; None when unknown (a report from an older mldoctor, a section that
    never started, a check that reads no facts)."""


@dataclass(frozen=True)
class BenchRow:
    """One graded measurement (a GPU and dtype, a copy direction, or the CPU): a row of `mldoctor gpu-bench`."""

    gpu: str
    """The GPU index, or "cpu"."""
    device: str
    metric: str
    """fp32, tf32, bf16, fp16, fp8, d2d, h2d, d2h."""
    unit: str
    measured: float | None
    expected: float | None
    peak: float | None
    status: Status
    note: str = ""
    ratio: float | None = field(init=False, default=None)
    """measured / expected, when both are known."""

    def __post_init__(self) -> None:
        ratio = self.measured / self.expected if self.measured is not None and self.expected else None
        object.__setattr__(self, "ratio", ratio)


@dataclass
class Report:
    """One run's outcome: the facts, every check's result and the graded benchmarks. `--format json` writes it, and
    `check --facts` reads it back to judge again."""

    schema_version: int
    tool_version: str
    created: str
    host: str
    facts: Facts
    results: list[CheckResult]
    policy: Policy | None = None
    """The thresholds the results were judged by, so a re-diagnosis judges by the same ones."""
    benchmarks: list[BenchRow] = field(default_factory=list)
    """Every benchmark measurement graded against its expected figure (the bench.* results fold these up)."""
    elapsed_s: float | None = None
    """The run's wall time, gathering and judging; None for a re-diagnosis of saved facts (nothing was gathered)."""

    def counts(self) -> Counter[Status]:
        return Counter(result.status for result in self.results)

    def exit_code(self, strict: bool = False) -> int:
        """1 when something FAILed; else 3 when a check could not run (a preflight must not pass on checks
        that never ran, and a host problem outranks a tool problem); else 1 for a WARN under --strict; else 0."""
        counts = self.counts()
        if counts[Status.FAIL]:
            return 1
        if counts[Status.ERROR]:
            return 3
        return 1 if strict and counts[Status.WARN] else 0
