"""A docker API client for an endpoint, speaking the daemon's own API version; the one place clients are made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mldoctor.engine.endpoint import Endpoint

MIN_API = "1.24"  # the oldest API docker-py speaks; the daemon is asked for its own before anything else


@dataclass
class Connected:
    """An open client speaking the daemon's API version."""

    client: Any

    def close(self) -> None:
        self.client.close()


def open_client(endpoint: Endpoint, timeout: float, api_version: str | None = None) -> Connected:
    """Connect at the daemon's API version, learnt as the docker CLI learns it: the `API-Version` header of one
    `/_ping` (under a millisecond; `/version` makes the daemon run runc and docker-init, several), or straight away
    with `api_version` when this run asked the daemon already. A daemon whose ping carries no such header is asked
    `/version` instead.

    Every failure to reach the daemon surfaces here as the raw requests/OS exception (or docker-py's APIError for
    an error status), for `classify_error`.
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
    if not api_version:
        probe = _client(APIClient, endpoint, MIN_API, timeout, kwargs)
        try:
            api_version = _pinged_api_version(probe, timeout) or probe.version(api_version=False)["ApiVersion"]
        finally:
            probe.close()
    return Connected(_client(APIClient, endpoint, api_version, timeout, kwargs))


def _client(api_client: Any, endpoint: Endpoint, version: str, timeout: float, kwargs: dict[str, Any]) -> Any:
    """A client; on a unix socket it skips what requests reads from the environment for every request (proxy
    variables and ~/.netrc), which a socket never uses: docker-py's own unix adapter ignores proxies."""
    client = api_client(version=version, timeout=timeout, **kwargs)
    if endpoint.socket_path is not None:
        client.trust_env = False
    return client


def _pinged_api_version(client: Any, timeout: float) -> str | None:
    """The `API-Version` header of the daemon's `/_ping` (docker-py's `ping()` returns only the body). The client is
    a requests session, so the request goes through its adapters (unix socket, TLS, ssh) like any other."""
    from docker.errors import create_api_error_from_http_exception
    from requests.exceptions import HTTPError

    response = client.get(f"{client.base_url}/_ping", timeout=timeout)
    try:
        response.raise_for_status()
    except HTTPError as exc:  # the same APIError docker-py raises for an error status
        raise create_api_error_from_http_exception(exc) from exc
    return response.headers.get("API-Version") or None
