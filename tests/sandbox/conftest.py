"""Fix proofs: each test sets a failure up in a sandbox of its own (see sandboxing.py), runs mldoctor inside,
asserts the first broken link, executes the printed fix verbatim as the user it names, and asserts PASS after.

Marked `sandbox`. Outside CI a machine without what a sandbox needs skips them, naming the remedy; in CI
(`CI=true`, where .ci/run provides Debian's docker.io) they fail instead. The session ends with one line: how many
fixes were applied and proven.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from provided import absent
from sandboxing import Sandbox, missing, sandbox_dir

PROVEN: list[tuple[str, str, str]] = []
"""(check id, the fix as printed, the situation when the same command fixes another one) for every fix a test
applied and saw the check PASS after."""

REMEDY = "as root on Debian: apt-get install -y docker.io util-linux iproute2 (what .ci/run installs)"


def pytest_configure(config):
    config.addinivalue_line("markers", "sandbox: applies a printed fix for real in a private sandbox (root, dockerd)")


def pytest_terminal_summary(terminalreporter):
    if not PROVEN and not any(
        "sandbox" in getattr(r, "keywords", {}) for rs in terminalreporter.stats.values() for r in rs
    ):
        return
    ids = sorted({check_id for check_id, _, _ in PROVEN})
    # one fix whatever its comment names, whatever backup time or pid it carries
    distinct = {(check_id, re.sub(r"\d+", "N", fix.split("   #")[0]), why) for check_id, fix, why in PROVEN}
    terminalreporter.write_line(
        f"sandbox: {len(PROVEN)} fixes applied and proven ({len(distinct)} distinct, of {len(ids)} checks: "
        f"{', '.join(ids) or 'none'})"
    )


def sandbox_mounts_on_host() -> list[str]:
    """Mounts of a sandbox (their sources are named sandbox-*) seen from the host: none, ever (the host's own
    mounts change under other tests: containers of the host's daemon come and go)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.split(" - ")[-1].split()[1:2][0].startswith("sandbox-")]


def host_links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout


@pytest.fixture
def sandbox():
    """A fresh sandbox (no daemon yet); torn down completely, and the host checked to be as it was."""
    reason = missing()
    if reason:
        absent(f"no fix sandbox here: {reason}; {REMEDY}")
    links = host_links()
    workdir = sandbox_dir()
    box = Sandbox(workdir)
    try:
        box.start()
        yield box
    finally:
        box.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert sandbox_mounts_on_host() == [], "the sandbox left a mount on the host"
    assert "docker0" not in links or "docker0" in host_links(), "the host's docker0 is gone"


@pytest.fixture
def proven():
    """Record a fix as proven: call it once the check PASSes after the fix was applied."""

    def record(check_id: str, fix: str, situation: str = "") -> None:
        PROVEN.append((check_id, fix, situation))

    return record
