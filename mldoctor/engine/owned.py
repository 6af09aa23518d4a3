"""Containers mldoctor creates (a probe run, an image check): labelled with who created them, and removed by that
run, by the interrupt path (`mldoctor.interrupts`) when the run is cut short, or by a later run when the one that
created them was killed (SIGKILL, a crash, a reboot)."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, Literal

from mldoctor import interrupts
from mldoctor.engine.client import open_client
from mldoctor.engine.endpoint import Endpoint
from mldoctor.engine.errors import classify_error

Removal = Literal["removed", "absent", "failed"]

RETRIES = 10
"""Removal attempts by the interrupt path, 0.3 s apart: an interrupt that lands while the daemon is still creating or
starting the container gets a conflict ("cannot remove a container that is starting"), or finds it not there yet."""


def owner_labels(label: str) -> dict[str, str]:
    """Who created a container: this process, on this host, in this boot (a pid is reused after a reboot)."""
    return {
        label: "1",
        f"{label}.pid": str(os.getpid()),
        f"{label}.host": socket.gethostname(),
        f"{label}.boot": _boot_id(),
    }


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def owner_gone(label: str, labels: dict[str, str]) -> bool:
    """The run that created a container is gone: it was started on this host, and in an earlier boot or by a
    process that no longer exists. Containers of other hosts (a shared remote daemon) are never touched."""
    if labels.get(f"{label}.host") != socket.gethostname() or not labels.get(f"{label}.pid", "").isdigit():
        return False
    if labels.get(f"{label}.boot", _boot_id()) != _boot_id():
        return True
    return not os.path.exists(f"/proc/{labels[f'{label}.pid']}")


def remove(client: Any, name: str) -> Removal:
    """Remove the container and its anonymous volumes, running or not."""
    from docker.errors import NotFound

    try:
        client.remove_container(name, force=True, v=True)
    except NotFound:
        return "absent"
    except Exception:
        return "failed"
    return "removed"


def remove_leftovers(client: Any, label: str) -> list[str]:
    """Remove the containers under `label` whose creator was killed before it could: the next run cleans up."""
    removed = []
    for container in client.containers(all=True, filters={"label": label}):
        if owner_gone(label, container.get("Labels") or {}) and remove(client, container["Id"]) != "failed":
            removed.append((container.get("Names") or [container["Id"][:12]])[0].lstrip("/"))
    return removed


class Owned:
    """One container this run is about to create. Registered with the interrupt path before its create is sent (an
    interrupt may land mid-request); the run removes it itself (`remove_with`), else the interrupt path does, over a
    fresh connection: the run's own client may have been interrupted inside its connection pool's lock."""

    def __init__(self, endpoint: Endpoint, name: str, timeout: float) -> None:
        self.endpoint, self.name = endpoint, name
        self.timeout = min(timeout, interrupts.UNDO_DEADLINE_S)
        self.created = threading.Event()
        """Set once the daemon has answered the create: until then "not there" may mean "not there yet"."""
        interrupts.register(name, interrupts.Undo(f"container {name}", f"docker rm -f {name}", self._undo))

    def remove_with(self, client: Any) -> None:
        """The run's own removal; on failure the interrupt path's atexit hook tries again."""
        if remove(client, self.name) != "failed":
            interrupts.forget(self.name)

    def _undo(self) -> None:
        try:
            connected = open_client(self.endpoint, self.timeout)
        except Exception as exc:
            raise OSError(f"the daemon did not answer: {classify_error(exc)}") from None
        try:
            for _ in range(RETRIES):
                outcome = remove(connected.client, self.name)
                if outcome == "removed" or (outcome == "absent" and self.created.is_set()):
                    return
                time.sleep(0.3)
        finally:
            connected.close()
        raise OSError(f"the daemon did not remove it in {RETRIES} tries")
