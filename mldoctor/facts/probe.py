"""Probe facts: what the probe program saw inside a container (or on the host), and how its run went.

The probe prints one JSON document; this module types it (`ProbeDocument`) and records the run around it
(`ProbeRun`: which image, which GPUs, where it stopped and why). Errors are facts here too: a missing image, a
container the daemon refused to start, a probe killed at its deadline or one that printed garbage all end up as
a `ProbeRun` with `stage` and `error` set, for the rules to explain.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mldoctor import __version__
from mldoctor.facts.options import ProbeOptions
from mldoctor.serde import SchemaError, from_data

__all__ = ["ProbeDocument", "ProbeFacts", "ProbeOptions", "ProbeRun", "gather", "parse_document"]

if TYPE_CHECKING:
    from mldoctor.facts.docker import DockerFacts
    from mldoctor.facts.nvidia import NvidiaFacts
    from mldoctor.probe.launch import LaunchResult

DEFAULT_IMAGE = f"mldoctor-probe:{__version__}"
PROBE_SCHEMA = "mldoctor-probe"
PROBE_SCHEMA_VERSION = 1


@dataclass
class ProbePython:
    """The Python that ran the probe."""

    version: str = ""
    implementation: str = ""
    executable: str = ""


@dataclass
class ProbeSystem:
    """The probe's user (uid, gid), the machine, the CPUs it saw and may use, and whether it ran in a container."""

    uid: int = 0
    gid: int = 0
    user: str | None = None
    machine: str = ""
    cpu_count: int | None = None
    cpu_affinity: int | None = None
    in_container: bool = False


@dataclass
class ProbeShm:
    """/dev/shm as the probe saw it (DataLoader workers pass tensors through it), or why it could not be read."""

    total_bytes: int = 0
    free_bytes: int = 0
    error: str | None = None


@dataclass
class ProbeCgroup:
    """The memory and CPU limits of the probe's cgroup (v2, else v1); None means unlimited."""

    memory_limit_bytes: int | None = None
    cpu_limit: float | None = None


@dataclass
class ProbeTorch:
    """torch as imported in the probe: its version and the CUDA, cuDNN and NCCL it was built with;
    or why the import failed."""

    found: bool = False
    error: str | None = None
    version: str | None = None
    cuda: str | None = None
    """torch.version.cuda: the CUDA runtime the wheel was built for (None for a CPU-only build)."""
    cudnn: int | None = None
    nccl: str | None = None
    threads: int | None = None
    import_s: float | None = None


@dataclass
class ProbeCuda:
    """Whether CUDA works in the probe (torch's error when not), how many GPUs it sees, the architectures torch was
    built for, and the CUDA driver version."""

    available: bool = False
    device_count: int = 0
    error: str | None = None
    """Why CUDA does not work, in torch's words (mapped to a cause by the rules)."""
    arch_list: list[str] = field(default_factory=list)
    driver: int | None = None


@dataclass
class PcieLink:
    """A GPU's PCIe link from sysfs: links train down at idle, so the maximum is what is graded."""

    max_gen: int | None = None
    max_width: int | None = None
    cur_gen: int | None = None
    cur_width: int | None = None


