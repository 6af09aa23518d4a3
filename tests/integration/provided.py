"""What .ci/run provides (a daemon, images, libnvidia-ml1): absent here, a test skips; absent in CI, it fails."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def absent(reason: str) -> NoReturn:
    """Skip with the reason; in CI (`CI=true`) fail loudly instead: .ci/run should have provided it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI should provide this (.ci/run): {reason}", pytrace=False)
    pytest.skip(reason)
