"""Where the docker CLI would connect, and why: `DOCKER_HOST`, else the current context (`DOCKER_CONTEXT` or
`currentContext` in ~/.docker/config.json), else the default socket."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DEFAULT_SOCKET = "/var/run/docker.sock"


@dataclass
class Endpoint:
    """Where the docker CLI would connect and what chose it (DOCKER_HOST, a context, the default); `error` says why
    it could not be resolved."""

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


def resolve_endpoint(environ: dict[str, str] | None = None) -> Endpoint:
    """Where the docker CLI would connect (never raises: errors, a missing docker SDK too, are recorded)."""
    env = os.environ if environ is None else environ
    try:
        return _resolve(env)
    except ImportError as exc:  # a broken install; the host-side checks that read docker facts still run
        return Endpoint(
            url=env.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}", error=str(exc), error_kind="sdk_missing"
        )


def _resolve(env: os._Environ[str] | dict[str, str]) -> Endpoint:
    from docker.context import ContextAPI
    from docker.context.config import get_current_context_name
    from docker.errors import DockerException, TLSParameterError
    from docker.utils import kwargs_from_env, parse_host

    if env.get("DOCKER_HOST"):
        endpoint = Endpoint(url=without_password(env["DOCKER_HOST"]), source="DOCKER_HOST")
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
        endpoint.url, endpoint.tls = without_password(context.Host or ""), bool(context.TLSConfig)
    try:
        parse_host(endpoint.url, tls=endpoint.tls)
    except DockerException as exc:
        endpoint.error, endpoint.error_kind = str(exc), "bad_host"
    return endpoint


def without_password(url: str) -> str:
    """Facts end up in reports and tickets: keep a user name, never a password embedded in an address."""
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", url)
