"""Starting the probe: the only place that runs containers or builds and pulls images through the docker SDK.

A probe container is created, started, waited for under a hard deadline, read and removed (force) in a
`finally`; it has no network (only the name lookup, a program of a few lines, joins the default bridge), no
capabilities, no new privileges and the label `mldoctor.probe=1`, and a unique
name so that two runs never touch each other's containers. Each container and host probe is registered with
`mldoctor.interrupts` while it exists: when Ctrl-C or SIGTERM cuts the run short (the waiting happens in a gatherer
thread, which an interrupt of the main thread abandons), the interrupt path removes it (`engine.owned`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mldoctor import interrupts
from mldoctor.engine import owned
from mldoctor.engine.client import Connected, open_client
from mldoctor.engine.endpoint import resolve_endpoint
from mldoctor.engine.errors import classify_error, describe

LABEL = "mldoctor.probe"
PROBE_FILE = Path(__file__).with_name("probe.py")


def _probe_dockerfile() -> Path:
    """probe_image/Dockerfile, the probe image's one source: a wheel carries it as the package mldoctor.probe_image
    (pyproject.toml maps it there); a checkout (an editable install, PYTHONPATH=.) has it at the top of the tree."""
    package = Path(__file__).resolve().parent.parent
    wheel = package / "probe_image" / "Dockerfile"
    return wheel if wheel.is_file() else package.parent / "probe_image" / "Dockerfile"


DOCKERFILE = _probe_dockerfile()
STDOUT_LIMIT = 1 << 20
"""The most of the probe's stdout that is kept: its end, where the document is (a few KiB; it is printed last),
whatever an image printed before it."""
STDERR_TAIL = 4000
IMAGE_ENV_PREFIXES = ("NVIDIA_", "CUDA_VERSION")
ISOLATED = ("-I", "-S")
"""python3's flags for a container with network: no site module, so no sitecustomize or .pth file of the image
runs while it can reach the network; the program needs nothing but the standard library."""
PIDS_LIMIT = 1024
"""Processes the probe container may have: the probe needs a handful (torch's thread pools are threads, not
processes); a fork bomb in a user's image stops here."""


@dataclass(frozen=True)
class LaunchRequest:
    """What to run, in plain values: no facts, no options objects (the launcher's boundary)."""

    image: str
    args: tuple[str, ...] = ()
    """The probe program's arguments."""
    gpus: str = "none"
    """all, none, or indices such as 0,1."""
    shm_size: str | None = None
    memory_limit: str | None = None
    """The container's memory limit (e.g. 16g); None: the daemon's default (none)."""
    deadline_s: float = 120.0
    """The whole run, start to exit; then the container is killed."""
    timeout: float = 5.0
    """Each call to the daemon."""
    api_version: str | None = None
    """The daemon's API version when already known (the daemon is then not asked for it again)."""
    progress: Callable[[str], None] | None = None
    """Told the stage the run has reached (`wait`: the container started, the probe is running), for a progress
    display; None: nobody is told."""
    program: str | None = None
    """Python source run instead of the probe (`args` are its arguments); None: the probe."""
    network: bool = False
    """Join the default bridge (a name lookup, docker.network's question); the probe itself runs with no network."""
    role: str = "probe"
    """In the container's name, `mldoctor-ROLE-xxxx`: the probe, or the name lookup beside it (`lookup`)."""
    removes_leftovers: bool = True
    """Remove what killed runs left first (one of two runs side by side does it, so that one reports it)."""


@dataclass
class LaunchResult:
    """How a run went: where it stopped, why, and what the probe printed (bounded)."""

    stage: str = "connect"
    """connect, image, create, start, wait or exited (the program ran to its end, or was killed)."""
    error: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    stdout: bytes = b""
    """The end of what the probe printed (at most STDOUT_LIMIT bytes)."""
    stdout_bytes: int = 0
    """How much it printed in all."""
    stderr_tail: str = ""
    image_env: dict[str, str] = field(default_factory=dict)
    """NVIDIA_* variables from the image's config, readable even when the container cannot start."""
    removed_leftovers: list[str] = field(default_factory=list)
    """Probe containers of earlier runs that were killed (SIGKILL, a crash, a reboot), found and removed."""
    elapsed_s: float = 0.0


def probe_source() -> str:
    return PROBE_FILE.read_text(encoding="utf-8")


def default_base_image() -> str:
    """The Dockerfile's own `ARG BASE_IMAGE=` default, so the CLI and the Dockerfile cannot disagree."""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.partition("=")[2].strip()
    raise ValueError(f"{DOCKERFILE} has no ARG BASE_IMAGE default")


def dockerfile_digest() -> str:
    """A label on built images: a changed Dockerfile means an image to rebuild (CI reuses images otherwise)."""
    return hashlib.sha256(DOCKERFILE.read_bytes()).hexdigest()[:16]


def _tail(data: bytes, limit: int = STDERR_TAIL) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text[-limit:]


