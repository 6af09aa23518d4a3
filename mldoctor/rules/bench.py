"""Benchmark checks: matmul per dtype, device-to-device and host<->device bandwidth, a GPU slower than its
peers, the CPU fallback, peer-to-peer between the GPUs and an all-reduce across them. Measurements come from the
probe; expected figures from the GPU spec table (data), applied here at evaluation time so an old report
re-grades with today's table.

`bench_rows` grades every single measurement (per GPU, per dtype); the checks fold them into one result per id,
and `mldoctor gpu-bench` prints the rows themselves.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mldoctor.data.gpus import (
    AllreduceSpec,
    GpuSpec,
    allreduce_expected,
    allreduce_pass_ratio,
    has_nvlink,
    match_gpu,
    no_peer_access_by_design,
    pcie_gbps,
)
from mldoctor.facts import Facts
from mldoctor.model import BenchRow, Finding, Status, worst
from mldoctor.policy import Band, Policy
from mldoctor.rules import probe as _probe  # noqa: F401  (registers probe.arch and probe.torch, required below)
from mldoctor.rules.registry import check
from mldoctor.text import plural

if TYPE_CHECKING:  # the probe's document is loaded only with a document (a run whose probe printed none never is)
    from mldoctor.facts.probe_document import (
        AllreduceResults,
        CopyResult,
        GpuBench,
        PeerResults,
        ProbeDevice,
        ProbeDocument,
    )

GRADE = {"pass": Status.PASS, "warn": Status.WARN, "fail": Status.FAIL}


def _expected(spec: GpuSpec | None, dtype: str, policy: Policy) -> float | None:
    given = dict(policy.expect_tflops)
    if dtype in given:
        return given[dtype]
    return spec.expected(dtype) if spec else None


def _matmul_rows(device: ProbeDevice, bench: GpuBench, spec: GpuSpec | None, policy: Policy) -> list[BenchRow]:
    rows = []
    for result in bench.matmul:
        expected, peak = _expected(spec, result.dtype, policy), spec.peak(result.dtype) if spec else None
        measured = None if result.error else result.tflops
        base = BenchRow(str(device.index), device.name, result.dtype, "TFLOP/s", measured, expected, peak, Status.PASS)
        if result.error:
            rows.append(replace(base, status=Status.ERROR, note=f"could not run: {result.error}"))
        elif not result.ok:
            error = "no error figure" if result.max_rel_err is None else f"error {result.max_rel_err:.2g}"
            bound = "" if result.tolerance is None else f" > {result.tolerance:g}"
            rows.append(replace(base, status=Status.FAIL, note=f"wrong results: {error}{bound}"))
        elif peak and result.tflops > policy.suspect_ratio * peak:
            note = f"above {policy.suspect_ratio:g}x the datasheet peak: the timing is suspect"
            rows.append(replace(base, status=Status.ERROR, note=note))
        elif expected is None:
            rows.append(replace(base, status=Status.WARN, note="no expected figure"))
        else:
            band = policy.matmul_band(result.dtype)
            rows.append(replace(base, status=GRADE[band.grade(result.tflops / expected)]))
    return rows


def _copy_row(device: ProbeDevice, metric: str, copy: CopyResult, reference: float | None, band: Band) -> BenchRow:
    base = BenchRow(str(device.index), device.name, metric, "GB/s", copy.gbps, reference, reference, Status.PASS)
    if not copy.ok:
        return replace(base, status=Status.FAIL, note="the copied bytes differ from the source")
    if reference is None:
        return replace(base, status=Status.SKIP, note="no datasheet figure to grade against")
    return replace(base, status=GRADE[band.grade(copy.gbps / reference)])


def host_link_gbps(device: ProbeDevice, spec: GpuSpec | None) -> float | None:
    """Theoretical host<->device bandwidth per direction: the link's max gen and width as sysfs reports them
    (links train down at idle, so never the current ones), else the SKU's own figure."""
    if spec is not None and spec.host_gbps and (device.pcie is None or spec.host_gbps > 100):
        return spec.host_gbps  # a GH200's NVLink-C2C is no PCIe link
    if device.pcie is not None and device.pcie.max_gen:
        return pcie_gbps(device.pcie.max_gen, device.pcie.max_width)
    return spec.host_gbps if spec else None


