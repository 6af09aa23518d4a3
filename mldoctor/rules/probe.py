"""Probe checks: the container starts, has python3 and torch, CUDA works in it, torch has kernels for the GPU,
/dev/shm is big enough. Where host facts and probe facts meet (the image wants a newer CUDA than the host driver
gives), the fix names both sides.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mldoctor.data.gpus import min_driver_for_cuda
from mldoctor.facts import Facts
from mldoctor.fixes import nvidia as nvidia_fixes
from mldoctor.fixes.docker import DEFAULT_SHM_SIZE, docker_service, mldoctor_fix
from mldoctor.fixes.host import restart_service
from mldoctor.model import Finding
from mldoctor.policy import Policy
from mldoctor.rules import nvidia as _nvidia  # noqa: F401  (registers nvidia.driver and nvidia.toolkit: `after`)
from mldoctor.rules.docker import only_local_dns
from mldoctor.rules.registry import check
from mldoctor.text import gib, plural

if TYPE_CHECKING:
    from mldoctor.catalogue import KnownError
    from mldoctor.facts.probe import ProbeFacts, ProbeRun
    from mldoctor.facts.probe_document import ProbeDocument

TORCH_WHEELS = "https://pytorch.org/get-started/locally/"
NO_PYTHON = re.compile(r'exec: "python3": executable file not found|"python3": no such file|python3: not found', re.I)
OLD_PYTHON = re.compile(r"future feature annotations is not defined|SyntaxError")
CUDA_REQUIREMENT = re.compile(r"unsatisfied condition: cuda\s*>=\s*([\d.]+)")
DRIVER_FOUND = re.compile(r"found version (\d+)")

CUDA_CAUSES: list[tuple[str, re.Pattern[str]]] = [
    ("driver_too_old", re.compile(r"driver on your system is too old|driver version is insufficient", re.I)),
    ("fabric_manager", re.compile(r"error 802|system not yet initialized", re.I)),
    ("forward_compat", re.compile(r"error 804|forward compatibility was attempted", re.I)),
    ("nvml_unknown", re.compile(r"Failed to initialize NVML: Unknown Error", re.I)),
    ("no_device", re.compile(r"no CUDA-capable device|No CUDA GPUs are available|Found no NVIDIA driver", re.I)),
]


def cuda_cause(error: str) -> str:
    """Name the cause behind torch's CUDA error text, so each cause gets its own fix."""
    return next((cause for cause, pattern in CUDA_CAUSES if pattern.search(error)), "other")


def _stage_details(run: ProbeRun) -> tuple[str, ...]:
    lines = [f"error: {run.error}"] if run.error else []
    if run.exit_code is not None:
        lines.append(f"exit code {run.exit_code}")
    if run.stderr_tail:
        lines += ["stderr (last lines):", *run.stderr_tail.splitlines()[-15:]]
    if run.stdout_head:
        lines += ["stdout (start):", *run.stdout_head.splitlines()[:10]]
    return tuple(lines)


def _no_python(run: ProbeRun) -> bool:
    return run.exit_code == 127 or bool(NO_PYTHON.search(run.error or "") or NO_PYTHON.search(run.stderr_tail))


def _where(run: ProbeRun) -> str:
    return f"image {run.image}" if run.mode == "container" else "the host (--no-container)"


def _rerun(run: ProbeRun) -> str:
    return f"mldoctor gpu-bench --image {run.image}" if run.mode == "container" else "mldoctor gpu-bench --no-container"


def _known_start_failure(facts: Facts, run: ProbeRun, known: KnownError) -> Finding:
    """The container could not start for a reason the catalogue knows (the hook's error families): its cause,
    and the fix tailored to this host where mldoctor can; the check that detects it named for the details."""
    tailored = {
        "no-gpu-driver-in-docker": _toolkit_fix(facts),
        "device-cgroup-denied": "sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place"
        "   # Docker in an LXC container or rootless; CDI serves both (nvidia-ctk cdi generate)",
        "driver-files-in-image": f"mldoctor image check {run.image}   # lists the driver files baked into the image; "
        "delete them in its Dockerfile (the toolkit mounts the host's)",
    }
    return Finding.fail(
        f"the daemon could not start {run.image} with GPUs: {known.cause}",
        fix=tailored.get(known.id, known.fix),
        details=(
            f"detected by: {known.check}; known from {', '.join(known.threads) or 'the field'}",
            f"GPUs requested because {run.gpus_reason}",
            *_stage_details(run),
        ),
    )


