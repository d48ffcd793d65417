"""How the broker uses the client's connections.

PUBLISH goes on a connection of the client's pool, without the client's overhead.

``redis.Redis.publish`` goes through retries, observability hooks and a pool
check-out per command: about a third of a loopback round trip. This transport
keeps one pooled connection for the broker, sends pre-encoded RESP, and checks
the connection only when it matters (a closed or dirty socket is replaced before
the command is sent, so nothing is sent twice). Failures are never retried:
``publish()`` must raise promptly during an outage, not hang in backoff.

Pub/Sub needs replies as bytes: :func:`non_decoding` gives the listener a twin
of a client that decodes responses.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import ResponseError

__all__ = ["Transport", "non_decoding", "pack_publish"]

_PUBLISH_HEAD = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n"


def pack_publish(channel: bytes, message: bytes) -> bytes:
    """``PUBLISH channel message`` in RESP, ready for the socket."""
    return b"".join(
        (_PUBLISH_HEAD % (len(channel), channel, len(message)), message, b"\r\n")
    )


class Transport:
    """Sends PUBLISH commands, one at a time or many in one round trip.

    Thread-safe. The broker's own connection serves one thread at a time; a
    thread that finds it busy borrows another connection from the pool rather
    than waiting, so concurrent publishers still run in parallel.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool: Any = client.connection_pool
        self._lock = threading.Lock()
        self._connection: Any = None
        self._reused = False  # the kept connection completed a round trip
        self._pid = os.getpid()

    def publish(self, channel: bytes, message: bytes) -> None:
        """PUBLISH one message and wait for Redis to acknowledge it.

        Raises:
            redis.exceptions.ConnectionError: Redis cannot be reached.
            redis.exceptions.TimeoutError: Redis did not answer in
                ``socket_timeout``.
            redis.exceptions.ResponseError: Redis refused the command.
        """
        self._send(pack_publish(channel, message), 1)

    def publish_many(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """PUBLISH every ``(channel, message)`` in one round trip, in order.

        Raises the first error, after reading every reply (the connection stays
        usable); connection errors as in :meth:`publish`.
        """
        if not messages:
            return
        self._send(b"".join([pack_publish(c, m) for c, m in messages]), len(messages))

    def close(self) -> None:
        """Return the broker's connection to the pool."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None and self._pid == os.getpid():
            self._pool.release(connection)

    def _send(self, packed: bytes, replies: int) -> None:
        if not self._lock.acquire(blocking=False):
            connection = self._checkout()
            try:
                _round_trip(connection, packed, replies)
            finally:
                self._pool.release(connection)
            return
        try:
            connection = self._connection
            if connection is None or self._pid != os.getpid():
                # After a fork the inherited socket belongs to the parent.
                self._pid = os.getpid()
                self._reused = False
                connection = self._connection = self._checkout()
            elif self._reused:
                _ensure_clean(connection)
            # After a failure the connection is disconnected and reconnects on
            # send: checking it first would only try to connect twice.
            self._reused = False
            _round_trip(connection, packed, replies)
            self._reused = True
        finally:
            self._lock.release()

    def _checkout(self) -> Any:
        try:
            return self._pool.get_connection()
        except TypeError:  # redis-py < 5.3 requires a command name
            return self._pool.get_connection("PUBLISH")


def _ensure_clean(connection: Any) -> None:
    # A kept connection may have been closed by the server (restart, CLIENT
    # KILL, idle timeout) since the last publish: a readable socket means EOF or
    # stray data. Drop it so send_packed_command reconnects, rather than
    # sending into a dead socket and failing a publish that could succeed.
    try:
        if connection.can_read(timeout=0):
            connection.disconnect()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        connection.disconnect()


def _round_trip(connection: Any, packed: bytes, replies: int) -> None:
    try:
        connection.send_packed_command([packed], check_health=False)
        error: ResponseError | None = None
        for _ in range(replies):
            try:
                connection.read_response()
            except ResponseError as refused:
                error = error or refused
    except BaseException:
        # Replies may be pending on the socket: it cannot be reused.
        connection.disconnect()
        raise
    if error is not None:
        raise error


def non_decoding(client: Any) -> Any:
    """``client``, or a twin on the same server whose replies stay bytes.

    With ``decode_responses=True`` redis-py decodes messages while parsing, and
    a message that is not UTF-8 (garbage on the channel) raises out of
    ``get_message`` as if the connection were broken. Messages must reach the
    envelope validation as bytes. Only plain pools are twinned; others are
    used as they are.
    """
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not kwargs or not kwargs.get("decode_responses"):
        return client
    if type(pool) not in (redis.ConnectionPool, redis.BlockingConnectionPool):
        return client
    twin = redis.ConnectionPool(
        connection_class=pool.connection_class,  # type: ignore[union-attr]
        **{**kwargs, "decode_responses": False},
    )
    return redis.Redis(connection_pool=twin)
