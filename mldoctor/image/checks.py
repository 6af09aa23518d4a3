"""The image checks: pure functions from an image's facts and the targets to findings (ids `image.*`).

No environment, files, processes or clock (tests run `judge` under the same guard as `mldoctor/rules/`): the same
facts judged anywhere give the same verdicts and fixes. Text from the image (env values, history lines) appears in
summaries and details bounded, as data, never as a command to run; the fixes are mldoctor's own words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mldoctor.data.gpus import min_driver_for_cuda
from mldoctor.image.data import parse_arch_list, wheel_arch_list
from mldoctor.image.facts import ImageFacts, Layer
from mldoctor.image.targets import Targets
from mldoctor.model import CheckResult, Finding, Problem, Status
from mldoctor.rules.probe import kernel_support
from mldoctor.text import GIB, plural, version_tuple

TORCH_WHEELS = "https://pytorch.org/get-started/locally/"
REQUIRE = re.compile(r"cuda>=\s*(\d+(?:\.\d+)*)")
MIB = 1 << 20
WASTE_MIN = 10 * MIB
"""A layer smaller than this is not worth a finding, whatever it leaves behind."""

Judgement = Callable[[ImageFacts, Targets], "Finding | Iterable[Finding] | None"]


@dataclass(frozen=True)
class ImageCheck:
    """An image check (`image.*`): a pure judgement of an image's facts against the targets."""

    id: str
    title: str
    judge: Judgement
    reads_files: bool = False
    """It judges the image's files: where they could not be read it is one ERROR row, not a guess."""

    @property
    def docs(self) -> str:
        return f"docs/checks.md#{self.id.replace('.', '')}"


CHECKS: list[ImageCheck] = []


def image_check(check_id: str, title: str, *, reads_files: bool = False) -> Callable[[Judgement], Judgement]:
    def register(judge: Judgement) -> Judgement:
        CHECKS.append(ImageCheck(check_id, title, judge, reads_files))
        return judge

    return register


def judge(facts: ImageFacts, targets: Targets) -> list[CheckResult]:
    """Every image check on `facts` against `targets`, in order; a check that crashes is an ERROR row."""
    results: list[CheckResult] = []
    for check in CHECKS:
        try:
            outcome = _unread(facts) if check.reads_files and not facts.files_read else check.judge(facts, targets)
        except Exception as exc:  # one broken check must not hide the others
            outcome = Finding.error(f"the check crashed: {type(exc).__name__}: {exc}")
        findings = [] if outcome is None else [outcome] if isinstance(outcome, Finding) else list(outcome)
        results += [as_result(check.id, check.title, check.docs, f) for f in findings]
    return results


def as_result(check_id: str, title: str, docs: str, finding: Finding) -> CheckResult:
    return CheckResult(
        id=f"{check_id}.{finding.subject}" if finding.subject else check_id,
        title=title,
        area="image",
        status=finding.status,
        summary=finding.summary,
        details=list(finding.details),
        fix=finding.fix,
        docs=docs,
        blocked_by=finding.blocked_by,
    )


def _unread(facts: ImageFacts) -> Finding:
    why = "; ".join(e for e in facts.errors if e.startswith("files")) or "the image's files were not read"
    return Finding.error(f"could not look inside the image: {why}")


def _driver_fix(cuda: str) -> str:
    branch = min_driver_for_cuda(cuda)
    return f"upgrade the NVIDIA driver to {branch} or newer" if branch else "upgrade the NVIDIA driver"


def _driver_name(targets: Targets) -> str:
    where = {"flags": "--driver", "host": "this host's driver", "policy": "the policy's driver floor"}
    return f"{where.get(targets.source, 'the driver')} {targets.driver}"


