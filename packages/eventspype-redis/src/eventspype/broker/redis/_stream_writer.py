"""How a RedisStreamBroker appends events: XADD, one at a time or pipelined.

Also the options shared by the constructor and ``from_url`` (their checks, the
default consumer name), so that the broker module stays about the broker.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventspype.broker.redis._dead_letters import EVENT_FIELD

__all__ = ["StreamWriter", "check_options", "default_consumer_name", "url_client"]

_FIELD = EVENT_FIELD


class StreamWriter:
    """XADD ``{event: envelope}`` with ``MAXLEN ~ maxlen`` on the broker's client.

    Thread-safe (the client's pool is). Errors are the client's: a
    ``ConnectionError`` or ``TimeoutError`` when Redis cannot be reached,
    ``ResponseError`` when it refuses (an ACL, a key of another type).
    """

    __slots__ = ("_client", "_trim")

    def __init__(self, client: Any, maxlen: int | None) -> None:
        self._client = client
        self._trim: tuple[Any, ...] = () if maxlen is None else ("MAXLEN", "~", maxlen)

    def add(self, key: bytes, message: bytes) -> None:
        """Append one entry and wait for Redis to have it."""
        self._client.execute_command(
            "XADD", key, *self._trim, "*", EVENT_FIELD, message
        )

    def add_many(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Append every ``(key, message)`` in one round trip, in order."""
        pipeline = self._client.pipeline(transaction=False)
        for key, message in messages:
            pipeline.execute_command(
                "XADD", key, *self._trim, "*", EVENT_FIELD, message
            )
        pipeline.execute()


def default_consumer_name() -> str:
    """``<host>:<pid>:<random>``: unique per process, readable in XINFO."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def check_options(
    start: str,
    claim_idle: float,
    max_deliveries: int,
    prefetch: int,
    maxlen: int | None,
    reconnect_delay: tuple[float, float],
) -> None:
    """Raise ``ValueError`` for an option out of range."""
    if start not in ("new", "all"):
        raise ValueError(f"start must be 'new' or 'all', got {start!r}")
    if not claim_idle > 0:
        raise ValueError(f"claim_idle must be > 0, got {claim_idle}")
    if max_deliveries < 1 or prefetch < 1:
        raise ValueError(
            f"max_deliveries and prefetch must be at least 1, got {max_deliveries} "
            f"and {prefetch}"
        )
    if maxlen is not None and maxlen < 1:
        raise ValueError(f"maxlen must be at least 1 or None, got {maxlen}")
    first, longest = reconnect_delay
    if not 0 < first <= longest:
        raise ValueError(
            f"reconnect_delay must be 0 < first <= longest, got {reconnect_delay}"
        )


def url_client(
    url: str,
    socket_timeout: float,
    socket_connect_timeout: float,
    client_options: Mapping[str, Any] | None,
) -> redis.Redis:
    """The client ``from_url`` makes: timeouts, keepalive, no retries.

    ``client_options`` win over these defaults.
    """
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
        **(client_options or {}),
    }
    return redis.Redis.from_url(url, **options)
