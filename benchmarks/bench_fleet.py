"""Speed and memory of `mldoctor fleet` over 100 / 1,000 / 10,000 synthetic node reports (issue 15, item 6).

Target: 10,000 nodes (8 GPUs each) aggregated in <= 10 s and <= 500 MiB on a 2-core machine, growing linearly.
Each node report is built with mldoctor's own dataclasses and JSON renderer, so it has the shape and size of
`mldoctor check --format json` on an 8 x H100 node (NVML inventory, probe document with its benchmarks, graded
benchmark rows); a few GPUs are stragglers at 0.8x and a few nodes run another driver or fail a check.
Reports go to one JSON-lines file per size (generated once, outside the timing); each size is aggregated in a
fresh process, so its peak RSS is its own; a second process per size measures the Python heap with tracemalloc.

    python benchmarks/bench_fleet.py [--sizes 100,1000,10000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

H100 = "NVIDIA H100 80GB HBM3"
H100_MEMORY = 85_520_809_984
DTYPES = {"fp32": 51.0, "tf32": 378.0, "bf16": 790.0, "fp16": 790.0, "fp8": 1500.0}
"""Achievable matmul TFLOP/s per dtype on an H100 SXM (shared/reference/performance.md)."""
GPUS = 8


def template() -> dict:
    """One healthy node's report as JSON-ready data, from the real dataclasses."""
    from mldoctor import __version__
    from mldoctor.facts import Facts
    from mldoctor.facts.common import DiskUsage
    from mldoctor.facts.docker import CliFacts, Connection, DaemonInfo, DockerFacts, Endpoint
    from mldoctor.facts.host import CpuFacts, HostFacts, MemoryFacts, OsRelease, UserFacts
    from mldoctor.facts.nvidia import (
        FabricManagerFacts,
        GpuFacts,
        KernelFacts,
        NvidiaFacts,
        NvmlFacts,
        ToolBinary,
        ToolkitFacts,
    )
    from mldoctor.facts.probe import (
        BenchResults,
        CopyResult,
        GpuBench,
        MatmulResult,
        ProbeCuda,
        ProbeDevice,
        ProbeDocument,
        ProbeFacts,
        ProbeRun,
        ProbeTorch,
        Warmup,
    )
    from mldoctor.model import SCHEMA_VERSION, BenchRow, CheckResult, Report, Status
    from mldoctor.output import json as json_output
    from mldoctor.policy import Policy

    gib = 1 << 30
    disk = DiskUsage("/", total_bytes=2000 * gib, free_bytes=1500 * gib, inodes_total=10**8, inodes_free=9 * 10**7)
    host = HostFacts(
        hostname="gpu-00000",
        os=OsRelease(id="ubuntu", id_like=["debian"], version_id="22.04", pretty_name="Ubuntu 22.04.4 LTS"),
        kernel="5.15.0-105-generic",
        arch="x86_64",
        python="3.10.12",
        user=UserFacts(uid=1000, name="svc", active_groups=["svc", "docker"], member_of=["svc", "docker"]),
        cpu=CpuFacts(logical=224, usable=224, model="Intel(R) Xeon(R) Platinum 8480+", load_1m=1.2),
        memory=MemoryFacts(total_bytes=2048 * gib, available_bytes=1900 * gib),
        shm=DiskUsage("/dev/shm", total_bytes=1024 * gib, free_bytes=1024 * gib, inodes_total=10**6, inodes_free=10**6),
        disks=[disk],
        systemd=True,
    )
    docker = DockerFacts(
        cli=CliFacts(path="/usr/bin/docker", version="26.1.3", compose_plugin="2.27.0"),
        endpoint=Endpoint(url="unix:///var/run/docker.sock"),
        connection=Connection(ok=True, elapsed_s=0.004),
        daemon=DaemonInfo(
            server_version="26.1.3",
            api_version="1.45",
            operating_system="Ubuntu 22.04.4 LTS",
            kernel="5.15.0-105-generic",
            storage_driver="overlay2",
            cgroup_driver="systemd",
            cgroup_version="2",
            docker_root_dir="/var/lib/docker",
            runtimes=["io.containerd.runc.v2", "nvidia", "runc"],
            default_runtime="runc",
        ),
        local=True,
        root_dir=disk,
        dockerd_installed=True,
    )
    gpus = [
        GpuFacts(
            index=i,
            name=H100,
            uuid=f"GPU-{i:08x}",
            pci_bus_id=f"00000000:{0x18 + 16 * i:02X}:00.0",
            memory_total_bytes=H100_MEMORY,
            memory_used_bytes=0,
            compute_capability="9.0",
            persistence_mode=True,
            mig_mode=False,
            temperature_c=34,
            slowdown_temp_c=87,
            power_draw_w=71.2,
            power_limit_w=700.0,
            sm_clock_mhz=1980,
            sm_clock_max_mhz=1980,
            mem_clock_mhz=2619,
            mem_clock_max_mhz=2619,
            clock_event_reasons=0,
            pcie_gen=5,
            pcie_gen_max=5,
            pcie_width=16,
            pcie_width_max=16,
            ecc_enabled=True,
            ecc_uncorrected_volatile=0,
            ecc_uncorrected_aggregate=0,
            remapped_rows_correctable=0,
            remapped_rows_uncorrectable=0,
            remap_pending=False,
            remap_failure=False,
            fabric_state="completed",
        )
        for i in range(GPUS)
    ]
    nvidia = NvidiaFacts(
        kernel=KernelFacts(running_kernel="5.15.0-105-generic", module_version="550.54.15"),
        nvml=NvmlFacts(ok=True, driver_version="550.54.15", cuda_driver_version="12.4", gpus=gpus),
        toolkit=ToolkitFacts(binaries=[ToolBinary("nvidia-ctk", "/usr/bin/nvidia-ctk", "1.15.0")]),
        fabric_manager=FabricManagerFacts(path="/usr/bin/nv-fabricmanager", version="550.54.15", running=True),
    )
    devices = [
        ProbeDevice(index=i, name=H100, major=9, minor=0, sm_count=132, memory_bytes=H100_MEMORY, uuid=f"GPU-{i:08x}")
        for i in range(GPUS)
    ]
    copy = CopyResult(bytes=1 << 30, gbps=2900.0, median_ms=0.74, iters=200)
    bench = BenchResults(
        duration_s=10.0,
        gpus=[
            GpuBench(
                index=i,
                warmup=Warmup(seconds=2.0, settled=True),
                matmul=[
                    MatmulResult(dtype=d, shape=[8192, 8192, 8192], tflops=t, median_ms=1.4, iters=500, ok=True)
                    for d, t in DTYPES.items()
                ],
                d2d=copy,
                h2d=CopyResult(bytes=1 << 28, gbps=55.0, median_ms=4.9, iters=100),
                d2h=CopyResult(bytes=1 << 28, gbps=53.0, median_ms=5.0, iters=100),
            )
            for i in range(GPUS)
        ],
    )
    document = ProbeDocument(
        torch=ProbeTorch(found=True, version="2.3.0+cu121", cuda="12.1", cudnn=8902, nccl="2.20.5"),
        cuda=ProbeCuda(available=True, device_count=GPUS, arch_list=["sm_80", "sm_90"]),
        devices=devices,
        bench=bench,
        nvidia_smi="\n".join(f"| {i}  {H100}   On | 00000000:{i:02X}:00.0 Off |   0 |" for i in range(40)),
    )
    facts = Facts(host=host, docker=docker, nvidia=nvidia)
    facts.probe = ProbeFacts(run=ProbeRun(image="mldoctor-probe:0.1.0", gpus="all", stage="done"), document=document)
    ids = ["docker.cli", "docker.daemon", "docker.permission", "docker.version", "docker.flavour", "docker.storage"]
    ids += ["docker.disk", "docker.logging", "nvidia.gpu", "nvidia.driver", "nvidia.devices", "nvidia.health"]
    ids += ["nvidia.fabricmanager", "nvidia.toolkit", "host.disk", "host.memory", "host.cpu", "host.shm"]
    ids += ["probe.container", "probe.cuda", "probe.torch", *(f"bench.matmul.{d}" for d in DTYPES), "bench.outlier"]
    results = [
        CheckResult(c, c, c.split(".")[0], Status.PASS, f"{c} looks fine on this node", docs=f"docs/checks.md#{c}")
        for c in ids
    ]
    rows = [
        BenchRow(str(i), H100, d, "TFLOP/s", t, t, t * 1.25, Status.PASS)
        for i in range(GPUS)
        for d, t in DTYPES.items()
    ]
    rows += [
        BenchRow(str(i), H100, m, "GB/s", 2900.0, 3350.0, 3350.0, Status.PASS) for i in range(GPUS) for m in ("d2d",)
    ]
    report = Report(SCHEMA_VERSION, __version__, "2026-11-30T10:00:00Z", "gpu-00000", facts, results, Policy(), rows)
    return json.loads(json_output.render(report))