def _toolkit_fix(facts: Facts) -> str:
    """Install the toolkit (unless it is there) and register it with the daemon in use, restarted its own way."""
    installed = facts.nvidia is not None and facts.nvidia.toolkit.installed
    configure = nvidia_fixes.configure_toolkit(facts.docker, facts.host)
    return configure if installed else nvidia_fixes.toolkit_install(facts.host) + "\n" + configure


def _driver_version(facts: Facts) -> str | None:
    nv = facts.nvidia
    return (nv.nvml.driver_version or nv.kernel.module_version) if nv is not None else None


def _cuda_requirement(facts: Facts, run: ProbeRun, wanted: str) -> Finding:
    """The image's NVIDIA_REQUIRE_CUDA asks for a newer CUDA than the host driver supports."""
    driver = min_driver_for_cuda(wanted)
    host_cuda = facts.nvidia.nvml.cuda_driver_version if facts.nvidia is not None else None
    have = f"the host driver supports CUDA {host_cuda}" if host_cuda else "the host driver is older"
    return Finding.fail(
        f"{run.image} requires CUDA >= {wanted}; {have}",
        fix=f"upgrade the NVIDIA driver to {driver} or newer" if driver else "upgrade the NVIDIA driver",
        details=(
            f"or use an image built for CUDA {host_cuda or 'your driver supports'} or older "
            "(`nvidia-smi` prints the highest CUDA the driver supports)",
            "NVIDIA_DISABLE_REQUIRE=true skips the check, and works only with forward compatibility (data-centre GPUs)",
            *_stage_details(run),
        ),
    )


@check(
    "probe.container",
    "Probe container",
    facts=("probe",),
    after=("nvidia.driver", "nvidia.toolkit"),
)
def probe_container(facts: Facts, policy: Policy) -> Finding:
    """Did the probe run at all? Docker being down is docker.daemon's finding, not this one's."""
    run = facts.probe.run
    if run.mode == "container" and facts.docker is not None and not facts.docker.connection.ok:
        return Finding.skip("skipped: docker.daemon failed", blocked_by="docker.daemon")
    error = run.error or ""
    if run.stage == "image":
        if run.default_image:
            return Finding.warn(
                f"the probe image {run.image} is not built yet, so the container GPU path was not checked",
                fix="mldoctor image build   # or check your own image: mldoctor check --image YOUR/IMAGE:TAG",
                details=(
                    "`mldoctor image build --pull` pulls the PyTorch base first with a progress display; "
                    "`--base-image` picks another base",
                ),
            )
        return Finding.fail(
            f"the image {run.image} is not on this machine",
            fix=f"docker pull {run.image}   # or check the name: docker images",
            details=_stage_details(run),
        )
    wanted = CUDA_REQUIREMENT.search(error + run.stderr_tail)
    if wanted:
        return _cuda_requirement(facts, run, wanted.group(1))
    if run.stage in ("start", "create"):
        from mldoctor import catalogue  # its ~30 patterns compile only for a container that failed to start

        known = catalogue.match(error)
        if known:
            return _known_start_failure(facts, run, known[0])
    if run.stage == "start" and not _no_python(run):
        return Finding.fail(
            f"the daemon could not start a container from {run.image}",
            fix=f"docker run --rm --entrypoint python3 {run.image} -c pass   # shows the same error",
            details=_stage_details(run),
        )
    if run.timed_out:
        return Finding.fail(
            f"the probe did not finish within {run.deadline_s:g} s; it was killed"
            + (" and its container removed" if run.mode == "container" else ""),
            fix=f"{_rerun(run)} --timeout {int(run.deadline_s * 2)}   # a slow start; a GPU that hangs: nvidia-smi",
            details=_stage_details(run),
        )
    if run.stage in ("connect", "create", "wait"):
        return Finding.fail(
            f"the probe could not run in {_where(run)} ({run.stage} failed)",
            fix="docker info   # shows whether the daemon is healthy; then rerun mldoctor check",
            details=_stage_details(run),
        )
    if run.stage == "output" and run.stdout_head:
        return Finding.fail(
            f"the probe in {_where(run)} printed something other than its JSON report",
            fix=f"docker run --rm --entrypoint python3 {run.image} -c pass   # whatever this prints comes from the "
            "image (sitecustomize, a .pth file, PYTHONSTARTUP)"
            if run.mode == "container"
            else "python3 -c pass   # whatever this prints comes from the environment (sitecustomize, PYTHONSTARTUP)",
            details=_stage_details(run),
        )
    how = (
        f"{run.image or 'the image'} started"
        if run.mode == "container"
        else "the probe ran on the host (--no-container)"
    )
    gpus = f"; GPUs: {run.gpus} ({run.gpus_reason})" if run.mode == "container" else ""
    return Finding.ok(f"{how} in {run.elapsed_s:.1f} s{gpus}", details=tuple(run.notes))


