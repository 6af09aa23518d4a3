"""What the host side asks of the probe program reaches it: the benchmark budget and the dtypes."""

from __future__ import annotations

from mldoctor.facts.probe import ProbeOptions
from mldoctor.probe import launch, probe


def test_dtypes_travel_to_the_probe():
    argv = launch.probe_args(ProbeOptions(duration=5, dtypes=("bf16", "fp8")))
    assert argv == ["--duration", "5", "--dtypes", "bf16,fp8"]
    assert probe._parse_args(argv) == {"duration": 5.0, "bench": True, "dtypes": ["bf16", "fp8"]}


def test_no_bench_and_all_dtypes_by_default():
    assert launch.probe_args(ProbeOptions(bench=False)) == ["--no-bench"]
    assert probe._parse_args(launch.probe_args(ProbeOptions(duration=2)))["dtypes"] == []
