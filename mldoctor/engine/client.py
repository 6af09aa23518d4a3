"""A docker API client for an endpoint, speaking the daemon's own API version; the one place clients are made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mldoctor.engine.endpoint import Endpoint

MIN_API = "1.24"  # the oldest API docker-py speaks; the daemon is asked for its own before anything else


@dataclass
class Connected:
    """An open client and the daemon's `/version` answer, which connecting needed anyway (asked once per run)."""

    client: Any
    version: dict[str, Any]

    def close(self) -> None:
        self.client.close()


def open_client(endpoint: Endpoint, timeout: float, api_version: str | None = None) -> Connected:
    """Connect: one unversioned `/version` call, then a client of the daemon's API version (or straight away with
    `api_version`, when this run asked the daemon already: its `version` is then empty).

    Every failure to reach the daemon surfaces here as the raw requests/OS exception, for `classify_error`.
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
    if api_version:
        return Connected(APIClient(version=api_version, timeout=timeout, **kwargs), {})
    probe = APIClient(version=MIN_API, timeout=timeout, **kwargs)
    try:
        version = probe.version(api_version=False)
    finally:
        probe.close()
    return Connected(APIClient(version=version["ApiVersion"], timeout=timeout, **kwargs), version)