def bench_rows(doc: ProbeDocument, policy: Policy) -> list[BenchRow]:
    """Every benchmark measurement of the probe, graded."""
    from mldoctor.facts.probe_document import ProbeDevice  # loaded with `doc` already: a run without one never is

    if doc.bench is None:
        return []
    rows = []
    devices = {d.index: d for d in doc.devices}
    for bench in doc.bench.gpus:
        device = devices.get(bench.index, ProbeDevice(index=bench.index, name="?"))
        spec = match_gpu(device.name, device.sm_count, device.memory_bytes)
        rows += _matmul_rows(device, bench, spec, policy)
        if bench.d2d:
            rows.append(_copy_row(device, "d2d", bench.d2d, spec.memory_gbps if spec else None, policy.d2d))
        link = host_link_gbps(device, spec)
        for metric, copy in (("h2d", bench.h2d), ("d2h", bench.d2h)):
            if copy:
                rows.append(_copy_row(device, metric, copy, link, policy.host_copy))
    if doc.bench.p2p is not None:
        rows += p2p_rows(doc, doc.bench.p2p, policy)
    if doc.bench.allreduce is not None:
        rows += allreduce_rows(doc, doc.bench.allreduce)
    cpu = doc.bench.cpu
    if cpu is not None:
        per_thread = cpu.gflops / max(1, cpu.threads)
        status = Status.PASS if cpu.ok else Status.FAIL  # information: a shared CPU's figure moves with its load
        note = f"{cpu.threads} threads, {per_thread:.0f} per thread; not graded"
        note += "" if cpu.ok else "; wrong results"
        rows.append(BenchRow("cpu", "CPU", "fp32", "GFLOP/s", cpu.gflops, None, None, status, note))
    return rows


def _worst(rows: list[BenchRow]) -> Status:
    return worst(r.status for r in rows)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


DIRECTIONS = {"h2d": "host to device", "d2h": "device to host"}
"""bench.h2d folds both directions of each GPU's host link: each detail says which it is."""


def _describe(row: BenchRow) -> str:
    direction = f" ({DIRECTIONS[row.metric]})" if row.metric in DIRECTIONS else ""
    text = f"GPU {row.gpu} {row.device}{direction}: {_figure(row.measured)} {row.unit}"
    if row.ratio is not None:
        text += f" = {row.ratio:.2f}x expected {_figure(row.expected)}"
    if row.peak and row.measured is not None and row.unit == "TFLOP/s":
        text += f" ({100 * row.measured / row.peak:.0f}% of peak {_figure(row.peak)})"
    return text + (f"; {row.note}" if row.note else "")


def _fold(rows: list[BenchRow], subject: str | None, what: str, fixes: dict[Status, str]) -> Finding:
    """One finding for rows of the same metric across GPUs: the worst GPU decides, every GPU is in the details."""
    status = _worst(rows)
    worst = [r for r in rows if r.status is status]
    focus = min(worst, key=lambda r: r.ratio if r.ratio is not None else 0.0)
    details = tuple(_describe(r) for r in rows)
    if len(rows) == 1:
        summary = f"{what}: {_describe(focus).split(': ', 1)[1]}"
    else:
        measured = [r.measured for r in rows if r.measured is not None]
        spread = f"{_figure(min(measured))}-{_figure(max(measured))} {rows[0].unit}" if measured else "n/a"
        gpus = plural(len({r.gpu for r in rows}), "GPU")  # h2d and d2h are two rows of one GPU
        summary = f"{what} on {gpus}: {spread}; worst: {_describe(focus)}"
    fix = fixes.get(status, "").format(gpu=focus.gpu, metric=focus.metric, measured=_figure(focus.measured))
    return Finding(status, summary, details, fix or None, subject=subject)


SLOW_GPU = (
    "nvidia-smi -q -i {gpu} -d PERFORMANCE,CLOCK,POWER,TEMPERATURE   # throttling, a power cap or another process "
    "on the GPU; nvidia-smi shows who else uses it"
)
MATMUL_FIXES = {
    Status.FAIL: SLOW_GPU,
    Status.WARN: SLOW_GPU,
    Status.ERROR: "rerun: mldoctor gpu-bench --duration 30   # a longer run; report it if it stays",
}
UNKNOWN_FIX = (
    "mldoctor gpu-bench --expect-tflops {metric}=N   # N: what a healthy card of this model reaches "
    "(this run measured {measured})"
)
WRONG_FIX = (
    "nvidia-smi -q -i {gpu} -d ECC,ROW_REMAPPER   # a GPU that computes wrong results: drain it, reset it "
    "(sudo nvidia-smi -r -i {gpu}) or have it replaced"
)


