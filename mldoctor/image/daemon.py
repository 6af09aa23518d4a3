"""Read an image through the Docker daemon without running anything in it.

`docker image inspect` and `history` give the config and the layers. For the few files that matter a container is
created and never started: the archive API answers a HEAD (stat: exists, size, symlink target) or a GET (a tar of
one file) on a created container's filesystem, the image's own layers, so nothing of the image executes. The
container has no network, is labelled `mldoctor.image=1` and is removed in a `finally` (or by the interrupt path,
after Ctrl-C or SIGTERM: `engine.owned`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import tarfile
import time
import uuid
from typing import Any

from mldoctor.engine import owned
from mldoctor.engine.client import Connected, open_client
from mldoctor.engine.endpoint import Endpoint, resolve_endpoint
from mldoctor.engine.errors import classify_error, describe
from mldoctor.image.facts import (
    DRIVER_FILES,
    MAX_VERSION_PY,
    PYTHON_BINARIES,
    ImageFacts,
    bounded,
    compat_on_path,
    from_config,
    history_layers,
    parse_version_py,
    python_version,
    site_packages,
)

LABEL = "mldoctor.image"
COMPAT_LIBS = ("libcuda.so.1", "libcuda.so")
NEVER_RUN = "/mldoctor-image-check-never-runs"
"""The created container's entrypoint: a path no image has, so a start by anyone else fails at once."""


class ImageError(Exception):
    """The image cannot be read: not found, or the daemon is unreachable (`kind` says which, for exit code 2)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def read_image(ref: str, timeout: float = 10.0) -> ImageFacts:
    """The facts of image `ref` on the daemon in use; raises ImageError when it cannot be read at all."""
    from docker.errors import APIError, ImageNotFound, NotFound

    endpoint = resolve_endpoint()
    if endpoint.error:
        raise ImageError(f"cannot reach the Docker daemon: {endpoint.error}", "daemon")
    facts = ImageFacts(ref=bounded(ref, 300), source="daemon")
    started = time.monotonic()
    try:
        connected = open_client(endpoint, timeout)
    except Exception as exc:
        raise ImageError(
            f"cannot reach the Docker daemon at {endpoint.url} ({classify_error(exc)}): {describe(exc, 200)}",
            "daemon",
        ) from None
    try:
        try:
            inspected = connected.client.inspect_image(ref)
        except (ImageNotFound, NotFound):
            raise ImageError(
                f"image {ref!r} is not on this machine (docker images lists those that are)", "image"
            ) from None
        except APIError as exc:  # 400: not an image reference at all ("invalid reference format")
            kind = "image" if exc.status_code == 400 else "daemon"
            raise ImageError(f"cannot inspect {ref!r}: {describe(exc, 200)}", kind) from None
        except Exception as exc:  # a daemon that answered /version and then stopped answering
            raise ImageError(f"the daemon did not answer for {ref!r} ({classify_error(exc)})", "daemon") from None
        facts.timings["inspect"] = round(time.monotonic() - started, 3)
        _from_inspect(facts, inspected)
        step = time.monotonic()
        try:
            facts.layers = history_layers(connected.client.history(inspected["Id"]), oldest_first=False)
        except Exception as exc:
            facts.errors.append(f"history: {describe(exc, 300)}")
        facts.timings["history"] = round(time.monotonic() - step, 3)
        step = time.monotonic()
        _read_files(connected, endpoint, facts)
        facts.timings["files"] = round(time.monotonic() - step, 3)
    finally:
        connected.close()
    return facts


def _from_inspect(facts: ImageFacts, inspected: dict[str, Any]) -> None:
    facts.id = bounded(inspected.get("Id", ""), 100)
    size = inspected.get("Size")
    facts.size = size if isinstance(size, int) else 0
    from_config(facts, inspected.get("Config") or {})


def _read_files(connected: Connected, endpoint: Endpoint, facts: ImageFacts) -> None:
    """Create (never start) a container and look at the few files that matter; always remove it."""
    client = connected.client
    name = f"mldoctor-image-{uuid.uuid4().hex[:12]}"
    with contextlib.suppress(Exception):  # best effort: a leftover must not stop this run
        owned.remove_leftovers(client, LABEL)
    container = owned.Owned(endpoint, name, 5.0)
    try:
        client.create_container(
            facts.id,
            entrypoint=[NEVER_RUN],
            command=[],
            name=name,
            labels=owned.owner_labels(LABEL),
            network_disabled=True,
            host_config=client.create_host_config(network_mode="none"),
        )
        container.created.set()
        files = _Files(client, name)
        _python(files, facts)
        _torch(files, facts)
        facts.driver_files = [path for path in DRIVER_FILES if files.stat(path) is not None]
        facts.compat_dirs = [
            d for d in compat_on_path(facts.env) if any(files.stat(f"{d}/{lib}") is not None for lib in COMPAT_LIBS)
        ]
        facts.files_read = True
    except Exception as exc:  # the config checks still run; the file checks say why they cannot
        facts.errors.append(f"files: {describe(exc, 300)}")
    finally:
        container.remove_with(client)


class _Files:
    """A created container's filesystem, through the archive API: stat by HEAD, one small file by GET."""

    def __init__(self, client: Any, container: str) -> None:
        self.client = client
        self.url = client._url("/containers/{0}/archive", container)
        self.container = container
        self.calls = 0

    def stat(self, path: str) -> dict[str, Any] | None:
        """{name, size, mode, linkTarget}, or None when the path does not exist (a dangling symlink exists)."""
        self.calls += 1
        response = self.client.head(self.url, params={"path": path})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        header = response.headers.get("X-Docker-Container-Path-Stat", "")
        try:
            stat = json.loads(base64.b64decode(header[:4096]))
        except ValueError:
            return {}
        return stat if isinstance(stat, dict) else {}

    def read(self, path: str, limit: int) -> str | None:
        """A regular file's text, when it is at most `limit` bytes; else None."""
        stat = self.stat(path)
        if stat is None or not isinstance(stat.get("size"), int) or stat["size"] > limit:
            return None
        stream, _ = self.client.get_archive(self.container, path)
        data = bytearray()
        for chunk in stream:
            data += chunk
            if len(data) > limit + 64 * 1024:  # a tar of one small file: headers plus the file, padded
                return None
        with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
            member = next((m for m in tar.getmembers() if m.isreg()), None)
            if member is None or member.size > limit:
                return None
            handle = tar.extractfile(member)
            return handle.read(limit).decode("utf-8", "replace") if handle else None


