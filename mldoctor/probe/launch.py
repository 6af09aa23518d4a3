"""Starting the probe: the only place that runs containers or builds and pulls images through the docker SDK.

A probe container is created, started, waited for under a hard deadline, read and removed (force) in a
`finally`; it has no network, no capabilities, no new privileges and the label `mldoctor.probe=1`, and a unique
name so that two runs never touch each other's containers. Ctrl-C and SIGTERM end mldoctor through normal
interpreter exit, where an atexit hook removes every probe container (or kills every host probe) still alive:
the waiting happens in a gatherer thread, which an interrupt of the main thread would otherwise abandon.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mldoctor.facts.docker import Endpoint, classify_error, open_client, resolve_endpoint
from mldoctor.facts.probe import ProbeOptions, ProbeRun

LABEL = "mldoctor.probe"
PROBE_FILE = Path(__file__).with_name("probe.py")
DOCKERFILE = Path(__file__).with_name("Dockerfile")
STDOUT_LIMIT = 1 << 20
STDERR_TAIL = 4000
IMAGE_ENV_PREFIXES = ("NVIDIA_", "CUDA_VERSION")


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


def probe_args(options: ProbeOptions) -> list[str]:
    if not options.bench:
        return ["--no-bench"]
    return ["--duration", f"{options.duration:g}", *(["--dtypes", ",".join(options.dtypes)] if options.dtypes else [])]


_live: dict[str, Callable[[], None]] = {}
_live_lock = threading.Lock()


def _track(key: str, cleanup: Callable[[], None]) -> None:
    with _live_lock:
        _live[key] = cleanup


def _untrack(key: str) -> None:
    with _live_lock:
        _live.pop(key, None)


@atexit.register
def cleanup_all() -> None:
    """Remove what an interrupted run left: called at interpreter exit, after Ctrl-C or SIGTERM."""
    with _live_lock:
        pending = list(_live.values())
        _live.clear()
    for cleanup in pending:
        with contextlib.suppress(Exception):
            cleanup()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit (status 143) so the atexit cleanup runs; main thread only."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _tail(data: bytes, limit: int = STDERR_TAIL) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text[-limit:]


def _describe(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc) or type(exc).__name__
    return text if len(text) < 1000 else text[:1000] + "..."


def _remover(endpoint: Endpoint, name: str, timeout: float) -> Callable[[], None]:
    def remove() -> None:
        client = open_client(endpoint, timeout)
        try:
            client.remove_container(name, force=True)
        finally:
            client.close()

    return remove


def _device_requests(gpus: str) -> list[Any]:
    """--gpus as docker-py expresses it (there is no gpus= argument): all GPUs, or the listed indices."""
    from docker.types import DeviceRequest

    if gpus == "none":
        return []
    if gpus == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [DeviceRequest(device_ids=gpus.split(","), capabilities=[["gpu"]])]


def _remove(client: Any, name: str) -> bool:
    """Remove the container, running or not; True when it is gone (or was never created)."""
    from docker.errors import NotFound

    try:
        client.remove_container(name, force=True)
    except NotFound:
        return True
    except Exception:
        return False
    return True


def run_in_container(run: ProbeRun, options: ProbeOptions, timeout: float) -> str:
    """Run the probe in `run.image`; fill `run` with how it went and return its stdout (empty on failure)."""
    from docker.errors import ImageNotFound

    started = time.monotonic()
    endpoint = resolve_endpoint()
    name = f"mldoctor-probe-{uuid.uuid4().hex[:12]}"
    client = None
    try:
        run.stage = "connect"
        client = open_client(endpoint, timeout)
        run.stage = "image"
        try:
            config = client.inspect_image(run.image).get("Config") or {}
        except ImageNotFound as exc:
            run.error = _describe(exc)
            return ""
        env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
        run.image_env = {k: v for k, v in env.items() if k.startswith(IMAGE_ENV_PREFIXES)}
        run.stage = "create"
        host_config = client.create_host_config(
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            shm_size=options.shm_size,
            device_requests=_device_requests(run.gpus),
        )
        _track(name, _remover(endpoint, name, timeout))  # before create: an interrupt may land mid-request
        client.create_container(
            run.image,
            entrypoint=["python3"],
            command=["-c", probe_source(), *probe_args(options)],
            name=name,
            labels={LABEL: "1"},
            environment={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"},
            host_config=host_config,
        )
        run.stage = "start"
        client.start(name)
        run.stage = "wait"
        remaining = run.deadline_s - (time.monotonic() - started)
        try:
            run.exit_code = client.wait(name, timeout=max(1.0, remaining))["StatusCode"]
        except Exception as exc:
            if classify_error(exc) != "timeout":
                raise
            run.timed_out = True
            run.error = f"the probe did not finish within {run.deadline_s:g} s and was killed"
            with contextlib.suppress(Exception):
                client.kill(name)
        stdout = client.logs(name, stdout=True, stderr=False)[:STDOUT_LIMIT]
        run.stderr_tail = _tail(client.logs(name, stdout=False, stderr=True, tail=200))
        if run.timed_out:
            return ""
        return _output(run, stdout)
    except Exception as exc:  # every failure is a fact: the stage says where, the text says why
        run.error = _describe(exc)
        return ""
    finally:
        if client is not None:
            if run.stage in ("connect", "image") or _remove(client, name):
                _untrack(name)  # else the atexit hook tries again
            client.close()
        run.elapsed_s = round(time.monotonic() - started, 3)


def _output(run: ProbeRun, stdout: bytes) -> str:
    """What the probe printed, for parsing; an empty stdout is where the run stopped (the exit code says why)."""
    text = stdout.decode("utf-8", errors="replace")
    if not text.strip():
        run.stage = "exit"
        run.error = f"the probe exited with code {run.exit_code} and printed nothing"
        return ""
    run.stage = "output"
    return text


def run_on_host(run: ProbeRun, options: ProbeOptions) -> str:
    """Run the probe with this interpreter (torch from `mldoctor[bench]`), killed at the deadline."""
    started = time.monotonic()
    argv = [sys.executable, "-c", probe_source(), *probe_args(options)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    key = f"host-{proc.pid}"
    _track(key, proc.kill)
    try:
        try:
            stdout, stderr = proc.communicate(timeout=run.deadline_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
            run.stage, run.timed_out = "wait", True
            run.error = f"the probe did not finish within {run.deadline_s:g} s and was killed"
            run.stderr_tail = _tail(stderr)
            return ""
        run.exit_code = proc.returncode
        run.stderr_tail = _tail(stderr)
        return _output(run, stdout[:STDOUT_LIMIT])
    finally:
        if proc.poll() is None:  # interrupted in this thread (Ctrl-C while waiting): the probe must not outlive us
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(timeout=5)
        _untrack(key)
        run.elapsed_s = round(time.monotonic() - started, 3)


@dataclass(frozen=True)
class BuildEvent:
    """One line of build or pull progress, for the CLI to show."""

    text: str = ""
    error: bool = False
    layer: str | None = None
    current: int = 0
    total: int = 0


def build_image(
    base_image: str, tag: str, version: str, wheelhouse: str | None = None, timeout: float = 60.0
) -> Iterator[BuildEvent]:
    """Build the probe image with the daemon's builder, streaming its log; `wheelhouse` (a directory of wheels,
    pip's own included when the base has no pip) installs torch offline, for bases without torch."""
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
        client = open_client(resolve_endpoint(), timeout)
        try:
            stream = client.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                buildargs={"BASE_IMAGE": base_image, "MLDOCTOR_VERSION": version},
                rm=True,
                forcerm=True,
                decode=True,
                labels={"mldoctor.version": version, "mldoctor.dockerfile": dockerfile_digest()},
            )
            for chunk in stream:
                if "error" in chunk:
                    yield BuildEvent(text=str(chunk["error"]).strip(), error=True)
                elif chunk.get("stream", "").strip():
                    yield BuildEvent(text=chunk["stream"].rstrip())
        finally:
            client.close()


def pull_image(image: str, timeout: float = 60.0) -> Iterator[BuildEvent]:
    """Pull `image`, yielding per-layer progress (bytes) for a progress display."""
    repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    client = open_client(resolve_endpoint(), timeout)
    try:
        for chunk in client.pull(repository, tag=tag, stream=True, decode=True):
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
        client.close()


def image_exists(image: str, timeout: float) -> bool:
    from docker.errors import ImageNotFound

    client = open_client(resolve_endpoint(), timeout)
    try:
        client.inspect_image(image)
    except ImageNotFound:
        return False
    finally:
        client.close()
    return True


def list_probe_containers(timeout: float = 10.0) -> list[str]:
    """Names of containers (any state) carrying the probe label: what a clean run leaves is none."""
    client = open_client(resolve_endpoint(), timeout)
    try:
        return [c["Names"][0].lstrip("/") for c in client.containers(all=True, filters={"label": LABEL})]
    finally:
        client.close()
