"""Probe facts: what the probe program saw inside a container (or on the host), and how its run went.

The probe prints one JSON document, typed in `facts.probe_document` (`ProbeDocument`); this module records the run
around it (`ProbeRun`: which image, which GPUs, where it stopped and why). Errors are facts here too: a missing
image, a container the daemon refused to start, a probe killed at its deadline or one that printed garbage all end
up as a `ProbeRun` with `stage` and `error` set, for the rules to explain.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mldoctor import __version__
from mldoctor.facts.options import ProbeOptions

__all__ = ["ProbeFacts", "ProbeOptions", "ProbeRun", "gather"]

if TYPE_CHECKING:
    from mldoctor.facts.docker import DockerFacts
    from mldoctor.facts.nvidia import NvidiaFacts
    from mldoctor.facts.probe_document import ProbeDocument
    from mldoctor.probe.launch import LaunchResult

DEFAULT_IMAGE = f"mldoctor-probe:{__version__}"


@dataclass
class ProbeRun:
    """How the probe was started and how its run ended."""

    mode: str = "container"
    """container or host (--no-container)."""
    image: str | None = None
    default_image: bool = False
    """The image is mldoctor's own probe image (missing means: not built yet, not a broken host)."""
    image_env: dict[str, str] = field(default_factory=dict)
    """NVIDIA_* variables from the image's config, readable even when the container cannot start."""
    gpus: str = "none"
    """What the container was given: all, none, or a list of indices such as 0,1."""
    gpus_reason: str = ""
    """Why: given on the command line, or how --gpus auto decided."""
    shm_size: str | None = None
    stage: str = "done"
    """Where the run stopped: connect, image, create, start, wait, output or done."""
    error: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    deadline_s: float = 0.0
    elapsed_s: float = 0.0
    stderr_tail: str = ""
    stdout_head: str = ""
    """The start of stdout when it was not a probe document (garbage to show the user)."""
    notes: list[str] = field(default_factory=list)
    """What was odd but did not stop the run (the image printed a banner around the probe's document)."""
    memory_limit: str | None = None
    """The container's memory limit (a runaway image must not take the host down)."""


@dataclass
class NameLookup:
    """Whether a container on the default bridge resolves a name this host resolves: docker.network's question
    asked end to end (the probe itself runs with no network)."""

    name: str
    host_resolves: bool
    """This host resolved it: without that there is no network here to judge a container's by."""
    resolved: bool | None = None
    """None: not asked (the host does not resolve it), or the container did not run (`error` says why)."""
    error: str | None = None
    elapsed_s: float = 0.0


@dataclass
class ProbeFacts:
    """The probe section of the facts: how the run went, the document it printed (None when it printed none), and
    the name lookup from a container."""

    run: ProbeRun
    document: ProbeDocument | None = None
    lookup: NameLookup | None = None
    """The name lookup from a container on the default bridge (container runs only)."""

    @staticmethod
    def type_namespace() -> dict[str, Any]:
        """The document's type, imported lazily above, for serde when a saved report is loaded."""
        from mldoctor.facts.probe_document import ProbeDocument

        return {"ProbeDocument": ProbeDocument}


def decide_gpus(requested: str, docker: DockerFacts | None, host_gpus: int) -> tuple[str, str]:
    """Resolve --gpus auto from the facts gathered first: give the container every GPU when the machine that
    runs it has any, so a missing toolkit shows up as the probe's failure instead of a silent CPU run."""
    if requested != "auto":
        return requested, "--gpus " + requested
    if docker is not None and docker.connection.ok and not docker.local:
        if docker.daemon is not None and "nvidia" in docker.daemon.runtimes:
            return "all", "the remote daemon has the nvidia runtime"
        return "none", "the remote daemon has no nvidia runtime"
    if host_gpus:
        return "all", f"this host has {host_gpus} NVIDIA GPU{'s' if host_gpus != 1 else ''}"
    return "none", "this host has no NVIDIA GPU"


def host_gpu_count(nvidia: NvidiaFacts | None = None) -> int:
    """NVIDIA GPUs on this host: on the PCI bus when the NVIDIA facts were gathered, else those the kernel
    driver has bound (cheap, needs no NVML)."""
    if nvidia is not None and nvidia.pci_error is None:
        return len(nvidia.pci_gpus)
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def _devices(gpus: str, host_gpus: int) -> int:
    """How many devices the benchmarks will run on (the CPU counts as one)."""
    if gpus == "all":
        return max(1, host_gpus)
    return 1 if gpus == "none" else len(gpus.split(","))