def _document(probe: ProbeFacts) -> ProbeDocument | Finding:
    """The probe's report, or the SKIP a dependant returns when the probe could not produce one (probe.container
    passes when the container started, even if python3 in it then could not run the probe)."""
    if probe.document is None:
        return Finding.skip("the probe produced no report (see probe.container)")
    return probe.document


@check("probe.python", "Python in the probe container", facts=("probe",), requires=("probe.container",))
def probe_python(facts: Facts, policy: Policy) -> Finding:
    run = facts.probe.run
    if facts.probe.document is None:
        if _no_python(run):
            return Finding.fail(
                f"{_where(run)} has no python3 on its PATH",
                fix="install python3 (>= 3.8) in the image's Dockerfile, or start FROM an image that has it "
                "(any PyTorch image); mldoctor image build --base-image THAT_IMAGE adds the probe to it",
                details=_stage_details(run),
            )
        if run.stage != "exit":  # it never got as far as python: probe.container says why
            return Finding.skip("the probe did not run (see probe.container)")
        if OLD_PYTHON.search(run.stderr_tail):
            return Finding.fail(
                f"python3 in {_where(run)} is older than 3.8 (the probe does not even parse)",
                fix="use an image with Python >= 3.8 (any current PyTorch image has one)",
                details=_stage_details(run),
            )
        return Finding.fail(
            f"the probe died in {_where(run)} before reporting (exit code {run.exit_code})",
            fix=f"{_rerun(run)} -v   # shows the probe's stderr; exit 137 is the OOM killer or a kill",
            details=_stage_details(run),
        )
    python = facts.probe.document.python
    if tuple(int(p) for p in python.version.split(".")[:2] if p.isdigit()) < (3, 8):
        return Finding.fail(
            f"Python {python.version} in {_where(run)}: current PyTorch needs 3.9 or newer",
            fix="use an image with a current Python (any current PyTorch image has one)",
        )
    return Finding.ok(f"{python.implementation} {python.version} ({python.executable})")


@check("probe.torch", "PyTorch in the probe container", facts=("probe",), requires=("probe.python",))
def probe_torch(facts: Facts, policy: Policy) -> Finding:
    doc = _document(facts.probe)
    if isinstance(doc, Finding):
        return doc
    run, torch = facts.probe.run, doc.torch
    if torch is None or not torch.found:
        if run.mode == "host":
            fix = f"python3 -m pip install torch   # the build for your CUDA: {TORCH_WHEELS}; or mldoctor[bench]"
        elif run.default_image:
            fix = "mldoctor image build   # rebuild the default probe image; its base must have torch"
        else:
            fix = f"pip install torch in {run.image}'s Dockerfile   # the build for your CUDA: {TORCH_WHEELS}"
        return Finding.fail(
            f"torch is not installed in {_where(run)}",
            fix=fix,
            details=(f"import error: {torch.error}",) if torch and torch.error else (),
        )
    if torch.error:
        return Finding.fail(
            f"torch is installed in {_where(run)} but does not import",
            fix="pip install --force-reinstall torch   # in the image; the error below names the broken piece",
            details=(f"import error: {torch.error}",),
        )
    build = f"CUDA {torch.cuda}" if torch.cuda else "CPU-only build"
    extras = [f"cuDNN {torch.cudnn}" if torch.cudnn else "", f"NCCL {torch.nccl}" if torch.nccl else ""]
    return Finding.ok(f"torch {torch.version or '(version unknown)'} ({', '.join(x for x in [build, *extras] if x)})")


