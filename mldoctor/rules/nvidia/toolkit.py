"""The NVIDIA Container Toolkit: installed, its hook found by the daemon in use, the nvidia runtime registered, CDI
specs current, rootless cgroups; Podman's CDI-only path."""

from __future__ import annotations

from mldoctor.facts import Facts
from mldoctor.facts.docker import DockerFacts
from mldoctor.facts.host import HostFacts
from mldoctor.facts.nvidia import CdiSpec, NvidiaFacts
from mldoctor.fixes import nvidia as fixes
from mldoctor.fixes.docker import docker_service
from mldoctor.model import Finding, Problem, Status
from mldoctor.policy import Policy
from mldoctor.rules.nvidia import driver as _driver  # noqa: F401  (registers nvidia.gpu and nvidia.driver, required below)
from mldoctor.rules.registry import check
from mldoctor.text import version_tuple

NO_GPU_DRIVER = "`docker run --gpus all` fails with 'could not select device driver \"\" with capabilities: [[gpu]]'"
"""What users see when dockerd has no GPU driver registered: the toolkit is missing, or came after dockerd."""


@check(
    "nvidia.toolkit",
    "NVIDIA Container Toolkit",
    facts=("nvidia", "docker", "host"),
    requires=("nvidia.gpu", "nvidia.driver"),
)
def nvidia_toolkit(facts: Facts, policy: Policy) -> Finding:
    """Judged against the daemon that runs (its flavour, its daemon.json), or against its configuration when it
    is down: a GPU host whose daemon is stopped still has a toolkit to get right."""
    nv, docker, host = facts.nvidia, facts.docker, facts.host
    toolkit = nv.toolkit
    if docker.flavour == "desktop" and not host.wsl:
        return Finding.fail(
            "Docker Desktop on Linux cannot give containers NVIDIA GPUs (the toolkit does not support it)",
            fix="docker context use default   # Docker Engine on this host, with the NVIDIA Container Toolkit",
        )
    if not docker.connection.ok and not docker.dockerd_installed and docker.connection.error_kind == "missing_socket":
        return Finding.skip("skipped: Docker is not installed here (see docker.daemon)", blocked_by="docker.daemon")
    if not toolkit.installed:
        return Finding.fail(
            f"the NVIDIA Container Toolkit is not installed: {NO_GPU_DRIVER}",
            fix=fixes.toolkit_install(host) + "\n" + fixes.configure_toolkit(docker, host),
        )
    if docker.flavour == "podman":
        return _podman(nv, docker)
    problems = _registration(nv, docker, host) + _cdi_problems(nv, Status.WARN) + _rootless_cgroups(nv, docker)
    details = tuple(f"{b.name}: {b.path} {b.version or ''}".rstrip() for b in toolkit.binaries if b.path) + tuple(
        f"CDI spec {s.path}: driver {s.driver_version or '?'}" for s in toolkit.cdi_specs if not s.error
    )
    return Finding.combine(
        problems, f"NVIDIA Container Toolkit {toolkit.version or ''}, registered with Docker", details
    )


def _rootless_cgroups(nv: NvidiaFacts, docker: DockerFacts) -> list[Problem]:
    """A rootless daemon may not program the device cgroup, so nvidia-container-cli must be told not to try."""
    if docker.flavour != "rootless" or nv.toolkit.no_cgroups is True:
        return []
    return [
        Problem(
            Status.FAIL,
            f"rootless Docker, and no-cgroups is not set in {nv.toolkit.config_path}: GPU containers fail with "
            "'bpf_prog_query(BPF_CGROUP_DEVICE) failed: operation not permitted'",
            "sudo nvidia-ctk config --set nvidia-container-cli.no-cgroups --in-place"
            "   # breaks rootful Docker's GPU containers on this host; use CDI to serve both",
        )
    ]


def _registration(nv: NvidiaFacts, docker: DockerFacts, host: HostFacts | None) -> list[Problem]:
    """dockerd offers `--gpus` only if nvidia-container-runtime-hook was on its PATH when it started; the nvidia
    runtime (for `--runtime=nvidia` and compose `runtime: nvidia`) only if its daemon.json names it."""
    hook = nv.toolkit.binary("nvidia-container-runtime-hook")
    restart = docker_service("restart", docker.flavour, host)
    registered, where = _runtime_registered(docker)
    problems = []
    if hook is None:
        problems.append(
            Problem(
                Status.FAIL,
                f"no nvidia-container-runtime-hook on PATH: {NO_GPU_DRIVER}",
                fixes.toolkit_install(host).splitlines()[-1]
                + f" && {restart}   # the hook is in nvidia-container-toolkit",
            )
        )
    elif _hook_newer_than_dockerd(nv, docker):
        problems.append(_late_hook(registered, restart))
    if not registered:
        problems.append(
            Problem(
                Status.WARN,
                f"the nvidia runtime is not registered with {where}: `--runtime=nvidia` and compose "
                "`runtime: nvidia` fail with 'unknown or invalid runtime name: nvidia'",
                fixes.configure_toolkit(docker, host),
            )
        )
    return problems