def probe_deadline(options: ProbeOptions) -> float:
    """The most a probe run may take with these options on this host (the gather's outer safety net)."""
    requested = options.gpus if options.gpus != "auto" else "all"
    return options.deadline(_devices(requested, host_gpu_count()))


def _memory_limit() -> str:
    """Half the host's memory, at most 16 GiB: the probe needs a few GiB (torch, pinned copy buffers); a runaway
    image must hit this, not the host."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{max(2, min(16, total // 2 // (1 << 30)))}g"


def gather(options: ProbeOptions, docker: DockerFacts | None, nvidia: NvidiaFacts | None, timeout: float) -> ProbeFacts:
    """Run the probe as `options` say and type what it printed; never raises (failures are in `run`)."""
    from mldoctor.probe import launch

    host_gpus = host_gpu_count(nvidia)
    if options.container and docker is not None and not docker.connection.ok:  # asking again only waits again
        image = options.image or DEFAULT_IMAGE
        return ProbeFacts(
            run=ProbeRun(
                image=image,
                default_image=options.image is None,
                stage="connect",
                error="not started: the Docker daemon did not answer (see docker.daemon)",
            )
        )
    import logging

    say = logging.getLogger("mldoctor.progress").info  # a progress display listens there, when there is one

    def plan(gpus: str) -> tuple[str, dict[str, float]]:
        """What the probe will do after importing torch, and how long its run usually takes."""
        devices = _devices(gpus, host_gpus)
        if not options.bench:
            return "", {"usual_s": 10.0}
        cpu = gpus == "none" or (gpus == "all" and host_gpus == 0)
        what = "the CPU" if cpu else f"{devices} GPU{'s' if devices != 1 else ''}"
        each = " each" if devices > 1 and not cpu else ""
        usual = 10 + options.duration * devices
        return f", then benchmarks {what} for {options.duration:g} s{each}", {"usual_s": usual}

    if options.container:
        gpus, reason = decide_gpus(options.gpus, docker, host_gpus)
        run = ProbeRun(
            image=options.image or DEFAULT_IMAGE,
            default_image=options.image is None,
            gpus=gpus,
            gpus_reason=reason,
            shm_size=options.shm_size,
            memory_limit=_memory_limit(),
            deadline_s=options.deadline(_devices(gpus, host_gpus)),
        )
        image = run.image or DEFAULT_IMAGE
        then, usual = plan(gpus)

        lookup: list[NameLookup] = []
        asker = threading.Thread(
            target=lambda: lookup.append(name_lookup(image, timeout, request.api_version)), name="lookup", daemon=True
        )

        def stage(reached: str) -> None:
            if reached == "wait":
                say(f"waiting for the probe in {image}: it imports torch{then}", extra=usual)
                if _bridge_usable(docker):  # the image is there and a container starts: ask beside the probe
                    asker.start()
            elif reached.startswith("step:"):  # what the probe says it is doing: importing torch, GPU 3/8 bf16
                say(f"the probe in {image}: {reached.removeprefix('step:')}", extra=usual)

        request = launch.LaunchRequest(
            image=image,
            args=options.probe_args(),
            gpus=gpus,
            shm_size=options.shm_size,
            memory_limit=run.memory_limit,
            deadline_s=run.deadline_s,
            timeout=timeout,
            api_version=docker.daemon.api_version if docker is not None and docker.daemon is not None else None,
            progress=stage,
        )
        say(f"starting the probe container in {image} (GPUs: {gpus})")
        result = launch.run_in_container(request)
        if asker.ident is not None:
            asker.join(LOOKUP_DEADLINE_S + 3 * timeout)
        facts = facts_of(run, result)
        facts.lookup = lookup[0] if lookup else None
        return facts
    else:
        gpus = "all" if host_gpus else "none"  # the host's GPUs are what a host probe gets: judged like a container's
        reason = (
            f"this host has {host_gpus} NVIDIA GPU{'s' if host_gpus != 1 else ''}"
            if host_gpus
            else ("this host has no NVIDIA GPU")
        )
        run = ProbeRun(
            mode="host", gpus=gpus, gpus_reason=reason, deadline_s=options.deadline(_devices(gpus, host_gpus))
        )
        then, usual = plan(gpus)
        say(f"running the probe on this host: it imports torch{then}", extra=usual)
        result = launch.run_on_host(options.probe_args(), run.deadline_s)
    return facts_of(run, result)


LOOKUP_NAME = "pypi.org"
"""The name a container on the default bridge is asked to resolve: where `pip install` goes first."""
LOOKUP_DEADLINE_S = 15.0
LOOKUP_PROGRAM = """import socket, sys
try:
    socket.getaddrinfo(sys.argv[1], 443)
