"""Docker facts: the CLI, the endpoint the CLI would use, the socket, the daemon's version/info/config, disk.

All docker SDK calls live here (and in the probe runner); everything above works on the dataclasses below.
The daemon is reached the way the docker CLI would reach it: `DOCKER_HOST`, else the current context
(`DOCKER_CONTEXT` or `currentContext` in ~/.docker/config.json), else the default socket.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mldoctor.facts.common import CommandOutput, DiskUsage, disk_usage, read_text, run_command

if TYPE_CHECKING:
    from mldoctor.policy import Policy

DEFAULT_SOCKET = "/var/run/docker.sock"
MIN_API = "1.24"  # the oldest API docker-py speaks; we ask the daemon for its own before anything else


@dataclass
class CliFacts:
    path: str | None = None
    version: str | None = None
    compose_plugin: str | None = None
    compose_standalone: str | None = None


@dataclass
class Endpoint:
    url: str = ""
    source: str = "default"
    """DOCKER_HOST, context or default."""
    context: str | None = None
    tls: bool = False
    error: str | None = None
    """Why the endpoint could not be resolved (a malformed DOCKER_HOST, a context that does not exist)."""
    error_kind: str | None = None
    """bad_host, tls (DOCKER_TLS_VERIFY without usable certificates), context_missing or sdk_missing."""

    @property
    def socket_path(self) -> str | None:
        if self.url.startswith("unix://"):
            return self.url[len("unix://") :] or DEFAULT_SOCKET
        return None


@dataclass
class SocketFacts:
    path: str
    exists: bool = False
    is_socket: bool = False
    mode: int = 0
    owner: str = ""
    group: str = ""
    accessible: bool = False
    """Readable and writable by this process (what connect() needs)."""


@dataclass
class Connection:
    ok: bool = False
    error_kind: str | None = None
    """missing_socket, refused, timeout, permission, tls, ssh_no_paramiko, bad_host, context_missing,
    unreachable, api_error or other."""
    error: str | None = None
    elapsed_s: float = 0.0


@dataclass
class DaemonInfo:
    server_version: str = ""
    api_version: str = ""
    min_api_version: str = ""
    components: list[str] = field(default_factory=list)
    operating_system: str = ""
    os_type: str = ""
    kernel: str = ""
    name: str = ""
    storage_driver: str = ""
    cgroup_driver: str = ""
    cgroup_version: str = ""
    docker_root_dir: str = ""
    logging_driver: str = ""
    runtimes: list[str] = field(default_factory=list)
    default_runtime: str = ""
    security_options: list[str] = field(default_factory=list)
    cdi_spec_dirs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class DaemonConfig:
    """The daemon's own configuration: its daemon.json and command line (only for a daemon on this host)."""

    path: str | None = None
    found: bool = False
    error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    """The daemon.json keys mldoctor reads (log-driver, log-opts, runtimes, default-runtime, exec-opts,
    data-root, storage-driver, features); nothing else is kept, so no credentials travel in reports."""
    command_line: list[str] = field(default_factory=list)


@dataclass
class Reclaimable:
    """What `docker system df` says could be freed, in bytes."""

    images: int = 0
    containers: int = 0
    volumes: int = 0
    build_cache: int = 0
    error: str | None = None


@dataclass
class DockerFacts:
    cli: CliFacts
    endpoint: Endpoint
    connection: Connection
    socket: SocketFacts | None = None
    daemon: DaemonInfo | None = None
    flavour: str = "engine"
    """engine, rootless, desktop, snap or podman."""
    local: bool = False
    """The daemon runs on this host (its data-root and daemon.json can be read here)."""
    config: DaemonConfig | None = None
    root_dir: DiskUsage | None = None
    reclaimable: Reclaimable | None = None
    dockerd_installed: bool = False
    rootless_socket: str | None = None
    """A rootless daemon's socket found for this user, when it is not the endpoint in use."""


KEPT_SETTINGS = (
    "log-driver",
    "log-opts",
    "runtimes",
    "default-runtime",
    "exec-opts",
    "data-root",
    "storage-driver",
    "features",
    "cdi-spec-dirs",
)


