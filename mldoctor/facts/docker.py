"""Docker facts: the CLI, the endpoint the CLI would use, the socket, the daemon in use (its process, version,
info and configuration file), its disk and what could be reclaimed there.

The daemon is reached through `mldoctor.engine` the way the docker CLI would reach it. Everything a rule needs
about the daemon is recorded here at gather time (the path of its configuration file too), so a saved report
re-diagnosed on another machine gives the same verdicts and the same fixes.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mldoctor.engine.daemon import DaemonProcess, daemon_process, process_start_time, started_by
from mldoctor.engine.endpoint import DEFAULT_SOCKET, Endpoint, resolve_endpoint
from mldoctor.facts.common import CommandOutput, DiskUsage, disk_usage, read_text, run_command

__all__ = ["DEFAULT_SOCKET", "DaemonProcess", "DockerFacts", "Endpoint", "gather"]


@dataclass
class CliFacts:
    """What `docker --version` and Compose report about the client side: the CLI's path and version, and the
    versions of the Compose plugin and the standalone `docker-compose`."""

    path: str | None = None
    version: str | None = None
    compose_plugin: str | None = None
    compose_standalone: str | None = None


@dataclass
class SocketFacts:
    """The unix socket of the endpoint in use: whether it is there, its mode and owner, and whether this process
    may use it."""

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
    """Whether the daemon answered and how long it took; when it did not, why, as a kind the rules name a fix for."""

    ok: bool = False
    error_kind: str | None = None
    """missing_socket, refused, timeout, permission, tls, ssh_no_paramiko, bad_host, context_missing,
    unreachable, api_error or other."""
    error: str | None = None
    elapsed_s: float = 0.0


@dataclass
class DaemonInfo:
    """The daemon's `/version` and `/info` answers that rules read: versions, OS, drivers, runtimes, CDI spec
    directories and the daemon's own warnings."""

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
class BridgeFacts:
    """The default `bridge` network, which every `docker run` without --network joins."""

    found: bool = False
    """The daemon has a network named bridge (a daemon started with --bridge=none has none)."""
    interface: str = ""
    """Its Linux bridge (docker0)."""
    subnet: str = ""
    interface_present: bool | None = None
    """The interface exists in the daemon's network namespace; None where this process cannot look there (another
    namespace: rootless, Desktop, a remote daemon)."""
    resolv_conf: str | None = None
    """The file the daemon copies a default-bridge container's DNS servers from: the host's /etc/resolv.conf, or
    systemd-resolved's upstream list when that names only its stub 127.0.0.53 (as dockerd itself decides)."""
    nameservers: list[str] | None = None
    """Its nameserver lines; None where it could not be read (a remote daemon, another user's mount namespace)."""
    error: str | None = None


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
    json_error: str | None = None
    """The file exists but is not a JSON object (the parser's message): dockerd refuses to start with it."""
    modified_at: float | None = None
    """The file's modification time (Unix time), to compare with the daemon's start time."""
    backups: list[str] = field(default_factory=list)
    """Copies `mldoctor fix` kept before editing it (`PATH.mldoctor-backup-TIME`), oldest first."""


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
    """The Docker section of the facts: the CLI, the endpoint and its socket, the daemon, its process, configuration
    file and disk, and the default bridge network."""

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
    config_path: str | None = None
    """The daemon's configuration file: its --config-file, else where its flavour keeps daemon.json (for rootless
    Docker, under the home of the user who ran mldoctor); None for Desktop and Podman."""
    process: DaemonProcess | None = None
    """The process behind the socket in use (SO_PEERCRED), for a daemon on this host."""
    bridge: BridgeFacts | None = None

    def daemon_json(self) -> str:
        """The configuration file to name in a fix (an older report may lack it: then the generic name)."""
        return self.config_path or (self.config.path if self.config and self.config.path else None) or "daemon.json"


BACKUP_SUFFIX = ".mldoctor-backup-"
"""`mldoctor fix` keeps the file it edits as PATH.mldoctor-backup-TIME."""

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
    "default-shm-size",
    "default-ipc-mode",
    "dns",
)


