"""Docker checks: CLI, daemon, its configuration file, socket permission, version, flavour, storage, disk, logging,
network, warnings, compose."""

from __future__ import annotations

import ipaddress

from mldoctor.facts import Facts
from mldoctor.facts.docker import BridgeFacts, DockerFacts
from mldoctor.facts.host import HostFacts
from mldoctor.fixes.docker import COMPOSE_DOCS, ENGINE_DOCS, docker_logs_hint, docker_service, mldoctor_fix
from mldoctor.fixes.host import distro_family, install, is_ubuntu
from mldoctor.model import Finding
from mldoctor.policy import Policy
from mldoctor.rules.registry import check
from mldoctor.text import gib, version_tuple

ROOT_EQUIVALENT = (
    "Membership of the docker group is root-equivalent: anyone in it can start a container that mounts / "
    "(https://docs.docker.com/engine/security/#docker-daemon-attack-surface). Do not `chmod 666` the socket."
)


@check("docker.cli", "Docker CLI", facts=("docker", "host"))
def docker_cli(facts: Facts, policy: Policy) -> Finding:
    cli = facts.docker.cli
    if cli.path is None:
        return Finding.warn(
            "no `docker` command on PATH",
            fix=install(facts.host, {"debian": "docker.io", "rhel": "docker-ce-cli", "arch": "docker"}, ENGINE_DOCS),
            details=(
                "mldoctor talks to the daemon itself, but the fixes it prints and your own workflow "
                "use the docker CLI.",
            ),
        )
    if cli.version is None:
        return Finding.warn(
            f"{cli.path} did not report its version",
            fix=f"run `{cli.path} --version` to see why; reinstall it if it is broken",
        )
    return Finding.ok(f"docker {cli.version} ({cli.path})")


def _daemon_failure(docker: DockerFacts, host: HostFacts | None, timeout_hint: str) -> Finding:
    endpoint, connection = docker.endpoint, docker.connection
    kind, url, error = connection.error_kind, endpoint.url, connection.error or ""
    where = f"{url} (from {endpoint.source})" if endpoint.source != "default" else url
    start = docker_service("enable --now", docker.flavour, host)
    restart = docker_service("restart", docker.flavour, host, docker.process)
    logs = docker_logs_hint(docker.flavour, host)
    details = (f"error: {error}",) if error else ()
    if kind == "missing_socket":
        if docker.rootless_socket:
            return Finding.fail(
                f"no daemon at {where}, but a rootless daemon listens at {docker.rootless_socket}",
                fix=f"export DOCKER_HOST=unix://{docker.rootless_socket}",
                details=details,
            )
        if endpoint.source == "context":
            return Finding.fail(
                f"the docker context {endpoint.context!r} points at {url}, which does not exist",
                fix=f"{USE_DEFAULT_CONTEXT}   # or start the daemon that should listen there",
                details=details,
            )
        if endpoint.source == "DOCKER_HOST":
            return Finding.fail(
                f"DOCKER_HOST points at {url}, which does not exist",
                fix="unset DOCKER_HOST   # to use the default socket; or start the daemon that should listen there",
                details=details,
            )
        if not docker.dockerd_installed and docker.flavour == "engine":
            return Finding.fail(
                f"Docker Engine is not installed (no dockerd, no socket at {url})",
                fix=install(host, {"debian": "docker.io", "rhel": "docker-ce", "arch": "docker"}, ENGINE_DOCS)
                + f" && {start}",
                details=details,
            )
        broken = _config_broken(docker)
        if broken:
            return Finding.fail(
                f"the Docker daemon is not running (no socket at {url}), and it cannot start: {broken}",
                fix=_config_repair(docker, host, start),
                details=details,
            )
        return Finding.fail(f"the Docker daemon is not running (no socket at {url})", fix=start, details=details)
    if kind == "refused":
        # a daemon chosen elsewhere: restarting this host's daemon would interrupt its containers and fix nothing
        away = "unset DOCKER_HOST" if endpoint.source == "DOCKER_HOST" else USE_DEFAULT_CONTEXT
        if endpoint.socket_path:
            summary = f"nothing answers on {where}: a stale socket (the daemon stopped or crashed)"
            if endpoint.source != "default" and endpoint.socket_path not in DEFAULT_SOCKETS:
                fix = f"{away}   # to use this host's daemon at /var/run/docker.sock; nothing listens at {url}"
                return Finding.fail(summary, fix=fix, details=details)
            return Finding.fail(summary, fix=f"{restart}   # then see why it stopped: {logs}", details=details)
        return Finding.fail(
            f"connection refused by {where}: no daemon listens there",
            fix=f"{away}   # to use this host's daemon; or start the daemon that should listen at {url}",
            details=details,
        )
    if kind == "timeout":
        return Finding.fail(
            f"the daemon at {where} accepted the connection but did not answer within {timeout_hint}",
            fix=f"{restart}   # a hung daemon; its log: {logs}. A slow one: mldoctor check --timeout 30",
            details=details,
        )
    summary, fix = CAUSES.get(kind or "", CAUSES["other"])
    values = {"where": where, "url": url, "context": endpoint.context, "restart": restart, "logs": logs}
    return Finding.fail(summary.format(**values), fix=fix.format(**values), details=details)