def _probe_bench(facts: Facts) -> ProbeDocument | Finding:
    doc = facts.probe.document
    if doc is None or doc.bench is None:
        return Finding.skip("skipped: the probe ran no benchmarks (--duration 0)")
    return doc


@check("bench.matmul", "Matmul throughput", facts=("probe",), requires=("probe.arch",))
def bench_matmul(facts: Facts, policy: Policy) -> Finding | list[Finding]:
    doc = _probe_bench(facts)
    if isinstance(doc, Finding):
        return doc
    rows = [r for r in bench_rows(doc, policy) if r.unit == "TFLOP/s"]
    findings = []
    for dtype in dict.fromkeys(r.metric for r in rows):
        group = [r for r in rows if r.metric == dtype]
        fixes = dict(MATMUL_FIXES)
        if any("wrong results" in r.note for r in group):
            fixes[Status.FAIL] = WRONG_FIX
        if any(r.note == "no expected figure" for r in group):
            fixes[Status.WARN] = UNKNOWN_FIX
        findings.append(_fold(group, dtype, dtype, fixes))
    return findings or Finding.skip("skipped: no GPU was benchmarked")


def _copy_check(facts: Facts, policy: Policy, metrics: tuple[str, ...], what: str, fix: str) -> Finding:
    doc = _probe_bench(facts)
    if isinstance(doc, Finding):
        return doc
    rows = [r for r in bench_rows(doc, policy) if r.metric in metrics]
    if not rows:
        return Finding.skip("skipped: no GPU was benchmarked")
    return _fold(rows, None, what, {Status.WARN: fix, Status.FAIL: fix})


@check("bench.d2d", "GPU memory bandwidth", facts=("probe",), requires=("probe.arch",))
def bench_d2d(facts: Facts, policy: Policy) -> Finding:
    return _copy_check(
        facts,
        policy,
        ("d2d",),
        "device-to-device copy (read + write)",
        "nvidia-smi -q -i {gpu} -d CLOCK,PERFORMANCE   # memory clock below max, or ECC/row-remap trouble",
    )


@check("bench.h2d", "Host-GPU bandwidth", facts=("probe",), requires=("probe.arch",))
def bench_h2d(facts: Facts, policy: Policy) -> Finding:
    return _copy_check(
        facts,
        policy,
        ("h2d", "d2h"),
        "pinned host<->device copy",
        "nvidia-smi -q -i {gpu} -d PCIE   # link gen/width below the max under load: reseat the card, check "
        "the slot and BIOS; dmesg | grep -i 'limited by' names a slot that caps it",
    )


@check("bench.outlier", "GPU slower than its peers", facts=("probe",), requires=("probe.arch",))
def bench_outlier(facts: Facts, policy: Policy) -> Finding | None:
    """Only with two or more GPUs: a card well below the median of the others, whatever the table says."""
    doc = _probe_bench(facts)
    if isinstance(doc, Finding):
        return None
    rates: dict[str, float] = {}
    for row in bench_rows(doc, policy):
        if row.metric in ("bf16", "fp16") and row.measured is not None:
            rates[row.gpu] = max(rates.get(row.gpu, 0.0), row.measured)
    if len(rates) < 2:
        return None
    from statistics import median  # imported only where several GPUs were measured

    slow = []
    for gpu, rate in rates.items():
        others = median(r for g, r in rates.items() if g != gpu)
        if rate < policy.outlier_ratio * others:
            slow.append(f"GPU {gpu}: {_figure(rate)} TFLOP/s, {rate / others:.2f}x the others' {_figure(others)}")
    if slow:
        gpu = slow[0].split(":")[0].removeprefix("GPU ")
        return Finding.warn(
            f"{len(slow)} of {len(rates)} GPUs well below the others: " + "; ".join(slow),
            fix=SLOW_GPU.format(gpu=gpu) + " -- compare with a healthy GPU's output",
            details=tuple(f"GPU {g}: {_figure(r)} TFLOP/s" for g, r in rates.items()),
        )
    return Finding.ok(f"{len(rates)} GPUs within {1 - policy.outlier_ratio:.0%} of each other's median")