except OSError as exc:
    print("%s: %s" % (type(exc).__name__, exc))
    sys.exit(1)
print("resolved")
"""
"""What the lookup container runs (any python3; the image's own entrypoint is not run)."""


def _host_resolves(name: str, timeout: float) -> bool:
    """getaddrinfo has no timeout of its own: asked in a thread that is not waited for past `timeout`."""
    answer: list[bool] = []

    def ask() -> None:
        try:
            socket.getaddrinfo(name, 443)
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=ask, name="host-lookup", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def name_lookup(image: str, timeout: float, api_version: str | None) -> NameLookup:
    """Resolve LOOKUP_NAME from a container of `image` on the default bridge, where this host resolves it."""
    from mldoctor.probe import launch

    lookup = NameLookup(name=LOOKUP_NAME, host_resolves=_host_resolves(LOOKUP_NAME, timeout))
    if not lookup.host_resolves:
        return lookup
    request = launch.LaunchRequest(
        image=image,
        args=(LOOKUP_NAME,),
        program=LOOKUP_PROGRAM,
        network=True,
        role="lookup",
        removes_leftovers=False,  # the probe's run beside it does, and says so
        memory_limit="256m",
        deadline_s=LOOKUP_DEADLINE_S,
        timeout=timeout,
        api_version=api_version,
    )
    result = launch.run_in_container(request)
    lookup.elapsed_s = result.elapsed_s
    said = result.stdout.decode("utf-8", "replace").strip()[-300:]
    if result.timed_out:
        lookup.resolved, lookup.error = False, f"no answer within {LOOKUP_DEADLINE_S:g} s"
    elif result.stage != "exited":
        lookup.error = f"the lookup container did not run ({result.stage}): {result.error or ''}".rstrip(": ")
    else:
        lookup.resolved = result.exit_code == 0 and said.endswith("resolved")
        lookup.error = None if lookup.resolved else (said or result.stderr_tail[-300:] or f"exit {result.exit_code}")
    return lookup


def _bridge_usable(docker: DockerFacts | None) -> bool:
    """Whether a container can join the default bridge at all (docker.network judges it when it cannot)."""
    bridge = docker.bridge if docker is not None else None
    return bridge is not None and bridge.found and bridge.interface_present is not False


def facts_of(run: ProbeRun, result: LaunchResult) -> ProbeFacts:
    """The launcher's result as probe facts: where it stopped, and the document when the probe printed one."""
    run.error, run.exit_code, run.timed_out = result.error, result.exit_code, result.timed_out
    run.stderr_tail, run.image_env, run.elapsed_s = result.stderr_tail, result.image_env, result.elapsed_s
    if result.removed_leftovers:
        run.notes.append(
            f"removed {len(result.removed_leftovers)} probe container(s) left by an mldoctor run that was killed: "
            + ", ".join(result.removed_leftovers)
        )
    run.stage = result.stage
    facts = ProbeFacts(run=run)
    if result.stage != "exited" or result.timed_out:
        run.stage = "wait" if result.timed_out else result.stage
        return facts
    text = result.stdout.decode("utf-8", errors="replace")
    if result.stdout_bytes > len(result.stdout):
        run.notes.append(
            f"stdout was {result.stdout_bytes} bytes: only its last {len(result.stdout)} were read (the document "
            "comes last)"
        )
    if not text.strip():
        run.stage = "exit"
        run.error = f"the probe exited with code {run.exit_code} and printed nothing"
        return facts
    run.stage = "output"
    from mldoctor.facts.probe_document import parse_document
    from mldoctor.serde import SchemaError

    try:
        facts.document, notes = parse_document(text)
    except SchemaError as exc:
        run.error = f"the probe's output is not its JSON document: {exc}"
        run.stdout_head = text[:2000]
        return facts
    run.notes += notes
    run.stage = "done"
    return facts