def _gpus_given(run: ProbeRun) -> bool:
    """GPUs given to the probe: requested for its container, or present on the host it ran on."""
    return run.gpus != "none"


@check(
    "probe.cuda",
    "CUDA in the probe container",
    facts=("probe",),
    requires=("probe.torch",),
    after=("nvidia.driver", "nvidia.devices", "nvidia.fabricmanager"),
)
def probe_cuda(facts: Facts, policy: Policy) -> Finding:
    doc = _document(facts.probe)
    if isinstance(doc, Finding):
        return doc
    run, torch, cuda = facts.probe.run, doc.torch, doc.cuda
    if not _gpus_given(run):
        where = "the container" if run.mode == "container" else "the probe"
        return Finding.skip(f"skipped: no GPU given to {where} ({run.gpus_reason})")
    if cuda is not None and cuda.available:
        names = sorted({d.name for d in doc.devices})
        return Finding.ok(
            f"CUDA {torch.cuda or '(version unknown)'} works: {plural(cuda.device_count, 'GPU')} ({', '.join(names)})",
            details=tuple(f"env {k}={v}" for k, v in doc.env.items() if k.startswith("NVIDIA_")),
        )
    if not torch.cuda:
        return Finding.fail(
            f"torch {torch.version or '(version unknown)'} in {_where(run)} is a CPU-only build",
            fix="pip install torch --index-url https://download.pytorch.org/whl/cu128   # in the image; "
            f"pick your CUDA: {TORCH_WHEELS}",
        )
    error = (cuda.error if cuda else None) or "torch.cuda.is_available() is False"
    details = (f"torch says: {error}", *(f"env {k}={v}" for k, v in doc.env.items()))
    cause = cuda_cause(error)
    if cause == "driver_too_old":
        found = DRIVER_FOUND.search(error)
        driver = min_driver_for_cuda(torch.cuda)
        version = int(found.group(1)) if found else 0
        have = f" (the driver's CUDA is {version // 1000}.{version % 1000 // 10})" if found else ""
        return Finding.fail(
            f"torch is built for CUDA {torch.cuda}, newer than the host driver supports{have}",
            fix=(f"upgrade the NVIDIA driver to {driver} or newer" if driver else "upgrade the NVIDIA driver")
            + "; or use an image whose torch is built for an older CUDA",
            details=details,
        )
    if cause == "fabric_manager":
        return _error_802(facts, details)
    if cause == "forward_compat":
        return Finding.fail(
            "CUDA error 804: the image's forward-compatibility libraries (cuda-compat) do not work on this GPU",
            fix="upgrade the host driver to one that supports the image's CUDA, or remove cuda-compat from the "
            "image's LD_LIBRARY_PATH (forward compatibility works on data-centre GPUs only)",
            details=details,
        )
    if cause == "nvml_unknown":
        return Finding.fail(
            "the container lost access to the GPU (NVML Unknown Error: a systemd daemon-reload revoked it)",
            fix=nvidia_fixes.dev_char_links(True, facts.host, facts.docker),
            details=details,
        )
    bad_visible = _bad_visible_devices(doc.env.get("CUDA_VISIBLE_DEVICES"), facts)
    if cause == "no_device" and bad_visible:
        return Finding.fail(
            f"CUDA sees no GPU in {_where(run)}: CUDA_VISIBLE_DEVICES={bad_visible!r} hides them (an entry CUDA cannot "
            "parse, or an index that does not exist, hides itself and every entry after it)",
            fix="unset CUDA_VISIBLE_DEVICES   # in the image (ENV), the compose file or the job script; or list valid "
            "indices (0,1) or GPU UUIDs: nvidia-smi -L shows them",
            details=details,
        )
    if cause == "no_device":
        return Finding.fail(
            f"CUDA sees no GPU in {_where(run)} although GPUs were requested ({run.gpus_reason})",
            fix="check NVIDIA_VISIBLE_DEVICES / NVIDIA_DRIVER_CAPABILITIES (must include compute) in the image; "
            "docker run --rm --gpus all IMAGE nvidia-smi   # shows what the container gets",
            details=details,
        )
    return Finding.fail(
        f"CUDA does not work in {_where(run)}",
        fix="docker run --rm --gpus all IMAGE nvidia-smi   # then the error below, from torch, names the broken link",
        details=details,
    )