@dataclass
class ProbeDevice:
    """One GPU as torch sees it in the probe: its name, compute capability, SMs, memory and PCIe link."""

    index: int = 0
    name: str = ""
    major: int = 0
    minor: int = 0
    sm_count: int = 0
    memory_bytes: int = 0
    uuid: str | None = None
    l2_bytes: int | None = None
    pci_bus_id: str | None = None
    pcie: PcieLink | None = None

    @property
    def capability(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass
class Warmup:
    """How long a GPU was kept busy before its benchmarks, and whether its matmul rate stopped rising
    (the clocks settled) in that time."""

    seconds: float = 0.0
    settled: bool = False


@dataclass
class MatmulResult:
    """One dtype's matmul benchmark on one GPU: its rate and timings, whether the result was correct, or why it
    could not be measured."""

    dtype: str = ""
    shape: list[int] = field(default_factory=list)
    tflops: float = 0.0
    """From the median time of one call (CUDA events around each call, the L2 flushed between calls)."""
    median_ms: float = 0.0
    mean_ms: float | None = None
    min_ms: float | None = None
    iters: int = 0
    max_rel_err: float | None = None
    tolerance: float | None = None
    ok: bool = False
    """The result matched a float64 reference on a slice within the dtype's error bound (NaN never does)."""
    error: str | None = None
    """Why this dtype could not be benchmarked."""


@dataclass
class CopyResult:
    """One copy benchmark on one GPU (device to device, host to device or device to host): its bandwidth, timings
    and whether the bytes arrived intact."""

    bytes: int = 0
    gbps: float = 0.0
    """d2d counts the bytes read plus written (2x, as bandwidthTest); h2d and d2h count them once."""
    median_ms: float = 0.0
    mean_ms: float | None = None
    min_ms: float | None = None
    iters: int = 0
    ok: bool = True
    """The copied bytes matched the source."""


@dataclass
class GpuBench:
    """One GPU's benchmarks: the warm-up, a matmul per dtype, the three copies, and what could not be measured."""

    index: int = 0
    warmup: Warmup | None = None
    matmul: list[MatmulResult] = field(default_factory=list)
    d2d: CopyResult | None = None
    h2d: CopyResult | None = None
    d2h: CopyResult | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class CpuBench:
    """The fp32 matmul on the CPU when there is no usable GPU, so the whole pipeline (probe, parsing, grading)
    still runs."""

    dtype: str = "fp32"
    shape: list[int] = field(default_factory=list)
    gflops: float = 0.0
    median_ms: float = 0.0
    iters: int = 0
    threads: int = 1
    max_rel_err: float | None = None
    tolerance: float | None = None
    ok: bool = False


@dataclass
class PeerCopy:
    """A copy from one GPU to another: its bandwidth and whether the bytes arrived intact."""

    src: int = 0
    dst: int = 0
    gbps: float = 0.0
    """Bytes counted once (one direction), from the median time of a copy."""
    median_ms: float = 0.0
    iters: int = 0
    ok: bool = True
    """The copied bytes matched the source."""


@dataclass
class PeerResults:
    """Peer-to-peer between the container's GPUs: who can reach whom directly, and a copy over every pair."""

    devices: int = 0
    access: list[list[bool | None]] = field(default_factory=list)
    """access[i][j]: torch.cuda.can_device_access_peer(i, j); None on the diagonal."""
    copies: list[PeerCopy] = field(default_factory=list)
    bytes: int = 0
    skipped: int = 0
    """Pairs left unmeasured when the time budget ran out."""
    error: str | None = None


@dataclass
class AllreduceSize:
    """The all-reduce at one message size: its time, bandwidths and whether the sums were right."""

    bytes: int = 0
    median_ms: float = 0.0
    """The slowest rank's median time of one all-reduce."""
    iters: int = 0
    algbw_gbps: float = 0.0
    busbw_gbps: float = 0.0
    """algbw x 2(n-1)/n, as nccl-tests defines it."""
    ok: bool = True
    """Every element held the expected sum after the first call."""


@dataclass
class AllreduceRank:
    """One rank of the all-reduce: how far it got and how it ended, so a hang names the rank that stalled."""

    rank: int = 0
    stage: str = ""
    """Where the rank was last: not started, started, stalled, init, joined, allreduce, done or error."""
    exit_code: int | None = None
    joined: bool = False
    """It got through init_process_group (every rank reached the rendezvous)."""
    killed: bool = False
    """Still running at the deadline: killed (with its process group)."""
    error: str | None = None
    stderr_tail: str = ""


@dataclass
class AllreduceResults:
    """An all-reduce across the local GPUs (NCCL, one process per GPU), or across two CPU processes (gloo)."""

    backend: str = ""
    device: str = ""
    world_size: int = 0
    timeout_s: float = 0.0
    elapsed_s: float = 0.0
    sizes: list[AllreduceSize] = field(default_factory=list)
    hung: bool = False
    """Some rank had not finished at the deadline."""
    unfinished: list[int] = field(default_factory=list)
    ranks: list[AllreduceRank] = field(default_factory=list)
    error: str | None = None
    nccl_env: dict[str, str] = field(default_factory=dict)
    """NCCL settings in the probe's environment (an allowlist): NCCL_P2P_DISABLE=1 is the confirming test."""
    p2p_disabled: bool = False
    """NCCL_P2P_DISABLE was set (to anything but 0) for an NCCL run: peer-to-peer off, through host memory."""


@dataclass
class BenchResults:
    """Everything the probe benchmarked: each GPU (or the CPU), peer-to-peer copies and the all-reduce."""

    duration_s: float = 0.0
    elapsed_s: float = 0.0
    gpus: list[GpuBench] = field(default_factory=list)
    cpu: CpuBench | None = None
    p2p: PeerResults | None = None
    allreduce: AllreduceResults | None = None


@dataclass
class ProbeDocument:
    """The probe program's JSON document, typed."""

    schema: str = PROBE_SCHEMA
    schema_version: int = PROBE_SCHEMA_VERSION
    python: ProbePython = field(default_factory=ProbePython)
    system: ProbeSystem | None = None
    env: dict[str, str] = field(default_factory=dict)
    shm: ProbeShm | None = None
    cgroup: ProbeCgroup | None = None
    nvidia_smi: str | None = None
    packages: list[tuple[str, str]] | None = None
    """The image's Python distributions, (name, version) in sys.path order (the first of a name, the one imported);
    None from a probe that did not list them (an older mldoctor's, or listing failed). Pairs, not a mapping: a
    package's name is no key for redaction to read as a secret's name (`google-auth`)."""
    packages_omitted: int = 0
    """Distributions left out of `packages`: past the probe's bound (a few thousand), or with unreadable metadata."""
    torch: ProbeTorch | None = None
    cuda: ProbeCuda | None = None
    devices: list[ProbeDevice] = field(default_factory=list)
    bench: BenchResults | None = None
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


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


def parse_document(stdout: str) -> tuple[ProbeDocument, list[str]]:
    """The probe's document in its stdout, typed, and notes on anything printed around it (an image's banner or
    `sitecustomize` output before it, a library's message after it); SchemaError when there is no document.

    The probe prints its document as one line, so each line that starts with `{` is tried once: linear in the
    output, whatever an image prints."""
    offset = 0
    for line in stdout.splitlines(keepends=True):
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except (ValueError, RecursionError):
                data = None
            if isinstance(data, dict) and data.get("schema") == PROBE_SCHEMA:
                return _typed(data), _noise(stdout[:offset], stdout[offset + len(line) :])
        offset += len(line)
    try:
        json.loads(stdout)
    except (ValueError, RecursionError) as exc:
        raise SchemaError(f"not JSON ({str(exc)[:200]})") from None
    raise SchemaError("JSON, but not a probe document")


def _typed(data: dict[str, object]) -> ProbeDocument:
    if data.get("schema_version") != PROBE_SCHEMA_VERSION:
        raise SchemaError(f"probe schema {data.get('schema_version')!r}; this mldoctor reads {PROBE_SCHEMA_VERSION}")
    return from_data(ProbeDocument, data)


def _noise(before: str, after: str) -> list[str]:
    notes = []
    for where, text in (("before", before.strip()), ("after", after.strip())):
        if text:
            first = text.splitlines()[0][:200]
            notes.append(f"the image printed {len(text)} characters {where} the probe's document, e.g. {first!r}")
    return notes


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
    try:
        facts.document, notes = parse_document(text)
    except SchemaError as exc:
        run.error = f"the probe's output is not its JSON document: {exc}"
        run.stdout_head = text[:2000]
        return facts
    run.notes += notes
    run.stage = "done"
    return facts
