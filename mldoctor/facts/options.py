"""What to gather and how: deadlines, ports, where to read the NVIDIA facts, how to run the probe. Plain options
with their defaults (the settings table reads these defaults rather than repeating them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mldoctor.policy import Policy

ALLREDUCE_S, PEER_COPIES_S, GLOO_S = 60.0, 10.0, 10.0
"""What the probe's collectives may take: its all-reduce deadline and peer copies on GPUs; gloo on the CPU."""


@dataclass(frozen=True)
class ProbeOptions:
    """How to run the probe: in a container or on the host, the image, the GPUs and /dev/shm it gets, its deadlines
    and what it benchmarks."""

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
        """Start, imports and teardown (`timeout`), the matmul budget per device, and the all-reduce with the peer
        copies (its own 60 s deadline and 10 s of copies on several GPUs; a few seconds of gloo on one or a CPU)."""
        if not self.bench:
            return self.timeout
        collectives = ALLREDUCE_S + PEER_COPIES_S if devices >= 2 else GLOO_S
        return self.timeout + self.duration * max(1, devices) + collectives

    def probe_args(self) -> tuple[str, ...]:
        """The probe program's command line for these options."""
        if not self.bench:
            return ("--no-bench",)
        dtypes = ("--dtypes", ",".join(self.dtypes)) if self.dtypes else ()
        return ("--duration", f"{self.duration:g}", *dtypes)


@dataclass(frozen=True)
class GatherOptions:
    """How to gather the facts: the per-call deadline, the ports to try, the policy, where to read the NVIDIA facts,
    and the probe's options."""

    timeout: float = 5.0
    """Deadline for each call to the outside world (a docker API call, a helper command)."""
    ports: tuple[int, ...] = ()
    policy: Policy = field(default_factory=Policy)
    sysroot: str = "/"
    """Where /sys, /proc, /dev and /etc are read for the NVIDIA facts (tests point it at a fake tree)."""
    probe: ProbeOptions | None = None
    """How to run the probe; None: the defaults."""

    def probe_options(self) -> ProbeOptions:
        return self.probe or ProbeOptions()