def node(base: dict, n: int, rng: random.Random) -> dict:
    """Node n: its own name, UUIDs and figures; every 50th GPU a 0.8x straggler, every 100th node on an older
    driver, every 500th node with a failed check."""
    name = f"gpu-{n:05d}"
    data = {**base, "node": name, "host": name}
    facts = data["facts"] = {**base["facts"]}
    facts["host"] = {**facts["host"], "hostname": name}
    nvidia = facts["nvidia"] = {**facts["nvidia"]}
    nvml = nvidia["nvml"] = {**nvidia["nvml"]}
    nvml["gpus"] = [{**g, "uuid": f"GPU-{n:05d}-{g['index']}"} for g in nvml["gpus"]]
    if n % 100 == 99:
        nvml["driver_version"] = "535.161.08"
    probe = facts["probe"] = {**facts["probe"]}
    document = probe["document"] = {**probe["document"]}
    document["devices"] = [{**d, "uuid": f"GPU-{n:05d}-{d['index']}"} for d in document["devices"]]
    rows = []
    for row in base["benchmarks"]:
        if row["unit"] == "TFLOP/s":
            slow = 0.8 if (n * GPUS + int(row["gpu"])) % 50 == 7 else 1.0
            measured = row["expected"] * slow * rng.uniform(0.97, 1.03)
            row = {**row, "measured": measured, "ratio": measured / row["expected"]}
        rows.append(row)
    data["benchmarks"] = rows
    if n % 500 == 250:
        data["results"] = [
            {**r, "status": "FAIL", "summary": "GPU 3 has pending remapped rows", "fix": "sudo reboot"}
            if r["id"] == "nvidia.health"
            else r
            for r in base["results"]
        ]
    return data


