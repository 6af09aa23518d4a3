"""`mldoctor fix CHECK_ID [--yes] [--restart]`: show, then apply, a fix mldoctor can apply safely.

Dry run by default: the unified diff of the daemon's configuration file (the one the daemon in use reads, from the
facts). `--yes` writes it: a backup `FILE.mldoctor-backup-TIME` first, then the new text atomically (a temporary
file in the same directory, renamed over it). `--restart` then restarts the daemon the way it was started and
waits until it answers. Exit codes: 0 applied or nothing to do, 1 could not, 2 usage (an unknown or non-fixable
check id, a file mldoctor refuses to edit).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from mldoctor import options
from mldoctor.fix.merge import SHM_SIZE, Edit, Refused, logging_edit, shm_edit

EXIT_OK, EXIT_COULD_NOT, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class Fixer:
    """A fix `mldoctor fix` applies itself: what it does, and the edit it makes to the daemon's configuration file."""

    what: str
    """What the fix does, in words."""
    edit: Callable[[str, str | None], Edit]
    """The configuration file's path and text (None: absent) -> the edit."""
    judged_by_itself: bool = True
    """The check says whether the edit is needed and, after the restart, whether it worked. probe.shm is not: it
    needs a probe container; its edit says whether it is needed, and docker.config that the restart applied it."""


FIXERS = {
    "docker.logging": Fixer("rotate json-file container logs (max-size 100m, max-file 3)", logging_edit),
    "probe.shm": Fixer(
        f"give every container {SHM_SIZE} of /dev/shm by default (default-shm-size)", shm_edit, judged_by_itself=False
    ),
}
"""The checks whose fix mldoctor applies itself."""


class CouldNot(Exception):
    """The fix could not be applied (exit 1); the message says why."""


def say(text: str) -> None:
    click.echo(text)


def fail(text: str, code: int) -> None:
    click.echo(f"mldoctor fix: {text}", err=True)
    sys.exit(code)


@click.command("fix")
@click.argument("check_id")
@click.option("--yes", is_flag=True, help="Apply the change (without it: show the diff only).")
@click.option("--restart", is_flag=True, help="Then restart the daemon the way it was started, and wait for it.")
@click.option(
    "--timeout",
    type=options.Seconds(0.1, 600),
    default=5.0,
    show_default=True,
    help="Seconds for each call to the daemon.",
)
def command(check_id: str, yes: bool, restart: bool, timeout: float) -> None:
    """Apply the fix for CHECK_ID, if mldoctor can apply it safely (dry run unless --yes)."""
    fixer = FIXERS.get(check_id)
    if fixer is None:
        fail(f"no fix mldoctor can apply for {check_id!r}; fixable: {', '.join(sorted(FIXERS))}", EXIT_USAGE)
    try:
        sys.exit(apply(check_id, fixer, yes=yes, restart=restart, timeout=timeout))
    except Refused as exc:
        fail(str(exc), EXIT_USAGE)
    except CouldNot as exc:
        fail(str(exc), EXIT_COULD_NOT)


def judge(check_id: str, timeout: float) -> tuple[Any, Any]:
    """Gather what the check needs and judge it: (its result, the facts)."""
    from mldoctor import runner
    from mldoctor.facts import GatherOptions, gather

    checks = runner.select([check_id])
    options = GatherOptions(timeout=timeout)
    facts = gather(runner.needed_sections(checks), options)
    results = runner.evaluate(checks, facts, options.policy)
    return results[0], facts


