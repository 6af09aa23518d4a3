"""Benchmark checks: matmul per dtype, device-to-device and host<->device bandwidth, a GPU slower than its
peers, and the CPU fallback. Measurements come from the probe; expected figures from the GPU spec table (data),
applied here at evaluation time so an old report re-grades with today's table.

`bench_rows` grades every single measurement (per GPU, per dtype); the checks fold them into one result per id,
and `mldoctor gpu-bench` prints the rows themselves.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

from mldoctor.data.gpus import GpuSpec, match_gpu, pcie_gbps
from mldoctor.facts import Facts
from mldoctor.facts.probe import CopyResult, GpuBench, ProbeDevice, ProbeDocument
from mldoctor.model import BenchRow, Finding, Status, worst
from mldoctor.policy import Band, Policy
from mldoctor.rules import probe as _probe  # noqa: F401  (registers probe.arch and probe.torch, required below)
from mldoctor.rules.registry import check
from mldoctor.text import plural

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


def _describe(row: BenchRow) -> str:
    text = f"GPU {row.gpu} {row.device}: {_figure(row.measured)} {row.unit}"
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
    slow = []
    for gpu, rate in rates.items():
        others = statistics.median(r for g, r in rates.items() if g != gpu)
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
