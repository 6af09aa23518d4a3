"""Facts: everything mldoctor reads from the world, as plain typed data.

Each section has one gatherer. Gatherers run in parallel, each under a deadline; a gatherer that crashes or
overruns leaves its section empty and its reason in `Facts.errors`, and the checks that need it report ERROR.
Within a section each fact is isolated too (`common.isolated`): one that cannot be read is None, with its reason
under `section.field` in `Facts.errors`, and only the checks that read that fact report ERROR.
A section that reads other sections' facts names them in AFTER: it starts once they are done and receives them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mldoctor import interrupts
from mldoctor.facts.options import GatherOptions, ProbeOptions

if TYPE_CHECKING:  # imported when gathered or loaded, not on every run (`check --only host` needs none of them)
    from mldoctor.facts.docker import DockerFacts
    from mldoctor.facts.host import HostFacts
    from mldoctor.facts.nvidia import NvidiaFacts
    from mldoctor.facts.probe import ProbeFacts

__all__ = ["Facts", "GatherOptions", "Origin", "ProbeOptions", "gather"]


@dataclass
class Origin:
    """Where the facts came from when this run did not gather them: a saved report or support bundle (`--facts`).
    Its text comes from that file: untrusted, bounded when loaded."""

    path: str
    host: str = ""
    created: str = ""
    """When the saved report was made (its own `created`), not when it is re-diagnosed."""
    tool_version: str = ""
    altered: list[str] = field(default_factory=list)
    """Bundle members that do not match its manifest.json: changed after mldoctor wrote it."""


@dataclass
class Facts:
    """Everything the rules judge, by section: gathered by this run or loaded from a saved report (`origin`), with
    what could not be gathered and how long each section took."""

    host: HostFacts | None = None
    docker: DockerFacts | None = None
    nvidia: NvidiaFacts | None = None
    probe: ProbeFacts | None = None
    errors: dict[str, str] = field(default_factory=dict)
    """Sections (`host`) or single facts (`host.memory`) that could not be gathered, and why."""
    origin: Origin | None = None
    """None for facts gathered by this run; the saved report's provenance when re-diagnosing one."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds each section's gatherer took (from its start, once the sections it waits for are done, to its end or
    until it was given up on), so outputs can say how long each check's facts took, in a saved report too."""

    @staticmethod
    def type_namespace() -> dict[str, Any]:
        """The section types imported lazily above, for serde when a saved report is loaded."""
        from mldoctor.facts.docker import DockerFacts
        from mldoctor.facts.host import HostFacts
        from mldoctor.facts.nvidia import NvidiaFacts
        from mldoctor.facts.probe import ProbeFacts

        return {
            "HostFacts": HostFacts,
            "DockerFacts": DockerFacts,
            "NvidiaFacts": NvidiaFacts,
            "ProbeFacts": ProbeFacts,
        }


def _gather_host(options: GatherOptions, earlier: Facts, errors: dict[str, str]) -> HostFacts:
    from mldoctor.facts import host

    return host.gather(list(options.ports), errors)


def _gather_docker(options: GatherOptions, earlier: Facts, errors: dict[str, str]) -> DockerFacts:
    from mldoctor.facts import docker

    return docker.gather(options.timeout)


def _gather_nvidia(options: GatherOptions, earlier: Facts, errors: dict[str, str]) -> NvidiaFacts:
    from mldoctor.facts import nvidia

    return nvidia.gather(options.timeout, options.sysroot)


def _gather_probe(options: GatherOptions, earlier: Facts, errors: dict[str, str]) -> ProbeFacts:
    from mldoctor.facts import probe

    return probe.gather(options.probe_options(), earlier.docker, earlier.nvidia, options.timeout)


GATHERERS: dict[str, Callable[[GatherOptions, Facts, dict[str, str]], Any]] = {
    "host": _gather_host,
    "docker": _gather_docker,
    "nvidia": _gather_nvidia,
    "probe": _gather_probe,
}

AFTER: dict[str, tuple[str, ...]] = {"probe": ("docker", "nvidia")}
"""Sections that need others' facts (the probe's `--gpus auto` asks docker and nvidia whether there are GPUs to
give the container), and those others: they are waited for when they are being gathered, else left out."""


def section_deadline(name: str, options: GatherOptions) -> float:
    """A section makes a few sequential calls, each bounded by the timeout; allow for them plus import time.
    The probe runs a container: its own deadline (start, imports, benchmarks) comes on top."""
    deadline = 2 * options.timeout + 1.0
    if name == "probe":
        from mldoctor.facts.probe import probe_deadline

        deadline += probe_deadline(options.probe_options())
    return deadline


def gather(sections: set[str], options: GatherOptions) -> Facts:
    facts = Facts()
    results: dict[str, Any] = {}
    began: dict[str, float] = {}
    ended: dict[str, float] = {}
    field_errors: dict[str, dict[str, str]] = {name: {} for name in GATHERERS}
    done = {name: threading.Event() for name in GATHERERS}
    waits_for = {name: [s for s in AFTER.get(name, ()) if s in sections] for name in GATHERERS}

    def work(name: str) -> None:
        earlier = Facts()
        for section in waits_for[name]:
            done[section].wait(section_deadline(section, options))
            if section in results and not isinstance(results[section], Exception):
                setattr(earlier, section, results[section])
        began[name] = time.monotonic()
        try:
            results[name] = GATHERERS[name](options, earlier, field_errors[name])
        except Exception as exc:  # a gatherer bug must not take the run down: the checks report ERROR
            results[name] = exc
        finally:
            ended[name] = time.monotonic()
            done[name].set()

    threads = {
        name: threading.Thread(target=work, args=(name,), name=f"gather-{name}", daemon=True)
        for name in GATHERERS
        if name in sections
    }
    started = time.monotonic()
    for thread in threads.values():
        thread.start()
    for name, thread in threads.items():
        deadline = section_deadline(name, options)
        waited = max((section_deadline(s, options) for s in waits_for[name]), default=0.0)
        interrupts.join(thread, started + waited + deadline - time.monotonic())
        outcome = results.get(name)
        if name in began:  # a section given up on while it waited for others took no time of its own
            facts.timings[name] = round(ended.get(name, time.monotonic()) - began[name], 3)
        if thread.is_alive() or name not in results:
            facts.errors[name] = f"gathering {name} facts did not finish within {deadline:g} s"
        elif isinstance(outcome, Exception):
            facts.errors[name] = f"gathering {name} facts failed: {type(outcome).__name__}: {outcome}"
        else:
            setattr(facts, name, outcome)
            facts.errors.update(field_errors[name])
    return facts