def gather(timeout: float, policy: Policy) -> DockerFacts:
    with ThreadPoolExecutor(max_workers=3) as pool:
        cli_future = pool.submit(_cli, timeout)
        cmdline_future = pool.submit(_dockerd_command_line)
        try:
            endpoint = resolve_endpoint()
        except ImportError as exc:  # a broken install; the host-side checks that read docker facts still run
            endpoint = Endpoint(
                url=os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}",
                error=str(exc),
                error_kind="sdk_missing",
            )
        facts = DockerFacts(cli=CliFacts(), endpoint=endpoint, connection=Connection())
        facts.socket = _socket(endpoint.socket_path) if endpoint.socket_path else None
        facts.connection, facts.daemon = _connect(endpoint, timeout, policy, facts)
        facts.cli = cli_future.result()
        command_line = cmdline_future.result()
    facts.flavour = detect_flavour(facts.daemon, endpoint)
    facts.local = endpoint.socket_path is not None and facts.flavour not in ("desktop", "podman")
    facts.dockerd_installed = any(
        os.access(os.path.join(d, "dockerd"), os.X_OK)
        for d in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/sbin", "/snap/bin"]
        if d
    )
    rootless = os.path.join(os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}"), "docker.sock")
    if os.path.exists(rootless) and endpoint.socket_path != rootless:
        facts.rootless_socket = rootless
    if facts.local:
        facts.config = _daemon_config(facts.flavour, command_line)
    return facts


def resolve_endpoint(environ: dict[str, str] | None = None) -> Endpoint:
    """Where the docker CLI would connect, and why (never raises: errors are recorded)."""
    from docker.context import ContextAPI
    from docker.context.config import get_current_context_name
    from docker.errors import DockerException, TLSParameterError
    from docker.utils import kwargs_from_env, parse_host

    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        endpoint = Endpoint(url=_without_password(env["DOCKER_HOST"]), source="DOCKER_HOST")
        try:
            endpoint.tls = "tls" in kwargs_from_env(environment=dict(env))
        except TLSParameterError as exc:
            endpoint.error, endpoint.error_kind = str(exc), "tls"
            return endpoint
    else:
        name = env.get("DOCKER_CONTEXT") or get_current_context_name()
        if name == "default":
            return Endpoint(url=f"unix://{DEFAULT_SOCKET}")
        endpoint = Endpoint(source="context", context=name)
        try:
            context = ContextAPI.get_context(name)
        except DockerException as exc:
            context, endpoint.error = None, str(exc)
        if context is None:
            endpoint.error = endpoint.error or f"docker context {name!r} does not exist"
            endpoint.error_kind = "context_missing"
            return endpoint
        endpoint.url, endpoint.tls = _without_password(context.Host or ""), bool(context.TLSConfig)
    try:
        parse_host(endpoint.url, tls=endpoint.tls)
    except DockerException as exc:
        endpoint.error, endpoint.error_kind = str(exc), "bad_host"
    return endpoint


def _without_password(url: str) -> str:
    """Facts end up in reports and tickets: keep a user name, never a password embedded in an address."""
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", url)


def open_client(endpoint: Endpoint, timeout: float) -> Any:
    """A docker APIClient for `endpoint`, speaking the daemon's own API version.

    It asks the daemon for its version first (one unversioned call), so every failure to reach the daemon
    surfaces here as the raw requests/OS exception, ready for classify_error().
    """
    from docker import APIClient
    from docker.context import ContextAPI
    from docker.utils import kwargs_from_env

    if endpoint.source == "DOCKER_HOST":
        kwargs = kwargs_from_env()
    elif endpoint.source == "context" and endpoint.context:
        context = ContextAPI.get_context(endpoint.context)
        kwargs = {"base_url": context.Host, "tls": context.TLSConfig or False}
    else:
        kwargs = {"base_url": endpoint.url}
    client = APIClient(version=MIN_API, timeout=timeout, **kwargs)
    api_version = client.version(api_version=False)["ApiVersion"]
    return APIClient(version=api_version, timeout=timeout, **kwargs)