def _device_requests(gpus: str) -> list[Any]:
    """--gpus as docker-py expresses it (there is no gpus= argument): all GPUs, or the listed indices."""
    from docker.types import DeviceRequest

    if gpus == "none":
        return []
    if gpus == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [DeviceRequest(device_ids=gpus.split(","), capabilities=[["gpu"]])]


NCCL_FORWARDED = ("NCCL_P2P_DISABLE", "NCCL_SHM_DISABLE", "NCCL_IB_DISABLE", "NCCL_DEBUG", "NCCL_ALGO", "NCCL_PROTO")
"""NCCL settings passed from the user's environment into the probe container, so `NCCL_P2P_DISABLE=1 mldoctor
gpu-bench` is the confirming test of a hang in the container too (interface names are the host's: not passed)."""


def _nccl_settings() -> dict[str, str]:
    return {name: os.environ[name][:100] for name in NCCL_FORWARDED if name in os.environ}


STEP = "@mldoctor-step "
"""The probe's step lines on stderr (mldoctor/probe/probe.py): what it is doing, for the progress display."""


def _follow_steps(client: Any, name: str, progress: Callable[[str], None]) -> None:
    """Pass the probe's step lines on while it runs, from a thread that reads the container's stderr as it comes
    (the stream ends when the container does; errors only cost the display its detail)."""

    def follow() -> None:
        with contextlib.suppress(Exception):
            pending = b""
            for chunk in client.logs(name, stdout=False, stderr=True, stream=True, follow=True):
                pending = (pending + chunk)[-65536:]
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    text = line.decode("utf-8", "replace")
                    if text.startswith(STEP):
                        progress("step:" + text[len(STEP) :][:120])

    threading.Thread(target=follow, name="probe-steps", daemon=True).start()


def _read_tail(chunks: Iterator[bytes], limit: int) -> tuple[bytes, int]:
    """The last `limit` bytes of a stream and its whole length: read as it streams, so an image that prints
    gigabytes before the probe's document costs about twice `limit` of memory, not gigabytes."""
    kept, total = bytearray(), 0
    for chunk in chunks:
        total += len(chunk)
        kept += chunk
        if len(kept) > 2 * limit:
            del kept[: len(kept) - limit]
    return bytes(kept[-limit:]), total