def _bad_visible_devices(value: str | None, facts: Facts) -> str | None:
    """CUDA_VISIBLE_DEVICES that hides the GPUs: `all` (an NVIDIA_VISIBLE_DEVICES value, not a CUDA one), a word,
    or an index past the GPUs the host has; None when it is unset or plausible."""
    if value is None:
        return None
    host_gpus = len(facts.nvidia.nvml.gpus) if facts.nvidia is not None and facts.nvidia.nvml.ok else None
    for entry in value.split(","):
        entry = entry.strip()
        if entry.startswith(("GPU-", "MIG-")):
            continue
        if not entry.isdigit() or (host_gpus is not None and int(entry) >= host_gpus):
            return value
    return None


def _error_802(facts: Facts, details: tuple[str, ...]) -> Finding:
    """Error 802 names fabric manager; when it runs, at the driver's version, the NVLink fabric itself is not up."""
    nv = facts.nvidia
    fm = nv.fabric_manager if nv is not None else None
    driver = _driver_version(facts)
    if fm is not None and fm.running and (not fm.version or not driver or fm.version == driver):
        return Finding.fail(
            "CUDA error 802 (system not yet initialized) although fabric manager runs at the driver's version: the "
            "NVLink fabric did not come up for this GPU (a GPU or NVSwitch failed its training)",
            fix="nvidia-smi -q | grep -A 3 Fabric   # State and Status per GPU; then: "
            + restart_service("nvidia-fabricmanager", facts.host)
            + "; if a GPU stays 'In Progress' or fails, reboot, and if it recurs, have the board checked",
            details=details,
        )
    return Finding.fail(
        "CUDA error 802 (system not yet initialized): an NVSwitch system whose fabric manager is not running",
        fix=nvidia_fixes.fabric_manager_install(driver, facts.host),
        details=details,
    )


def _arch(entry: str) -> tuple[str, tuple[int, int]] | None:
    """'sm_90a' -> ('sm', (9, 0)); 'compute_80' -> ('compute', (8, 0))."""
    match = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", entry)
    return (match.group(1), (int(match.group(2)), int(match.group(3)))) if match else None


def kernel_support(arch_list: list[str], major: int, minor: int) -> str:
    """'native' (a cubin this GPU runs: same major, minor not above), 'ptx' (JIT from PTX for an older
    architecture: works, slow first start) or 'none' ("no kernel image is available")."""
    parsed = [a for a in (_arch(e) for e in arch_list) if a]
    if any(kind == "sm" and cc[0] == major and cc[1] <= minor for kind, cc in parsed):
        return "native"
    if any(kind == "compute" and cc <= (major, minor) for kind, cc in parsed):
        return "ptx"
    return "none"


@check("probe.arch", "Kernels for the GPU architecture", facts=("probe",), requires=("probe.cuda",))
def probe_arch(facts: Facts, policy: Policy) -> Finding:
    doc = _document(facts.probe)
    if isinstance(doc, Finding):
        return doc
    arch = doc.cuda.arch_list if doc.cuda else []
    torch_version = (doc.torch.version if doc.torch else None) or "(version unknown)"
    lines, worst = [], "native"
    for device in doc.devices:
        support = kernel_support(arch, device.major, device.minor)
        lines.append(f"GPU {device.index} {device.name}: sm_{device.major}{device.minor} -> {support}")
        if support == "none" or (support == "ptx" and worst == "native"):
            worst = support
    details = (*lines, f"torch {torch_version} arch list: {' '.join(arch) or '(empty)'}")
    if worst == "none":
        missing = sorted({line.split()[-3] for line in lines if line.endswith("-> none")})
        return Finding.fail(
            f"torch {torch_version} has no kernels for {', '.join(missing)}: CUDA calls fail with "
            '"no kernel image is available for execution on the device"',
            fix=f"install a torch build that includes {', '.join(missing)} (newer GPUs need newer CUDA builds, "
            f"e.g. cu128 for Blackwell): {TORCH_WHEELS}",
            details=details,
        )
    if worst == "ptx":
        return Finding.warn(
            f"torch {torch_version} has no native kernels for this GPU; they are JIT-compiled from PTX at startup",
            fix=f"install a torch build that lists this GPU's sm_XY natively: {TORCH_WHEELS}",
            details=details,
        )
    ccs = sorted({f"sm_{d.major}{d.minor}" for d in doc.devices})
    return Finding.ok(f"torch has native kernels for {', '.join(ccs)}", details=details)