def _connect(
    endpoint: Endpoint, timeout: float, policy: Policy, facts: DockerFacts
) -> tuple[Connection, DaemonInfo | None]:
    if endpoint.error:
        return Connection(error_kind=endpoint.error_kind, error=endpoint.error), None
    started = time.monotonic()
    try:
        client = open_client(endpoint, timeout)
        version, info = client.version(), client.info()
        daemon = _daemon_info(version, info)
        if endpoint.socket_path is not None and daemon.docker_root_dir and "Desktop" not in daemon.operating_system:
            facts.root_dir = disk_usage(daemon.docker_root_dir)
            if policy.disk_is_low(facts.root_dir):
                facts.reclaimable = _reclaimable(client)
    except Exception as exc:  # every failure to talk to the daemon is a fact to diagnose
        kind = classify_error(exc)
        return Connection(error_kind=kind, error=_describe(exc), elapsed_s=time.monotonic() - started), None
    return Connection(ok=True, elapsed_s=time.monotonic() - started), daemon


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 400 else text[:400] + "..."


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception with everything it wraps: requests and urllib3 bury the OS error in args and reasons."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend(item.args)
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
    return seen


def classify_error(exc: BaseException) -> str:
    """Name the cause of a failure to reach the daemon, so each cause gets its own fix."""
    import ssl

    import requests

    chain = _exception_chain(exc)
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, requests.exceptions.Timeout | TimeoutError | socket.timeout) for e in chain):
        return "timeout"
    for e in chain:
        if isinstance(e, PermissionError) or (isinstance(e, OSError) and e.errno == errno.EACCES):
            return "permission"
        if isinstance(e, FileNotFoundError) or (isinstance(e, OSError) and e.errno == errno.ENOENT):
            return "missing_socket"
        if isinstance(e, ConnectionRefusedError):
            return "refused"
        if isinstance(e, ssl.SSLError | requests.exceptions.SSLError):
            return "tls"
        if isinstance(e, socket.gaierror) or (
            isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)
        ):
            return "unreachable"
    if "paramiko" in text:
        return "ssh_no_paramiko"
    if "Invalid bind address" in text or "protocol is not implemented" in text or "Invalid port" in text:
        return "bad_host"
    if "TLS" in text or "certificate" in text.lower():
        return "tls"
    from docker.errors import APIError

    if any(isinstance(e, APIError) for e in chain):
        return "api_error"
    if "Connection refused" in text:
        return "refused"
    return "other"


def _daemon_info(version: dict[str, Any], info: dict[str, Any]) -> DaemonInfo:
    return DaemonInfo(
        server_version=version.get("Version", ""),
        api_version=version.get("ApiVersion", ""),
        min_api_version=version.get("MinAPIVersion", ""),
        components=[c.get("Name", "") for c in version.get("Components") or []],
        operating_system=info.get("OperatingSystem", ""),
        os_type=info.get("OSType", ""),
        kernel=info.get("KernelVersion", ""),
        name=info.get("Name", ""),
        storage_driver=info.get("Driver", ""),
        cgroup_driver=info.get("CgroupDriver", ""),
        cgroup_version=str(info.get("CgroupVersion", "")),
        docker_root_dir=info.get("DockerRootDir", ""),
        logging_driver=info.get("LoggingDriver", ""),
        runtimes=sorted(info.get("Runtimes") or {}),
        default_runtime=info.get("DefaultRuntime", ""),
        security_options=list(info.get("SecurityOptions") or []),
        cdi_spec_dirs=list(info.get("CDISpecDirs") or []),
        warnings=list(info.get("Warnings") or []),
    )


def _reclaimable(client: Any) -> Reclaimable:
    """The reclaimable space per kind, computed the way `docker system df` does (approximately)."""
    try:
        df = client.df()
    except Exception as exc:  # an optional refinement of the disk fix; its failure is recorded, not fatal
        return Reclaimable(error=_describe(exc))
    images = sum(i.get("Size", 0) for i in df.get("Images") or [] if not i.get("Containers"))
    containers = sum(c.get("SizeRw", 0) or 0 for c in df.get("Containers") or [] if c.get("State") != "running")
    volumes = sum(
        (v.get("UsageData") or {}).get("Size", 0)
        for v in df.get("Volumes") or []
        if (v.get("UsageData") or {}).get("RefCount", 1) == 0
    )
    cache = sum(b.get("Size", 0) for b in df.get("BuildCache") or [] if not b.get("InUse"))
    return Reclaimable(images=images, containers=containers, volumes=volumes, build_cache=cache)


