"""What the asyncio listener's task runs on a connection: read it, answer it.

The reading half of :class:`~pubsub.aio_listener.AsyncListener` (whose docs
say how the task is run and replaced): it reads replies, hands each message
to the broker's ``deliver`` and every other reply, and every quiet spell, to
the :class:`~pubsub.protocol.PubSubProtocol`, and does what that decides
(PING, give the connection up). On a real redis-py connection it cuts the
replies out of the socket's bytes itself (:class:`~_io.push_reader.PushReader`:
one read for every message that arrived); on anything else (fakeredis) it
uses the connection's parser.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

import redis.exceptions

from eventspype.broker.redis._io.push_reader import (
    MAX_BULK,
    Error,
    PushReader,
    read_within,
)
from eventspype.broker.redis._io.resp_reader import reads_faster
from eventspype.broker.redis.pubsub.link import Reply, _normalize
from eventspype.broker.redis.pubsub.protocol import Command, PubSubProtocol
from eventspype.broker.redis.pubsub.shard_dialect import ShardDialect

__all__ = ["AsyncReader", "Deliver"]

#: ``deliver(channel, data)``: the broker's handler for one Pub/Sub message.
Deliver = Callable[[bytes, Any], None]


class AsyncReader:
    """The reading half of the asyncio listener (state set by ``AsyncListener``)."""

    _loop: asyncio.AbstractEventLoop
    _proto: PubSubProtocol
    _lock: threading.Lock
    _send_lock: asyncio.Lock
    _progress: asyncio.Event
    _stopping: bool
    _dialect: ShardDialect | None
    _deliver: weakref.WeakMethod[Deliver]

    async def _send(self, connection: Any, commands: list[Command]) -> None:
        raise NotImplementedError

    async def _read(self, connection: Any) -> None:
        """Read and handle replies until the connection fails or is unused."""
        if reads_faster(connection):
            await self._read_fast(connection, connection._reader)
            return
        # fakeredis, hiredis, or a redis-py whose connections changed: its parser.
        timeout = self._proto.health_check_interval
        while not self._stopping:
            try:
                response = await connection.read_response(
                    timeout=timeout, disconnect_on_error=False, push_request=True
                )
            except redis.exceptions.ResponseError as error:
                if self._dialect is not None:
                    self._dialect.check_error(str(error))
                response = error  # refuses one command; the others go on
            if response is None:  # quiet: the protocol's health rule
                timeout = await self._quiet(connection)
                continue
            if self._dialect is not None:
                response = self._dialect.reply(response)
            reply = _normalize(response)
            if reply is not None and not self._handle(*reply):
                return

    async def _read_fast(self, connection: Any, reader: asyncio.StreamReader) -> None:
        """:meth:`_read` on the connection's bytes, cut by :class:`PushReader`.

        The connection's own stream (a private attribute of redis-py's
        connections, 5.0 to 8.x; anything else takes the parser's way): one
        read for every message that arrived, instead of redis-py's four to
        six awaits per message. The handshake is redis-py's, done before.
        """
        push = PushReader(MAX_BULK)
        dialect = self._dialect
        parser = getattr(connection, "_parser", None)
        parse_error = getattr(parser, "parse_error", redis.exceptions.ResponseError)
        timeout = self._proto.health_check_interval
        while not self._stopping:
            for value in push.replies():
                reply: Reply | None
                if isinstance(value, Error):
                    if dialect is not None:
                        dialect.check_error(value)
                    reply = (b"error", None, parse_error(str(value)))
                else:
                    reply = _normalize(
                        value if dialect is None else dialect.reply(value)
                    )
                if reply is not None and not self._handle(*reply):
                    return
            try:
                data = await read_within(reader, timeout)
            except asyncio.TimeoutError:  # quiet: the protocol's health rule
                timeout = await self._quiet(connection)
                continue
            if not data:
                raise redis.exceptions.ConnectionError("Redis closed the connection")
            push.feed(data)

    async def _quiet(self, connection: Any) -> float:
        """Nothing came: apply the health rule; the next read's timeout."""
        proto = self._proto
        now = self._loop.time()
        with self._lock:
            verdict = proto.tick(now)
            timeout = max(proto.wait_time(now), 0.01)
        if verdict == "dead":
            raise TimeoutError("no reply to PING")
        if verdict == "ping":
            async with self._send_lock:
                with self._lock:
                    ping = proto.ping()
                await self._send(connection, [ping])
        return timeout

    def _handle(self, kind: bytes, channel: bytes | None, data: Any) -> bool:
        """One reply; ``False`` when reading should stop (unused, or no broker)."""
        proto = self._proto
        if kind == b"message":
            proto.heard()
            return self._hand_over(channel, data)  # False: the broker was collected
        unused = False
        with self._lock:
            if kind == b"error":
                proto.error_reply(data, self._loop.time())
            else:
                unused = proto.answered(kind, channel, self._loop.time())
        self._progress.set()
        return not unused  # unused: nothing subscribed, give the connection back

    def _hand_over(self, channel: bytes | None, data: Any) -> bool:
        """Deliver one message; ``False`` if the broker is gone.

        A function of its own so that no suspended frame keeps the broker.
        """
        deliver = self._deliver()
        if deliver is None:
            return False
        try:
            deliver(channel or b"", data)
        except Exception:  # the broker's handler never raises; be sure
            self._proto.delivery_failed(channel)
        return True
