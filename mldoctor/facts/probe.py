"""Probe facts: what the probe program saw inside a container (or on the host), and how its run went.

The probe prints one JSON document; this module types it (`ProbeDocument`) and records the run around it
(`ProbeRun`: which image, which GPUs, where it stopped and why). Errors are facts here too: a missing image, a
container the daemon refused to start, a probe killed at its deadline or one that printed garbage all end up as
a `ProbeRun` with `stage` and `error` set, for the rules to explain.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mldoctor import __version__
from mldoctor.serde import SchemaError, from_data

if TYPE_CHECKING:
    from mldoctor.facts.docker import DockerFacts
    from mldoctor.facts.nvidia import NvidiaFacts

DEFAULT_IMAGE = f"mldoctor-probe:{__version__}"
PROBE_SCHEMA = "mldoctor-probe"
PROBE_SCHEMA_VERSION = 1


@dataclass
class ProbePython:
    version: str = ""
    implementation: str = ""
    executable: str = ""


@dataclass
class ProbeSystem:
    uid: int = 0
    gid: int = 0
    user: str | None = None
    machine: str = ""
    cpu_count: int | None = None
    cpu_affinity: int | None = None
    in_container: bool = False


@dataclass
class ProbeShm:
    total_bytes: int = 0
    free_bytes: int = 0
    error: str | None = None


@dataclass
class ProbeCgroup:
    memory_limit_bytes: int | None = None
    cpu_limit: float | None = None


@dataclass
class ProbeTorch:
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
    available: bool = False
    device_count: int = 0
    error: str | None = None
    """Why CUDA does not work, in torch's words (mapped to a cause by the rules)."""
    arch_list: list[str] = field(default_factory=list)
    driver: int | None = None


@dataclass
class PcieLink:
    max_gen: int | None = None
    max_width: int | None = None
    cur_gen: int | None = None
    cur_width: int | None = None


@dataclass
class ProbeDevice:
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
    seconds: float = 0.0
    settled: bool = False


@dataclass
class MatmulResult:
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
    index: int = 0
    warmup: Warmup | None = None
    matmul: list[MatmulResult] = field(default_factory=list)
    d2d: CopyResult | None = None
    h2d: CopyResult | None = None
    d2h: CopyResult | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class CpuBench:
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
class BenchResults:
    duration_s: float = 0.0
    elapsed_s: float = 0.0
    gpus: list[GpuBench] = field(default_factory=list)
    cpu: CpuBench | None = None


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


@dataclass
class ProbeFacts:
    run: ProbeRun
    document: ProbeDocument | None = None


@dataclass(frozen=True)
class ProbeOptions:
    image: str | None = None
    """None: mldoctor's default probe image."""
    gpus: str = "auto"
    shm_size: str | None = None
    duration: float = 10.0
    """Benchmark seconds per device (each GPU, or the CPU when there is none)."""
    timeout: float = 120.0
    """Deadline for everything but the benchmarks: container start, imports, CUDA init, teardown."""
    container: bool = True
    bench: bool = True
    dtypes: tuple[str, ...] = ()
    """Matmul dtypes to benchmark (among those the GPU supports); empty: all of them."""

    def deadline(self, devices: int) -> float:
        return self.timeout + (self.duration * max(1, devices) if self.bench else 0.0)


def parse_document(stdout: str) -> ProbeDocument:
    """The probe's stdout as a typed document; SchemaError when it is anything else."""
    try:
        data = json.loads(stdout)
    except ValueError as exc:
        raise SchemaError(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != PROBE_SCHEMA:
        raise SchemaError("JSON, but not a probe document")
    if data.get("schema_version") != PROBE_SCHEMA_VERSION:
        raise SchemaError(f"probe schema {data.get('schema_version')!r}; this mldoctor reads {PROBE_SCHEMA_VERSION}")
    return from_data(ProbeDocument, data)


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
    return 1 if gpus in ("none", "host") else len(gpus.split(","))


def probe_deadline(options: ProbeOptions) -> float:
    """The most a probe run may take with these options on this host (the gather's outer safety net)."""
    requested = options.gpus if options.gpus != "auto" else "all"
    return options.deadline(_devices(requested, host_gpu_count()))


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
    if options.container:
        gpus, reason = decide_gpus(options.gpus, docker, host_gpus)
        run = ProbeRun(
            image=options.image or DEFAULT_IMAGE,
            default_image=options.image is None,
            gpus=gpus,
            gpus_reason=reason,
            shm_size=options.shm_size,
            deadline_s=options.deadline(_devices(gpus, host_gpus)),
        )
        stdout = launch.run_in_container(run, options, timeout)
    else:
        run = ProbeRun(mode="host", gpus="host", deadline_s=options.deadline(_devices("all", host_gpus)))
        stdout = launch.run_on_host(run, options)
    facts = ProbeFacts(run=run)
    if run.stage != "output":
        return facts
    try:
        facts.document = parse_document(stdout)
    except SchemaError as exc:
        run.error = f"the probe's output is not its JSON document: {exc}"
        run.stdout_head = stdout[:2000]
        return facts
    run.stage = "done"
    return facts
