"""How PUBLISH commands reach Redis: the fast path, or the client's own ``publish()``.

``redis.Redis.publish`` goes through the client's retries, observability hooks
and a pool check-out per command: about a third of a loopback round trip. For a
plain ``redis.Redis`` on a plain ``ConnectionPool`` (see
:func:`~_io.connections.fast_path_client`) the broker instead keeps a
connection of its own, with the client's settings, and sends RESP packed by
``_io.resp`` on it (:class:`FastTransport`). That connection has no retry
policy: a failed PUBLISH raises at once rather than being retried with backoff
(redis-py's own policy would also resend a command Redis may have executed).
Every other client, and ``fast_publish=False``, goes through ``client.publish()``
and ``client.pipeline()`` (:class:`ClientTransport`), with whatever the client
does around commands.
"""

from __future__ import annotations

import logging
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.exceptions import RedisClusterException, ResponseError

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._io.connections import (
    connection_recipe,
    fast_path_client,
    lacks_socket_timeout,
)
from eventspype.broker.redis._io.resp import pack_publish

__all__ = [
    "ClientTransport",
    "FastTransport",
    "Transport",
    "make_transport",
    "pack_publish",
]

_logger = logging.getLogger("eventspype.broker.redis")


class Transport(ABC):
    """Sends PUBLISH commands, one at a time or many in one round trip.

    Thread-safe. Errors: ``redis.exceptions.ConnectionError`` (Redis cannot be
    reached), ``TimeoutError`` (it did not answer in time), ``ResponseError``
    (it refused the command); :meth:`publish_many` raises the first error once
    every reply was read.
    """

    #: Whether PUBLISH skips ``client.publish()`` (for tests and ``repr``).
    fast = False

    @abstractmethod
    def publish(self, channel: bytes, message: bytes) -> None:
        """PUBLISH one message and wait for Redis to acknowledge it."""

    @abstractmethod
    def publish_many(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """PUBLISH every ``(channel, message)`` in one round trip, in order."""

    @abstractmethod
    def close(self) -> None:
        """Release what the transport holds (never the user's client)."""


def make_transport(client: Any, *, fast: bool, timeout: float | None) -> Transport:
    """The fast path for plain clients when ``fast``, else the client's methods.

    ``timeout`` bounds the fast path's waits (the client's ``socket_timeout``
    when ``None``, see :func:`~_io.connections.connection_recipe`). Warns when
    publishing through a client that has no timeout at all.
    """
    recipe = connection_recipe(client, timeout) if fast else None
    if recipe is not None and fast_path_client(client):
        return FastTransport(recipe.pool)
    if lacks_socket_timeout(client):
        warnings.warn(
            "the Redis client has no socket_timeout: publish() will wait "
            "forever for a server that stops answering; give the client "
            "socket_timeout (RedisBroker.from_url() does)",
            RuntimeWarning,
            stacklevel=3,  # RedisBroker(...) in the user's code
        )
    return ClientTransport(client)


class ClientTransport(Transport):
    """``client.publish()``, and ``client.pipeline(transaction=False)`` for many.

    A client whose pipelines refuse PUBLISH (``RedisCluster`` raises
    ``RedisClusterException`` while the pipeline is built, before anything is
    sent) publishes a batch one command at a time from then on, and says so
    once in the log. Any other error propagates.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pipelined = True

    def publish(self, channel: bytes, message: bytes) -> None:
        self._client.publish(channel, message)

    def close(self) -> None:
        pass  # the client and its connections are the user's

    def publish_many(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        if not messages:
            return
        if self._pipelined:
            try:
                pipeline = self._client.pipeline(transaction=False)
                for channel, message in messages:
                    pipeline.publish(channel, message)
            except RedisClusterException as error:  # nothing was sent yet
                self._pipelined = False
                _logger.info(
                    "This client's pipelines refuse PUBLISH (%s): batches are "
                    "sent one PUBLISH at a time",
                    error,
                )
            else:
                pipeline.execute()
                return
        for channel, message in messages:
            self._client.publish(channel, message)


class FastTransport(Transport):
    """Pre-encoded PUBLISH on the broker's own pool (see the module docs).

    The broker's kept connection serves one thread at a time; a thread that
    finds it busy borrows another from the same pool rather than waiting, so
    concurrent publishers still run in parallel.
    """

    fast = True

    def __init__(self, new_pool: Callable[[], redis.ConnectionPool]) -> None:
        self._new_pool = new_pool
        self._pool: Any = new_pool()
        self._lock = threading.Lock()
        self._connection: Any = None
        self._reused = False  # the kept connection completed a round trip
        self._closed = False
        register_for_fork(self)

    def publish(self, channel: bytes, message: bytes) -> None:
        self._send(pack_publish(channel, message), 1)

    def publish_many(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        if not messages:
            return
        self._send(b"".join([pack_publish(c, m) for c, m in messages]), len(messages))

    def close(self) -> None:
        """Close every connection; later publishes raise ``RuntimeError``."""
        with self._lock:
            self._closed = True
            self._connection = None
        self._pool.disconnect()

    def _send(self, packed: bytes, replies: int) -> None:
        if not self._lock.acquire(blocking=False):
            self._send_on_borrowed(packed, replies)
            return
        try:
            # Checked under the lock: a publish racing close() must not open
            # a connection that nobody would close.
            if self._closed:
                raise RuntimeError("RedisBroker is closed")
            connection = self._connection
            if connection is None:
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

    def _send_on_borrowed(self, packed: bytes, replies: int) -> None:
        if self._closed:
            raise RuntimeError("RedisBroker is closed")
        connection = self._checkout()
        try:
            _round_trip(connection, packed, replies)
        finally:
            self._pool.release(connection)
            self._disconnect_if_closed(connection)

    def _disconnect_if_closed(self, connection: Any) -> None:
        if self._closed:  # close() ran meanwhile and missed this connection
            connection.disconnect()

    def _checkout(self) -> Any:
        try:
            return self._pool.get_connection()
        except TypeError:  # redis-py < 5.3 requires a command name
            return self._pool.get_connection("PUBLISH")

    def _after_fork_in_child(self) -> None:
        # The kept connection's socket is the parent's. The inherited pool is
        # left alone, not reset: a parent thread may have held its lock at the
        # fork (redis-py's reset() takes that lock, and from 5.3 on never
        # replaces it), and the child would wait on it forever.
        self._pool = self._new_pool()
        self._lock = threading.Lock()
        self._connection = None
        self._reused = False


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
