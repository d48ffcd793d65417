"""What every command shares: the server, the prefix, the output mode.

The connection is opened on first use, so ``--help`` and ``--version`` work
without a server. A server with cluster mode on (``INFO cluster``) is reached
through a ``RedisCluster`` client, so the same URL works against one node of
a cluster or a single server. Errors a user can act on become
:class:`click.ClickException` with one line (see :func:`user_error`).
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import NoPermissionError
from redis.retry import Retry

from eventspype.broker.redis import (
    StreamAdmin,
    UnknownChannel,
    UnknownGroup,
)
from eventspype.cli.output import safe

__all__ = ["DEFAULT_URL", "Session", "redact", "user_error"]

#: The server when neither ``--url`` nor ``EVENTSPYPE_REDIS_URL`` says one.
DEFAULT_URL = "redis://localhost:6379/0"

#: Errors worth one line and a non-zero exit, never a traceback.
EXPECTED = (redis.RedisError, OSError, LookupError, ValueError)


def redact(url: str) -> str:
    """``url`` without its password, fit to be printed."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}:***@" if parts.username else ":***@"
        return urlunsplit(parts._replace(netloc=user + host))
    except ValueError:
        return "<unparsable URL>"


def user_error(error: BaseException, url: str) -> click.ClickException:
    """One line that says what went wrong and, where it can, what to do."""
    where = redact(url)
    message: str
    if isinstance(error, redis.AuthenticationError):
        message = f"Redis at {where} refused the credentials: {_first_line(error)}"
    elif isinstance(error, NoPermissionError):
        message = f"Redis at {where} denied it (ACL): {_first_line(error)}"
    elif isinstance(error, (redis.ConnectionError, redis.TimeoutError, OSError)):
        message = f"cannot reach Redis at {where}: {_first_line(error)}"
    elif isinstance(error, (UnknownChannel, UnknownGroup)):
        message = _first_line(error)
    elif isinstance(error, redis.RedisError):
        message = f"Redis at {where} answered: {_first_line(error)}"
    else:
        message = _first_line(error)
    return click.ClickException(message)  # exit status 1


def _first_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, LookupError) and text.startswith(("'", '"')):
        text = text[1:-1]  # KeyError quotes its message
    # Server replies are text from elsewhere too: escaped like everything shown.
    return safe(text.splitlines()[0]) if text else type(error).__name__


class Session:
    """The options of the ``eventspype`` group; a client on first use."""

    def __init__(self, url: str, prefix: str, json_output: bool) -> None:
        self.url = url
        self.prefix = prefix
        self.json = json_output
        self._client: Any = None
        self._admin: StreamAdmin | None = None

    @property
    def client(self) -> Any:
        """A ``redis.Redis``, or a ``RedisCluster`` when the server is a cluster node.

        Raises:
            ValueError: the URL is not a Redis URL.
            redis.RedisError: the server cannot be reached.
        """
        if self._client is None:
            options: dict[str, Any] = {
                "socket_timeout": 5.0,
                "socket_connect_timeout": 2.0,
                "retry": Retry(NoBackoff(), 0),
            }
            plain = redis.Redis.from_url(self.url, **options)
            try:
                cluster = _cluster_enabled(plain)
            except BaseException:
                plain.close()
                raise
            if cluster:
                plain.close()
                options.pop("retry")
                self._client = RedisCluster.from_url(self.url, **options)
            else:
                self._client = plain
        return self._client

    @property
    def cluster(self) -> bool:
        """Whether :attr:`client` is a ``RedisCluster``."""
        return isinstance(self.client, RedisCluster)

    @property
    def admin(self) -> StreamAdmin:
        """The read-only view of the streams under the prefix."""
        if self._admin is None:
            self._admin = StreamAdmin(self.client, self.prefix)
        return self._admin

    def close(self) -> None:
        """Close what was opened (nothing, if no command needed a server)."""
        if self._admin is not None:
            self._admin.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()


def _cluster_enabled(client: redis.Redis) -> bool:
    """``INFO cluster`` says so; a server that refuses INFO (ACL) is taken as single."""
    try:
        info = client.info("cluster")
    except redis.ResponseError:
        client.ping()  # still reachable? else that is the error to show
        return False
    return bool(int(info.get("cluster_enabled", 0)))