USE_DEFAULT_CONTEXT = "unset DOCKER_CONTEXT; docker context use default"
DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
"""Where this host's rootful daemon listens: a stale socket there is this daemon's, restarted to fix it."""
"""Back to the local daemon: DOCKER_CONTEXT, when set, overrides `docker context use`, so it goes first."""

CAUSES = {
    "tls": (
        "the TLS handshake with {where} failed",
        "check DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) and DOCKER_TLS_VERIFY; `docker version` shows the same",
    ),
    "ssh_no_paramiko": (
        "{where} is an ssh:// address and the paramiko package is not installed",
        "python3 -m pip install 'docker[ssh]'   # in the environment mldoctor runs from",
    ),
    "bad_host": (
        "DOCKER_HOST={url!r} is not a valid daemon address",
        "unset DOCKER_HOST   # or set it to unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST",
    ),
    "context_missing": (
        "the docker context {context!r} does not exist",
        USE_DEFAULT_CONTEXT + "   # DOCKER_CONTEXT first: while set, it overrides the current context",
    ),
    "unreachable": (
        "cannot reach {where}",
        "check the host name and the network, or unset DOCKER_HOST to use the local daemon",
    ),
    "api_error": ("the daemon at {where} answered with an error", "{restart}   # its log: {logs}"),
    "sdk_missing": (
        "the docker Python package is missing from mldoctor's environment: {where} was not asked",
        "python3 -m pip install 'docker>=7.1'   # in the environment mldoctor runs from",
    ),
    "other": ("could not talk to the daemon at {where}", "`docker version` shows the same failure; {restart}"),
}
"""Causes whose finding is a sentence and a command: summary and fix templates."""


@check("docker.daemon", "Docker daemon", facts=("docker", "host"))
def docker_daemon(facts: Facts, policy: Policy) -> Finding:
    docker = facts.docker
    if docker.connection.ok:
        return Finding.ok(
            f"the daemon answers at {docker.endpoint.url} in {docker.connection.elapsed_s * 1000:.0f} ms",
            details=(
                f"endpoint from {docker.endpoint.source}"
                + (f" (context {docker.endpoint.context})" if docker.endpoint.context else ""),
            ),
        )
    if docker.connection.error_kind == "permission":
        where = docker.socket.path if docker.socket else docker.endpoint.url
        return Finding.skip(
            f"not asked: permission denied on {where} (see docker.permission)", blocked_by="docker.permission"
        )
    return _daemon_failure(docker, facts.host, "the timeout")


