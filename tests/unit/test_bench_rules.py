"""bench.* rules and the GPU spec table: measured vs expected achievable, per dtype and per GPU."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mldoctor.data.gpus import gpu_specs, match_gpu, min_driver_for_cuda
from mldoctor.facts.probe import ProbeRun
from mldoctor.facts.probe_document import (
    BenchResults,
    CopyResult,
    CpuBench,
    GpuBench,
    MatmulResult,
    PcieLink,
    ProbeDevice,
)
from mldoctor.model import Status
from mldoctor.policy import Policy
from mldoctor.rules.bench import bench_rows
from tests.unit.helpers import result, results
from tests.unit.test_probe_rules import H100, document, probe_facts

GIB = 1 << 30


def matmul(dtype: str, tflops: float, ok: bool = True) -> MatmulResult:
    return MatmulResult(dtype=dtype, shape=[8192, 8192, 8192], tflops=tflops, iters=100, ok=ok,
                        max_rel_err=0.001 if ok else float("nan"), tolerance=0.02)  # fmt: skip


def gpu(index: int = 0, bf16: float = 790.0, **changes) -> GpuBench:
    base = GpuBench(
        index=index,
        matmul=[matmul("fp32", 52.0), matmul("tf32", 400.0), matmul("bf16", bf16)],
        d2d=CopyResult(bytes=1 << 30, gbps=3000.0),
        h2d=CopyResult(bytes=256 << 20, gbps=52.0),
        d2h=CopyResult(bytes=256 << 20, gbps=53.0),
    )
    return replace(base, **changes)


def bench_facts(gpus: list[GpuBench], devices: list[ProbeDevice] | None = None):
    devices = devices or [replace(H100, index=g.index) for g in gpus]
    return probe_facts(doc=document(devices=devices, bench=BenchResults(duration_s=10, gpus=gpus)))


def matmul_results(facts, policy: Policy | None = None) -> dict[str, object]:
    return {r.id: r for r in results(facts, "bench.matmul", policy)}


@pytest.mark.parametrize(
    ("bf16", "status"),
    [(790.0, Status.PASS), (711.1, Status.PASS), (700.0, Status.WARN), (593.0, Status.WARN), (590.0, Status.FAIL)],
)
def test_bf16_thresholds_against_the_h100_reference(bf16, status):
    """performance.md's worked example: reference 790, PASS >= 711, WARN 593-711, FAIL below."""
    found = matmul_results(bench_facts([gpu(bf16=bf16)]))["bench.matmul.bf16"]
    assert found.status is status
    if status is not Status.PASS:
        assert found.fix.startswith("nvidia-smi -q -i 0")


def test_each_dtype_is_its_own_id_with_measured_expected_and_peak():
    found = matmul_results(bench_facts([gpu()]))
    assert set(found) == {"bench.matmul.fp32", "bench.matmul.tf32", "bench.matmul.bf16"}
    assert "790 TFLOP/s = 1.00x expected 790 (80% of peak 989)" in found["bench.matmul.bf16"].summary


def test_fp32_uses_its_wider_band():
    assert matmul_results(bench_facts([gpu(matmul=[matmul("fp32", 40.0)])]))["bench.matmul.fp32"].status is Status.WARN


def test_above_the_datasheet_is_a_suspect_measurement():
    found = matmul_results(bench_facts([gpu(bf16=1200.0)]))["bench.matmul.bf16"]
    assert found.status is Status.ERROR and "suspect" in found.summary


def test_nan_is_a_failure_even_when_fast():
    found = matmul_results(bench_facts([gpu(matmul=[matmul("bf16", 790.0, ok=False)])]))["bench.matmul.bf16"]
    assert found.status is Status.FAIL and "wrong results" in found.summary and "ECC" in found.fix


def test_unknown_sku_warns_and_expect_tflops_grades_it():
    odd = ProbeDevice(index=0, name="NVIDIA Future X", major=9, minor=0, sm_count=200, memory_bytes=200 * GIB)
    facts = bench_facts([gpu(bf16=900.0)], devices=[odd])
    found = matmul_results(facts)["bench.matmul.bf16"]
    assert found.status is Status.WARN and "no expected figure" in found.summary
    assert found.fix.startswith("mldoctor gpu-bench --expect-tflops bf16=N") and "900" in found.fix
    graded = matmul_results(facts, Policy(expect_tflops=(("bf16", 950.0),)))["bench.matmul.bf16"]
    assert graded.status is Status.PASS


def test_copies_grade_against_datasheet_and_link():
    facts = bench_facts([gpu(d2d=CopyResult(gbps=2000.0), h2d=CopyResult(gbps=20.0))])
    d2d, h2d = result(facts, "bench.d2d"), result(facts, "bench.h2d")
    assert d2d.status is Status.FAIL and "3350" in d2d.summary  # 0.60 of H100's 3350 GB/s
    assert h2d.status is Status.FAIL and "dmesg" in h2d.fix  # 20 of PCIe Gen5 x16's 63


