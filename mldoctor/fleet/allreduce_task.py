"""What runs on each node of `mldoctor fleet run --slurm --allreduce`: the all-reduce program (`allreduce_program`)
for this node's rank, in the probe image or on the node's own python, its result printed as `@mldoctor-fleet`
lines (see `frames`) on stdout, the way the check's report travels.

The gatherer side of the measurement: it reads the scheduler's environment (rank, world, the step's nodes), finds
the master (rank 0's node) and the network interface that reaches it, starts the program with a deadline and
bounded output, and always removes the container it started (also when srun stops the task with SIGTERM). Every
failure becomes a result with the reason: the launcher's verdict names the node and why.

In a container the program needs the host's network (`docker run --network host`): the ranks on different nodes
must reach each other and the master, which a container with no network (the probe's) or on the default bridge
cannot. It keeps the rest of the probe's hardening: every capability dropped, no new privileges, a pids limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import ipaddress
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mldoctor.fleet import allreduce_program, frames, hostlist
from mldoctor.fleet.task import announce, emit, node_name
from mldoctor.fleet.text import bounded

PROGRAM = Path(allreduce_program.__file__)
LABEL = "mldoctor.allreduce"
ENV_PREFIX = "MLDOCTOR_ALLREDUCE_"
PASSED_PREFIXES = ("NCCL_", "GLOO_", "MLDOCTOR_ALLREDUCE_")
"""The node's own NCCL and gloo settings (NCCL_SOCKET_IFNAME, NCCL_IB_HCA, ...) reach the program in a container."""
FIRST_PORT, PORTS = 29400, 2000
"""The master's port, unless MASTER_PORT is set: one per job step in this range, so two steps do not collide."""
STDOUT_LIMIT = 1 << 20
STDERR_TAIL = 2000
MARGIN = 10.0
"""Seconds of the task's deadline kept for starting the container and for reporting: the program gets the rest."""
PIDS_LIMIT = 1024
SCONTROL_TIMEOUT = 10.0


class TaskError(RuntimeError):
    """This node cannot take part: one line, carried to the verdict as the node's result."""


@dataclass(frozen=True)
class Placement:
    """Where this rank stands: its rank, the world, the master's address and port."""

    rank: int
    world: int
    master: str
    port: int
    nodes: tuple[str, ...] = field(default_factory=tuple)
    peer: str = ""
    """An address of another node, to find the interface this rank is reached on: the master's, except on the master
    itself, where its own name may resolve to a loopback alias (Debian's `127.0.1.1 host` line in /etc/hosts) while
    the others reach it on its real address; there, the second node's."""


def placement(environ: Mapping[str, str], resolve: Any = None) -> Placement:
    """This task's rank and world from Slurm (SLURM_PROCID, SLURM_NTASKS) and the master: MASTER_ADDR when set, else
    the address of the step's first node (rank 0 runs there: one task per node, in node-list order)."""
    resolve = resolve or node_address
    try:
        rank, world = int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"])
    except (KeyError, ValueError):
        raise TaskError("not a Slurm task: SLURM_PROCID and SLURM_NTASKS are not set (run it through srun)") from None
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST") or ""
    try:
        nodes = tuple(hostlist.expand(nodelist)) if nodelist else ()
    except hostlist.HostlistError as exc:
        raise TaskError(f"the step's node list cannot be read: {exc}") from None
    master = environ.get("MASTER_ADDR") or (resolve(nodes[0]) if nodes else "")
    if not master:
        raise TaskError("no master: SLURM_STEP_NODELIST is empty and MASTER_ADDR is not set")
    port_text = environ.get("MASTER_PORT")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise TaskError(f"MASTER_PORT={bounded(port_text, 20)!r} is not a port")
        port = int(port_text)
    else:
        step = _number(environ.get("SLURM_JOB_ID")) * 16 + _number(environ.get("SLURM_STEP_ID"))
        port = FIRST_PORT + step % PORTS
    peer = master
    if rank == 0 and len(nodes) > 1:
        with contextlib.suppress(TaskError):
            peer = resolve(nodes[1])
    return Placement(rank, world, master, port, nodes, peer)


