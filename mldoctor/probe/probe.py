"""mldoctor probe: what a container (or a host) can do for GPU training, as one JSON document on stdout.

Self-contained on purpose: mldoctor injects this file with `python3 -c` into any image (the user's own included),
so it may use only the standard library and, when the image has it, torch; it must parse on Python 3.8. Nothing
but the JSON document reaches stdout: fd 1 is pointed at stderr before anything is imported, so library noise
(torch's warnings, a C++ banner) cannot corrupt the document.

It records facts and measurements only; judging them (expected figures, thresholds, fixes) is mldoctor's job on
the host, so an old report can be re-graded with a newer GPU table.

Usage: python3 probe.py [--duration SECONDS] [--no-bench] [--dtypes fp32,bf16,...] [--no-allreduce]
                       [--allreduce-timeout SECONDS]

With several GPUs it also records which pairs can reach each other (peer access) and the copy bandwidth of each
pair, and runs an all-reduce across the local GPUs (NCCL, one process per GPU); without a GPU the same all-reduce
runs with gloo across two processes on the CPU. Those processes re-run this program in a worker mode
(`--allreduce-worker CONFIG`): their stdout is a pipe to this process, never the document's stdout, and every one
of them is killed at the all-reduce's deadline.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings

SCHEMA = "mldoctor-probe"
SCHEMA_VERSION = 1
ENV_KEYS = (
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "NVIDIA_REQUIRE_CUDA",
    "NVIDIA_DISABLE_REQUIRE",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_VERSION",
    "LD_LIBRARY_PATH",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
)
"""An allowlist: the environment can hold secrets, so only these names are ever reported."""

# Error bound per dtype: max |C - C_ref| / max |C_ref| on a slice, against float64 from the same (rounded) inputs.
# Output rounding dominates: bf16 keeps 8 bits of mantissa (0.4 %), fp16 11, tf32 rounds the inputs to 11 bits.
# The fp32 bound also catches TF32 leaking into an fp32 run (its error is ~4e-4 at these sizes).
TOLERANCE = {"fp32": 1e-4, "tf32": 1e-2, "bf16": 2e-2, "fp16": 5e-3, "fp8": 5e-2}
MIN_ITERS, MAX_ITERS = 10, 2000
WARMUP_CALLS = 10
"""Un-timed calls per shape before timing (cuBLAS handle, algorithm choice, module loading), budget permitting."""
SLICE = 64
FLUSH_BYTES = 256 << 20
"""The buffer zeroed between timed calls to evict the L2 (at least twice the L2 where that is bigger)."""
DEVICE_TYPE = "cuda"
WARMUP_N = 8192
MAX_PACKAGES = 3000
MAX_NAME, MAX_VERSION = 100, 64
MAX_PACKAGE_BYTES = 256 << 10
"""Bounds on the image's package list: a few thousand names, each cut to these lengths (PyPI's longest names are
under 100 characters), at most this much of the document as JSON (a name of non-ASCII letters is written six bytes a
character), so the document stays far below the 1 MiB of stdout the host reads."""
P2P_BYTES = 256 << 20
"""The most each peer copy moves (and twice this per GPU is allocated: a source and a destination buffer)."""
ALLREDUCE_TIMEOUT = 60.0
"""The all-reduce's hard deadline, from starting its processes to reading their results: then they are killed."""
ALLREDUCE_SIZES = {"nccl": (1 << 20, 16 << 20, 128 << 20, 1 << 30), "gloo": (1 << 20, 4 << 20, 16 << 20, 64 << 20)}
"""Bytes per all-reduce (float32 elements), each kept only where memory allows; the largest one is graded."""
ALLREDUCE_BATCH = 10
"""Calls between two synchronisations: the buffer is refilled between batches, so sums never overflow."""
NCCL_ENV = ("NCCL_P2P_DISABLE", "NCCL_P2P_LEVEL", "NCCL_SHM_DISABLE", "NCCL_NVLS_ENABLE", "NCCL_ALGO", "NCCL_PROTO",
            "NCCL_IB_DISABLE", "NCCL_SOCKET_IFNAME", "NCCL_DEBUG")  # fmt: skip
"""NCCL settings recorded with the all-reduce (an allowlist, as ENV_KEYS): NCCL_P2P_DISABLE=1 is the confirming test
of a peer-to-peer hang."""
ALLREDUCE_MAX_ITERS = 200


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--allreduce-worker":
        _allreduce_worker(json.loads(argv[1]))
        return
    out = _claim_stdout()
    started = time.monotonic()
    args = _parse_args(argv)
    args.update(_allreduce_args(argv))
    doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "errors": []}
    try:
        collect(doc, args)
    except BaseException as exc:  # the document must come out whatever happened; the error is a fact
        doc["errors"].append(f"probe crashed: {type(exc).__name__}: {exc}")
    doc["elapsed_s"] = round(time.monotonic() - started, 3)
    out.write("\n" + json.dumps(doc, sort_keys=True) + "\n")  # on a line of its own, whatever came before it
    out.flush()


def _claim_stdout():
    """Keep the real stdout for the document and send everything else (Python and C level) to stderr."""
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(real, "w")


