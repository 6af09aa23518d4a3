"""What a failure to reach the daemon means: requests and urllib3 bury the OS error in args and reasons; this
digs it out and names the cause, so each cause gets its own fix."""

from __future__ import annotations

import errno
import socket
from typing import Any


def exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception with everything it wraps (args, causes, contexts, urllib3's `reason`)."""
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
    """missing_socket, refused, timeout, permission, tls, ssh_no_paramiko, bad_host, unreachable, api_error or
    other."""
    import ssl

    import requests

    chain = exception_chain(exc)
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


def describe(exc: BaseException, limit: int = 400) -> str:
    """The error's text for a report: the daemon's own explanation when it gave one, bounded."""
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc) or type(exc).__name__
    return text if len(text) < limit else text[:limit] + "..."