@check("bench.cpu", "CPU matmul (no GPU)", facts=("probe",), requires=("probe.torch",))
def bench_cpu(facts: Facts, policy: Policy) -> Finding | None:
    """Only when no GPU was benchmarked: the CPU run keeps the whole pipeline exercised on any machine."""
    doc = facts.probe.document
    if doc is None or doc.bench is None or doc.bench.cpu is None:
        return None
    row = next(r for r in bench_rows(doc, policy) if r.gpu == "cpu")
    summary = f"fp32 {_figure(row.measured)} GFLOP/s ({row.note})"
    if row.status is Status.PASS:
        return Finding.ok(summary, details=("on a host without a GPU the CPU figure is information, not a verdict",))
    return Finding.fail(
        f"{summary}: the CPU matmul gave wrong results",
        fix="reinstall torch from pytorch.org (a broken BLAS or a CPU it was not built for computes wrong results); "
        "then: mldoctor gpu-bench",
    )


# --- peer-to-peer and all-reduce -----------------------------------------------------------------------------------

SHM_FOR_NCCL = 1 << 30
"""Below this /dev/shm, NCCL's shared-memory buffers fail to allocate ("unhandled system error")."""
P2P_SLOW_RATIO = 0.5
"""A pair below this share of the median pair's copy bandwidth is a link that is down or trained low."""
P2P_CHECK = "sudo mldoctor check --only nvidia.p2p"
"""nvidia.p2p reads PCIe ACS above the GPUs (as root) and the IOMMU mode, and prints the fix for this host."""
P2P_CONFIRM = "NCCL_P2P_DISABLE=1 mldoctor gpu-bench --no-container"
"""The confirming test of a peer-to-peer cause: with P2P off, NCCL goes through host memory and finishes (slowly)."""


def size_text(nbytes: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift} {unit}"
    return f"{nbytes} B"


def _system(doc: ProbeDocument) -> tuple[str, GpuSpec | None]:
    """The node's GPUs in words ("8x NVIDIA H100 80GB HBM3") and their SKU when every GPU is the same one."""
    if not doc.devices:
        return "CPU", None
    specs = [match_gpu(d.name, d.sm_count, d.memory_bytes) for d in doc.devices]
    names = dict.fromkeys(d.name for d in doc.devices)
    spec = specs[0] if len({s.sku if s else None for s in specs}) == 1 else None
    return f"{len(doc.devices)}x {' + '.join(names)}", spec


def _pairs(pairs: list[tuple[int, int]]) -> str:
    return ", ".join(f"{i}->{j}" for i, j in pairs)


def p2p_rows(doc: ProbeDocument, p2p: PeerResults, policy: Policy) -> list[BenchRow]:
    """One row per source GPU: its slowest copy to another GPU, as information (no table of expected peer figures),
    WARN for a pair far below the node's median pair, FAIL for bytes that arrived wrong."""
    devices = {d.index: d for d in doc.devices}
    from statistics import median as middle  # only where peer copies were measured

    median = middle(c.gbps for c in p2p.copies) if p2p.copies else None
    rows = []
    for src in dict.fromkeys(c.src for c in p2p.copies):
        copies = [c for c in p2p.copies if c.src == src]
        slowest = min(copies, key=lambda c: c.gbps)
        name = devices[src].name if src in devices else "?"
        note = f"to {len(copies)} GPUs, slowest to GPU {slowest.dst}; fastest {_figure(max(c.gbps for c in copies))}"
        status = Status.PASS
        if any(not c.ok for c in copies):
            status, note = Status.FAIL, note + "; copied bytes differ from the source"
        elif median and len(p2p.copies) >= 3 and slowest.gbps < P2P_SLOW_RATIO * median:
            status, note = Status.WARN, note + f"; below {P2P_SLOW_RATIO:g}x the median pair ({_figure(median)})"
        holes = [j for j, reach in enumerate(p2p.access[src] if src < len(p2p.access) else []) if reach is False]
        if holes:
            note += f"; no peer access to GPU {', '.join(map(str, holes))}"
        rows.append(BenchRow(str(src), name, "p2p", "GB/s", slowest.gbps, None, None, status, note))
    return rows