def generate(path: str, count: int) -> None:
    base = template()
    rng = random.Random(15)
    with open(path, "w", encoding="utf-8") as handle:
        for n in range(count):
            handle.write(json.dumps(node(base, n, rng), separators=(",", ":")) + "\n")


def child(path: str, trace: bool) -> None:
    """Aggregate one file and print a JSON line of figures (run in a fresh process per size)."""
    from mldoctor.fleet.aggregate import aggregate
    from mldoctor.fleet.output import table
    from mldoctor.fleet.sources import documents

    if trace:
        tracemalloc.start()
    started, cpu = time.perf_counter(), time.process_time()
    fleet = aggregate(documents([path]))
    aggregated, cpu = time.perf_counter() - started, time.process_time() - cpu
    text = table.render(fleet)
    rendered = time.perf_counter() - started - aggregated
    figures = {
        "nodes": len(fleet.rows),
        "aggregate_s": aggregated,
        "aggregate_cpu_s": cpu,
        "table_s": rendered,
        "table_kib": len(text) // 1024,
        "stragglers": len(fleet.stragglers),
        "drain": len(fleet.drain),
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if trace:
        figures["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / (1 << 20)
    print(json.dumps(figures))


def measure(path: str, trace: bool) -> dict:
    argv = [sys.executable, __file__, "--child", path] + (["--trace"] if trace else [])
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--dir", help="where the JSON-lines files go (kept for reruns) [default: a temp folder]")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trace)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = args.dir or tempfile.mkdtemp(prefix="mldoctor-bench-fleet-")
    os.makedirs(folder, exist_ok=True)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    header = ("nodes", 7), ("file MiB", 9), ("aggregate s", 12), ("CPU s", 6), ("table s", 8), ("peak RSS MiB", 13)
    print(" ".join(f"{name:>{width}}" for name, width in header) + f" {'heap MiB':>9}")
    previous = None
    for size in sizes:
        path = os.path.join(folder, f"nodes-{size}.jsonl")
        if not os.path.exists(path):
            generate(path, size)
        timed, traced = measure(path, trace=False), measure(path, trace=True)
        wall, cpu = timed["aggregate_s"], timed["aggregate_cpu_s"]
        growth = f"  x{cpu / previous[1]:.1f} CPU time for x{size / previous[0]:g} nodes" if previous else ""
        print(
            f"{size:>7} {os.path.getsize(path) / (1 << 20):>9.0f} {wall:>12.2f} {cpu:>6.2f} {timed['table_s']:>8.2f}"
            f" {timed['max_rss_mib']:>13.0f} {traced['traced_peak_mib']:>9.1f}{growth}"
        )
        previous = (size, cpu)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
