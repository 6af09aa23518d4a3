"""Facts: everything mldoctor reads from the world, as plain typed data.

Each section has one gatherer. Gatherers run in parallel, each under a deadline; a gatherer that crashes or
overruns leaves its section empty and its reason in `Facts.errors`, and the checks that need it report ERROR.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mldoctor.facts.docker import DockerFacts
from mldoctor.facts.host import HostFacts
from mldoctor.policy import Policy


@dataclass
class Facts:
    host: HostFacts | None = None
    docker: DockerFacts | None = None
    errors: dict[str, str] = field(default_factory=dict)
    """Sections that could not be gathered, and why."""


@dataclass(frozen=True)
class GatherOptions:
    timeout: float = 5.0
    """Deadline for each call to the outside world (a docker API call, a helper command)."""
    ports: tuple[int, ...] = ()
    policy: Policy = field(default_factory=Policy)


def _gather_host(options: GatherOptions) -> HostFacts:
    from mldoctor.facts import host

    return host.gather(list(options.ports))


def _gather_docker(options: GatherOptions) -> DockerFacts:
    from mldoctor.facts import docker

    return docker.gather(options.timeout, options.policy)


GATHERERS: dict[str, Callable[[GatherOptions], Any]] = {
    "host": _gather_host,
    "docker": _gather_docker,
}


def section_deadline(options: GatherOptions) -> float:
    """A section makes a few sequential calls, each bounded by the timeout; allow for them plus import time."""
    return 2 * options.timeout + 1.0


def gather(sections: set[str], options: GatherOptions) -> Facts:
    facts = Facts()
    results: dict[str, Any] = {}

    def work(name: str) -> None:
        try:
            results[name] = GATHERERS[name](options)
        except Exception as exc:  # a gatherer bug must not take the run down: the checks report ERROR
            results[name] = exc

    threads = {
        name: threading.Thread(target=work, args=(name,), name=f"gather-{name}", daemon=True)
        for name in GATHERERS
        if name in sections
    }
    for thread in threads.values():
        thread.start()
    deadline = section_deadline(options)
    ends_at = time.monotonic() + deadline
    for name, thread in threads.items():
        thread.join(max(0.0, ends_at - time.monotonic()))
        outcome = results.get(name)
        if thread.is_alive() or name not in results:
            facts.errors[name] = f"gathering {name} facts did not finish within {deadline:g} s"
        elif isinstance(outcome, Exception):
            facts.errors[name] = f"gathering {name} facts failed: {type(outcome).__name__}: {outcome}"
        else:
            setattr(facts, name, outcome)
    return facts