def allreduce_rows(doc: ProbeDocument, result: AllreduceResults) -> list[BenchRow]:
    """One row per size (busbw); the largest size is the one graded, against the table's figure for this system
    (GPU model and count). gloo on the CPU and a world of one GPU are information."""
    system, spec = _system(doc)
    device = f"CPU ({result.backend}, {result.world_size} processes)" if result.device == "cpu" else system
    expected = allreduce_expected(spec.sku, result.world_size) if spec and result.backend == "nccl" else None
    rows = []
    for size in result.sizes:
        last = size is result.sizes[-1]
        note = f"algbw {_figure(size.algbw_gbps)}"
        base = BenchRow("all", device, f"allreduce {size_text(size.bytes)}", "GB/s", size.busbw_gbps, None, None,
                        Status.PASS, note)  # fmt: skip
        if not size.ok:
            rows.append(replace(base, status=Status.FAIL, note=note + "; wrong sums"))
        elif not last:
            rows.append(base)  # information: the largest size is the one graded
        elif result.device == "cpu":
            rows.append(replace(base, note=note + "; CPU: not graded"))
        elif result.world_size < 2:
            rows.append(replace(base, measured=None, note="world size 1: no peers"))
        elif expected is None:
            what = f"{result.world_size}x {spec.sku}" if spec else system
            rows.append(replace(base, note=note + f"; no figure for {what}: not graded"))
        else:
            graded = replace(base, expected=expected.ring_gbps)
            ratio = size.busbw_gbps / expected.ring_gbps
            status = Status.PASS if ratio >= allreduce_pass_ratio() else Status.WARN
            rows.append(replace(graded, status=status))
    if result.hung:
        ranks = ", ".join(map(str, result.unfinished))
        rows.append(
            BenchRow(
                "all",
                device,
                "allreduce",
                "GB/s",
                None,
                None,
                None,
                Status.FAIL,
                f"hung: rank {ranks} did not finish within {result.timeout_s:g} s",
            )
        )
    elif result.error and not result.sizes:
        rows.append(
            BenchRow("all", device, "allreduce", "GB/s", None, None, None, Status.FAIL, f"failed: {result.error[:200]}")
        )
    return rows


def _stages(result: AllreduceResults) -> tuple[str, ...]:
    env = " ".join(f"{k}={v}" for k, v in sorted(result.nccl_env.items()))
    return ((f"NCCL environment: {env}",) if env else ()) + tuple(
        f"rank {r.rank}: {'killed at the deadline' if r.killed else f'exit code {r.exit_code}'}, last at '{r.stage}'"
        + (f": {r.error}" if r.error else "")
        for r in result.ranks
    )


def _hang(result: AllreduceResults) -> Finding:
    ranks = ", ".join(map(str, result.unfinished))
    never = [r.rank for r in result.ranks if r.killed and not r.joined]
    summary = (
        f"all_reduce across {plural(result.world_size, 'process' if result.device == 'cpu' else 'GPU')} "
        f"({result.backend}) hung: rank {ranks} did not finish within {result.timeout_s:g} s and "
        f"{'was' if len(result.unfinished) == 1 else 'were'} killed"
    )
    if never:
        summary += f"; rank {', '.join(map(str, never))} never joined the process group"
    if result.p2p_disabled:
        return Finding.fail(
            summary + " even with NCCL_P2P_DISABLE=1: peer-to-peer is not the cause",
            fix="NCCL_DEBUG=INFO NCCL_P2P_DISABLE=1 mldoctor gpu-bench --no-container   # NCCL's own account of "
            "where it stops (shared memory, sockets)",
            details=_stages(result),
        )
    if result.device == "cpu":
        return Finding.fail(
            summary + " (the CPU run exercises the orchestration: its processes could not reach each other)",
            fix="ip -brief link show lo   # loopback must be UP for processes to rendezvous on 127.0.0.1; "
            "then: mldoctor gpu-bench",
            details=_stages(result),
        )
    return Finding.fail(
        summary + ": the classic sign of PCIe ACS redirecting peer-to-peer traffic or a translating IOMMU "
        "(see nvidia.p2p)",
        fix=f"{P2P_CHECK}; {P2P_CONFIRM}   # nvidia.p2p names PCIe ACS redirection or a translating IOMMU and "
        "prints its fix (ACS off, iommu=pt); the confirming test: with NCCL_P2P_DISABLE=1 the all-reduce finishes, "
        "slowly (--no-container needs torch on the host)",
        details=(*_stages(result), "NVIDIA/nccl#2079, #667, #257, #631: a hang that NCCL_P2P_DISABLE=1 cures"),
    )