def detect_flavour(daemon: DaemonInfo | None, endpoint: Endpoint) -> str:
    """Which kind of Docker this is; fixes differ (paths to daemon.json, how to restart, what is supported)."""
    if daemon is not None:
        if any("podman" in c.lower() for c in daemon.components):
            return "podman"
        if "Docker Desktop" in daemon.operating_system:
            return "desktop"
        if any("rootless" in option for option in daemon.security_options):
            return "rootless"
        if daemon.docker_root_dir.startswith("/var/snap/docker"):
            return "snap"
        return "engine"
    url = endpoint.url
    if endpoint.context == "desktop-linux" or "/.docker/desktop/" in url:
        return "desktop"
    if "podman" in url:
        return "podman"
    if url.startswith("unix:///run/user/"):
        return "rootless"
    if os.path.isdir("/var/snap/docker") and not os.path.exists("/usr/bin/dockerd"):
        return "snap"
    return "engine"


def daemon_json_path(flavour: str, command_line: list[str]) -> str | None:
    for i, arg in enumerate(command_line):
        if arg.startswith("--config-file="):
            return arg.partition("=")[2]
        if arg == "--config-file" and i + 1 < len(command_line):
            return command_line[i + 1]
    if flavour == "rootless":
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return os.path.join(base, "docker", "daemon.json")
    if flavour == "snap":
        return "/var/snap/docker/current/config/daemon.json"
    if flavour == "engine":
        return "/etc/docker/daemon.json"
    return None


def _daemon_config(flavour: str, command_line: list[str]) -> DaemonConfig:
    path = daemon_json_path(flavour, command_line)
    config = DaemonConfig(path=path, command_line=command_line)
    if path is None:
        return config
    if not os.path.exists(path):
        return config
    config.found = True
    text = read_text(path)
    if text is None:
        config.error = "not readable by this user"
        return config
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        config.error = f"invalid JSON: {exc}"
        return config
    if not isinstance(data, dict):
        config.error = "not a JSON object"
        return config
    config.settings = {k: v for k, v in data.items() if k in KEPT_SETTINGS}
    return config


def _dockerd_command_line() -> list[str]:
    """The running dockerd's arguments (flags such as --log-opt and --config-file live there too)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if (read_text(f"/proc/{pid}/comm") or "").strip() == "dockerd":
            return [arg for arg in (read_text(f"/proc/{pid}/cmdline") or "").split("\0") if arg]
    return []


def _socket(path: str) -> SocketFacts:
    facts = SocketFacts(path=path)
    try:
        st = os.stat(path)
    except OSError:
        return facts
    import grp
    import pwd

    facts.exists, facts.is_socket, facts.mode = True, stat.S_ISSOCK(st.st_mode), stat.S_IMODE(st.st_mode)
    try:
        facts.owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        facts.owner = str(st.st_uid)
    try:
        facts.group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        facts.group = str(st.st_gid)
    facts.accessible = os.access(path, os.R_OK | os.W_OK)
    return facts


def _cli(timeout: float) -> CliFacts:
    import shutil

    path = shutil.which("docker")
    commands = {"standalone": ["docker-compose", "version", "--short"]}
    if path:
        commands |= {"version": [path, "--version"], "plugin": [path, "compose", "version", "--short"]}
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        outputs = dict(zip(commands, pool.map(lambda argv: run_command(argv, timeout), commands.values()), strict=True))
    return CliFacts(
        path=path,
        version=_version_of(outputs["version"], prefix="Docker version ") if path else None,
        compose_plugin=_version_of(outputs["plugin"]) if path else None,
        compose_standalone=_version_of(outputs["standalone"]),
    )


def _version_of(output: CommandOutput, prefix: str = "") -> str | None:
    if not output.ok or not output.stdout:
        return None
    line = output.stdout.splitlines()[0]
    if prefix and line.startswith(prefix):
        line = line[len(prefix) :]
    return line.split(",")[0].strip().removeprefix("v")