def test_the_link_sysfs_reports_is_the_reference_for_host_copies():
    gen4 = replace(H100, pcie=PcieLink(max_gen=4, max_width=16, cur_gen=1, cur_width=16))
    assert (
        result(bench_facts([gpu(h2d=CopyResult(gbps=25.0), d2h=CopyResult(gbps=26.0))], [gen4]), "bench.h2d").status
        is Status.PASS
    )


def test_outlier_flags_the_slow_gpu_among_eight():
    gpus = [gpu(index=i, bf16=790.0 - i) for i in range(7)] + [gpu(index=7, bf16=580.0)]
    found = result(bench_facts(gpus), "bench.outlier")
    assert found.status is Status.WARN and found.summary.startswith("1 of 8 GPUs") and "GPU 7" in found.summary
    assert "nvidia-smi -q -i 7" in found.fix
    matmul = matmul_results(bench_facts(gpus))["bench.matmul.bf16"]
    assert matmul.status is Status.FAIL and "on 8 GPUs: 580-790 TFLOP/s" in matmul.summary


@pytest.mark.parametrize("count", [1, 8])
def test_host_copies_count_gpus_not_directions(count):
    """h2d and d2h are two rows per GPU: the summary counts each GPU once."""
    found = result(bench_facts([gpu(index=i) for i in range(count)]), "bench.h2d")
    wording = "on 1 GPU:" if count == 1 else f"on {count} GPUs:"
    assert wording in found.summary and f"on {2 * count} GPUs" not in found.summary, found.summary
    assert len(found.details) == 2 * count  # every direction of every GPU is still listed
    assert [d.split(":")[0].split(" (")[1] for d in found.details[:2]] == ["host to device)", "device to host)"]


def test_outlier_does_not_apply_to_one_gpu():
    assert results(bench_facts([gpu()]), "bench.outlier") == []


@pytest.mark.parametrize(("gflops", "ok", "status"), [(160.0, True, Status.PASS), (12.0, True, Status.PASS),
                                                     (160.0, False, Status.FAIL)])  # fmt: skip
def test_cpu_figure_is_information_and_only_wrong_results_fail(gflops, ok, status):
    """A shared 2-core machine measured 21-92 GFLOP/s per thread with a neighbour's load: not a verdict."""
    cpu = CpuBench(shape=[2048] * 3, gflops=gflops, threads=2, ok=ok, max_rel_err=1e-7, tolerance=1e-4)
    run = ProbeRun(image="x", gpus="none", gpus_reason="no GPU")
    doc = document(devices=[], bench=BenchResults(duration_s=2, cpu=cpu))
    found = result(probe_facts(run=run, doc=doc), "bench.cpu")
    assert found.status is status
    assert results(probe_facts(run=run, doc=doc), "bench.matmul")[0].status is Status.SKIP


def test_rows_carry_measured_expected_peak_and_ratio():
    rows = bench_rows(document(bench=BenchResults(gpus=[gpu(bf16=711.0)])), Policy())
    bf16 = next(r for r in rows if r.metric == "bf16")
    assert (bf16.measured, bf16.expected, bf16.peak) == (711.0, 790.0, 989.0)
    assert bf16.ratio == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("name", "sms", "memory_gib", "sku"),
    [
        ("NVIDIA H100 80GB HBM3", 132, 79.6, "H100 SXM"),
        ("NVIDIA H100 PCIe", 114, 79.6, "H100 PCIe"),
        ("NVIDIA H100 NVL", 132, 93.6, "H100 NVL"),
        ("NVIDIA H200", 132, 140.0, "H200"),
        ("NVIDIA GH200 480GB", 132, 95.0, "GH200"),
        ("NVIDIA A100-SXM4-40GB", 108, 39.4, "A100 SXM 40GB"),
        ("NVIDIA A100 80GB PCIe", 108, 79.2, "A100 PCIe 80GB"),
        ("NVIDIA A10", 72, 22.0, "A10"),
        ("NVIDIA A10G", 80, 22.0, "A10G"),
        ("Tesla T4", 40, 15.0, "T4"),
        ("NVIDIA GeForce RTX 3090 Ti", 84, 23.7, None),
        ("NVIDIA H200 NVL", 132, 139.8, "H200 NVL"),
        ("NVIDIA GH200 144G HBM3e", 132, 142.0, "GH200 144GB"),
        ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", 60, 39.0, None),  # a MIG slice is not graded as the whole card
        ("NVIDIA A100-SXM4-80GB", 108, 79.2, "A100 SXM 80GB"),
        ("NVIDIA A100-PCIE-40GB", 108, 39.4, "A100 PCIe 40GB"),
        ("NVIDIA L4", 58, 22.0, "L4"),
        ("NVIDIA L40", 142, 44.4, "L40"),
        ("NVIDIA L40S", 142, 44.4, "L40S"),
        ("NVIDIA GeForce RTX 4090", 128, 23.6, "RTX 4090"),
        ("NVIDIA RTX 6000 Ada Generation", 142, 47.5, "RTX 6000 Ada"),
        ("Tesla V100-SXM2-32GB", 80, 31.7, "V100 SXM2"),
        ("Tesla V100S-PCIE-32GB", 80, 31.7, "V100S PCIe"),
        ("NVIDIA B200", 148, 178.4, "B200"),
        ("NVIDIA GB200", 152, 184.0, "GB200"),
    ],
)
def test_spec_table_tells_skus_apart(name, sms, memory_gib, sku):
    spec = match_gpu(name, sms, int(memory_gib * GIB))
    assert (spec.sku if spec else None) == sku