@image_check("image.cuda", "CUDA the image requires")
def image_cuda(facts: ImageFacts, targets: Targets) -> Finding:
    """NVIDIA_REQUIRE_CUDA is enforced by the toolkit at start ("unsatisfied condition: cuda>=12.8"); CUDA_VERSION
    says which runtime the image carries when it sets no requirement."""
    require = facts.env.get("NVIDIA_REQUIRE_CUDA", "")
    match = REQUIRE.search(require)
    wanted = match.group(1) if match else ".".join(facts.env.get("CUDA_VERSION", "").split(".")[:2])
    if not wanted or not version_tuple(wanted):
        return Finding.ok("the image declares no CUDA (no NVIDIA_REQUIRE_CUDA or CUDA_VERSION)")
    how = "NVIDIA_REQUIRE_CUDA" if match else "CUDA_VERSION"
    if not targets.driver_cuda:
        return Finding.skip(
            f"the image needs CUDA >= {wanted} ({how}); no driver to compare with: "
            "give --driver, run on a GPU host, or set min_driver_version in the policy file"
        )
    if version_tuple(wanted) <= version_tuple(targets.driver_cuda):
        return Finding.ok(f"needs CUDA >= {wanted} ({how}); {_driver_name(targets)} runs CUDA {targets.driver_cuda}")
    disabled = facts.env.get("NVIDIA_DISABLE_REQUIRE", "").lower() in ("1", "true", "yes")
    details = (
        f"{how}={facts.env.get(how, '')[:200]}",
        "at start the toolkit refuses it: `requirement error: unsatisfied condition: cuda>="
        f"{wanted}, please update your driver`",
        *(["NVIDIA_DISABLE_REQUIRE is set: the container starts, then CUDA fails"] if disabled else []),
    )
    return Finding.fail(
        f"the image needs CUDA >= {wanted}; {_driver_name(targets)} runs CUDA {targets.driver_cuda} at most",
        fix=f"{_driver_fix(wanted)}; or build FROM an image for CUDA {targets.driver_cuda} or older "
        f"(e.g. nvidia/cuda:{targets.driver_cuda}.0-runtime-ubuntu22.04)",
        details=details,
    )


@image_check("image.torch", "PyTorch in the image", reads_files=True)
def image_torch(facts: ImageFacts, targets: Targets) -> Finding:
    torch = facts.torch
    if torch is None:
        return Finding.warn(
            "torch is not installed (looked for torch/version.py next to the image's python3)",
            fix=f"RUN pip install --no-cache-dir torch   # in the Dockerfile; the build for your CUDA: {TORCH_WHEELS}",
        )
    where = (f"at {torch.path}",)
    if not torch.cuda:
        summary = f"torch {torch.version or '?'}; CUDA build: none (a CPU-only torch cannot use the GPUs)"
        fix = (
            "RUN pip install --no-cache-dir torch --index-url https://download.pytorch.org/whl/"
            f"cu{(targets.driver_cuda or '12.8').replace('.', '')}   # a CUDA build your driver runs"
        )
        if targets.driver or targets.gpus:
            return Finding.fail(summary, fix=fix, details=where)
        return Finding.warn(summary, fix=fix, details=where)
    if targets.driver_cuda and version_tuple(torch.cuda) > version_tuple(targets.driver_cuda):
        return Finding.fail(
            f"torch {torch.version} is built for CUDA {torch.cuda}; {_driver_name(targets)} runs CUDA "
            f'{targets.driver_cuda} at most: torch says "The NVIDIA driver on your system is too old"',
            fix=f"{_driver_fix(torch.cuda)}; or RUN pip install --no-cache-dir torch --index-url "
            f"https://download.pytorch.org/whl/cu{targets.driver_cuda.replace('.', '')}",
            details=where,
        )
    fits = f"; {_driver_name(targets)} runs CUDA {targets.driver_cuda}" if targets.driver_cuda else ""
    return Finding.ok(f"torch {torch.version}; CUDA build: {torch.cuda}{fits}", details=where)


def torch_arch_list(facts: ImageFacts) -> tuple[list[str], str]:
    """torch's arch list and where it came from: the published wheels' list for an official build (a `+cuXYZ`
    version, or a plain release), else TORCH_CUDA_ARCH_LIST baked into the image (source builds such as NGC set
    it), else the wheels' list for that CUDA. ([], reason) when nothing says."""
    torch = facts.torch
    if torch is None or not torch.cuda:
        return [], "no CUDA torch"
    official = bool(re.fullmatch(r"\d+\.\d+(\.\d+)?(\+cu\d+)?", torch.version))
    published = wheel_arch_list(torch.cuda, torch.version)
    env = parse_arch_list(facts.env.get("TORCH_CUDA_ARCH_LIST", ""))
    if official and published:
        return published, f"PyTorch's published cu{torch.cuda.replace('.', '')} wheels"
    if env:
        return env, "TORCH_CUDA_ARCH_LIST in the image"
    if published:
        return published, f"PyTorch's published cu{torch.cuda.replace('.', '')} wheels (assumed)"
    return [], f"no known arch list for torch {torch.version} (CUDA {torch.cuda})"