def apply(check_id: str, fixer: Fixer, yes: bool, restart: bool, timeout: float) -> int:
    judged = check_id if fixer.judged_by_itself else "docker.config"
    result, facts = judge(judged, timeout)
    docker = facts.docker
    status = result.status.value
    if status == "PASS" and fixer.judged_by_itself:
        say(f"nothing to do: {check_id} passes ({result.summary})")
        return EXIT_OK
    config = docker.config if docker is not None else None
    if config is not None and config.json_error:
        raise Refused(f"{config.path} is not valid JSON ({config.json_error}): correct it first (see docker.config)")
    applicable = ("WARN", "FAIL") if fixer.judged_by_itself else ("PASS", "WARN")
    if status not in applicable or docker is None or config is None or not docker.local:
        raise CouldNot(f"{judged} is {status}: {result.summary}")
    path = docker.daemon_json()
    if not os.path.isabs(path):
        raise CouldNot(f"the daemon's configuration file is not known here ({docker.flavour})")
    edit = fixer.edit(path, read(path))
    say(f"{check_id}: {result.summary}" if judged == check_id else f"{check_id}, by {judged}: {result.summary}")
    say(f"fix: {fixer.what}, in {path} (the configuration file of the daemon at {docker.endpoint.url})")
    if not edit.changed:
        say(f"nothing to change in {path}")
    else:
        say(edit.diff().rstrip("\n"))
    restart_command = restart_of(facts)
    if not yes:
        say(f"dry run: nothing written. Apply with: mldoctor fix {check_id} --yes --restart")
        return EXIT_OK
    if edit.changed:
        backup = write(edit)
        say(f"wrote {path}" + (f" (backup: {backup})" if backup else " (created)"))
    if not restart:
        say(f"restart the daemon to apply: {restart_command}")
        return EXIT_OK
    say(f"restarting the daemon: {restart_command}")
    restart_daemon(restart_command, docker, timeout)
    after, _ = judge(judged, timeout)
    say(f"{judged}: {after.status.value} {after.summary}")
    if not fixer.judged_by_itself:
        say(f"then: mldoctor check --only {check_id} shows what a container gets")
    return EXIT_OK if after.status.value == "PASS" else EXIT_COULD_NOT


def restart_of(facts: Any) -> str:
    """This daemon's restart, as the user running `mldoctor fix` types it (no sudo as root)."""
    from mldoctor.fixes.docker import docker_service
    from mldoctor.fixes.host import for_host

    docker = facts.docker
    return for_host(docker_service("restart", docker.flavour, facts.host, docker.process), facts.host).split("   # ")[0]


def read(path: str) -> str | None:
    """The file's text, None when absent; a path that is not a regular file is refused."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CouldNot(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise CouldNot(f"{path} is not a regular file: not edited")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CouldNot(f"cannot read {path}: {exc}") from exc


def backup_path(path: str) -> str:
    from mldoctor.facts.docker import BACKUP_SUFFIX

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate, n = f"{path}{BACKUP_SUFFIX}{stamp}", 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{path}{BACKUP_SUFFIX}{stamp}.{n}"
    return candidate


def write(edit: Edit) -> str | None:
    """Back the file up (its mode and times kept), then write the new text atomically through any link to the real
    file; a new file gets mode 0644 (and its directory is created). Returns the backup's path."""
    target = os.path.realpath(edit.path)
    directory = os.path.dirname(target)
    backup = None
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        mode = stat.S_IMODE(os.stat(target).st_mode) if edit.before is not None else 0o644
        if edit.before is not None:
            backup = backup_path(edit.path)
            shutil.copy2(target, backup)
        fd, temporary = tempfile.mkstemp(prefix=".mldoctor-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(edit.after)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise CouldNot(f"cannot write {edit.path}: {exc.strerror or exc}") from exc
    return backup


def restart_daemon(command: str, docker: Any, timeout: float) -> None:
    """Run the restart (the way the daemon was started), then wait until the socket answers `/_ping`."""
    done = subprocess.run(["sh", "-c", command], stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise CouldNot(f"the restart failed (exit {done.returncode}): {command}")
    socket_path = docker.endpoint.socket_path
    if socket_path is None:
        return
    deadline = time.monotonic() + max(30.0, 6 * timeout)
    while time.monotonic() < deadline:
        if ping(socket_path, timeout):
            return
        time.sleep(0.3)
    raise CouldNot(f"the daemon did not answer at {socket_path} after: {command}")


def ping(socket_path: str, timeout: float) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n")[0]
    except OSError:
        return False
    return status_line.startswith(b"HTTP/1.") and status_line.split()[1:2] == [b"200"]