@check(
    "bench.allreduce",
    "All-reduce across the GPUs",
    facts=("probe",),
    requires=("probe.torch",),
    after=("probe.cuda", "probe.arch"),
)
def bench_allreduce(facts: Facts, policy: Policy) -> Finding:
    """busbw at the largest size against the figure for this system; a hang FAILs naming ACS/IOMMU (nvidia.p2p)."""
    doc = _probe_bench(facts)
    if isinstance(doc, Finding):
        return doc
    result = doc.bench.allreduce
    if result is None:
        return Finding.skip("skipped: the probe ran no all-reduce (an older probe, or --no-allreduce)")
    if result.hung:
        return _hang(result)
    rows = allreduce_rows(doc, result)
    sized = [r for r in rows if r.metric != "allreduce"]
    if not result.sizes:
        text = result.error or "no size was measured"
        shm = doc.shm.total_bytes if doc.shm else None
        summary = f"all_reduce ({result.backend}, {plural(result.world_size, 'rank')}) failed: {text[:300]}"
        if shm is not None and shm < SHM_FOR_NCCL and result.backend == "nccl":
            return Finding.fail(
                summary + f"; /dev/shm is only {shm >> 20} MiB",
                fix="mldoctor gpu-bench --shm-size 16g   # NCCL needs a large /dev/shm (Docker gives 64 MiB): "
                "train with --ipc=host or --shm-size 16g too",
                details=_stages(result),
            )
        return Finding.fail(
            summary,
            fix="NCCL_DEBUG=INFO mldoctor gpu-bench --no-container   # NCCL's own account of the failure (needs torch "
            "on the host); in a container: docker run --rm --gpus all --ipc=host -e NCCL_DEBUG=INFO IMAGE ...",
            details=_stages(result),
        )
    wrong = [r for r in sized if r.status is Status.FAIL]
    if wrong:
        return Finding.fail(
            f"all_reduce returned wrong sums at {', '.join(r.metric.split(' ', 1)[1] for r in wrong)}",
            fix=f"{P2P_CHECK}; {P2P_CONFIRM}   # PCIe ACS or the IOMMU corrupting peer traffic: with "
            "NCCL_P2P_DISABLE=1 the sums come out right",
            details=tuple(_allreduce_line(r) for r in sized),
        )
    top = sized[-1]
    details = tuple(_allreduce_line(r) for r in sized)
    where = f"{result.world_size} {'processes' if result.device == 'cpu' else 'GPUs'}, {result.backend}"
    if result.device == "cpu":
        return Finding.ok(
            f"{where} on the CPU: busbw {_figure(top.measured)} GB/s at {top.metric.split(' ', 1)[1]} "
            "(information, not a verdict: the run exercises the orchestration, the timeout and the grading)",
            details=details,
        )
    if result.world_size < 2:
        return Finding.ok(
            "world size 1: one GPU, no peers; NCCL initialised and ran, bus bandwidth does not apply", details=details
        )
    _, spec = _system(doc)
    expected = allreduce_expected(spec.sku, result.world_size) if spec else None
    summary = f"{where}: busbw {_figure(top.measured)} GB/s at {top.metric.split(' ', 1)[1]}"
    if result.p2p_disabled:
        return Finding.ok(
            summary + " with NCCL_P2P_DISABLE=1 (peer-to-peer off, through host memory: not graded); if it hangs "
            "without it, peer-to-peer is the cause: see nvidia.p2p",
            details=details,
        )
    if expected is None or top.ratio is None:
        return Finding.ok(summary + f" ({top.note.split('; ', 1)[-1]})", details=details)
    summary += f" = {top.ratio:.2f}x expected {_figure(expected.ring_gbps)}{_nvls(expected)}"
    if top.status is Status.PASS:
        return Finding.ok(summary, details=details)
    return Finding.warn(
        summary + f" (below {allreduce_pass_ratio():g}x)",
        fix=f"nvidia-smi topo -m; nvidia-smi nvlink --status; {P2P_CHECK}   # an NVLink down, GPUs talking over "
        "PCIe/SYS, or PCIe ACS / the IOMMU in the way",
        details=details,
    )