def _config_broken(docker: DockerFacts) -> str | None:
    """Why the daemon's configuration file would stop it from starting (None when it would not)."""
    config = docker.config
    if config is None or not config.found or not config.json_error:
        return None
    return f"{config.path} is not valid JSON ({config.json_error})"


def _config_repair(docker: DockerFacts, host: HostFacts | None, then: str) -> str:
    """Put the configuration file back: the newest backup `mldoctor fix` kept, else correct it by hand."""
    config = docker.config
    path = config.path if config is not None else docker.daemon_json()
    if config is not None and config.backups:
        restore = f"sudo cp -p {config.backups[-1]} {path}"
        return f"{restore} && {then}" if then else f"{restore}   # the copy mldoctor fix kept; no restart needed"
    return (
        f"python3 -m json.tool {path}   # shows the line and column: correct it there (`{{}}` is a valid empty "
        "config)" + (f", then: {then}" if then else "; the daemon runs with what it started with: no restart needed")
    )


@check("docker.config", "Docker daemon configuration", facts=("docker", "host"))
def docker_config(facts: Facts, policy: Policy) -> Finding:
    """The configuration file of the daemon in use: one it could not start with, and one edited since it started
    (not applied yet). Judged whether or not the daemon answers: a broken file is often why it does not."""
    docker = facts.docker
    config = docker.config
    if config is None or not docker.local:
        return Finding.skip(f"the daemon is not on this host ({docker.endpoint.url}): its configuration is not here")
    if config.path is None:
        return Finding.ok(f"no configuration file for {docker.flavour}")
    if not config.found:
        return Finding.ok(f"{config.path} absent: the daemon's defaults")
    process = docker.process
    running = docker.connection.ok and process is not None and bool(process.pid)
    broken = _config_broken(docker)
    if broken:
        if running:
            then = ""
            consequence = "the daemon will not start again after its next restart"
        else:
            then = docker_service("enable --now", docker.flavour, facts.host)
            consequence = "the daemon cannot start with it"
        return Finding.fail(
            f"{broken}: {consequence}",
            fix=_config_repair(docker, facts.host, then),
            details=(f"{config.path}: {config.json_error}",),
        )
    if config.error:
        return Finding.skip(f"cannot read {config.path}: {config.error}")
    if running and config.modified_at and process.started_at and config.modified_at > process.started_at + 1:
        restart = docker_service("restart", docker.flavour, facts.host, process)
        return Finding.warn(
            f"{config.path} edited but not applied yet: restart to apply",
            fix=restart,
            details=(
                f"{config.path} changed {config.modified_at - process.started_at:.0f} s after the daemon "
                f"(pid {process.pid}) started, {process.how}",
                "until it restarts the daemon runs with the old settings; a restart stops running containers "
                "unless live-restore is set",
            ),
        )
    return Finding.ok(f"{config.path}: valid" + (" and applied" if running else ""))


@check("docker.permission", "Docker socket permission", facts=("docker", "host.user"))
def docker_permission(facts: Facts, policy: Policy) -> Finding:
    docker, user = facts.docker, facts.host.user
    sock = docker.socket
    if sock is None:
        return Finding.ok(f"{docker.endpoint.url or 'the endpoint'} is not a local socket: no file permission applies")
    if not sock.exists:
        return Finding.skip(f"no socket at {sock.path}", blocked_by="docker.daemon")
    denied = docker.connection.error_kind == "permission" or not sock.accessible
    if not denied:
        how = (
            "as root"
            if user.uid == 0
            else (f"through group {sock.group}" if sock.group in user.active_groups else f"as {sock.owner}")
        )
        return Finding.ok(f"{user.name} can use {sock.path} ({how})")
    mode = f"{sock.mode:04o}"
    details = (
        f"{sock.path}: owner {sock.owner}, group {sock.group}, mode {mode}; "
        f"your groups now: {', '.join(user.active_groups) or 'none'}",
        ROOT_EQUIVALENT,
    )
    nameless = sock.group.isdigit()  # the facts record a gid with no name as its number
    if not sock.mode & 0o060 or sock.group in ("root", "") or nameless:
        why = f"its group {sock.group} has no name (deleted?): no one can be added to it" if nameless else ""
        return Finding.fail(
            f"{sock.path} is {sock.owner}:{sock.group} mode {mode}: {why or 'no group may use it'}",
            fix="sudo groupadd -f docker && "
            + docker_service("restart", docker.flavour, facts.host, docker.process)
            + "   # dockerd gives its socket to the docker group"
            + f"\nsudo usermod -aG docker {user.name}   # then log out and back in",
            details=details,
        )
    if sock.group in user.member_of:
        return Finding.fail(
            f"{user.name} is in group {sock.group}, but this login session does not carry it yet",
            fix=f"newgrp {sock.group}   # a shell that carries it; or log out and back in",
            details=details,
        )
    return Finding.fail(
        f"{user.name} may not use {sock.path} (it belongs to group {sock.group})",
        fix=f"sudo usermod -aG {sock.group} {user.name}   # then log out and back in",
        details=details,
    )