@image_check("image.arch", "torch kernels for the target GPUs", reads_files=True)
def image_arch(facts: ImageFacts, targets: Targets) -> Finding:
    if facts.torch is None or not facts.torch.cuda:
        return Finding.skip("no CUDA build of torch in the image (see image.torch)")
    arch, source = torch_arch_list(facts)
    if not arch:
        return Finding.skip(f"torch's arch list is unknown: {source}")
    known = [g for g in targets.gpus if g.compute_capability]
    details = [f"arch list ({source}): {' '.join(arch)}"]
    details += [f"{g.name}: compute capability unknown to mldoctor" for g in targets.gpus if not g.compute_capability]
    if not known:
        return Finding.skip("no target GPU to compare with: give --gpu H100 (repeatable) or require_gpu_models")
    problems = []
    for gpu in known:
        major, minor = (int(p) for p in gpu.compute_capability.split(".")[:2])
        support = kernel_support(arch, major, minor)
        details.append(f"{gpu.name}: sm_{major}{minor} -> {support}")
        if support == "none":
            problems.append(
                Problem(
                    Status.FAIL,
                    f'torch {facts.torch.version} has no kernels for {gpu.name} (sm_{major}{minor}): "no kernel image '
                    'is available for execution on the device"',
                    f"RUN pip install --no-cache-dir torch --index-url https://download.pytorch.org/whl/cu128   "
                    f"# a build listing sm_{major}{minor} (Blackwell needs cu128 or newer): {TORCH_WHEELS}",
                )
            )
        elif support == "ptx":
            problems.append(
                Problem(
                    Status.WARN,
                    f"torch {facts.torch.version} has only PTX for {gpu.name} (sm_{major}{minor}): kernels are "
                    "JIT-compiled at startup",
                    f"install a torch build that lists sm_{major}{minor} natively: {TORCH_WHEELS}",
                )
            )
    ccs = ", ".join(sorted({f"sm_{g.compute_capability.replace('.', '')}" for g in known}))
    return Finding.combine(problems, ok=f"torch has native kernels for {ccs}", details=tuple(details))


@image_check("image.driver_libs", "NVIDIA driver files baked into the image", reads_files=True)
def image_driver_libs(facts: ImageFacts, targets: Targets) -> Finding:
    if not facts.driver_files:
        return Finding.ok("no libnvidia-ml.so.1, libcuda.so.1 or nvidia-smi baked in (the toolkit mounts the host's)")
    names = ", ".join(facts.driver_files)
    return Finding.fail(
        f"the image ships driver files the NVIDIA toolkit mounts from the host ({names}): `docker run --gpus` fails "
        'with "mount error: file creation failed: ...: file exists"',
        fix="remove them from the image: do not install driver packages (libnvidia-compute-*, nvidia-utils-*, "
        "nvidia-driver-*) in the Dockerfile; or delete them in the stage that copied them:\n"
        f"RUN rm -f {' '.join(facts.driver_files)}",
        details=("the driver belongs to the host: the container toolkit mounts the host's own copies at start",),
    )


@image_check("image.visible_devices", "CUDA_VISIBLE_DEVICES baked into the image")
def image_visible_devices(facts: ImageFacts, targets: Targets) -> Finding:
    if "CUDA_VISIBLE_DEVICES" not in facts.env:
        return Finding.ok("CUDA_VISIBLE_DEVICES is not set in the image (GPUs are chosen at docker run)")
    value = facts.env["CUDA_VISIBLE_DEVICES"][:100]
    fix = (
        "delete `ENV CUDA_VISIBLE_DEVICES=...` from the Dockerfile and rebuild; choose GPUs when starting it:\n"
        "docker run --gpus '\"device=0,1\"' IMAGE   # the toolkit sets NVIDIA_VISIBLE_DEVICES from --gpus"
    )
    details = (
        "NVIDIA_VISIBLE_DEVICES (set by --gpus) decides which GPUs the container gets; CUDA_VISIBLE_DEVICES then "
        "filters those, by index within the container; an invalid entry hides itself and every later one",
    )
    items = [v.strip() for v in value.split(",")]
    if value.strip() == "" or value.strip().lower() in ("all", "none", "void") or any(i.isdigit() for i in items):
        why = (
            "'all' is not a CUDA value: CUDA sees no GPU"
            if value.strip().lower() == "all"
            else "an empty value hides every GPU"
            if not value.strip()
            else "indices are fixed at build time, whatever GPUs the container is given"
        )
        return Finding.fail(
            f'CUDA_VISIBLE_DEVICES={value!r} is baked into the image ({why}): torch says "No CUDA GPUs are '
            'available" while nvidia-smi works',
            fix=fix,
            details=details,
        )
    summary = f"CUDA_VISIBLE_DEVICES={value!r} is baked into the image (ties it to certain GPUs)"
    return Finding.warn(summary, fix, details)


