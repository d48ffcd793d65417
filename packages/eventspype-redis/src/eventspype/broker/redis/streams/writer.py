"""How a RedisStreamBroker appends events: XADD, one at a time or pipelined.

Also the options shared by the constructor and ``from_url`` (their checks, the
default consumer name), so that the broker module stays about the broker.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import redis

from eventspype.broker.redis._io.connections import connection_recipe, fast_path_client
from eventspype.broker.redis._io.resp import CommandPacker
from eventspype.broker.redis._io.transport import FastTransport
from eventspype.broker.redis.streams.dead_letters import EVENT_FIELD

__all__ = [
    "StreamWriter",
    "check_options",
    "check_stream_options",
    "default_consumer_name",
    "own_pool",
]

_FIELD = EVENT_FIELD


class StreamWriter:
    """XADD ``{event: envelope}`` with ``MAXLEN ~ maxlen``.

    For a plain ``redis.Redis`` the commands are pre-encoded and sent on the
    broker's own connection (RedisBroker's fast path, see ``_io.transport``);
    other clients go through ``execute_command`` and ``pipeline()``.
    Thread-safe. Errors are the client's: ``ConnectionError`` or
    ``TimeoutError`` when Redis cannot be reached, ``ResponseError`` when it
    refuses (an ACL, a key of another type).
    """

    __slots__ = ("_client", "_fast", "_packer", "_trim")

    def __init__(self, client: Any, maxlen: int | None) -> None:
        self._client = client
        self._trim: tuple[Any, ...] = () if maxlen is None else ("MAXLEN", "~", maxlen)
        trim = [str(argument).encode() for argument in self._trim]
        self._packer = CommandPacker((b"XADD",), (*trim, b"*", _FIELD))
        recipe = connection_recipe(client, None)
        self._fast: FastTransport | None = (
            FastTransport(recipe.pool)
            if recipe is not None and fast_path_client(client)
            else None
        )

    def add(self, key: bytes, message: bytes) -> None:
        """Append one entry and wait for Redis to have it."""
        if self._fast is not None:
            self._fast._send(self._packer.pack(key, message), 1)
        else:
            self._client.execute_command("XADD", key, *self._trim, "*", _FIELD, message)

    def add_many(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Append every ``(key, message)`` in one round trip, in order."""
        if self._fast is not None:
            packed = b"".join([self._packer.pack(k, m) for k, m in messages])
            self._fast._send(packed, len(messages))
            return
        pipeline = self._client.pipeline(transaction=False)
        for key, message in messages:
            pipeline.execute_command("XADD", key, *self._trim, "*", _FIELD, message)
        pipeline.execute()

    def close(self) -> None:
        """Close the fast path's connections (never the client's)."""
        if self._fast is not None:
            self._fast.close()


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


def check_stream_options(
    group: str,
    consumer: str | None,
    claim_interval: float,
    retry_delay: tuple[float, float],
    dead_letter_maxlen: int | None = None,
) -> None:
    """Raise ``ValueError`` for a consumer option out of range."""
    if dead_letter_maxlen is not None and dead_letter_maxlen < 1:
        raise ValueError(
            f"dead_letter_maxlen must be at least 1 or None, got {dead_letter_maxlen}"
        )
    if not group:
        raise ValueError("group must be a non-empty name")
    if consumer is not None and not consumer:
        raise ValueError("consumer must be a non-empty name or None")
    if not claim_interval > 0:
        raise ValueError(f"claim_interval must be > 0, got {claim_interval}")
    first, longest = retry_delay
    if not 0 < first <= longest:
        raise ValueError(f"retry_delay must be 0 < first <= longest, got {retry_delay}")


def own_pool(client: Any, timeout: float | None = None) -> redis.ConnectionPool:
    """A pool of the broker's own, with connections like the client's.

    Raises:
        TypeError: the client has no connection pool to copy (and is not a
            ``RedisCluster``, which the broker handles per node).
    """
    recipe = connection_recipe(client, timeout)
    if recipe is None:
        raise TypeError(
            "RedisStreamBroker needs a redis.Redis (a client with a connection "
            f"pool) or a redis.cluster.RedisCluster; got {type(client).__name__}"
        )
    return recipe.pool()