@check("docker.version", "Docker version", facts=("docker",), requires=("docker.daemon",))
def docker_version(facts: Facts, policy: Policy) -> Finding:
    daemon = facts.docker.daemon
    api = version_tuple(daemon.api_version)
    product = "Podman" if facts.docker.flavour == "podman" else "Docker Engine"
    summary = f"{product} {daemon.server_version} (API {daemon.api_version})"
    upgrade = f"upgrade the engine: {ENGINE_DOCS}"
    if api < (1, 40):
        return Finding.fail(f"{summary}: GPU requests (`--gpus`) need API 1.40, Docker 19.03 or newer", fix=upgrade)
    if api < (1, 41):
        return Finding.warn(
            f"{summary}: older than Docker 20.10, which added cgroup v2 support (current distros use cgroup v2)",
            fix=upgrade,
        )
    return Finding.ok(summary, details=(f"daemon accepts API {daemon.min_api_version} to {daemon.api_version}",))


FLAVOURS = {
    "engine": "Docker Engine (rootful)",
    "rootless": "rootless Docker Engine",
    "snap": "Docker Engine from the snap",
    "desktop": "Docker Desktop",
    "podman": "Podman's Docker-compatible API",
}


@check("docker.flavour", "Docker flavour", facts=("docker", "host"), requires=("docker.daemon",))
def docker_flavour(facts: Facts, policy: Policy) -> Finding:
    docker = facts.docker
    flavour = docker.flavour
    name = FLAVOURS.get(flavour, flavour)
    details = (f"daemon configuration: {docker.config_path}",) if docker.config_path else ()
    if flavour == "desktop" and not facts.host.wsl:
        return Finding.warn(
            f"{name}: containers run inside a VM, where NVIDIA GPUs are not available on Linux",
            fix="docker context use default   # Docker Engine on this host; install it first if needed: " + ENGINE_DOCS,
            details=details,
        )
    if flavour == "podman":
        return Finding.warn(
            f"{name}: GPU containers there go through CDI, not Docker's --gpus",
            fix=(
                "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"
                "   # then: podman run --device nvidia.com/gpu=all ..."
            ),
            details=details,
        )
    if docker.rootless_socket and flavour != "rootless":
        return Finding.warn(
            f"{name}, and a rootless daemon at {docker.rootless_socket} too: images and GPU settings differ "
            "between the two",
            fix="use one daemon: stop the other (`systemctl --user disable --now docker` for the rootless one)",
            details=details,
        )
    return Finding.ok(name, details=details)


DISCOURAGED_STORAGE = {
    "vfs": "copies every layer in full: slow and disk-hungry",
    "devicemapper": "deprecated, and removed in Docker 25",
    "aufs": "removed in Docker 24",
    "overlay": "the legacy overlay driver; overlay2 replaced it",
}


