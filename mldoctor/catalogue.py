"""Known error texts of GPU containers -> their cause, the check that detects it, and the fix: one source of truth
for the rules (which name the cause of a failure they saw) and for `mldoctor explain` (which answers a pasted one).

Each entry is a real failure users report, with the exact text they see and the public threads it comes from
(shared/reference/field-report.md section (b); NCT = NVIDIA/nvidia-container-toolkit). Patterns are plain, anchored
on the distinctive words, and linear to match (no nested quantifiers): pasted text is untrusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownError:
    """One failure users report: the text that identifies it, its cause, the check that detects it, the fix, and
    the public threads it comes from."""

    id: str
    pattern: re.Pattern[str]
    example: str
    """The text users see, as they paste it."""
    cause: str
    check: str
    """The check that detects it before it happens (or names it when it does)."""
    fix: str
    """The generic fix; a check tailors it to the host it found it on."""
    threads: tuple[str, ...] = ()


def _entry(id: str, pattern: str, example: str, cause: str, check: str, fix: str, *threads: str) -> KnownError:
    return KnownError(id, re.compile(pattern, re.IGNORECASE), example, cause, check, fix, threads)


CATALOGUE: tuple[KnownError, ...] = (
    _entry(
        "no-gpu-driver-in-docker",
        r'could not select device driver "[^"\n]{0,40}" with capabilities: \[\[gpu\]\]',
        'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
        "dockerd has no GPU device driver: the NVIDIA Container Toolkit is not installed, or dockerd was not "
        "restarted after it was (dockerd looks for nvidia-container-runtime-hook only when it starts)",
        "nvidia.toolkit",
        "install nvidia-container-toolkit, then: sudo nvidia-ctk runtime configure --runtime=docker && "
        "sudo systemctl restart docker",
        "NVIDIA/nvidia-docker#1034",
        "hiyouga/LlamaFactory#5268",
    ),
    _entry(
        "nvidia-runtime-unknown",
        r"unknown or invalid runtime name: nvidia",
        "docker: Error response from daemon: unknown or invalid runtime name: nvidia.",
        "the nvidia runtime is not registered in the daemon's daemon.json, or the daemon was not restarted after it "
        "was (only --runtime=nvidia and compose `runtime: nvidia` need it; --gpus does not)",
        "nvidia.toolkit",
        "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker",
        "NCT#150",
        "nv-tlabs/3dgrut#71",
    ),
    _entry(
        "nvml-unknown-error",
        r"Failed to initialize NVML: Unknown Error",
        "Failed to initialize NVML: Unknown Error",
        "the container lost its GPU: with the systemd cgroup driver, `systemctl daemon-reload` revokes device access "
        "unless the /dev/char links for the nvidia nodes exist",
        "nvidia.devices",
        "sudo nvidia-ctk system create-dev-char-symlinks --create-all, then restart the container",
        "NCT#251",
        "NCT#1227",
        "NVIDIA/nvidia-docker#1730",
    ),
    _entry(
        "hook-load-library",
        r"load library failed: libnvidia-ml\.so\.1",
        "nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open shared "
        "object file: no such file or directory: unknown.",
        "the container hook cannot load the driver's libnvidia-ml: no NVIDIA driver on the host, or a daemon (Docker "
        "Desktop, the snap) that cannot see the host's libraries",
        "nvidia.driver",
        "install the NVIDIA driver and reboot; on Docker Desktop for Linux use Docker Engine: docker context use "
        "default",
        "NVIDIA/libnvidia-container#231",
        "NCT#154",
    ),
    _entry(
        "hook-driver-not-loaded",
        r"nvml error: driver not loaded",
        "nvidia-container-cli: initialization error: nvml error: driver not loaded: unknown.",
        "the nvidia kernel module is not loaded (a kernel upgrade without a rebuilt module, or Secure Boot refusing "
        "an unsigned one)",
        "nvidia.driver",
        "sudo modprobe nvidia   # if it refuses: rebuild it for this kernel (sudo dkms autoinstall) or enroll the "
        "module's key",
        "NCT#1269",
        "NVIDIA/nvidia-docker#1393",
    ),
    _entry(
        "driver-library-mismatch",
        r"driver/library version mismatch",
        "Failed to initialize NVML: Driver/library version mismatch",
        "the driver was upgraded under the running kernel module (often by unattended-upgrades): the library and "
        "the loaded module differ",
        "nvidia.driver",
        "sudo reboot   # then hold the driver packages so upgrades wait for you",
        "canonical/ubuntu-packaging-nvidia-driver#3",
    ),
    _entry(
        "cuda-requirement",
        r"unsatisfied condition: cuda\s*>=\s*[\d.]+",
        "nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.8, please update your driver to "
        "a newer version, or use an earlier cuda container: unknown.",
        "the image's NVIDIA_REQUIRE_CUDA asks for a newer CUDA than the host driver supports",
        "probe.container",
        "upgrade the NVIDIA driver (mldoctor check names the branch), or use an image built for an older CUDA",
        "NVIDIA/nvidia-docker#1442",
        "NCT#152",
    ),
    _entry(
        "driver-too-old",
        r"CUDA driver version is insufficient for CUDA runtime version|driver on your system is too old",
        "RuntimeError: The NVIDIA driver on your system is too old (found version 12040).",
        "the image's CUDA runtime (torch's CUDA build) is newer than the host driver supports",
        "probe.cuda",
        "upgrade the NVIDIA driver, or use an image whose torch is built for an older CUDA",
        "NVIDIA/nvidia-docker#700",
        "rapidsai/cudf#328",
    ),
    _entry(
        "fabric-manager",
        r"error 802|system not yet initialized",
        "RuntimeError: Unexpected error from cudaGetDeviceCount(). Error 802: system not yet initialized",
        "an NVSwitch system (HGX/DGX) whose fabric manager is not running, or not of the driver's exact version",
        "nvidia.fabricmanager",
        "install nvidia-fabricmanager of the driver's version and start it: sudo systemctl enable --now "
        "nvidia-fabricmanager",
        "pytorch/pytorch#35710",
        "wilicc/gpu-burn#92",
    ),
    _entry(
        "forward-compat",
        r"error 804|forward compatibility was attempted on non supported HW",
        "Error 804: forward compatibility was attempted on non supported HW",
        "the image's cuda-compat libraries (forward compatibility) only work on data-centre GPUs",
        "probe.cuda",
        "remove cuda-compat from the image's LD_LIBRARY_PATH, or upgrade the host driver to the image's CUDA",
        "oobabooga/text-generation-webui#4407",
        "NVIDIA/nvidia-docker#1294",
    ),
    _entry(
        "no-kernel-image",
        r"no kernel image is available for execution on the device|is not compatible with the current PyTorch "
        r"installation",
        "CUDA error: no kernel image is available for execution on the device",
        "torch was built without kernels for this GPU's architecture (a cu124 wheel on a Blackwell sm_120 card)",
        "probe.arch",
        "install a torch wheel built for this GPU (cu128 or newer for Blackwell): https://pytorch.org/get-started/",
        "pytorch/pytorch#90761",
        "pytorch/pytorch#167244",
    ),
    _entry(
        "shm-bus-error",
        r"insufficient shared memory \(shm\)|DataLoader worker \(pid \d+\) is killed by signal: Bus error",
        "ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient shared memory (shm).",
        "the container's /dev/shm is Docker's default 64 MiB; DataLoader workers pass batches through it",
        "probe.shm",
        "docker run --shm-size=16g ...   # or --ipc=host",
        "pytorch/pytorch#5040",
        "bytedance/Protenix#2",
    ),
    _entry(
        "nccl-system-error",
        r"NCCL error[^\n]{0,200}unhandled system error|ncclSystemError|shm_open failed",
        "torch.distributed.DistBackendError: NCCL error in: ..., unhandled system error (run with NCCL_DEBUG=INFO "
        "for details)",
        "the container's /dev/shm is too small or not writable for NCCL's shared-memory transport",
        "probe.shm",
        "docker run --ipc=host ...   # or --shm-size=16g; NCCL_DEBUG=INFO names the failing call",
        "NVIDIA/nccl#473",
        "NVIDIA/nccl#328",
    ),
    _entry(
        "gpu-fell-off-the-bus",
        r"GPU has fallen off the bus|Xid[^\n]{0,60}\b79\b",
        "NVRM: Xid (PCI:0000:1f:00): 79, pid=..., GPU has fallen off the bus.",
        "the GPU stopped answering on PCIe (power, thermal or firmware fault): it is gone until a reboot",
        "nvidia.driver",
        "sudo reboot; if it happens again, reseat the card or have it replaced",
        "NVIDIA/open-gpu-kernel-modules#507",
        "leptonai/gpud#1209",
    ),
    _entry(
        "no-cuda-gpus",
        r"No CUDA GPUs are available",
        "RuntimeError: No CUDA GPUs are available",
        "CUDA sees no GPU although nvidia-smi works: a bad CUDA_VISIBLE_DEVICES (`all`, or an index that does not "
        "exist, hides itself and every later entry), or the container got no GPU (--gpus missing)",
        "probe.cuda",
        "unset CUDA_VISIBLE_DEVICES (or set valid indices or UUIDs); run the container with --gpus all",
        "YanWenKun/ComfyUI-Docker#60",
        "Grace9994/CoMoSVC#6",
    ),
    _entry(
        "driver-files-in-image",
        r"mount error: file creation failed: [^\n]{0,300}: file exists",
        "nvidia-container-cli: mount error: file creation failed: /var/lib/docker/overlay2/.../merged/usr/lib/"
        "x86_64-linux-gnu/libnvidia-ml.so.1: file exists: unknown.",
        "the image ships NVIDIA driver files (libnvidia-ml.so.1, libcuda.so.1 or nvidia-smi) that the toolkit "
        "wants to mount from the host",
        "probe.container",
        "remove the driver libraries and nvidia-smi from the image (they come from the host at run time); "
        "mldoctor image check IMAGE lists them",
        "NCT#289",
        "NCT#176",
        "NVIDIA/nvidia-docker#825",
    ),
    _entry(
        "device-cgroup-denied",
        r"bpf_prog_query\(BPF_CGROUP_DEVICE\) failed|devices\.allow: permission denied",
        "nvidia-container-cli: mount error: failed to add device rules: unable to find any existing device filters "
        "attached to the cgroup: bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted: unknown.",
        "the daemon may not program the device cgroup: rootless Docker, or Docker inside an LXC container",
        "nvidia.toolkit",
        "sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place   # or use CDI",
        "NCT#139",
        "NCT#678",
        "NVIDIA/libnvidia-container#154",
    ),
    _entry(
        "wsl-libcuda",
        r"stat failed: /usr/lib/wsl/lib/libcuda\.so\.1",
        "nvidia-container-cli: mount error: stat failed: /usr/lib/wsl/lib/libcuda.so.1: no such file or directory",
        "Docker on WSL2 without the Windows NVIDIA driver's WSL libraries (or an image that ships its own libcuda)",
        "nvidia.driver",
        "install or update the NVIDIA driver on Windows (not inside WSL), then: wsl --shutdown",
        "NCT#289",
        "NVIDIA/nvidia-docker#1551",
    ),
    _entry(
        "cdi-unresolvable",
        r"unresolvable CDI devices",
        "Error: crun: ... unresolvable CDI devices nvidia.com/gpu=all",
        "the CDI spec is missing, or stale after a driver upgrade, or newer than the container engine reads",
        "nvidia.toolkit",
        "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
        "NCT#146",
        "NixOS/nixpkgs#420638",
    ),
    _entry(
        "daemon-not-running",
        r"Cannot connect to the Docker daemon at",
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
        "no daemon answers at that address: stopped, not installed, or DOCKER_HOST/the context points elsewhere",
        "docker.daemon",
        "sudo systemctl enable --now docker   # mldoctor check names the right command for this host",
    ),
    _entry(
        "socket-permission",
        r"permission denied while trying to connect to the Docker daemon socket",
        "Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock",
        "this user may not use the daemon's socket (not in the docker group, or the login predates joining it)",
        "docker.permission",
        "sudo usermod -aG docker $USER, then log out and back in   # never chmod 666 the socket",
    ),
    _entry(
        "no-space",
        r"no space left on device",
        "write /var/lib/docker/tmp/...: no space left on device",
        "the disk holding Docker's data-root (or the one being written) is full",
        "docker.disk",
        "docker system prune   # mldoctor check lists what each prune frees",
    ),
    _entry(
        "bridge-missing",
        r"could not find bridge docker0|failed to create endpoint [^\n]{0,200}bridge",
        "docker: Error response from daemon: failed to create endpoint ... on network bridge: adding interface ... "
        "to bridge docker0 failed: could not find bridge docker0: route ip+net: no such network interface.",
        "the default bridge network is broken: docker0 is gone (deleted, or removed by a daemon started with "
        "--bridge=none in the same network namespace)",
        "docker.network",
        "sudo systemctl restart docker   # recreates docker0",
    ),
)
"""Known errors, most specific first (the first match wins in `explain`)."""


def match(text: str) -> list[KnownError]:
    """Every known error the text contains, in catalogue order."""
    return [entry for entry in CATALOGUE if entry.pattern.search(text)]


def by_id(error_id: str) -> KnownError:
    return next(entry for entry in CATALOGUE if entry.id == error_id)
