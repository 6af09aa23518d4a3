"""`mldoctor why CONTAINER`: why did my container stop (or never start)? Exit code, signal, OOM kill, restarts,
the command, the last log lines, and which of mldoctor's checks explains it.

Three parts, as everywhere in mldoctor: `gather` asks the daemon (through the engine), `diagnose` is pure (a saved
inspection judges the same anywhere), `render` prints. Logs and errors come from the container: untrusted text,
bounded and shown only as printable characters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from mldoctor import catalogue, options
from mldoctor.text import one_line

LOG_LINES = 20
LOG_BYTES = 64 << 10
SIGNALS = {1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 7: "SIGBUS", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}


@dataclass
class ContainerFacts:
    """What `mldoctor why` reads of a container: its state, exit code, limits, command and last log lines."""

    name: str
    image: str = ""
    status: str = ""
    """created, running, restarting, exited, dead, paused."""
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    """The daemon's own reason when the container could not start."""
    restart_count: int = 0
    command: list[str] = field(default_factory=list)
    memory_limit: int = 0
    shm_size: int = 0
    ipc_mode: str = ""
    gpus_requested: bool = False
    logs: list[str] = field(default_factory=list)


@dataclass
class Diagnosis:
    """Why the container stopped, in one line, and the check and fix that explain it when one does."""

    summary: str
    check: str | None = None
    """The mldoctor check that explains it, when one does."""
    fix: str | None = None


def gather(name: str, timeout: float = 10.0) -> ContainerFacts:
    """Inspect the container and read the end of its logs; raises click errors (one line, exit 2) when the daemon
    cannot be asked or the container does not exist."""
    from docker.errors import NotFound

    from mldoctor.engine.client import open_client
    from mldoctor.engine.endpoint import resolve_endpoint
    from mldoctor.engine.errors import classify_error, describe

    try:
        connected = open_client(resolve_endpoint(), timeout)
    except Exception as exc:  # the daemon: mldoctor check names the cause and the fix
        raise click.ClickException(
            f"cannot ask the Docker daemon ({classify_error(exc)}: {one_line(describe(exc))}); "
            "mldoctor check --only docker says why"
        ) from None
    try:
        try:
            data = connected.client.inspect_container(name)
        except NotFound:
            raise click.BadParameter(f"no container named {name!r} (docker ps -a lists them)") from None
        raw = connected.client.logs(name, stdout=True, stderr=True, tail=LOG_LINES)
    finally:
        connected.close()
    return facts_of(data, raw[-LOG_BYTES:])