def gather(timeout: float) -> DockerFacts:
    """Each fact on its own: the CLI's commands run while the daemon is asked; a failure is recorded, not raised."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        cli_future = pool.submit(_cli, timeout)
        endpoint = resolve_endpoint()
        facts = DockerFacts(cli=CliFacts(), endpoint=endpoint, connection=Connection())
        socket_path = endpoint.socket_path
        process_future = pool.submit(daemon_process, socket_path, timeout) if socket_path else None
        facts.socket = _socket(socket_path) if socket_path else None
        facts.connection, facts.daemon = _connect(endpoint, timeout, facts)
        facts.cli = cli_future.result()
        process = process_future.result() if process_future else None
    facts.flavour = detect_flavour(facts.daemon, endpoint)
    facts.local = socket_path is not None and facts.flavour not in ("desktop", "podman")
    facts.dockerd_installed = any(
        os.access(os.path.join(d, "dockerd"), os.X_OK)
        for d in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/sbin", "/snap/bin"]
        if d
    )
    rootless = os.path.join(os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}"), "docker.sock")
    if os.path.exists(rootless) and socket_path != rootless:
        facts.rootless_socket = rootless
    if facts.local:
        facts.process = process if process is not None and process.pid else _dockerd_by_name(process)
        facts.config_path = daemon_json_path(facts.flavour, facts.process.command_line)
        facts.config = _daemon_config(facts.config_path, facts.process.command_line)
        if facts.bridge is not None:
            _bridge_interface(facts.bridge, facts.process)
            _bridge_dns(facts.bridge, facts.process)
    else:
        facts.config_path = daemon_json_path(facts.flavour, [])
    return facts


def _connect(endpoint: Endpoint, timeout: float, facts: DockerFacts) -> tuple[Connection, DaemonInfo | None]:
    """Ask the daemon: one `/_ping` for its API version, then `/version`, `/info`, `/system/df` (for the disk fix)
    and the bridge network side by side (they do not depend on each other, and the daemon answers the first two
    only after running runc and docker-init)."""
    from mldoctor.engine.client import open_client
    from mldoctor.engine.errors import classify_error, describe

    if endpoint.error:
        return Connection(error_kind=endpoint.error_kind, error=endpoint.error), None
    started = time.monotonic()
    try:
        connected = open_client(endpoint, timeout)
        try:
            with ThreadPoolExecutor(max_workers=3) as pool:
                version_future = pool.submit(connected.client.version)
                df_future = pool.submit(_reclaimable, connected.client) if endpoint.socket_path is not None else None
                bridge_future = pool.submit(_bridge, connected.client)
                info = connected.client.info()
                daemon = _daemon_info(version_future.result(), info)
                facts.bridge = bridge_future.result()
                reclaimable = df_future.result() if df_future is not None else None
            if endpoint.socket_path is not None and daemon.docker_root_dir and "Desktop" not in daemon.operating_system:
                facts.root_dir = disk_usage(daemon.docker_root_dir)
                facts.reclaimable = reclaimable
        finally:
            connected.close()
    except Exception as exc:  # every failure to talk to the daemon is a fact to diagnose
        kind = classify_error(exc)
        return Connection(error_kind=kind, error=describe(exc), elapsed_s=time.monotonic() - started), None
    return Connection(ok=True, elapsed_s=time.monotonic() - started), daemon


def _bridge(client: Any) -> BridgeFacts:
    """The default bridge network as the daemon describes it (whether its interface exists is decided once the
    daemon's process, hence its network namespace, is known)."""
    from docker.errors import NotFound

    from mldoctor.engine.errors import describe

    try:
        network = client.inspect_network("bridge")
    except NotFound:
        return BridgeFacts(found=False)
    except Exception as exc:  # a refinement: recorded, not fatal
        return BridgeFacts(error=describe(exc))
    configs = (network.get("IPAM") or {}).get("Config") or [{}]
    options = network.get("Options") or {}
    return BridgeFacts(
        found=True, interface=options.get("com.docker.network.bridge.name", ""), subnet=configs[0].get("Subnet", "")
    )


def _bridge_interface(bridge: BridgeFacts, process: DaemonProcess | None) -> None:
    """Whether the bridge interface exists where the daemon runs: only answerable from this network namespace."""
    if not bridge.found or not bridge.interface or process is None or not process.pid:
        return
    try:
        same = os.readlink(f"/proc/{process.pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return
    if same:
        bridge.interface_present = os.path.exists(f"/sys/class/net/{bridge.interface}")


RESOLVED_STUB = "127.0.0.53"
RESOLVED_UPSTREAM = "run/systemd/resolve/resolv.conf"


def _bridge_dns(bridge: BridgeFacts, process: DaemonProcess | None) -> None:
    """The DNS servers dockerd gives default-bridge containers come from resolv.conf as the daemon sees it (its own
    root, through /proc/PID/root where this user may look; else this host's): loopback servers are dropped, and
    with none left containers get Docker's fallback, 8.8.8.8 and 8.8.4.4."""
    root = f"/proc/{process.pid}/root/" if process is not None and process.pid else "/"
    bridge.resolv_conf, bridge.nameservers = resolv_conf(root if os.access(root + "etc/resolv.conf", os.R_OK) else "/")


def resolv_conf(root: str) -> tuple[str, list[str] | None]:
    """(the file under `root` dockerd reads DNS servers from, as an absolute path inside root; its nameservers)."""
    path = "etc/resolv.conf"
    nameservers = _nameservers(root + path)
    if nameservers == [RESOLVED_STUB] and os.access(root + RESOLVED_UPSTREAM, os.R_OK):
        path, nameservers = RESOLVED_UPSTREAM, _nameservers(root + RESOLVED_UPSTREAM)
    return "/" + path, nameservers


def _nameservers(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read(65536).splitlines()
    except OSError:
        return None
    return [
        fields[1][:64] for fields in (line.split() for line in lines) if len(fields) > 1 and fields[0] == "nameserver"
    ][:16]


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
    from mldoctor.engine.errors import describe

    try:
        df = client.df()
    except Exception as exc:  # an optional refinement of the disk fix; its failure is recorded, not fatal
        return Reclaimable(error=describe(exc))
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
    """The configuration file this daemon reads: its --config-file, else its flavour's default (gather time only:
    the rootless one depends on the environment of the user running mldoctor)."""
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


def _daemon_config(path: str | None, command_line: list[str]) -> DaemonConfig:
    config = DaemonConfig(path=path, command_line=command_line)
    if path is None:
        return config
    config.backups = sorted(glob.glob(glob.escape(path) + BACKUP_SUFFIX + "*"))
    if not os.path.exists(path):
        return config
    config.found = True
    with contextlib.suppress(OSError):
        config.modified_at = os.stat(path).st_mtime
    text = read_text(path)
    if text is None:
        config.error = "not readable by this user"
        return config
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        config.json_error = str(exc)
        config.error = f"invalid JSON: {exc}"
        return config
    if not isinstance(data, dict):
        config.json_error = f"a JSON {type(data).__name__}, not an object"
        config.error = "not a JSON object"
        return config
    config.settings = {k: v for k, v in data.items() if k in KEPT_SETTINGS}
    return config


def _dockerd_by_name(behind_socket: DaemonProcess | None) -> DaemonProcess:
    """When the socket's peer cannot be asked (permission denied, no daemon), the only `dockerd` on this host is
    the best guess of the daemon meant; with several, none is guessed."""
    pids = [
        pid
        for pid in filter(str.isdigit, os.listdir("/proc"))
        if (read_text(f"/proc/{pid}/comm") or "").strip() == "dockerd"
    ]
    why = behind_socket.error if behind_socket is not None else None
    if len(pids) != 1:
        return DaemonProcess(error=why or f"{len(pids)} dockerd processes on this host")
    argv = [arg for arg in (read_text(f"/proc/{pids[0]}/cmdline") or "").split("\0") if arg]
    pid = int(pids[0])
    return DaemonProcess(
        pid=pid, command_line=argv, error=why, started_at=process_start_time(pid), **started_by(pid, argv)
    )


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
    """The CLI's version and Compose's: the plugin asked directly where the CLI would find it, the standalone
    binary on PATH; only the programs that exist are run."""
    import shutil

    path = shutil.which("docker")
    commands = {
        name: [program, *argv]
        for name, program, argv in (
            ("version", path, ["--version"]),
            ("plugin", _compose_plugin() if path else None, ["version", "--short"]),
            ("standalone", shutil.which("docker-compose"), ["version", "--short"]),
        )
        if program
    }
    with ThreadPoolExecutor(max_workers=max(1, len(commands))) as pool:
        outputs = dict(zip(commands, pool.map(lambda argv: run_command(argv, timeout), commands.values()), strict=True))
    return CliFacts(
        path=path,
        version=_version_of(outputs.get("version"), prefix="Docker version "),
        compose_plugin=_version_of(outputs.get("plugin")),
        compose_standalone=_version_of(outputs.get("standalone")),
    )


CLI_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
"""Where the docker CLI looks for plugins after its config directory's `cli-plugins` and config.json's
`cliPluginsExtraDirs` (docker/cli, cli-plugins/manager), in its order of preference."""


def _compose_plugin() -> str | None:
    """The `docker-compose` plugin binary `docker compose` would run, found the way the CLI finds it. It is asked
    for its version directly: `docker compose version` costs a CLI start and a metadata call more, and with no
    plugin installed nothing runs at all."""
    config_dir = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        config = json.loads(read_text(os.path.join(config_dir, "config.json")) or "{}")
    except ValueError:  # the CLI itself would complain; the default directories still count
        config = {}
    extra = config.get("cliPluginsExtraDirs") if isinstance(config, dict) else None
    extra_dirs = [d for d in extra if isinstance(d, str)] if isinstance(extra, list) else []
    for directory in [os.path.join(config_dir, "cli-plugins"), *extra_dirs, *CLI_PLUGIN_DIRS]:
        candidate = os.path.join(directory, "docker-compose")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _version_of(output: CommandOutput | None, prefix: str = "") -> str | None:
    if output is None or not output.ok or not output.stdout:
        return None
    line = output.stdout.splitlines()[0]
    if prefix and line.startswith(prefix):
        line = line[len(prefix) :]
    return line.split(",")[0].strip().removeprefix("v")