@check("docker.storage", "Docker storage and cgroups", facts=("docker", "host"), requires=("docker.daemon",))
def docker_storage(facts: Facts, policy: Policy) -> Finding:
    docker = facts.docker
    daemon = docker.daemon
    summary = (
        f"{daemon.storage_driver} storage, {daemon.cgroup_driver or '?'} cgroup driver, "
        f"cgroup v{daemon.cgroup_version or '?'}"
    )
    details = tuple(f"daemon warning: {w}" for w in daemon.warnings)
    why = DISCOURAGED_STORAGE.get(daemon.storage_driver)
    if why:
        return Finding.warn(
            f"{summary}: {daemon.storage_driver} {why}",
            fix=f'set "storage-driver": "overlay2" in {docker.daemon_json()}, then '
            + docker_service("restart", docker.flavour, facts.host, docker.process)
            + "   # existing images stay with the old driver: `docker save` what you need first",
            details=details,
        )
    return Finding.ok(summary, details=details)


def _reclaim_fix(docker: DockerFacts) -> str:
    r = docker.reclaimable
    commands = []
    if r is not None and r.error is None:
        for amount, command in (
            (r.images, "docker image prune -a"),
            (r.build_cache, "docker builder prune"),
            (r.containers, "docker container prune"),
            (r.volumes, "docker volume prune   # deletes data in unused volumes"),
        ):
            if amount:
                commands.append(f"{command}   # frees {gib(amount)}")
    if commands:
        return "\n".join(commands)
    return f'docker system prune   # or move the data-root to a bigger disk: "data-root" in {docker.daemon_json()}'


@check("docker.disk", "Docker disk space", facts=("docker",), requires=("docker.daemon",))
def docker_disk(facts: Facts, policy: Policy) -> Finding:
    docker = facts.docker
    if not docker.local or docker.root_dir is None:
        return Finding.skip(f"the daemon is not on this host ({docker.endpoint.url}): its disk cannot be read here")
    usage = docker.root_dir
    if usage.error:
        return Finding.error(f"could not read free space of {usage.path}: {usage.error}")
    summary = (
        f"{gib(usage.free_bytes)} free of {gib(usage.total_bytes)} ({usage.free_pct:.0f}%), "
        f"{usage.inodes_free_pct:.0f}% inodes free, on {usage.path}"
    )
    status = policy.disk_status(usage)
    limits = (
        f"limits: FAIL under {policy.disk_fail_gib:g} GiB or {policy.disk_fail_pct:g}%, "
        f"WARN under {policy.disk_warn_gib:g} GiB or {policy.disk_warn_pct:g}%",
    )
    if status == "fail":
        return Finding.fail(summary, fix=_reclaim_fix(docker), details=limits)
    if status == "warn":
        return Finding.warn(summary, fix=_reclaim_fix(docker), details=limits)
    return Finding.ok(summary)


def _log_max_size(docker: DockerFacts) -> str | None:
    config = docker.config
    opts = config.settings.get("log-opts") or {}
    if isinstance(opts, dict) and opts.get("max-size"):
        return str(opts["max-size"])
    for i, arg in enumerate(config.command_line):
        value = (
            arg.partition("=")[2]
            if arg.startswith("--log-opt=")
            else (config.command_line[i + 1] if arg == "--log-opt" and i + 1 < len(config.command_line) else "")
        )
        if value.startswith("max-size="):
            return value.partition("=")[2]
    return None


