"""Integration tests talk to the real Docker daemon on this machine.

Every missing prerequisite goes through `provided` (see there): outside CI the test skips and names the one
command that provides it; in CI (`CI=true`), where `.ci/run` provides everything, it fails loudly instead.
A test marked `docker` needs a daemon; one that runs a test image asks for it with the `probe_test_image` fixture
or `provided.require_images(...)`.
"""

from __future__ import annotations

import pytest
from provided import TORCH_IMAGE, docker_unavailable_reason, require_docker, require_images

__all__ = ["docker_unavailable_reason"]  # tests import it from here


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "docker" in item.keywords:
        require_docker()


@pytest.fixture
def probe_test_image() -> str:
    """The CPU probe image (torch's CPU wheel) that scripts/ci/build-test-images.sh builds."""
    require_images(TORCH_IMAGE)
    return TORCH_IMAGE