def facts_of(data: dict[str, Any], logs: bytes) -> ContainerFacts:
    """The inspection's fields that explain an exit, from `docker inspect`'s JSON."""
    state, config, host = data.get("State") or {}, data.get("Config") or {}, data.get("HostConfig") or {}
    command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    return ContainerFacts(
        name=str(data.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        status=str(state.get("Status", "")),
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        error=str(state.get("Error") or ""),
        restart_count=int(data.get("RestartCount") or 0),
        command=[str(part) for part in command][:50],
        memory_limit=int(host.get("Memory") or 0),
        shm_size=int(host.get("ShmSize") or 0),
        ipc_mode=str(host.get("IpcMode") or ""),
        gpus_requested=bool(host.get("DeviceRequests")),
        logs=[one_line(line, 500) for line in logs.decode("utf-8", "replace").splitlines()[-LOG_LINES:]],
    )


def diagnose(c: ContainerFacts) -> Diagnosis:
    """What ended the container, and which check explains it (pure: facts in, words out)."""
    known = catalogue.match(c.error) or catalogue.match("\n".join(c.logs))
    restarting = "restarting, " if c.status == "restarting" else ""
    restarts = f" ({restarting}{c.restart_count} restarts so far)" if c.restart_count else ""
    if c.status in ("running", "paused"):
        return Diagnosis(f"it is {c.status}{restarts}: nothing stopped it")
    if c.error and known:
        entry = known[0]
        return Diagnosis(f"it never started: {entry.cause}", entry.check, entry.fix)
    if c.error:
        return _never_started(c)
    code = c.exit_code
    if code == 137 and (c.oom_killed or c.memory_limit):
        limit = f" of {c.memory_limit >> 20} MiB" if c.memory_limit else ""
        return Diagnosis(
            f"it was killed at its memory limit{limit} (OOM, exit 137){restarts}",
            "host.memory",
            "give it more memory (docker run --memory=...), or use less: a smaller batch, fewer DataLoader workers",
        )
    if known:
        entry = known[0]
        return Diagnosis(f"it exited with code {code}{restarts}: {entry.cause}", entry.check, entry.fix)
    if code is not None and code > 128 and code - 128 in SIGNALS:
        return _killed(c, code, restarts)
    if code == 127:
        return Diagnosis(
            f"its command was not found (exit 127): {' '.join(c.command) or '?'}",
            None,
            f"docker run --rm --entrypoint sh {c.image} -c 'command -v {c.command[0] if c.command else 'CMD'}'",
        )
    if code == 0:
        return Diagnosis(
            f"it exited normally (code 0){restarts}: its command finished; a container lives as long as its command",
            None,
            "give it a command that keeps running (a server, a training script), or run it with -it to work inside",
        )
    return Diagnosis(
        f"its command exited with code {code}{restarts}: the last log lines below are its own account",
        None,
        f"docker logs {c.name}   # the whole log; mldoctor explain - < that log names known causes",
    )


def _never_started(c: ContainerFacts) -> Diagnosis:
    if "executable file not found" in c.error or "no such file or directory" in c.error:
        return Diagnosis(
            f"it never started: its command does not exist in {c.image} ({one_line(c.error)})",
            None,
            f"docker run --rm --entrypoint sh {c.image} -c 'ls -l /usr/local/bin /usr/bin | head'   # what is there",
        )
    return Diagnosis(
        f"it never started: {one_line(c.error)}",
        "docker.daemon",
        f"mldoctor explain '{one_line(c.error, 120)}'   # or: mldoctor check",
    )


def _killed(c: ContainerFacts, code: int, restarts: str) -> Diagnosis:
    signal = SIGNALS[code - 128]
    if signal == "SIGKILL":
        return Diagnosis(
            f"it was killed with SIGKILL (exit 137){restarts}: `docker kill`, a stop that timed out, or the host's "
            "out-of-memory killer",
            "host.memory",
            "sudo dmesg | grep -iE 'out of memory|oom-kill' | tail   # whether the kernel killed it for memory",
        )
    if signal == "SIGBUS":
        return Diagnosis(
            f"it died of SIGBUS (exit 135){restarts}: with PyTorch, /dev/shm ran out ({c.shm_size >> 20} MiB)",
            "probe.shm",
            "docker run --shm-size=16g ...   # or --ipc=host",
        )
    if signal == "SIGTERM":
        return Diagnosis(f"it was stopped with SIGTERM (exit 143){restarts}: `docker stop`, or its orchestrator")
    return Diagnosis(
        f"it died of {signal} (exit {code}){restarts}: a crash in its own code or a native library",
        None,
        f"docker logs {c.name}   # the crash's own report; a core dump needs ulimit -c unlimited",
    )


def render(c: ContainerFacts, d: Diagnosis) -> str:
    lines = [
        f"{c.name}: {d.summary}",
        f"  image:   {one_line(c.image)}",
        f"  command: {one_line(' '.join(c.command))}",
        f"  state:   {c.status}, exit code {c.exit_code}, OOM-killed {'yes' if c.oom_killed else 'no'}, "
        f"restarts {c.restart_count}",
    ]
    if d.check:
        lines.append(f"  check:   {d.check}   (mldoctor check --only {d.check} checks this machine)")
    if d.fix:
        lines.append(f"  fix:     {d.fix}")
    if c.logs:
        lines += ["  last log lines:", *(f"    {line}" for line in c.logs)]
    return "\n".join(lines) + "\n"


@click.command("why")
@click.argument("container")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--timeout", type=options.Seconds(0.1, 600), default=10.0, show_default=True, help="Seconds per call.")
def command(container: str, fmt: str, timeout: float) -> int:
    """Why did CONTAINER stop, or never start: exit code, signal, OOM, the last log lines, and the check that
    explains it. Exit 0 when it runs or exited 0, 1 otherwise."""
    facts = gather(container, timeout)
    found = diagnose(facts)
    if fmt == "json":
        click.echo(json.dumps({"container": asdict(facts), "diagnosis": asdict(found)}, indent=2))
    else:
        click.echo(render(facts, found), nl=False)
    return 0 if facts.status in ("running", "paused") or (facts.exit_code == 0 and not facts.error) else 1