def _nvls(expected: AllreduceSpec) -> str:
    note = f" ({expected.note})" if expected.note else ""
    return note + (f"; NVLS reaches ~{_figure(expected.nvls_gbps)}" if expected.nvls_gbps else "")


def _allreduce_line(row: BenchRow) -> str:
    return f"{row.metric}: busbw {_figure(row.measured)} GB/s; {row.note}"


@check("bench.p2p", "GPU peer-to-peer access and bandwidth", facts=("probe",), requires=("probe.arch",))
def bench_p2p(facts: Facts, policy: Policy) -> Finding:
    """The peer-access matrix: a pair that cannot reach the other is a FAIL on an NVLink board (SXM), a WARN on
    PCIe; copy bandwidth per pair is information, with a pair far below the node's median flagged."""
    doc = _probe_bench(facts)
    if isinstance(doc, Finding):
        return doc
    if len(doc.devices) < 2:
        return Finding.skip(f"{plural(len(doc.devices), 'GPU')}: no peers, so no peer-to-peer to check")
    p2p = doc.bench.p2p
    if p2p is None:
        return Finding.skip("skipped: the probe recorded no peer access (an older probe)")
    if p2p.error:
        return Finding.error(f"peer-to-peer could not be measured: {p2p.error}")
    system, spec = _system(doc)
    n = len(p2p.access)
    holes = [(i, j) for i in range(n) for j in range(n) if i != j and p2p.access[i][j] is False]
    rows = p2p_rows(doc, p2p, policy)
    details = tuple(
        "peer access: " + " ".join("-" if v is None else "y" if v else "N" for v in row) + f"  (GPU {i})"
        for i, row in enumerate(p2p.access)
    ) + tuple(_describe(r) for r in rows)
    if p2p.skipped:
        details += (f"{plural(p2p.skipped, 'pair')} not measured: the time budget ran out",)
    figures = [c.gbps for c in p2p.copies]
    speed = f"; copies {_figure(min(figures))}-{_figure(max(figures))} GB/s per pair" if figures else ""
    if any(not c.ok for c in p2p.copies):
        bad = [(c.src, c.dst) for c in p2p.copies if not c.ok]
        return Finding.fail(
            f"peer copies corrupted data on {_pairs(bad)}",
            fix=f"nvidia-smi -q -d ECC,ROW_REMAPPER; {P2P_CHECK}   # memory errors, or ACS / the IOMMU remapping "
            "peer traffic; drain the node until it is found",
            details=details,
        )
    if holes and len(holes) == n * (n - 1) and spec is not None and no_peer_access_by_design(spec):
        return Finding.ok(f"{system}: no peer access (GeForce cards have none): NCCL goes through host memory{speed}")
    if holes:
        nvlink = spec is not None and has_nvlink(spec.sku)
        summary = f"{len(holes)} of {n * (n - 1)} GPU pairs have no peer access: {_pairs(holes)}"
        if nvlink:
            return Finding.fail(
                summary + f" on an NVLink board ({spec.sku}): NCCL falls back to slow paths or hangs",
                fix="nvidia-smi nvlink --status; nvidia-smi topo -m; systemctl status nvidia-fabricmanager   # a "
                "link down or the fabric manager not running",
                details=details,
            )
        return Finding.warn(
            summary + ": traffic between them goes through host memory (slow)",
            fix=f"nvidia-smi topo -p2p r; nvidia-smi topo -m; {P2P_CHECK}   # NS: peer access blocked, SYS: across "
            "CPU sockets; nvidia.p2p reads PCIe ACS and the IOMMU",
            details=details,
        )
    slow = [r for r in rows if r.status is Status.WARN]
    if slow:
        gpu = slow[0].gpu
        return Finding.warn(
            f"peer copy from GPU {', '.join(r.gpu for r in slow)} far below the node's other pairs{speed}",
            fix=f"nvidia-smi nvlink --status -i {gpu}; nvidia-smi topo -m   # a link down or trained low",
            details=details,
        )
    return Finding.ok(f"{n} GPUs: every pair has peer access{speed}", details=details)