@check("docker.logging", "Docker container logs", facts=("docker", "host"), requires=("docker.daemon",))
def docker_logging(facts: Facts, policy: Policy) -> Finding:
    docker = facts.docker
    driver = docker.daemon.logging_driver
    if driver != "json-file":
        note = " (rotates by default)" if driver == "local" else ""
        return Finding.ok(f"log driver {driver}{note}")
    config = docker.config
    if config is None:
        return Finding.skip("the daemon is not on this host: its configuration cannot be read here")
    if config.json_error:
        return Finding.skip(f"skipped: {config.path} is not valid JSON (see docker.config)", blocked_by="docker.config")
    if config.error:
        return Finding.skip(f"cannot read {config.path}: {config.error}")
    max_size = _log_max_size(docker)
    if max_size:
        return Finding.ok(f"json-file logs, rotated at {max_size}")
    path = docker.daemon_json()
    restart = docker_service("restart", docker.flavour, facts.host, docker.process)
    return Finding.warn(
        f"json-file logs without max-size ({path} {'sets none' if config.found else 'absent'}): "
        "a chatty training container fills the disk",
        fix=mldoctor_fix("docker.logging", docker, facts.host)
        + f"   # merges log rotation into {path} (a backup is kept); without --yes: the diff only",
        details=(
            f"{path}: {'present' if config.found else 'absent'}",
            f'by hand: merge "log-driver": "json-file" and "log-opts": {{"max-size": "100m", "max-file": "3"}} '
            f"into the JSON object in {path} (create it if absent), check it with `python3 -m json.tool {path}`, "
            f"then: {restart}",
            "applies to containers created afterwards",
        ),
    )


def _bridge_none(docker: DockerFacts) -> bool:
    command_line = docker.process.command_line if docker.process else []
    return any(arg in ("--bridge=none", "-b=none") for arg in command_line) or "--bridge none" in " ".join(command_line)


@check("docker.network", "Docker default network", facts=("docker", "host"), requires=("docker.daemon",))
def docker_network(facts: Facts, policy: Policy) -> Finding:
    """mldoctor's probe runs with no network, so a broken default bridge never shows in it: every plain
    `docker run` (no --network) of the user's does. Judged from the daemon's own description of the network."""
    docker = facts.docker
    bridge = docker.bridge
    restart = docker_service("restart", docker.flavour, facts.host, docker.process)
    if bridge is None:
        return Finding.skip("no network facts in this report")
    if bridge.error:
        return Finding.error(f"could not inspect the bridge network: {bridge.error}")
    forwarding = [w for w in docker.daemon.warnings if "IPv4 forwarding is disabled" in w]
    if not bridge.found:
        if _bridge_none(docker):
            return Finding.warn(
                "the daemon runs with --bridge=none: `docker run` without --network gets no network",
                fix=f"remove --bridge=none from dockerd's command line, then: {restart}",
            )
        return Finding.fail(
            "the daemon has no default bridge network: `docker run` without --network fails",
            fix=f"{restart}   # dockerd recreates its default networks when it starts",
        )
    if bridge.interface_present is False:
        return Finding.fail(
            f"the default bridge {bridge.interface} is gone: every `docker run` without --network fails with "
            f"'could not find bridge {bridge.interface}'",
            fix=f"{restart}   # dockerd recreates {bridge.interface} when it starts",
            details=(
                "a second dockerd started with --bridge=none in the same network namespace deletes it; give extra "
                "daemons their own (unshare -n)",
            ),
        )
    if forwarding:
        return Finding.warn(
            "IPv4 forwarding is disabled: containers on the bridge cannot reach the network (pip, datasets, NCCL)",
            fix=(
                "echo 'net.ipv4.ip_forward = 1' | sudo tee /etc/sysctl.d/99-docker-forward.conf && "
                f"sudo sysctl --system && {restart}"
            ),
        )
    local = only_local_dns(bridge, docker)
    if local:
        return Finding.warn(
            f"containers on the default bridge get Docker's fallback DNS 8.8.8.8 and 8.8.4.4: {bridge.resolv_conf} "
            f"lists only local resolvers ({', '.join(local)}), which containers cannot reach; where DNS to the "
            "internet is blocked, name lookups in containers fail (pip install, dataset downloads)",
            fix=f'add "dns": [the DNS servers of your network] to {docker.daemon_json()}, then: {restart}'
            "   # resolvectl status (or nmcli dev show) lists them",
        )
    where = "" if bridge.interface_present else " (its interface is in the daemon's own namespace: not seen here)"
    dns = f"; DNS {', '.join(bridge.nameservers)} from {bridge.resolv_conf}" if bridge.nameservers else ""
    return Finding.ok(f"default bridge {bridge.interface or 'network'} {bridge.subnet}".rstrip() + where + dns)