@check(
    "probe.network",
    "Name lookup from a container",
    facts=("probe", "docker", "host"),
    requires=("probe.python",),
    after=("docker.network",),
)
def probe_network(facts: Facts, policy: Policy) -> Finding | None:
    """docker.network asked end to end: a container on the default bridge resolves a name this host resolves (the
    probe itself has no network). Container runs only; nothing to say where the host has no network either."""
    lookup, docker = facts.probe.lookup, facts.docker
    if lookup is None or facts.probe.run.mode != "container":
        return None
    if not lookup.host_resolves:
        return Finding.skip(f"this host does not resolve {lookup.name} either: no network to judge a container's by")
    if lookup.resolved is None:
        return Finding.skip(f"the lookup container did not run: {lookup.error}")
    if lookup.resolved:
        return Finding.ok(f"a container on the default bridge resolves {lookup.name} ({lookup.elapsed_s:.1f} s)")
    bridge = docker.bridge if docker is not None else None
    if bridge is not None and docker is not None and only_local_dns(bridge, docker):
        return Finding.skip("skipped: docker.network warned (only local DNS servers)", blocked_by="docker.network")
    restart = docker_service("restart", docker.flavour, facts.host, docker.process) if docker else "restart dockerd"
    where = docker.daemon_json() if docker is not None else "daemon.json"
    return Finding.warn(
        f"a container on the default bridge cannot resolve {lookup.name}, which this host resolves: pip install and "
        f"downloads fail in containers ({lookup.error})",
        fix=f'add "dns": [the DNS servers of your network] to {where}, then: {restart}'
        "   # or a firewall drops containers' forwarded DNS: see its FORWARD rules",
    )


@check("probe.shm", "Shared memory in the container", facts=("probe",), requires=("probe.python",))
def probe_shm(facts: Facts, policy: Policy) -> Finding | None:
    """Only for containers: on the host, host.shm already judges /dev/shm."""
    doc = _document(facts.probe)
    if isinstance(doc, Finding):
        return doc
    run = facts.probe.run
    if run.mode != "container":
        return None
    shm = doc.shm
    if shm is None or shm.error:
        return Finding.warn(
            "/dev/shm is missing in the container",
            fix="docker run --shm-size=16g ...   # or --ipc=host",
            details=(f"error: {shm.error}",) if shm else (),
        )
    size = gib(shm.total_bytes)
    low = shm.total_bytes < policy.min_shm_gib * (1 << 30)
    harm = (
        f'under {policy.min_shm_gib:g} GiB, DataLoader workers die with "bus error" and NCCL fails with '
        '"unhandled system error"'
    )
    if run.shm_size:  # the user chose this size for the probe: judge the size they will use
        summary = f"/dev/shm is {size} with --shm-size {run.shm_size}"
        if low:
            return Finding.warn(f"{summary}: {harm}", fix="docker run --shm-size=16g ...   # or --ipc=host")
        return Finding.ok(summary)
    # mldoctor's probe got what every container gets by default from this daemon: judge that, for the user's
    docker = facts.docker
    summary = f"containers get {size} of /dev/shm by default from this daemon (mldoctor's probe got the same)"
    if low:
        one = "docker run --shm-size=16g ... (or --ipc=host)"
        every = (
            f"every container gets {DEFAULT_SHM_SIZE} (default-shm-size in {docker.daemon_json()})" if docker else ""
        )
        fix = (
            f"{mldoctor_fix('probe.shm', docker, facts.host)}   # {every}; for one container: {one}"
            if docker is not None and docker.local and docker.config is not None
            else f"{one}   # for each training container"
        )
        return Finding.warn(
            f"{summary}: {harm}",
            fix=fix,
            details=("mldoctor check --shm-size 16g checks a container run with that size",),
        )
    return Finding.ok(summary)
