"""`mldoctor why`: the pure judgement of a container's end, from `docker inspect`-shaped data."""

from __future__ import annotations

import pytest

from mldoctor.why import diagnose, facts_of


def inspected(exit_code=0, status="exited", oom=False, error="", memory=0, restarts=0, cmd=("python3", "train.py")):
    return {
        "Name": "/trainer",
        "RestartCount": restarts,
        "State": {"Status": status, "ExitCode": exit_code, "OOMKilled": oom, "Error": error},
        "Config": {"Image": "team/train:1", "Entrypoint": None, "Cmd": list(cmd)},
        "HostConfig": {"Memory": memory, "ShmSize": 64 << 20, "IpcMode": "private", "DeviceRequests": None},
    }


@pytest.mark.parametrize(
    ("data", "logs", "words", "check"),
    [
        (inspected(137, memory=2 << 30), b"", "memory limit of 2048 MiB", "host.memory"),
        (inspected(137, oom=True), b"", "memory limit", "host.memory"),
        (inspected(137), b"", "SIGKILL", "host.memory"),
        (inspected(135), b"", "/dev/shm ran out (64 MiB)", "probe.shm"),
        (inspected(143), b"", "SIGTERM", None),
        (inspected(139), b"", "SIGSEGV", None),
        (inspected(1), b"ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient "
                        b"shared memory (shm).\n", "/dev/shm", "probe.shm"),
        (inspected(127, status="created", error='could not select device driver "" with capabilities: [[gpu]]'), b"",
         "never started", "nvidia.toolkit"),
        (inspected(0), b"done\n", "exited normally", None),
        (inspected(0, status="restarting", restarts=12), b"", "restarting, 12 restarts so far", None),
        (inspected(2), b"usage: train.py [-h]\n", "exited with code 2", None),
    ],
)  # fmt: skip
def test_each_end_is_named_with_the_check_that_explains_it(data, logs, words, check):
    found = diagnose(facts_of(data, logs))
    assert words in found.summary and found.check == check


def test_logs_are_bounded_and_printable():
    logs = b"\x1b[31mred\x1b[0m\n" + b"line\n" * 500
    facts = facts_of(inspected(1), logs)
    assert len(facts.logs) == 20 and all("\x1b" not in line for line in facts.logs)
