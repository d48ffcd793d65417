"""A private ``redis-server`` for a test session, and how to find a server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

__all__ = ["PrivateRedisServer", "ping", "private_server_or_reason", "required"]

#: How long a starting server may take to answer.
START_TIMEOUT = 20.0


def ping(url: str, timeout: float = 1.0) -> str | None:
    """``None`` if a Redis server answers PING at ``url``, else why not.

    Speaks the protocol on a plain socket, so it needs no client library
    (AUTH and TLS URLs are not probed: they are trusted as given).
    """
    parts = urlsplit(url)
    if parts.scheme != "redis" or parts.password or parts.username:
        return None
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as error:
        return f"no Redis server at {url}: {error}"
    if not reply.startswith((b"+PONG", b"-NOAUTH")):
        return f"what answers at {url} is not Redis: {reply[:32]!r}"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedisServer:
    """A ``redis-server`` of its own on a free loopback port: no persistence,
    its files in a temporary directory, stopped by :meth:`stop`."""

    def __init__(self, executable: str) -> None:
        self.port = _free_port()
        self._directory = tempfile.TemporaryDirectory(prefix="eventspype-redis-")
        self._process = subprocess.Popen(
            [
                executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self._directory.name,
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while (problem := ping(self.url, 0.2)) is not None:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {problem}")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit) and remove its files."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._directory.cleanup()


def private_server_or_reason() -> PrivateRedisServer | str:
    """A started private server, or why there is none."""
    executable = shutil.which("redis-server")
    if executable is None:
        return (
            "no Redis server for the redis_url fixture: set "
            "EVENTSPYPE_TEST_REDIS_URL, or install redis-server to let the "
            "fixture start a private one"
        )
    try:
        return PrivateRedisServer(executable)
    except (OSError, RuntimeError) as error:
        return f"could not start a private redis-server: {error}"


def required() -> bool:
    """Whether a missing server is a failure (``EVENTSPYPE_REQUIRE_REDIS=1``)."""
    return os.environ.get("EVENTSPYPE_REQUIRE_REDIS") == "1"