def only_local_dns(bridge: BridgeFacts, docker: DockerFacts) -> list[str]:
    """The nameservers when all of them are on loopback (a dnsmasq on 127.0.0.1, NetworkManager's 127.0.1.1),
    which dockerd drops for default-bridge containers, and the daemon sets no DNS of its own (`dns`, `--dns`)."""
    config = docker.config
    configured = config is not None and (
        "dns" in config.settings or any(a.startswith("--dns") for a in config.command_line)
    )
    if not bridge.nameservers or configured:
        return []
    return bridge.nameservers if all(_loopback(ns) for ns in bridge.nameservers) else []


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


EXPOSED_API = "without encryption"
"""dockerd's own warning for a TCP socket without TLS: anyone who reaches the port is root on the host."""


@check("docker.warnings", "Docker daemon warnings", facts=("docker", "host"), requires=("docker.daemon",))
def docker_warnings(facts: Facts, policy: Policy) -> Finding:
    """`docker info`'s own warnings: an API open to the network is a FAIL (root for anyone who can reach it); the
    others are listed for the support desk."""
    docker = facts.docker
    warnings = list(docker.daemon.warnings)
    exposed = [w for w in warnings if EXPOSED_API in w and "API is accessible" in w]
    if exposed:
        return Finding.fail(
            "the daemon's API is open on the network without TLS: anyone who can reach it is root on this host",
            fix=f'remove the tcp:// listener from dockerd (-H or "hosts" in {docker.daemon_json()}), or protect it '
            "with --tlsverify and client certificates; then: "
            + docker_service("restart", docker.flavour, facts.host, docker.process),
            details=tuple(exposed),
        )
    if not warnings:
        return Finding.ok("none")
    return Finding.ok(f"{len(warnings)} informational", details=tuple(warnings))


def _compose_install(docker: DockerFacts, host: HostFacts) -> str:
    """Compose v2 where this Docker came from: Debian's own docker.io (a `+dfsg` version) has no v2 package beside it
    in Debian 12 (only docker-compose 1.29), and `docker-compose-plugin` exists only in Docker's repository."""
    debian_docker = docker.daemon is not None and "+dfsg" in docker.daemon.server_version
    if debian_docker and distro_family(host) == "debian" and not is_ubuntu(host):
        return (
            f"install Compose v2 as a CLI plugin: {COMPOSE_DOCS}#install-the-plugin-manually"
            "   # Debian's docker.io: Debian 12's own repository has Compose v1 only"
        )
    fix = install(
        host,
        {"debian": "docker-compose-plugin", "rhel": "docker-compose-plugin", "arch": "docker-compose"},
        COMPOSE_DOCS,
    )
    if "docker-compose-plugin" in fix:
        fix += f"   # from Docker's package repository ({COMPOSE_DOCS}); Ubuntu's own: docker-compose-v2"
    return fix


@check("docker.compose", "Docker Compose", facts=("docker", "host"))
def docker_compose(facts: Facts, policy: Policy) -> Finding:
    cli = facts.docker.cli
    if cli.compose_plugin:
        return Finding.ok(f"docker compose {cli.compose_plugin} (plugin)")
    fix = _compose_install(facts.docker, facts.host)
    if cli.compose_standalone and cli.compose_standalone.startswith("1."):
        return Finding.warn(
            f"only docker-compose {cli.compose_standalone}: Compose v1 is end-of-life since 2023",
            fix=fix + "   # Compose v2, as `docker compose`",
        )
    if cli.compose_standalone:
        return Finding.ok(f"docker-compose {cli.compose_standalone} (standalone)")
    return Finding.warn("neither `docker compose` nor `docker-compose` is installed", fix=fix)
