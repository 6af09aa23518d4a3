"""The check registry: a check is a pure rule function plus what it needs.

    @check("docker.disk", "Docker disk space", facts=("docker",), requires=("docker.daemon",))
    def docker_disk(facts: Facts, policy: Policy) -> Finding: ...

`facts` names the facts the rule reads (a section, `host`, or one fact, `host.memory`; only those sections are
gathered); `requires` names checks that must have passed first; `after` names checks whose failure, when they ran in
the same run, explains a FAIL of this one: it is then a SKIP pointing at them (a container that cannot start after
the NVIDIA driver FAILed is the same broken link, not a second one), while their PASS or SKIP changes nothing.
A rule may return one Finding, several (each with a `subject`, giving ids like `bench.matmul.bf16`), or none (a
check that does not apply to this run, such as host.port without --port).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mldoctor.model import AREAS, Finding, docs_url

RuleResult = Finding | Iterable[Finding] | None
Rule = Callable[..., RuleResult]


@dataclass(frozen=True)
class Check:
    """A registered check: its rule, the facts it reads, the checks that must pass first (`requires`), and those
    whose failure explains its own (`after`)."""

    id: str
    title: str
    rule: Rule
    facts: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def docs(self) -> str:
        """Its section of the published docs/checks.md (a wheel carries no docs/ to point into)."""
        return docs_url(self.id)


REGISTRY: dict[str, Check] = {}


def registered() -> dict[str, Check]:
    """The registry, kept in chain order (AREAS) whatever order the areas were loaded in; the same dict object."""
    order = list(AREAS)
    items = sorted(REGISTRY.items(), key=lambda item: order.index(item[1].area))  # stable within an area
    if list(REGISTRY) != [check_id for check_id, _ in items]:
        REGISTRY.clear()
        REGISTRY.update(items)
    return REGISTRY


def check(
    check_id: str,
    title: str,
    *,
    facts: tuple[str, ...] = (),
    requires: tuple[str, ...] = (),
    after: tuple[str, ...] = (),
) -> Callable[[Rule], Rule]:
    """Register a rule. Prerequisites must be registered first, so registry order is evaluation order."""

    def register(rule: Rule) -> Rule:
        if check_id in REGISTRY:
            raise ValueError(f"check {check_id} registered twice")
        missing = [r for r in (*requires, *after) if r not in REGISTRY]
        if missing:
            raise ValueError(f"check {check_id} requires unregistered {missing}")
        if check_id.split(".", 1)[0] not in AREAS:
            raise ValueError(f"check {check_id} is in no known area")
        REGISTRY[check_id] = Check(check_id, title, rule, tuple(facts), tuple(requires), tuple(after))
        return rule

    return register
