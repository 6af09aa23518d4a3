"""What the host side asks of the probe program reaches it: the benchmark budget and the dtypes."""

from __future__ import annotations

from mldoctor.facts.probe import ProbeOptions
from mldoctor.probe import probe


def test_dtypes_travel_to_the_probe():
    argv = list(ProbeOptions(duration=5, dtypes=("bf16", "fp8")).probe_args())
    assert argv == ["--duration", "5", "--dtypes", "bf16,fp8"]
    assert probe._parse_args(argv) == {"duration": 5.0, "bench": True, "dtypes": ["bf16", "fp8"]}


def test_no_bench_and_all_dtypes_by_default():
    assert ProbeOptions(bench=False).probe_args() == ("--no-bench",)
    assert probe._parse_args(list(ProbeOptions(duration=2).probe_args()))["dtypes"] == []


GIB = 1 << 30


def test_the_sweep_holds_8192_cubed_where_it_fits():
    """A plain 8192^3 torch.mm loop is the yardstick: the best of the sweep can never be below it on an H100."""
    for dtype in ("fp32", "tf32", "bf16", "fp8"):
        assert (8192, 8192, 8192) in probe.shapes(dtype, 79 * GIB), dtype
    assert (16384, 8192, 8192) in probe.shapes("bf16", 79 * GIB)
    assert probe.shapes("bf16", 2 * GIB) == [(4096, 4096, 4096)]  # memory decides; never an empty sweep
    for dtype in ("fp32", "bf16"):
        assert all(d % 128 == 0 for shape in probe.shapes(dtype, 79 * GIB) for d in shape)


class _Matmul:
    def __init__(self, mixed: bool = False):
        self.mixed, self.value = mixed, False

    @property
    def allow_tf32(self) -> bool:
        if self.mixed:
            raise RuntimeError("you have used mix of the legacy and new APIs to set the TF32 status")
        return self.value

    @allow_tf32.setter
    def allow_tf32(self, value: bool) -> None:
        self.mixed, self.value = False, value


def _torch(version: str = "2.7.1+cu128", mixed: bool = False, scaled_mm: bool = True):
    from types import SimpleNamespace

    torch = SimpleNamespace(__version__=version, backends=SimpleNamespace(cuda=SimpleNamespace(matmul=_Matmul(mixed))))
    if scaled_mm:
        torch._scaled_mm = object()
    return torch


def test_dtypes_follow_the_compute_capability_and_torch():
    assert probe.gpu_dtypes(_torch(), 9, 0) == ["fp32", "tf32", "bf16", "fp8"]
    assert probe.gpu_dtypes(_torch(), 8, 9) == ["fp32", "tf32", "bf16", "fp8"]
    assert probe.gpu_dtypes(_torch(), 8, 0) == ["fp32", "tf32", "bf16"]  # A100: no fp8 hardware
    assert probe.gpu_dtypes(_torch(), 7, 0) == ["fp32", "fp16"]  # V100: bf16 is emulated, never graded
    assert probe.gpu_dtypes(_torch("2.4.1"), 9, 0) == ["fp32", "tf32", "bf16"]  # _scaled_mm settled in 2.5
    assert probe.gpu_dtypes(_torch("2.10.0a0+git"), 9, 0)[-1] == "fp8"
    assert probe.gpu_dtypes(_torch(scaled_mm=False), 9, 0)[-1] == "bf16"


def test_tf32_is_set_through_the_one_setter_and_restorable():
    torch = _torch()
    assert probe.set_tf32(torch, True) is False and torch.backends.cuda.matmul.value is True
    assert probe.set_tf32(torch, False) is True and torch.backends.cuda.matmul.value is False
    mixed = _torch(mixed=True)  # torch >= 2.9 refusing to read a flag set through both APIs
    assert probe.set_tf32(mixed, False) is False and mixed.backends.cuda.matmul.allow_tf32 is False


def test_pcie_generation_from_sysfs_text():
    assert probe.link_gen("32.0 GT/s PCIe") == 5
    assert probe.link_gen("16.0 GT/s PCIe") == 4
    assert probe.link_gen("8 GT/s") == 3  # older kernels print no decimals
    assert probe.link_gen("2.5 GT/s") == 1
    assert probe.link_gen("Unknown") is None and probe.link_gen(None) is None and probe.link_gen("") is None


def test_the_launcher_keeps_the_end_of_a_flood_in_bounded_memory():
    """The document is printed last: 128 MiB before it are counted and dropped as they stream."""
    from mldoctor.probe import launch

    chunks = (b"x" * (1 << 20) for _ in range(128))
    tail, total = launch._read_tail(iter([*chunks, b'\n{"schema": "mldoctor-probe"}\n']), 1 << 20)
    assert total == (128 << 20) + 30 and len(tail) == 1 << 20 and tail.endswith(b'"mldoctor-probe"}\n')
