"""A unix socket in front of the real daemon: the tests' way to make a real daemon misbehave in one precise way."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections.abc import Callable


class DaemonProxy:
    """Forwards both ways between a socket of its own and the real daemon's; `request` and `answer` may change what
    passes. Once `frozen` is set it answers nothing, to new connections or old ones, and closes nothing: a daemon
    that hangs mid-run."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "docker.sock")
        self.upstream = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
        self.frozen = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def request(self, data: bytes) -> bytes:
        return data

    def answer(self, data: bytes) -> bytes:
        return data

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, self.request), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.answer), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, change: Callable[[bytes], bytes]) -> None:
        while not self.frozen.is_set():
            try:
                data = source.recv(65536)
            except OSError:
                return
            if self.frozen.is_set():
                return  # frozen: what arrives is never passed on, and nothing is closed
            if not data:
                with contextlib.suppress(OSError):
                    target.shutdown(socket.SHUT_WR)
                return
            try:
                target.sendall(change(data))
            except OSError:  # the other side closed: so does this direction
                return


class HeaderProxy(DaemonProxy):
    """Logs each request's path and, with `strip`, removes the `API-Version` header from the daemon's answers: a
    daemon whose `/_ping` does not say its API version."""

    def __init__(self, directory: str, strip: bool) -> None:
        self.strip, self.requests = strip, []
        super().__init__(directory)

    def request(self, data: bytes) -> bytes:
        self.requests += re.findall(rb"^(?:GET|POST|HEAD|DELETE) (\S+) HTTP", data, re.MULTILINE)
        return data

    def answer(self, data: bytes) -> bytes:
        return re.sub(rb"\r\nApi-Version: [^\r]*", b"", data, flags=re.IGNORECASE) if self.strip else data
