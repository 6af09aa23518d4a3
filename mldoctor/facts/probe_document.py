"""The probe's document: what the probe program prints (one JSON document), typed.

A module of its own: its schema changes with the probe program, and a run whose probe printed nothing (an image
that is not built, a container that would not start) never needs it. `facts.probe` records the run around it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mldoctor.serde import SchemaError, from_data

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