def _parse_args(argv):
    args = {"duration": 10.0, "bench": True, "dtypes": []}
    i = 0
    while i < len(argv):
        if argv[i] == "--duration" and i + 1 < len(argv):
            args["duration"] = max(0.0, float(argv[i + 1]))
            i += 1
        elif argv[i] == "--dtypes" and i + 1 < len(argv):
            args["dtypes"] = [d for d in argv[i + 1].split(",") if d]
            i += 1
        elif argv[i] == "--no-bench":
            args["bench"] = False
        i += 1
    return args


def _allreduce_args(argv):
    """The all-reduce's options: --no-allreduce, --allreduce-timeout SECONDS, and for tests only
    --allreduce-stall-rank N (that rank never joins, as a rank stuck behind a broken peer path)."""
    args = {"allreduce": "--no-allreduce" not in argv, "allreduce_timeout": ALLREDUCE_TIMEOUT, "stall_rank": None}
    for i, word in enumerate(argv[:-1]):
        if word == "--allreduce-timeout":
            args["allreduce_timeout"] = max(1.0, float(argv[i + 1]))
        elif word == "--allreduce-stall-rank":
            args["stall_rank"] = int(argv[i + 1])
    return args


def _section(doc, name, fn, *args):
    """Run one part of the probe; a failure there is recorded and the rest still runs."""
    try:
        return fn(*args)
    except Exception as exc:
        doc["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
        return None


STEP = "@mldoctor-step "
"""A line on stderr that says what the probe is doing, for the host's progress display (stdout is the document)."""


def _step(text):
    try:
        sys.__stderr__.write("\n" + STEP + text + "\n")
        sys.__stderr__.flush()
    except (OSError, ValueError, AttributeError):  # no stderr: nobody is watching
        pass


def collect(doc, args):
    doc["python"] = {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }
    doc["system"] = _section(doc, "system", _system)
    doc["env"] = {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
    doc["shm"] = _section(doc, "shm", _shm)
    doc["cgroup"] = _section(doc, "cgroup", _cgroup)
    doc["nvidia_smi"] = shutil.which("nvidia-smi")
    listed = _section(doc, "packages", _packages)
    if listed is not None:
        doc["packages"], doc["packages_omitted"] = listed
    _step("importing torch")
    torch, doc["torch"] = _import_torch()
    if torch is None:
        return
    doc["cuda"] = _section(doc, "cuda", _cuda, torch)
    doc["devices"] = _section(doc, "devices", _devices, torch) or []
    if args["bench"]:
        # The all-reduce first: its processes get the GPUs' memory whole, and they are gone before the matmul
        # benchmarks start torch's CPU thread pool here (threads count against the container's pids limit).
        if args["allreduce"]:
            _step("all-reduce across " + (f"{len(doc['devices'])} GPUs" if doc["devices"] else "2 CPU processes"))
        allreduce = _section(doc, "allreduce", _allreduce, torch, doc, args) if args["allreduce"] else None
        p2p = _section(doc, "p2p", _p2p, torch, doc["devices"], min(args["duration"], 10.0)) if doc["devices"] else None
        doc["bench"] = _section(doc, "bench", _bench, torch, doc["devices"], args["duration"], args["dtypes"])
        if doc["bench"] is not None:
            doc["bench"]["p2p"], doc["bench"]["allreduce"] = p2p, allreduce


def _system():
    try:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        user = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "user": user,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "in_container": os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"),
    }


def _shm():
    try:
        st = os.statvfs("/dev/shm")
    except OSError as exc:
        return {"total_bytes": 0, "free_bytes": 0, "error": "%s" % (exc.strerror or exc)}
    return {"total_bytes": st.f_blocks * st.f_frsize, "free_bytes": st.f_bavail * st.f_frsize, "error": None}


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _cgroup():
    """The memory and CPU limits of this container's cgroup (v2, else v1); None means unlimited."""
    memory = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        text = _read(path)
        if text and text != "max":
            value = int(text)
            memory = value if value < (1 << 60) else None
            break
    cpus = None
    cpu_max = _read("/sys/fs/cgroup/cpu.max")
    if cpu_max:
        quota, _, period = cpu_max.partition(" ")
        if quota != "max":
            cpus = int(quota) / int(period or 100000)
    else:
        quota, period = _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if quota and period and int(quota) > 0:
            cpus = int(quota) / int(period)
    return {"memory_limit_bytes": memory, "cpu_limit": cpus}


def _packages(limit=MAX_PACKAGES, budget=MAX_PACKAGE_BYTES):
    """The Python distributions this interpreter sees, as [name, version] pairs in sys.path order (the first of a
    name, which is the one imported), and how many were left out: unreadable, or past the bounds (at
    most `limit` listed, 4 x `limit` read, `budget` bytes of JSON; the rest are only counted). Names and versions
    are cut to MAX_NAME and MAX_VERSION characters."""
    from importlib import metadata  # Python >= 3.8

    found, keys, omitted, read, size = [], set(), 0, 0, 0
    for dist in metadata.distributions():
        if len(found) >= limit or read >= 4 * limit or size >= budget:
            omitted += 1
            continue
        read += 1
        try:
            name, version = dist.metadata.get("Name"), dist.metadata.get("Version")
        except Exception:  # a broken .dist-info (bad encoding, unreadable) is one omission, not a lost list
            name = version = None
        if not name:
            omitted += 1
            continue
        name, version = str(name)[:MAX_NAME], str(version or "")[:MAX_VERSION]
        key = name.lower().replace("_", "-").replace(".", "-")
        if key in keys:  # shadowed by the same distribution earlier on sys.path
            continue
        entry = len(json.dumps([name, version])) + 2
        if size + entry > budget:
            size, omitted = budget, omitted + 1
            continue
        keys.add(key)
        found.append([name, version])
        size += entry
    return found, omitted


def _import_torch():
    started = time.monotonic()
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install raising anything at import
        found = not isinstance(exc, ImportError) or getattr(exc, "name", None) != "torch"
        return None, {"found": found, "error": f"{type(exc).__name__}: {exc}"}
    info = {
        "found": True,
        "error": None,
        "version": torch.__version__,
        "import_s": round(time.monotonic() - started, 3),
    }
    info["cuda"] = getattr(torch.version, "cuda", None)
    try:
        info["cudnn"] = torch.backends.cudnn.version()
    except Exception:
        info["cudnn"] = None
    info["nccl"] = None
    if info["cuda"]:
        try:
            nccl = torch.cuda.nccl.version()
            info["nccl"] = ".".join(str(p) for p in nccl) if isinstance(nccl, tuple) else str(nccl)
        except Exception:
            pass
    info["threads"] = torch.get_num_threads()
    return torch, info


def _cuda(torch):
    """Whether CUDA works and, when not, the error text torch gives for it (the host maps text to a cause)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    error = None
    if not available and torch.version.cuda:
        try:
            torch.cuda.init()
        except Exception as exc:
            error = str(exc)
        if not error:
            error = "; ".join(str(w.message) for w in caught) or "torch.cuda.is_available() is False"
    arch = []
    try:
        arch = list(torch.cuda.get_arch_list())
        if not arch and hasattr(torch._C, "_cuda_getArchFlags"):
            arch = (torch._C._cuda_getArchFlags() or "").split()
    except Exception:
        pass
    driver = None
    if available:
        try:
            driver = torch.cuda.driver_version() if hasattr(torch.cuda, "driver_version") else None
        except Exception:
            driver = None
    return {"available": available, "device_count": count, "error": error, "arch_list": arch, "driver": driver}


def _devices(torch):
    if not torch.cuda.is_available():
        return []
    devices = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        device = {
            "index": i,
            "name": props.name,
            "major": props.major,
            "minor": props.minor,
            "sm_count": props.multi_processor_count,
            "memory_bytes": props.total_memory,
            "uuid": str(getattr(props, "uuid", "") or "") or None,
            "l2_bytes": getattr(props, "L2_cache_size", None),
            "pci_bus_id": None,
            "pcie": None,
        }
        bus = getattr(props, "pci_bus_id", None)
        if bus is not None:
            address = "{:04x}:{:02x}:{:02x}.0".format(
                getattr(props, "pci_domain_id", 0), bus, getattr(props, "pci_device_id", 0)
            )
            device["pci_bus_id"] = address
            device["pcie"] = _pcie_link(address)
        devices.append(device)
    return devices


GEN_BY_SPEED = ((2.5, 1), (5.0, 2), (8.0, 3), (16.0, 4), (32.0, 5), (64.0, 6))


def link_gen(text):
    """PCIe generation from sysfs' link speed: "32.0 GT/s PCIe" (current kernels) or "8 GT/s" (older ones)."""
    try:
        speed = float((text or "").split()[0])
    except (IndexError, ValueError):
        return None
    return next((gen for rate, gen in GEN_BY_SPEED if abs(rate - speed) < 0.1), None)


def _pcie_link(address):
    """The PCIe link from sysfs (visible in containers): links train down at idle, so max is what is graded."""
    base = "/sys/bus/pci/devices/" + address

    def gen(name):
        return link_gen(_read(base + "/" + name))

    def width(name):
        text = _read(base + "/" + name)
        return int(text) if text and text.isdigit() else None

    link = {
        "max_gen": gen("max_link_speed"),
        "max_width": width("max_link_width"),
        "cur_gen": gen("current_link_speed"),
        "cur_width": width("current_link_width"),
    }
    return link if any(v is not None for v in link.values()) else None


class Budget:
    """A wall-clock allowance: the benchmarks take what they are given and no more."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.ends - time.monotonic())


def _bench(torch, devices, duration, wanted):
    started = time.monotonic()
    result = {"duration_s": duration, "gpus": [], "cpu": None, "elapsed_s": 0.0}
    if devices:
        for device in devices:
            _step(f"benchmarking GPU {device['index'] + 1}/{len(devices)}")
            result["gpus"].append(_bench_gpu(torch, device, Budget(duration), wanted))
    else:
        _step("benchmarking the CPU")
        result["cpu"] = _bench_cpu(torch, Budget(duration))
    result["elapsed_s"] = round(time.monotonic() - started, 3)
    return result


def gpu_dtypes(torch, major, minor):
    """What to benchmark on this compute capability: BF16 is emulated before 8.0 (benchmark FP16 there), TF32
    exists from 8.0, FP8 from 8.9 through torch._scaled_mm (whose signature settled in torch 2.5)."""
    dtypes = ["fp32"]
    if major >= 8:
        dtypes += ["tf32", "bf16"]
    else:
        dtypes.append("fp16")
    release = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2] if p.isdigit())
    if (major, minor) >= (8, 9) and release >= (2, 5) and hasattr(torch, "_scaled_mm"):
        dtypes.append("fp8")
    return dtypes


# Share of a GPU's budget per part; the rest of each part's share is spread over its shapes.
SHARES = {"warmup": 0.2, "matmul": 0.6, "copies": 0.2}
WEIGHT = {"fp32": 1.0, "tf32": 1.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0}


def _bench_gpu(torch, device, budget, wanted):
    index = device["index"]
    dev = torch.device(DEVICE_TYPE, index)
    out = {"index": index, "warmup": None, "matmul": [], "d2d": None, "h2d": None, "d2h": None, "errors": []}
    torch.cuda.set_device(dev)
    dtypes = [d for d in gpu_dtypes(torch, device["major"], device["minor"]) if not wanted or d in wanted]
    free = torch.cuda.mem_get_info(dev)[0]
    flush = None
    try:
        flush = _l2_flusher(torch, dev, device.get("l2_bytes"))
    except Exception as exc:  # out of memory: time without it (only small shapes notice)
        out["errors"].append(f"l2 flush: {type(exc).__name__}: {exc}")
    main = "bf16" if "bf16" in dtypes else "fp16"
    try:
        out["warmup"] = _warmup(torch, dev, main, min(budget.seconds * SHARES["warmup"], 10.0))
    except Exception as exc:
        out["errors"].append(f"warmup: {type(exc).__name__}: {exc}")
    finally:
        torch.cuda.empty_cache()
    matmul_s = budget.seconds * SHARES["matmul"]
    total_weight = sum(WEIGHT[d] for d in dtypes)
    for dtype in dtypes:
        _step(f"benchmarking GPU {index} {dtype}")
        seconds = min(matmul_s * WEIGHT[dtype] / total_weight, budget.left())
        try:
            out["matmul"].append(_matmul_sweep(torch, dev, dtype, seconds, free, flush))
        except Exception as exc:
            out["matmul"].append({"dtype": dtype, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            torch.cuda.empty_cache()
    copy_s = max(budget.left(), 0.3) / 3
    try:
        out["d2d"] = _copy_d2d(torch, dev, copy_s, free, flush)
    except Exception as exc:
        out["errors"].append(f"d2d: {type(exc).__name__}: {exc}")
    finally:
        torch.cuda.empty_cache()
    try:
        out["h2d"], out["d2h"] = _copy_host(torch, dev, copy_s, free)
    except Exception as exc:
        out["errors"].append(f"h2d/d2h: {type(exc).__name__}: {exc}")
    finally:
        torch.cuda.empty_cache()
    return out


def _l2_flusher(torch, dev, l2_bytes):
    """What clears the L2 between timed calls, outside the events (as mamf-finder and triton's do_bench do): zeroing
    a buffer far bigger than the L2, so no call is served from what the previous one left there."""
    nbytes = max(FLUSH_BYTES, 2 * int(l2_bytes or 0))
    buffer = torch.empty(nbytes // 4, dtype=torch.int32, device=dev)
    return buffer.zero_


def _median_ms(torch, fn, seconds, flush=None):
    """Time `fn` with a pair of CUDA events around every call (`flush` runs before each, outside them), after
    un-timed warm-up calls; as many calls as fill `seconds`. Returns median, mean and min in ms, and the count."""

    def call():
        if flush is not None:
            flush()
        fn()

    call()
    torch.cuda.synchronize()
    probe_start = time.perf_counter()
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    per_call = max((time.perf_counter() - probe_start) / 3, 1e-6)
    for _ in range(max(0, min(WARMUP_CALLS - 4, int(0.1 * seconds / per_call)))):
        call()
    iters = int(min(MAX_ITERS, max(MIN_ITERS, 0.9 * seconds / per_call)))
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for start, end in events:
        if flush is not None:
            flush()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    times = [start.elapsed_time(end) for start, end in events]
    return {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "iters": iters,
    }


def _warmup(torch, dev, dtype, seconds):
    """Keep the GPU busy until the matmul rate stops rising (clocks settle), or `seconds` run out."""
    n = WARMUP_N if torch.cuda.mem_get_info(dev)[0] > 4 * 3 * WARMUP_N * WARMUP_N * 2 else WARMUP_N // 2
    kind = torch.bfloat16 if dtype == "bf16" else torch.float16
    a, b = torch.randn(n, n, device=dev, dtype=kind), torch.randn(n, n, device=dev, dtype=kind)
    c = torch.empty(n, n, device=dev, dtype=kind)
    started, previous, settled = time.monotonic(), None, False
    window = max(seconds / 10, 0.1)
    while time.monotonic() - started < seconds:
        ms = _median_ms(torch, lambda: torch.mm(a, b, out=c), window)["median_ms"]
        if previous is not None and abs(ms - previous) / previous < 0.02 and time.monotonic() - started > 1.0:
            settled = True
            break
        previous = ms
    return {"seconds": round(time.monotonic() - started, 3), "settled": settled}


def shapes(dtype, free_bytes):
    """A small sweep; dimensions stay multiples of 128 (tile and wave quantisation), memory at most a quarter free.
    8192^3 is always in it where it fits: the best of the sweep is never below a plain 8192^3 loop."""
    size = 4 if dtype in ("fp32", "tf32") else 2
    sweep = [(4096, 4096, 4096), (8192, 8192, 8192)]
    if dtype not in ("fp32", "tf32"):
        sweep.append((16384, 8192, 8192))
    return [s for s in sweep if (s[0] * s[2] + s[2] * s[1] + s[0] * s[1]) * size * 2 < free_bytes / 4] or [sweep[0]]


def _matmul_sweep(torch, dev, dtype, seconds, free_bytes, flush=None):
    best = None
    sweep = shapes(dtype, free_bytes)
    for shape in sweep:
        result = _matmul(torch, dev, dtype, shape, seconds / len(sweep), flush)
        if best is None or result["tflops"] > best["tflops"]:
            best = result
        if not result["ok"]:  # a wrong answer is the headline, whatever the speed of other shapes
            return result
    return best


def set_tf32(torch, enabled):
    """Set TF32 for fp32 cuBLAS matmuls; returns the previous setting, to restore. The `allow_tf32` setter keeps
    the legacy flag (float32 matmul precision) and the newer one (torch >= 2.9: `fp32_precision`) in step; torch
    >= 2.9 refuses a matmul when the two disagree ("mix of the legacy and new APIs"), so nothing else is set."""
    matmul = torch.backends.cuda.matmul
    try:
        previous = bool(matmul.allow_tf32)
    except RuntimeError:  # the two APIs already disagree (the image's startup code): restore torch's default
        previous = False
    matmul.allow_tf32 = bool(enabled)
    return previous


def _matmul(torch, dev, dtype, shape, seconds, flush=None):
    m, n, k = shape
    previous = set_tf32(torch, dtype == "tf32") if dtype in ("fp32", "tf32") else None
    try:
        if dtype == "fp8":
            # Random e4m3 operands (|randn| < 448: nothing saturates), A row-major and B column-major as
            # _scaled_mm requires; per-tensor scales are one-element float32 tensors (torch >= 2.5).
            a = torch.randn(m, k, device=dev).to(torch.float8_e4m3fn)
            b = torch.randn(n, k, device=dev).to(torch.float8_e4m3fn).t()
            scale = torch.ones(1, device=dev, dtype=torch.float32)
            c = torch.empty(m, n, device=dev, dtype=torch.bfloat16)

            def fn():
                return torch._scaled_mm(
                    a, b, scale_a=scale, scale_b=scale, out_dtype=torch.bfloat16, use_fast_accum=False, out=c
                )

        else:
            kind = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
            a, b = torch.randn(m, k, device=dev, dtype=kind), torch.randn(k, n, device=dev, dtype=kind)
            c = torch.empty(m, n, device=dev, dtype=kind)

            def fn():
                return torch.mm(a, b, out=c)

        timing = _median_ms(torch, fn, seconds, flush)
        error = relative_error(torch, a[:SLICE].double() @ b[:, :SLICE].double(), c[:SLICE, :SLICE].double())
    finally:
        if previous is not None:
            torch.backends.cuda.matmul.allow_tf32 = previous
    return {
        "dtype": dtype,
        "shape": list(shape),
        "tflops": 2.0 * m * n * k / (timing["median_ms"] / 1e3) / 1e12,
        "median_ms": timing["median_ms"],
        "mean_ms": timing["mean_ms"],
        "min_ms": timing["min_ms"],
        "iters": timing["iters"],
        "max_rel_err": error,
        "tolerance": TOLERANCE[dtype],
        "ok": error == error and error <= TOLERANCE[dtype],  # NaN compares unequal to itself: not ok
        "error": None,
    }


def relative_error(torch, reference, result):
    """max |result - reference| / max |reference|; NaN when the result holds NaN or inf."""
    if not bool(torch.isfinite(result).all()):
        return float("nan")
    scale = float(reference.abs().max()) or 1.0
    return float((result - reference).abs().max()) / scale


def _copy_result(nbytes, factor, timing, ok):
    return {
        "bytes": nbytes,
        "gbps": factor * nbytes / (timing["median_ms"] / 1e3) / 1e9,
        "median_ms": timing["median_ms"],
        "mean_ms": timing["mean_ms"],
        "min_ms": timing["min_ms"],
        "iters": timing["iters"],
        "ok": ok,
    }


def _copy_d2d(torch, dev, seconds, free_bytes, flush=None):
    """Device-to-device copy of up to 1 GiB; bandwidth counts the bytes read plus the bytes written."""
    nbytes = int(min(1 << 30, free_bytes / 4)) // 4096 * 4096
    src = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    timing = _median_ms(torch, lambda: dst.copy_(src), seconds, flush)
    return _copy_result(nbytes, 2, timing, bool(torch.equal(dst, src)))


def _copy_host(torch, dev, seconds, free_bytes):
    """Pinned host memory to the GPU and back, up to 256 MiB each way (bytes counted once, as bandwidthTest does);
    the first MiB carries random bytes that must arrive intact."""
    nbytes = int(min(256 << 20, free_bytes / 8)) // 4096 * 4096
    check = min(nbytes, 1 << 20)
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    gpu = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    host[:check] = torch.randint(0, 256, (check,), dtype=torch.uint8)
    timing = _median_ms(torch, lambda: gpu.copy_(host, non_blocking=True), seconds)
    h2d = _copy_result(nbytes, 1, timing, bool(torch.equal(gpu[:check].cpu(), host[:check])))
    gpu[:check] = torch.randint(0, 256, (check,), dtype=torch.uint8, device=dev)
    timing = _median_ms(torch, lambda: host.copy_(gpu, non_blocking=True), seconds)
    d2h = _copy_result(nbytes, 1, timing, bool(torch.equal(host[:check], gpu[:check].cpu())))
    return h2d, d2h


def _bench_cpu(torch, budget):
    """No usable GPU: an fp32 matmul on the CPU, so the whole pipeline (probe, parsing, grading) still runs."""
    threads = torch.get_num_threads()
    best = None
    sizes = (1024, 2048)
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        c = torch.empty(n, n)
        torch.mm(a, b, out=c)  # warm-up: thread pool start, allocator, kernel selection
        seconds = budget.left() / (len(sizes) - sizes.index(n))
        times, spent = [], time.monotonic()
        while len(times) < 3 or (time.monotonic() - spent < seconds and len(times) < MAX_ITERS):
            started = time.perf_counter()
            torch.mm(a, b, out=c)
            times.append(time.perf_counter() - started)
        error = relative_error(torch, a[:SLICE].double() @ b[:, :SLICE].double(), c[:SLICE, :SLICE].double())
        median = statistics.median(times)
        result = {
            "dtype": "fp32",
            "shape": [n, n, n],
            "gflops": 2.0 * n**3 / median / 1e9,
            "median_ms": median * 1e3,
            "iters": len(times),
            "threads": threads,
            "max_rel_err": error,
            "tolerance": TOLERANCE["fp32"],
            "ok": error == error and error <= TOLERANCE["fp32"],
        }
        if best is None or result["gflops"] > best["gflops"] or not result["ok"]:
            best = result
        if not result["ok"]:
            break
    return best


def _p2p(torch, devices, seconds):
    """Which GPU pairs can reach each other directly (peer access), and a copy from every GPU to every other one:
    bytes counted once, timed on the host clock between synchronisations of both GPUs, within `seconds`."""
    n = len(devices)
    result = {"devices": n, "access": [], "copies": [], "bytes": 0, "skipped": 0, "error": None}
    for i in range(n):
        result["access"].append([None if i == j else bool(torch.cuda.can_device_access_peer(i, j)) for j in range(n)])
    if n < 2:
        return result
    free = min(torch.cuda.mem_get_info(i)[0] for i in range(n))
    nbytes = int(min(P2P_BYTES, free / 8)) // 4096 * 4096
    result["bytes"] = nbytes
    check = min(nbytes, 1 << 20)
    sources = [torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device=f"cuda:{i}") for i in range(n)]
    targets = [torch.empty(nbytes, dtype=torch.uint8, device=f"cuda:{i}") for i in range(n)]
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    budget, hard = Budget(seconds), Budget(3 * seconds)  # every pair gets its few copies unless far past budget
    try:
        for index, (i, j) in enumerate(pairs):
            share = budget.left() / (len(pairs) - index)
            if hard.left() <= 0:
                result["skipped"] += 1
                continue

            def sync(i=i, j=j):
                torch.cuda.synchronize(i)
                torch.cuda.synchronize(j)

            dst, src = targets[j], sources[i]
            sync()
            started = time.perf_counter()
            dst.copy_(src)
            sync()
            one = max(time.perf_counter() - started, 1e-6)
            ok = bool(torch.equal(dst[:check].cpu(), src[:check].cpu()))
            times, spent = [], time.monotonic()
            while len(times) < 3 or (time.monotonic() - spent < share and len(times) < MAX_ITERS):
                started = time.perf_counter()
                dst.copy_(src)
                sync()
                times.append(time.perf_counter() - started)
                if one * 3 > share and len(times) >= 3:
                    break
            median = statistics.median(times)
            result["copies"].append(
                {
                    "src": i,
                    "dst": j,
                    "gbps": nbytes / median / 1e9,
                    "median_ms": median * 1e3,
                    "iters": len(times),
                    "ok": ok,
                }
            )
    finally:
        del sources, targets
        torch.cuda.empty_cache()
    return result


def _own_source():
    """This program's text, for the all-reduce's worker processes: from its file when it was run as one, else from
    this process's command line (`python3 -c SOURCE`, the way mldoctor injects it)."""
    path = globals().get("__file__")
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    try:
        with open("/proc/self/cmdline", "rb") as handle:
            words = handle.read().split(b"\0")
    except OSError:
        return None
    for index, word in enumerate(words[:-1]):
        if word == b"-c":
            source = words[index + 1].decode("utf-8", errors="replace")
            return source if SCHEMA in source and "_allreduce_worker" in source else None
    return None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_available():
    """Bytes this process may still use: MemAvailable, bounded by the cgroup's limit."""
    available = None
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    limit = (_cgroup() or {}).get("memory_limit_bytes")
    if limit:
        available = min(available or limit, limit)
    return available


def allreduce_sizes(backend, world, devices, memory_available):
    """The sizes that fit: a quarter of the smallest GPU's free memory (NCCL), or of the memory each CPU process may
    take (gloo); the smallest one always."""
    sizes = ALLREDUCE_SIZES[backend]
    if backend == "nccl":
        room = min(d.get("free_bytes") or d.get("memory_bytes") or 0 for d in devices) / 4
    else:
        room = (memory_available or (1 << 30)) / (4 * world)
    return [b for b in sizes if b <= room] or [sizes[0]]


def busbw_factor(world):
    """nccl-tests' bus bandwidth for all-reduce: algbw x 2(n-1)/n, comparable whatever the number of ranks."""
    return 2.0 * (world - 1) / world


def _allreduce(torch, doc, args):
    """An all-reduce across the local GPUs (NCCL, one process per GPU) or, without a GPU, across two processes on
    the CPU (gloo): algbw and busbw per size; every process is killed at the deadline, and a hang says which ranks
    did not finish and where each stopped."""
    devices = doc.get("devices") or []
    backend = "nccl" if devices else "gloo"
    world = len(devices) if devices else 2
    timeout = args["allreduce_timeout"]
    result = {
        "backend": backend, "device": "cuda" if devices else "cpu", "world_size": world, "timeout_s": timeout,
        "sizes": [], "hung": False, "unfinished": [], "ranks": [], "error": None, "elapsed_s": 0.0,
        "nccl_env": {k: os.environ[k] for k in NCCL_ENV if k in os.environ},
        "p2p_disabled": os.environ.get("NCCL_P2P_DISABLE", "0").strip() not in ("", "0") and bool(devices),
    }  # fmt: skip
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available():
        result["error"] = "torch.distributed is not available in this torch build"
        return result
    if backend == "nccl" and not dist.is_nccl_available():
        result["error"] = "this torch build has no NCCL (torch.distributed.is_nccl_available() is False)"
        return result
    source = _own_source()
    if source is None:
        result["error"] = "cannot start worker processes: the probe's source is not readable from this process"
        return result
    if devices:
        for device in devices:
            device["free_bytes"] = torch.cuda.mem_get_info(device["index"])[0]
    sizes = allreduce_sizes(backend, world, devices, None if devices else _memory_available())
    for device in devices:
        device.pop("free_bytes", None)
    started = time.monotonic()
    deadline = started + timeout
    config = {
        "backend": backend, "world": world, "port": _free_port(), "sizes": sizes, "deadline": deadline,
        "seconds": max(0.5, min(args["duration"], timeout / 4, 10.0 if devices else 3.0)), "parent": os.getpid(),
        "stall_rank": args.get("stall_rank"),
    }  # fmt: skip
    env = dict(os.environ)
    for key, value in (("OMP_NUM_THREADS", "1"), ("GLOO_SOCKET_IFNAME", "lo"), ("NCCL_SOCKET_IFNAME", "lo")):
        env.setdefault(key, value)
    procs, outputs, readers = [], {}, []
    try:
        for rank in range(world):
            config["rank"] = rank
            proc = subprocess.Popen(
                [sys.executable, "-c", source, "--allreduce-worker", json.dumps(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: killed with whatever it started
            )
            procs.append(proc)

            def read(proc=proc, rank=rank):
                outputs[rank] = proc.communicate()

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            readers.append(reader)
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))
    finally:
        killed = []
        for rank, proc in enumerate(procs):
            if proc.poll() is None:
                killed.append(rank)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    proc.kill()
        for proc in procs:
            proc.wait()
        for reader in readers:
            reader.join(5.0)
    result["elapsed_s"] = round(time.monotonic() - started, 3)
    per_rank = []
    for rank, proc in enumerate(procs):
        stdout, stderr = outputs.get(rank, (b"", b""))
        lines = [json.loads(line) for line in stdout.decode("utf-8", "replace").splitlines() if line.startswith("{")]
        last = lines[-1] if lines else {}
        per_rank.append([line["size"] for line in lines if line.get("stage") == "size"])
        result["ranks"].append({
            "rank": rank, "stage": last.get("stage", "not started"), "exit_code": proc.returncode,
            "joined": any(line.get("stage") == "joined" for line in lines),
            "killed": rank in killed, "error": last.get("error"),
            "stderr_tail": stderr.decode("utf-8", "replace").strip()[-1000:] if last.get("stage") != "done" else "",
        })  # fmt: skip
    result["unfinished"] = killed
    result["hung"] = bool(killed)
    errors = [f"rank {r['rank']}: {r['error']}" for r in result["ranks"] if r["error"]]
    if errors:
        result["error"] = "; ".join(errors)[:2000]
    elif not killed and any(r["stage"] != "done" for r in result["ranks"]):
        r = next(r for r in result["ranks"] if r["stage"] != "done")
        tail = r["stderr_tail"][-300:] or "no message"
        result["error"] = f"rank {r['rank']} exited with code {r['exit_code']} at stage {r['stage']}: {tail}"
    factor = busbw_factor(world)
    for index, nbytes in enumerate(sizes):
        measured = [sizes_of_rank[index] for sizes_of_rank in per_rank if len(sizes_of_rank) > index]
        if len(measured) < world:
            break
        seconds = max(m["median_s"] for m in measured)  # the slowest rank's time is the collective's
        algbw = nbytes / seconds / 1e9
        result["sizes"].append({
            "bytes": nbytes, "median_ms": seconds * 1e3, "iters": min(m["iters"] for m in measured),
            "algbw_gbps": algbw, "busbw_gbps": algbw * factor, "ok": all(m["ok"] for m in measured),
        })  # fmt: skip
    return result


def _die_with_parent(parent):
    """Linux: this process gets SIGKILL when the probe that started it dies (killed at mldoctor's deadline)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != parent:  # the probe died before the call above
        os._exit(1)


def _allreduce_worker(config):
    """One rank of the all-reduce: progress and results as JSON lines on stdout (a pipe to the probe); whatever
    torch or NCCL print goes to stderr. Exits hard (os._exit) at its end: NCCL's teardown can hang too."""
    out = _claim_stdout()
    rank = config["rank"]

    def say(stage, **data):
        data.update(rank=rank, stage=stage)
        out.write(json.dumps(data) + "\n")
        out.flush()

    _die_with_parent(config["parent"])

    def watchdog():  # the probe kills this process at the deadline; this is for when it could not
        time.sleep(max(0.0, config["deadline"] - time.monotonic()) + 30.0)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    say("started")
    if config.get("stall_rank") == rank:  # tests: a rank that never joins
        say("stalled")
        time.sleep(max(0.0, config["deadline"] - time.monotonic()) + 3600.0)
    try:
        _allreduce_rank(config, say)
        say("done")
    except BaseException as exc:
        say("error", error=f"{type(exc).__name__}: {str(exc)[:1000]}")
    os._exit(0)


def _allreduce_rank(config, say):
    import datetime

    import torch
    import torch.distributed as dist

    rank, world, backend = config["rank"], config["world"], config["backend"]
    torch.set_num_threads(1)
    if backend == "nccl":
        torch.cuda.set_device(rank)
        dev = torch.device("cuda", rank)
    else:
        dev = torch.device("cpu")

    def sync():
        if backend == "nccl":
            torch.cuda.synchronize(dev)

    say("init")
    grace = datetime.timedelta(seconds=max(1.0, config["deadline"] - time.monotonic()) + 10.0)
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{config['port']}", rank=rank, world_size=world, timeout=grace
    )
    say("joined")
    flag = torch.ones(1, device=dev)

    def barrier():  # a tiny all-reduce, waited for: every rank starts a batch together
        flag.fill_(1.0)
        dist.all_reduce(flag)
        sync()

    expected = world * (world + 1) / 2.0
    sizes = config["sizes"]
    weights = [max(1.0, b / sizes[-1] * 4) for b in sizes]  # the largest size gets the most time
    for nbytes, weight in zip(sizes, weights):
        say("allreduce", bytes=nbytes)
        share = config["seconds"] * weight / sum(weights)
        data = torch.empty(nbytes // 4, dtype=torch.float32, device=dev)
        data.fill_(rank + 1.0)
        barrier()
        dist.all_reduce(data)  # warm-up, and the correctness check: every element is 1 + 2 + ... + world
        sync()
        ok = bool((data == expected).all())
        data.fill_(rank + 1.0)
        barrier()
        started = time.perf_counter()
        dist.all_reduce(data)
        sync()
        one = max(time.perf_counter() - started, 1e-6)
        want = torch.tensor([max(1, min(ALLREDUCE_MAX_ITERS, int(share / one)))], dtype=torch.float32, device=dev)
        dist.all_reduce(want, op=dist.ReduceOp.MIN)  # every rank must make the same number of calls
        iters, times = int(want.item()), []
        while iters > 0:
            batch = min(ALLREDUCE_BATCH, iters)
            data.fill_(rank + 1.0)
            barrier()
            started = time.perf_counter()
            for _ in range(batch):
                dist.all_reduce(data)
            sync()
            times.append((time.perf_counter() - started) / batch)
            iters -= batch
        say("size", size={"bytes": nbytes, "median_s": statistics.median(times), "iters": int(want.item()), "ok": ok})
        del data
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