def _python(files: _Files, facts: ImageFacts) -> None:
    """python3 on the usual paths and on the image's PATH; its version from what `python3` links to."""
    candidates = list(PYTHON_BINARIES)
    for entry in facts.env.get("PATH", "").split(":")[:16]:
        if entry.startswith("/") and ".." not in entry:
            candidates.append(f"{entry.rstrip('/')}/python3")
    targets: set[str] = set()
    for path in dict.fromkeys(candidates):
        stat = files.stat(path)
        if stat is None:
            continue
        target = bounded(stat.get("linkTarget") or "", 300)
        if target and target in targets:  # /bin/python3 through a /bin -> /usr/bin link: the same python
            continue
        targets.add(target)
        facts.python.append(f"{path} -> {target}" if target else path)
        version = python_version(target) or python_version(path)
        if version is None and not target:  # a real file named python3: its prefix's lib/python3.X says which
            prefix = path.rsplit("/", 2)[0]
            version = next(
                (f"3.{m}" for m in range(14, 5, -1) if files.stat(f"{prefix}/lib/python3.{m}") is not None), None
            )
        facts.python_version = facts.python_version or version


def _torch(files: _Files, facts: ImageFacts) -> None:
    for directory in site_packages(facts.python_version, facts.env):
        path = f"{directory}/torch/version.py"
        text = files.read(path, MAX_VERSION_PY)
        if text is not None:
            facts.torch = parse_version_py(path, text)
            return