def _runtime_registered(docker: DockerFacts) -> tuple[bool, str]:
    """Whether the nvidia runtime is registered, asking the running daemon, else reading its daemon.json."""
    if docker.daemon is not None:
        return "nvidia" in docker.daemon.runtimes, "the running daemon"
    runtimes = (docker.config.settings.get("runtimes") if docker.config else None) or {}
    where = docker.daemon_json()
    return "nvidia" in runtimes, f"{where} (the daemon is not reachable to ask)"


def _hook_newer_than_dockerd(nv: NvidiaFacts, docker: DockerFacts) -> bool:
    hook, started = nv.toolkit.binary("nvidia-container-runtime-hook"), nv.toolkit.dockerd_started
    return bool(docker.daemon is not None and started and hook and hook.installed_at and hook.installed_at > started)


def _late_hook(registered: bool, restart: str) -> Problem:
    """The hook's file is newer than the running dockerd. With the nvidia runtime not registered either, nothing
    has been applied since the install: dockerd has no GPU driver, FAIL. With it registered, the toolkit was most
    likely upgraded in place (the file is new, but a hook was there when dockerd started): WARN, restart to be
    sure."""
    if not registered:
        return Problem(
            Status.FAIL, f"the toolkit was installed after dockerd started: {NO_GPU_DRIVER} until it restarts", restart
        )
    return Problem(
        Status.WARN,
        "the container hook was replaced after dockerd started (a toolkit upgrade?): dockerd uses what it found "
        "when it started",
        restart,
    )


def _cdi_problems(nv: NvidiaFacts, status: Status) -> list[Problem]:
    """A CDI spec lists the driver's files by their versioned names: after a driver upgrade it points at files
    that no longer exist, and CDI requests (`--device nvidia.com/gpu=all`) fail with 'unresolvable CDI devices'.
    FAIL for Podman, whose only GPU path is CDI; WARN for Docker, whose `--gpus` does not read the specs."""
    driver = nv.nvml.driver_version or nv.kernel.module_version
    return [
        Problem(
            status,
            f"{spec.path} was generated for driver {spec.driver_version}, the driver is {driver}: CDI GPU requests "
            "fail with 'unresolvable CDI devices'",
            f"sudo nvidia-ctk cdi generate --output={spec.path}",
        )
        for spec in nv.toolkit.cdi_specs
        if driver and spec.driver_version and spec.driver_version != driver
    ]


def _podman(nv: NvidiaFacts, docker: DockerFacts) -> Finding:
    """Podman reaches GPUs through CDI only."""
    specs = [s for s in nv.toolkit.cdi_specs if not s.error]
    if not specs:
        return Finding.fail(
            "Podman gives containers GPUs through CDI, and there is no NVIDIA CDI spec",
            fix="sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"
            "   # then: podman run --device nvidia.com/gpu=all ...",
        )
    problems = _cdi_problems(nv, Status.FAIL) + _newer_than_podman(specs, docker)
    return Finding.combine(problems, f"NVIDIA CDI spec {specs[0].path} for Podman", ())


PODMAN_READS_CDI_0_7 = 5
"""Podman 4 (4.9.3, Ubuntu 24.04's) refuses a 0.7.0 spec ("unknown field additionalGids"), which
nvidia-container-toolkit 1.19.1 writes by default; Podman 5.7.0 reads it (NVIDIA/nvidia-container-toolkit#1860,
#1940). The major version is the line drawn: which 5.x first reads 0.7.0 is not recorded here."""


def _newer_than_podman(specs: list[CdiSpec], docker: DockerFacts) -> list[Problem]:
    podman = version_tuple(docker.daemon.server_version) if docker.daemon else ()
    if not podman or podman[0] >= PODMAN_READS_CDI_0_7:
        return []
    return [
        Problem(
            Status.FAIL,
            f"{spec.path} is CDI spec {spec.cdi_version}, newer than Podman {docker.daemon.server_version} reads "
            "(0.7.0 added additionalGids): `--device nvidia.com/gpu=all` fails with 'unresolvable CDI devices'",
            "upgrade Podman to 5 (5.7.0 reads CDI spec 0.7.0), or keep Podman 4 with nvidia-container-toolkit 1.18.x "
            f"(it writes older specs), then:\nsudo nvidia-ctk cdi generate --output={spec.path}",
        )
        for spec in specs
        if spec.cdi_version and version_tuple(spec.cdi_version) >= (0, 7)
    ]