@image_check("image.compat", "CUDA forward-compatibility libraries", reads_files=True)
def image_compat(facts: ImageFacts, targets: Targets) -> Finding:
    if not facts.compat_dirs:
        return Finding.ok("no cuda-compat libraries on the image's LD_LIBRARY_PATH")
    dirs = ", ".join(facts.compat_dirs)
    consumer = [g.name for g in targets.gpus if g.consumer]
    details = (f"LD_LIBRARY_PATH={facts.env.get('LD_LIBRARY_PATH', '')[:300]}",)
    if consumer:
        return Finding.fail(
            f"cuda-compat ({dirs}) is on LD_LIBRARY_PATH and the targets include {', '.join(consumer)}: CUDA fails "
            'with error 804 "forward compatibility was attempted on non supported HW"',
            fix="drop the compat directory from LD_LIBRARY_PATH (ENV LD_LIBRARY_PATH=... without "
            f"{facts.compat_dirs[0]}), or RUN apt-get purge -y 'cuda-compat-*'; or upgrade the host driver so "
            "the image's CUDA needs no forward compatibility",
            details=details,
        )
    return Finding.ok(
        f"cuda-compat ({dirs}) is on LD_LIBRARY_PATH: fine on data-centre GPUs, error 804 on GeForce cards",
        details=details,
    )


@image_check("image.python", "Python in the image", reads_files=True)
def image_python(facts: ImageFacts, targets: Targets) -> Finding:
    if not facts.python:
        return Finding.fail(
            "no python3 in the image (/usr/bin, /usr/local/bin or its PATH)",
            fix="RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip "
            "&& rm -rf /var/lib/apt/lists/*   # or start FROM an image with Python >= 3.8",
        )
    where = tuple(facts.python[:5])
    version = facts.python_version
    if version is None:
        return Finding.ok("python3 is present (its version is not visible without running it)", details=where)
    if version_tuple(version) < (3, 8):
        return Finding.fail(
            f"Python {version}: torch and mldoctor's probe need 3.8 or newer (current torch 3.9+)",
            fix="start FROM an image with a current Python (python:3.12-slim, a PyTorch or NGC image)",
            details=where,
        )
    return Finding.ok(f"Python {version}", details=where)


