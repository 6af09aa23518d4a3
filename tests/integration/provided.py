"""What .ci/run provides to the tests, and the one command that provides each of them elsewhere.

The single way a test says "my prerequisite is missing": outside CI it skips, naming the command that provides it;
in CI (`CI=true`), where .ci/run must have provided it, it fails instead.

    require_docker()                         a daemon that answers
    require_images("mldoctor-probe-test:cpu") the local test images (a daemon first)
    require_libnvidia_ml()                   Debian's libnvidia-ml1 (NVML without a driver)
    require_chromium()                       Debian's chromium, for the HTML page's real render; returns its path
    absent(reason, "images")                 anything else: the reason, then the remedy for that prerequisite
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
from typing import NoReturn

import pytest

# One command per prerequisite (as root on Debian 12, which is what CI runs; .ci/run runs them all).
REMEDIES = {
    "docker": "bash scripts/ci/start-docker.sh",
    "images": "bash scripts/ci/build-test-images.sh",
    "libnvidia-ml": "bash scripts/ci/install-libnvidia-ml.sh",
    "chromium": "apt-get install -y chromium",
}

# What scripts/ci/build-test-images.sh builds.
TORCH_IMAGE = "mldoctor-probe-test:cpu"
BASE_IMAGE = "mldoctor-base:bookworm"
BUSYBOX_IMAGE = "mldoctor-test-busybox:latest"
GARBAGE_IMAGE = "mldoctor-test-garbage:latest"
HANG_IMAGE = "mldoctor-test-hang:latest"
TEST_IMAGES = (TORCH_IMAGE, BASE_IMAGE, BUSYBOX_IMAGE, GARBAGE_IMAGE, HANG_IMAGE)


def labelled_containers(label: str) -> set[str]:
    """The names of the containers carrying `label`, from one listing: the SDK's `containers.list` inspects each
    container it listed, and a short-lived one (the name lookup's) is gone by then (404, a race in the test)."""
    import docker

    client = docker.APIClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), timeout=10)
    try:
        listed = client.containers(all=True, filters={"label": label})
    finally:
        client.close()
    return {(c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/") for c in listed}


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def absent(reason: str, provider: str | None = None) -> NoReturn:
    """Skip with the reason (and the command that provides `provider`); in CI fail loudly instead."""
    __tracebackhide__ = True  # the skip is reported at the caller's line
    if provider is not None:
        reason = f"{reason}; provide it: {REMEDIES[provider]}"
    if in_ci():
        pytest.fail(f"CI should provide this (.ci/run): {reason}", pytrace=False)
    pytest.skip(reason)


@functools.cache
def docker_unavailable_reason() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:  # any failure means: no usable daemon here
        return f"no Docker daemon reachable: {exc}"
    return None


def require_docker() -> None:
    __tracebackhide__ = True
    reason = docker_unavailable_reason()
    if reason is not None:
        absent(reason, "docker")


def missing_images(*tags: str) -> list[str]:
    import docker

    client = docker.from_env(timeout=10)
    try:
        present = {tag for image in client.images.list() for tag in image.tags}
    finally:
        client.close()
    return sorted(set(tags or TEST_IMAGES) - present)


def require_images(*tags: str) -> None:
    """The given test images (all of them when none is named) are on the daemon."""
    __tracebackhide__ = True
    require_docker()
    missing = missing_images(*tags)
    if missing:
        absent(f"test images missing: {', '.join(missing)}", "images")


@functools.cache
def libnvidia_ml_missing_reason() -> str | None:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as exc:
        return f"Debian's libnvidia-ml1 is not installed ({exc})"
    return None


def require_libnvidia_ml() -> None:
    __tracebackhide__ = True
    reason = libnvidia_ml_missing_reason()
    if reason is not None:
        absent(reason, "libnvidia-ml")


def require_chromium() -> str:
    __tracebackhide__ = True
    path = shutil.which("chromium")
    if path is None:
        absent("Debian's chromium is not installed", "chromium")
    return path