def test_spec_table_is_sane():
    for spec in gpu_specs():
        for dtype, peak in spec.peak_tflops.items():
            expected = spec.expected(dtype)
            assert expected is not None and 0.4 * peak < expected <= 1.1 * peak, (spec.sku, dtype)
        assert "bf16" not in spec.peak_tflops or spec.peak("bf16") >= spec.peak("fp32")
    assert min_driver_for_cuda("12.4") == 550 and min_driver_for_cuda("99.0") is None


@pytest.mark.parametrize(
    ("name", "sms", "memory_gib", "bf16", "peak", "memory_gbps"),
    [
        ("NVIDIA H100 80GB HBM3", 132, 79.2, 790.0, 989.0, 3350),
        ("NVIDIA H100 PCIe", 114, 79.2, 495.9, 756.0, 2000),
        ("NVIDIA H100 NVL", 132, 93.1, 626.2, 835.0, 3900),  # no public measurement: 0.75 x the dense peak
        ("NVIDIA H200", 132, 139.8, 790.3, 989.0, 4800),
        ("NVIDIA A100-SXM4-40GB", 108, 39.4, 264.5, 312.0, 1555),
        ("NVIDIA A100 80GB PCIe", 108, 79.2, 234.1, 312.0, 1935),
        ("NVIDIA L4", 58, 22.0, 70.9, 121.0, 300),
    ],
)
def test_dense_peaks_and_expected_figures_of_the_main_skus(name, sms, memory_gib, bf16, peak, memory_gbps):
    """performance.md sections 1-2: dense datasheet peaks (sparse ones halved), typical measured figures."""
    spec = match_gpu(name, sms, int(memory_gib * GIB))
    assert (spec.expected("bf16"), spec.peak("bf16"), spec.memory_gbps) == (bf16, peak, memory_gbps)


def test_no_sparse_figure_hides_in_the_table():
    """Dense tensor rates double from TF32 to BF16 to FP8 on every part in the table; a sparse figure copied into
    one column (2x its neighbours) breaks that."""
    for spec in gpu_specs():
        rates = spec.peak_tflops
        if "tf32" in rates and "bf16" in rates:
            assert abs(rates["bf16"] / rates["tf32"] - 2) < 0.06, spec.sku
        if "fp8" in rates:
            assert abs(rates["fp8"] / rates["bf16"] - 2) < 0.06, spec.sku


def test_a_wrong_result_without_an_error_figure_is_still_a_failure():
    odd = MatmulResult(dtype="bf16", shape=[8192] * 3, tflops=790.0, ok=False)
    found = matmul_results(bench_facts([gpu(matmul=[odd])]))["bench.matmul.bf16"]
    assert found.status is Status.FAIL and "wrong results: no error figure" in found.summary


def test_host_copy_that_corrupts_bytes_fails():
    found = result(bench_facts([gpu(h2d=CopyResult(bytes=256 << 20, gbps=52.0, ok=False))]), "bench.h2d")
    assert found.status is Status.FAIL and "differ" in found.summary


def test_report_carries_the_graded_rows_and_json_their_ratio():
    import json

    from mldoctor.output import json as json_output
    from mldoctor.runner import build_report, select

    facts = probe_facts(doc=document(bench=BenchResults(gpus=[gpu(bf16=711.0)])))
    report = build_report(select(["bench"]), facts, Policy())
    assert report.benchmarks == bench_rows(facts.probe.document, Policy())
    row = next(r for r in json.loads(json_output.render(report))["benchmarks"] if r["metric"] == "bf16")
    assert (row["measured"], row["expected"], row["status"]) == (711.0, 790.0, "PASS")
    assert row["ratio"] == pytest.approx(0.9)
