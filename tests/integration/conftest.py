"""Integration tests talk to the real Docker daemon on this machine.

Where the daemon is absent they skip with the reason, except in CI (`CI=true`), where `.ci/run` has started
one: there a missing daemon is a broken CI and the tests fail loudly instead of skipping quietly.
"""

from __future__ import annotations

import functools

import pytest
from provided import absent


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


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "docker" not in item.keywords:
        return
    reason = docker_unavailable_reason()
    if reason is None:
        return
    absent(reason)