def _is_root(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in ("", "root", "0")


@image_check("image.user", "The user the image runs as")
def image_user(facts: ImageFacts, targets: Targets) -> Finding:
    if not _is_root(facts.user):
        return Finding.ok(f"runs as {facts.user[:60]}")
    shown = facts.user or "not set: root"
    return Finding.warn(
        f"runs as root (USER {shown}; hadolint DL3002): a process that escapes owns the host's files it can reach",
        fix="RUN useradd --create-home --uid 1000 app\nUSER app   # last in the Dockerfile",
    )


@image_check("image.healthcheck", "HEALTHCHECK for a serving image")
def image_healthcheck(facts: ImageFacts, targets: Targets) -> Finding:
    if not facts.exposed_ports:
        return Finding.ok("no EXPOSE: not a serving image, no HEALTHCHECK needed")
    ports = ", ".join(facts.exposed_ports[:5])
    if facts.healthcheck and facts.healthcheck[0].upper() != "NONE":
        return Finding.ok(f"EXPOSE {ports} with a HEALTHCHECK")
    port = facts.exposed_ports[0].split("/")[0]
    return Finding.warn(
        f"EXPOSE {ports} without a HEALTHCHECK: an orchestrator cannot tell a hung server from a healthy one",
        fix=f"HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD curl -fsS http://localhost:{port}/health "
        "|| exit 1",
    )


def base_image(facts: ImageFacts) -> tuple[str | None, str]:
    """The base image, where the image shows it: the OCI base-name label, else the newest history entry below the
    image's own that carries a local tag. (None, "") when neither does."""
    label = facts.labels.get("org.opencontainers.image.base.name")
    if label:
        return label, "label org.opencontainers.image.base.name"
    for layer in reversed(facts.layers[:-1]):
        if layer.tags:
            return layer.tags[0], "the image's history"
    return None, ""


@image_check("image.base", "Base image pinned")
def image_base(facts: ImageFacts, targets: Targets) -> Finding:
    base, where = base_image(facts)
    if base is None:
        return Finding.skip("the base image is not recorded in the image (lint the Dockerfile: --dockerfile PATH)")
    name = base.split("@")[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    if "@sha256:" in base or (tag and tag != "latest"):
        return Finding.ok(f"FROM {base} (from {where})")
    return Finding.warn(
        f"FROM {base}{'' if tag else ' (no tag: latest)'} (from {where}; hadolint DL3007): the base changes under "
        "the image at every rebuild",
        fix=f"FROM {name.rsplit(':', 1)[0] if tag else name}:<version>   # a version tag, or @sha256:<digest>",
    )


APT_INSTALL = re.compile(r"\bapt(-get)?\s+(-\S+\s+)*install\b")
APT_CLEAN = re.compile(r"rm\s+-[a-zA-Z]*\s+/var/lib/apt/lists")
PIP_INSTALL = re.compile(r"\bpip3?\s+install\b|\bpython3?\s+-m\s+pip\s+install\b")


def waste(layer: Layer, env: dict[str, str]) -> list[str]:
    """What a layer leaves behind that nothing needs at run time, read from the command that made it."""
    command = layer.created_by
    found = []
    if APT_INSTALL.search(command) and not APT_CLEAN.search(command):
        found.append("apt lists not deleted (DL3009)")
    no_cache = "--no-cache-dir" in command or env.get("PIP_NO_CACHE_DIR", "").lower() in ("1", "true", "yes", "off")
    if PIP_INSTALL.search(command) and not no_cache:
        found.append("pip cache kept (DL3042)")
    return found


def size(nbytes: int) -> str:
    """MiB under a GiB (layers), GiB above (images)."""
    return f"{nbytes / GIB:.1f} GiB" if nbytes >= GIB else f"{nbytes / MIB:.0f} MiB"


def _short(command: str, limit: int = 90) -> str:
    text = re.sub(r"\s+", " ", command.replace("/bin/sh -c #(nop) ", "").replace("/bin/sh -c ", "RUN ")).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


@image_check("image.size", "Image size and its largest layers")
def image_size(facts: ImageFacts, targets: Targets) -> Finding:
    layers = [layer for layer in facts.layers if layer.size > 0]
    largest = sorted(layers, key=lambda layer: -layer.size)[:3]
    details = [f"{size(layer.size)}  {_short(layer.created_by) or '(base layer)'}" for layer in largest]
    wasteful = [(layer, waste(layer, facts.env)) for layer in layers if layer.size >= WASTE_MIN]
    wasteful = [(layer, found) for layer, found in wasteful if found]
    details += [f"{'; '.join(found)}: {size(layer.size)} {_short(layer.created_by)}" for layer, found in wasteful[:5]]
    summary = f"{facts.ref}: {size(facts.size)} in {plural(len(layers), 'layer')}"
    if not wasteful:
        return Finding.ok(summary, details=tuple(details))
    kinds = sorted({item for _, found in wasteful for item in found})
    fixes = []
    if any("apt" in k for k in kinds):
        fixes.append(
            "RUN apt-get update && apt-get install -y --no-install-recommends PKG && rm -rf /var/lib/apt/lists/*"
        )
    if any("pip" in k for k in kinds):
        fixes.append("RUN pip install --no-cache-dir PKG   # or ENV PIP_NO_CACHE_DIR=1")
    return Finding.warn(
        f"{summary}; {plural(len(wasteful), 'layer')} keep what nothing needs at run time: {', '.join(kinds)}",
        fix="\n".join(fixes),
        details=tuple(details),
    )
