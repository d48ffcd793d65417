"""How ``AsyncRedisBroker``'s writer puts PUBLISH commands on the wire.

Two kinds, one interface (:class:`Sender`): :meth:`~Sender.write` sends a batch
and :meth:`~Sender.read_replies` reads its replies, so that the writer can send
the next batch while the replies of the previous one are on their way.

* :class:`ConnectionSender` (plain ``redis.asyncio.Redis`` clients): pre-encoded
  PUBLISH commands on one connection of the broker's own, with the client's
  settings, no retry policy and a timeout (see ``_io.connections``).
* :class:`ClientSender` (any other client, ``fast_publish=False``):
  ``client.pipeline(transaction=False)``, a whole round trip in ``write``.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import redis.exceptions
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import ResponseError

from eventspype.broker.redis._io.aio_connections import (
    fast_path_client,
    own_connection_options,
)
from eventspype.broker.redis._io.connections import lacks_socket_timeout
from eventspype.broker.redis._io.transport import pack_publish

__all__ = [
    "ClientSender",
    "ClusterSender",
    "ConnectionSender",
    "Sender",
    "make_sender",
]

Messages = Sequence[tuple[bytes, bytes]]


class Sender(Protocol):
    """What the writer needs from a transport (errors as ``Transport``'s).

    ``generation`` changes whenever the connection is dropped: replies of
    commands written in an earlier generation are lost with it.
    """

    generation: int

    async def write(self, messages: Messages) -> None:
        """Send ``(channel, message)`` pairs as PUBLISH commands, in order."""

    async def read_replies(self, count: int) -> None:
        """Read the replies of the oldest ``count`` commands written.

        Raises the first ``ResponseError`` once all ``count`` are read.
        """

    async def drop_if_stale(self) -> None:
        """Before writing after a pause: drop a connection the server closed."""

    def write_now(self, channel: bytes, message: bytes) -> bool:
        """Put one PUBLISH on the wire now, without waiting, if that is safe.

        Returns whether it did: only when the connection is open, not closed
        by the server and has nothing waiting to be sent (so no drain is
        owed); otherwise the caller queues the message for :meth:`write`.
        """

    async def close(self) -> None:
        """Release what the sender holds (never the user's client)."""


def make_sender(client: Any, *, fast: bool, timeout: float | None) -> Sender:
    """A :class:`ConnectionSender` for plain clients when ``fast``, else the client's.

    A ``redis.asyncio`` ``RedisCluster`` gets a :class:`ClusterSender` (SPUBLISH).

    ``timeout`` bounds the broker's own connection (the client's
    ``socket_timeout`` when ``None``). Warns when publishing through a client
    that has no timeout at all.
    """
    if isinstance(client, AsyncRedisCluster):
        return ClusterSender(client)
    if fast and fast_path_client(client):
        connection_class, options = own_connection_options(client, timeout)
        return ConnectionSender(connection_class(**options))
    if lacks_socket_timeout(client):
        warnings.warn(
            "the Redis client has no socket_timeout: the writer will wait "
            "forever for a server that stops answering; give the client "
            "socket_timeout (AsyncRedisBroker.from_url() does)",
            RuntimeWarning,
            stacklevel=3,  # AsyncRedisBroker(...) in the user's code
        )
    return ClientSender(client)


class ConnectionSender:
    """Pre-encoded PUBLISH on one connection of the broker's own.

    After a failure the connection is dropped (replies may be pending on it)
    and the next :meth:`write` opens a new one.
    """

    #: Encodes one ``(channel, message)`` for the socket (the Streams broker's
    #: sender packs an XADD instead).
    pack: Any = staticmethod(pack_publish)

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.generation = 0

    async def write(self, messages: Messages) -> None:
        connection = self._connection
        pack = self.pack
        packed = b"".join([pack(c, m) for c, m in messages])
        try:
            await connection.send_packed_command(packed, check_health=False)
        except BaseException:
            await self.drop()
            raise

    async def read_replies(self, count: int) -> None:
        connection = self._connection
        refused: ResponseError | None = None
        try:
            for _ in range(count):
                try:
                    await connection.read_response()
                except ResponseError as error:
                    refused = refused or error
        except BaseException:
            await self.drop()
            raise
        if refused is not None:
            raise refused

    def write_now(self, channel: bytes, message: bytes) -> bool:
        # redis-py has no synchronous, non-blocking write: send_packed_command
        # always awaits the drain (and a timeout around it), which costs
        # ``publish()`` a loop turn through the writer task before anything
        # leaves. So this reads the connection's private ``_reader`` and
        # ``_writer`` (the asyncio streams, in redis-py 5.0 to 8.x) and uses
        # only their public API. Anything unexpected means "not now": the
        # writer task sends the message instead, the slow but supported way.
        # tests/redis/test_async_broker_writer.py checks that these attributes
        # still exist and that the fast path is taken, so a redis-py change is
        # caught rather than silently slower.
        connection = self._connection
        stream = getattr(connection, "_writer", None)
        reader = getattr(connection, "_reader", None)
        if not isinstance(stream, asyncio.StreamWriter) or not isinstance(
            reader, asyncio.StreamReader
        ):
            return False
        transport = stream.transport
        if (
            reader.at_eof()  # the server closed it: the writer reconnects
            or transport.is_closing()
            or transport.get_write_buffer_size()  # a drain may be owed
        ):
            return False
        try:
            stream.write(self.pack(channel, message))
        except Exception:  # e.g. RuntimeError after write_eof: the slow way
            return False
        return True

    async def drop_if_stale(self) -> None:
        """Drop an idle connection the server closed, before writing on it.

        Between batches nothing is expected on the socket: readable means the
        server closed it (restart, CLIENT KILL, idle timeout) or stray data.
        Writing into it would fail a batch that a new connection could send.
        """
        connection = self._connection
        if not getattr(connection, "is_connected", False):
            return
        check = getattr(connection, "can_read", None)
        if check is None:  # redis-py < 8
            check = connection.can_read_destructive
        try:
            stale = await check()
        except (redis.exceptions.RedisError, OSError):
            stale = True
        if stale:
            await self.drop()

    async def drop(self) -> None:
        """Disconnect; the next write reconnects."""
        self.generation += 1
        with contextlib.suppress(Exception):
            await self._connection.disconnect(nowait=True)

    async def close(self) -> None:
        await self.drop()


class ClientSender:
    """``client.pipeline(transaction=False)``: the client's own machinery.

    :meth:`write` is the whole round trip (a pipeline sends and reads at
    once), so batches do not overlap; :meth:`read_replies` has nothing left.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self.generation = 0

    async def write(self, messages: Messages) -> None:
        pipeline = self._client.pipeline(transaction=False)
        for channel, message in messages:
            self.queue(pipeline, channel, message)
        await pipeline.execute()

    def queue(self, pipeline: Any, channel: bytes, message: bytes) -> None:
        """Put the command for one message in ``pipeline`` (the Streams
        broker's sender puts an XADD)."""
        pipeline.publish(channel, message)

    async def read_replies(self, count: int) -> None:
        return None

    async def drop_if_stale(self) -> None:
        return None

    def write_now(self, channel: bytes, message: bytes) -> bool:
        return False  # the client's pipeline has no synchronous write

    async def close(self) -> None:
        return None  # the client is the user's


class ClusterSender(ClientSender):
    """SPUBLISH through a ``redis.asyncio`` ``RedisCluster``, in its pipeline.

    Each event goes to the shard that owns its channel's slot (and no
    further); the pipeline groups a batch by node, keeping the order per
    node. The client's routing, retries and slot-map refreshes apply.
    """

    async def write(self, messages: Messages) -> None:
        pipeline = self._client.pipeline()
        for channel, message in messages:
            pipeline.execute_command("SPUBLISH", channel, message)
        await pipeline.execute()