def run_in_container(request: LaunchRequest) -> LaunchResult:
    """Run the probe in `request.image`: create, start, wait under the deadline, read, remove (always)."""
    from docker.errors import ImageNotFound

    started = time.monotonic()
    result = LaunchResult()
    endpoint = resolve_endpoint()
    name = f"mldoctor-{request.role}-{uuid.uuid4().hex[:12]}"
    connected: Connected | None = None
    container: owned.Owned | None = None
    try:
        connected = open_client(endpoint, request.timeout, request.api_version)
        client = connected.client
        if request.removes_leftovers:
            result.removed_leftovers = owned.remove_leftovers(client, LABEL)
        result.stage = "image"
        try:
            config = client.inspect_image(request.image).get("Config") or {}
        except ImageNotFound as exc:
            result.error = describe(exc, 1000)
            return result
        env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
        result.image_env = {k: v for k, v in env.items() if k.startswith(IMAGE_ENV_PREFIXES)}
        result.stage = "create"
        host_config = client.create_host_config(
            network_mode="bridge" if request.network else "none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=PIDS_LIMIT,
            mem_limit=request.memory_limit,
            shm_size=request.shm_size,
            device_requests=_device_requests(request.gpus),
        )
        container = owned.Owned(endpoint, name, request.timeout)
        client.create_container(
            request.image,
            entrypoint=["python3"],
            command=[*(ISOLATED if request.network else ()), "-c", request.program or probe_source(), *request.args],
            name=name,
            labels=owned.owner_labels(LABEL),
            environment={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", **_nccl_settings()},
            host_config=host_config,
        )
        container.created.set()
        result.stage = "start"
        client.start(name)
        result.stage = "wait"
        if request.progress is not None:
            request.progress(result.stage)
            _follow_steps(client, name, request.progress)
        remaining = request.deadline_s - (time.monotonic() - started)
        try:
            result.exit_code = client.wait(name, timeout=max(1.0, remaining))["StatusCode"]
        except Exception as exc:
            if classify_error(exc) != "timeout":
                raise
            result.timed_out = True
            result.error = f"the probe did not finish within {request.deadline_s:g} s and was killed"
            with contextlib.suppress(Exception):
                client.kill(name)
        result.stage = "exited"
        stream = client.logs(name, stdout=True, stderr=False, stream=True)
        try:
            result.stdout, result.stdout_bytes = _read_tail(stream, STDOUT_LIMIT)
        finally:
            with contextlib.suppress(Exception):
                stream.close()
        result.stderr_tail = _tail(client.logs(name, stdout=False, stderr=True, tail=200))
    except Exception as exc:  # every failure is a result: the stage says where, the text says why
        result.error = describe(exc, 1000)
    except BaseException:
        # Ctrl-C or SIGTERM can land between a lock's acquire and its release inside the client's connection pool;
        # using that client again could wait on the lock forever. The interrupt path removes the container over a
        # fresh connection instead.
        connected = None
        raise
    finally:
        if connected is not None:
            if container is not None:
                container.remove_with(connected.client)
            connected.close()
        result.elapsed_s = round(time.monotonic() - started, 3)
    return result


def run_on_host(args: tuple[str, ...], deadline_s: float) -> LaunchResult:
    """Run the probe with this interpreter (torch from `mldoctor[bench]`), killed at the deadline."""
    started = time.monotonic()
    result = LaunchResult(stage="wait")
    argv = [sys.executable, "-c", probe_source(), *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        key = f"host-{proc.pid}"
        interrupts.register(key, interrupts.Undo(f"host probe (pid {proc.pid})", f"kill {proc.pid}", proc.kill))
        try:
            try:
                result.exit_code = proc.wait(timeout=deadline_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                result.timed_out = True
                result.error = f"the probe did not finish within {deadline_s:g} s and was killed"
            result.stage = "exited"
            result.stdout_bytes = os.fstat(out.fileno()).st_size
            out.seek(max(0, result.stdout_bytes - STDOUT_LIMIT))
            result.stdout = out.read(STDOUT_LIMIT)
            err.seek(max(0, os.fstat(err.fileno()).st_size - 2 * STDERR_TAIL))
            result.stderr_tail = _tail(err.read())
        finally:
            if proc.poll() is None:  # interrupted in this thread (Ctrl-C while waiting): it must not outlive us
                with contextlib.suppress(Exception):
                    proc.kill()
                    proc.wait(timeout=5)
            interrupts.forget(key)
            result.elapsed_s = round(time.monotonic() - started, 3)
    return result


@dataclass(frozen=True)
class BuildEvent:
    """One line of build or pull progress, for the CLI to show."""

    text: str = ""
    error: bool = False
    layer: str | None = None
    current: int = 0
    total: int = 0


def build_image(
    base_image: str,
    tag: str,
    version: str,
    wheelhouse: str | None = None,
    timeout: float = 60.0,
    network: str | None = None,
) -> Iterator[BuildEvent]:
    """Build the probe image with the daemon's builder, streaming its log one whole line per event; `wheelhouse` (a
    directory of wheels, pip's own included when the base has no pip) installs torch offline, for bases without
    torch; `network` is the RUN steps' network (`host` where the default bridge is broken), the daemon's when None."""
    with tempfile.TemporaryFile() as context:
        with tarfile.open(fileobj=context, mode="w") as tar:
            tar.add(DOCKERFILE, arcname="Dockerfile")
            tar.add(PROBE_FILE, arcname="probe.py")
            info = tarfile.TarInfo("wheelhouse")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
            for wheel in sorted(Path(wheelhouse).glob("*.whl")) if wheelhouse else []:
                tar.add(wheel, arcname=f"wheelhouse/{wheel.name}")
        context.seek(0)
        connected = open_client(resolve_endpoint(), timeout)
        try:
            stream = connected.client.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                buildargs={"BASE_IMAGE": base_image, "MLDOCTOR_VERSION": version},
                rm=True,
                forcerm=True,
                decode=True,
                network_mode=network,
                labels={"mldoctor.version": version, "mldoctor.dockerfile": dockerfile_digest()},
            )
            yield from build_events(stream)
        finally:
            connected.close()


def build_events(chunks: Iterator[dict[str, Any]]) -> Iterator[BuildEvent]:
    """The builder's JSON messages as whole log lines: the legacy builder sends a step's text and its newline in
    separate messages, and a RUN step's output in pieces; a line is yielded once its newline arrives."""
    pending = ""
    for chunk in chunks:
        if "error" in chunk:
            if pending.strip():
                yield BuildEvent(text=pending.rstrip())
            pending = ""
            detail = chunk.get("errorDetail") or {}
            yield BuildEvent(text=str(chunk["error"] or detail.get("message", "")).strip(), error=True)
            continue
        pending += str(chunk.get("stream") or "")
        *complete, pending = pending.replace("\r\n", "\n").split("\n")
        for line in complete:
            if line.strip():
                yield BuildEvent(text=line.rstrip())
    if pending.strip():
        yield BuildEvent(text=pending.rstrip())


def pull_image(image: str, timeout: float = 60.0) -> Iterator[BuildEvent]:
    """Pull `image`, yielding per-layer progress (bytes) for a progress display."""
    repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    connected = open_client(resolve_endpoint(), timeout)
    try:
        for chunk in connected.client.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                yield BuildEvent(text=str(chunk["error"]).strip(), error=True)
                continue
            detail = chunk.get("progressDetail") or {}
            yield BuildEvent(
                text=chunk.get("status", ""),
                layer=chunk.get("id"),
                current=int(detail.get("current") or 0),
                total=int(detail.get("total") or 0),
            )
    finally:
        connected.close()