def _number(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


def node_address(node: str) -> str:
    """The node's IPv4 address: the name as the resolver knows it, else Slurm's NodeAddr (`scontrol show node`),
    for clusters whose node names are not host names."""
    with contextlib.suppress(OSError, UnicodeError):
        return socket.getaddrinfo(node, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    try:
        done = subprocess.run(
            ["scontrol", "show", "node", "-o", node], capture_output=True, text=True, timeout=SCONTROL_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TaskError(f"cannot resolve the master node {node}: not a host name, and scontrol: {exc}") from None
    for word in done.stdout.split():
        if word.startswith("NodeAddr="):
            return word.removeprefix("NodeAddr=")
    raise TaskError(f"cannot resolve the master node {node}: not a host name, and scontrol has no NodeAddr for it")


def interface_towards(address: str, port: int) -> str | None:
    """The name of the local interface whose address routes to `address` (gloo and NCCL pick an interface from the
    host name otherwise, often a loopback alias or a docker bridge); None when it cannot be told. `address` is
    another node's (see Placement.peer), so that the interface is one the others reach this node on."""
    try:
        ipaddress.IPv4Address(address)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((address, port))  # UDP: nothing is sent, the kernel only picks the route
            local = probe.getsockname()[0]
    except (OSError, ValueError):
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            with contextlib.suppress(OSError):
                request = struct.pack("256s", name.encode()[:15])
                found = fcntl.ioctl(sock.fileno(), 0x8915, request)  # SIOCGIFADDR
                if socket.inet_ntoa(found[20:24]) == local:
                    return name
    return None


def program_environment(environ: Mapping[str, str], node: str, where: Placement, seconds: float) -> dict[str, str]:
    """What the program reads: its rank, world, master, deadline and node name; the node's NCCL and gloo settings;
    and, unless they are set, GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME naming the interface towards the master."""
    env = {key: value for key, value in environ.items() if key.startswith(PASSED_PREFIXES)}
    env.update({
        f"{ENV_PREFIX}RANK": str(where.rank), f"{ENV_PREFIX}WORLD": str(where.world),
        f"{ENV_PREFIX}MASTER": where.master, f"{ENV_PREFIX}PORT": str(where.port),
        f"{ENV_PREFIX}SECONDS": f"{seconds:g}", f"{ENV_PREFIX}NODE": node,
        "SLURM_LOCALID": environ.get("SLURM_LOCALID", "0"), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    if "GLOO_SOCKET_IFNAME" not in env and "NCCL_SOCKET_IFNAME" not in env:
        interface = interface_towards(where.peer or where.master, where.port)
        if interface:
            env["GLOO_SOCKET_IFNAME"] = env["NCCL_SOCKET_IFNAME"] = interface
    return env


def container_command(image: str, name: str, env: Mapping[str, str], source: str) -> list[str]:
    """`docker run` for the program: the host's network (the ranks reach each other and the master), GPUs when the
    node has GPU device nodes (/dev/nvidiaN), InfiniBand devices when it has them (NCCL's fast path needs them and
    locked memory); otherwise the probe's hardening, and removed when it ends. Never a pull: like the probe, the
    image must be on the node (a pull of gigabytes would eat the deadline, and many GPU nodes reach no registry)."""
    command = ["docker", "run", "--rm", "--pull", "never", "--name", name, "--label", f"{LABEL}=1", "--network", "host",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit", str(PIDS_LIMIT),
               "--shm-size", "1g"]  # fmt: skip
    if glob.glob("/dev/nvidia[0-9]*"):
        command += ["--gpus", "all"]
    if os.path.isdir("/dev/infiniband"):
        command += ["--device", "/dev/infiniband", "--cap-add", "IPC_LOCK", "--ulimit", "memlock=-1:-1"]
    for key, value in sorted(env.items()):
        command += ["-e", f"{key}={value}"]
    return [*command, "--entrypoint", "python3", image, "-c", source]


class Output:
    """A child's stdout (its tail, at most STDOUT_LIMIT bytes) and stderr (its tail), read by threads."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.stdout, self.stderr = bytearray(), bytearray()
        self.threads = [
            threading.Thread(target=self._read, args=(stream, buffer, limit), daemon=True)
            for stream, buffer, limit in ((process.stdout, self.stdout, STDOUT_LIMIT),
                                          (process.stderr, self.stderr, STDERR_TAIL))
        ]  # fmt: skip
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _read(stream: IO[bytes] | None, buffer: bytearray, limit: int) -> None:
        if stream is None:
            return
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            buffer += chunk
            if len(buffer) > 2 * limit:
                del buffer[: len(buffer) - limit]

    def join(self, seconds: float) -> None:
        for thread in self.threads:
            thread.join(seconds)

    def result(self) -> dict[str, Any] | None:
        """The program's line: the last line of its stdout that is a JSON object of the program's schema."""
        import json

        for line in reversed(bytes(self.stdout[-STDOUT_LIMIT:]).decode("utf-8", "replace").splitlines()):
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    data = json.loads(line)
                    if isinstance(data, dict) and data.get("schema") == allreduce_program.SCHEMA:
                        return data
        return None

    def stderr_tail(self) -> str:
        lines = bytes(self.stderr[-STDERR_TAIL:]).decode("utf-8", "replace").strip().splitlines()
        return " / ".join(line.strip() for line in lines[-3:] if line.strip())


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # srun stops the step: unwind, so that the container is removed


def run_program(
    command: Sequence[str], container: str | None, seconds: float, env: Mapping[str, str]
) -> dict[str, Any]:
    """Start the program, wait at most `seconds`, and return its result line, or why there is none. A container
    that outlives its `docker run` (killed at the deadline, or this task stopped) is removed by name."""
    process: subprocess.Popen[bytes] | None = None
    output: Output | None = None
    try:
        try:
            process = subprocess.Popen(
                list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=dict(env), start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise TaskError(f"cannot run {command[0]}: {exc.strerror or exc}") from None
        output = Output(process)
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            raise TaskError(f"no result within the node's deadline of {seconds:g} s") from None
    finally:  # also when srun's SIGTERM lands mid-way, even inside Popen: the container goes by its name
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if container is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=30, check=False)
        if output is not None:
            output.join(5.0)
    result = output.result()
    if result is None:
        tail = output.stderr_tail() or "nothing on stderr"
        raise TaskError(f"{command[0]} exited {process.returncode} without a result: {bounded(tail, 400)}")
    return result


def measure(environ: Mapping[str, str], node: str, image: str | None, deadline: float) -> dict[str, Any]:
    """This node's result: the program's line, or an error result naming why there is none."""
    started = time.monotonic()
    try:
        where = placement(environ)
        seconds = max(5.0, deadline - MARGIN)
        env = program_environment(environ, node, where, seconds)
        source = PROGRAM.read_text(encoding="utf-8")
        if image is None:
            command: list[str] = [sys.executable, "-c", source]
            container = None
            env = {**environ, **env}
        else:
            container = f"mldoctor-allreduce-{uuid.uuid4().hex[:12]}"
            command = container_command(image, container, env, source)
            env = dict(environ)
        result = run_program(command, container, max(1.0, deadline - (time.monotonic() - started)), env)
    except TaskError as exc:
        return error_result(node, str(exc))
    result["node"] = node  # the scheduler's name, as the check's report carries it
    return result


def error_result(node: str, message: str) -> dict[str, Any]:
    return {"schema": allreduce_program.SCHEMA, "node": node, "stage": "task", "error": bounded(message, 1000)}


def main(image: str | None, deadline: float, node: str | None = None) -> int:
    """Measure on this node and print the result as frames. Exits 0 whatever happened (an engine must not cancel
    the other nodes' tasks): the outcome travels in the result."""
    name = node_name(node)
    announce(name)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        result = measure(os.environ, name, image, deadline)
    finally:
        signal.signal(signal.SIGTERM, previous)
    emit(frames.encode(name, result))
    return 0
