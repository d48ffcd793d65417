"""The writer task of ``AsyncRedisBroker``: what ``publish()`` queues, sent in batches.

``publish()`` must not block the event loop, so it only appends the encoded
message to a bounded queue and wakes the writer task. The writer takes
everything queued since it last ran and sends it in one pipeline (one write,
then one reply per message): the events of one loop turn cost one round trip.
While that round trip is in flight, new publishes pile up for the next one.

``publish_async()`` goes through the same queue, so it keeps its place among
plain publishes, and waits on a future the writer settles once Redis answered.
The caller never touches the connection: cancelling it cannot leave a reply
unread on the socket. A message whose future was cancelled before the writer
took it is not sent.

A failed batch is logged (rate limited) and counted; the futures of its
``publish_async()`` calls get the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.exceptions
from redis.exceptions import ResponseError

from eventspype.broker.redis._stats import Counters
from eventspype.broker.redis._transport import pack_publish

__all__ = [
    "AsyncWriter",
    "ClientSender",
    "ConnectionSender",
    "PublishQueueFull",
    "Sender",
]

_logger = logging.getLogger("eventspype.broker.redis")

#: At most one warning about failed batches per this many seconds.
_ERROR_LOG_INTERVAL = 1.0
#: The largest pipeline the writer sends at once (a full queue goes in several).
_MAX_BATCH = 4096

#: Sends ``(channel, message)`` pairs in one round trip; raises the first error.
Sender = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]
_Entry = tuple[bytes, bytes, "asyncio.Future[None] | None"]


class PublishQueueFull(asyncio.QueueFull):
    """``publish()`` found the writer's queue full: the event was not queued.

    The queue holds ``max_queued`` events; it fills when events are published
    faster than Redis takes them, or while Redis does not answer. Await
    ``broker.publish_async()`` (which waits for room) or ``broker.flush()``.
    """


class AsyncWriter:
    """The bounded queue and the task that empties it (see the module docs).

    ``put_nowait`` may be called from any thread; everything else runs on the
    loop. The task starts with the first message.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        send: Sender,
        counters: Counters,
        max_queued: int,
    ) -> None:
        if max_queued < 1:
            raise ValueError(f"max_queued must be at least 1, got {max_queued}")
        self._loop = loop
        self._send = send
        self._counters = counters
        self.max_queued = max_queued
        # deque.append and popleft are atomic: other threads append directly.
        self._queue: deque[_Entry] = deque()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[_Entry] = []  # the batch being sent
        self._wakeup: asyncio.Future[None] | None = None  # set while idle
        self._room = asyncio.Event()  # the writer took messages off the queue
        self._idle = asyncio.Event()  # nothing queued, nothing in flight
        self._idle.set()
        self._last_logged: float | None = None
        self._unlogged = 0

    @property
    def queued(self) -> int:
        """Messages waiting for the writer (not those in flight)."""
        return len(self._queue)

    def put_nowait(self, channel: bytes, message: bytes) -> None:
        """Queue one message to send; from any thread.

        Raises:
            PublishQueueFull: ``max_queued`` messages are waiting already.
        """
        if len(self._queue) >= self.max_queued:
            self._counters.add_publish_error()
            raise PublishQueueFull(
                f"{len(self._queue)} events wait to be sent to Redis already "
                f"(max_queued={self.max_queued}); the event was not published"
            )
        self._queue.append((channel, message, None))
        if self._wakeup is not None or self._task is None:
            if asyncio._get_running_loop() is self._loop:
                self._wake()
            else:
                self._loop.call_soon_threadsafe(self._wake)

    async def put(self, channel: bytes, message: bytes) -> None:
        """Queue one message, waiting for room, and wait until Redis has it.

        Raises what sending raised (``redis.exceptions.ConnectionError``,
        ``TimeoutError``, ``ResponseError``).
        """
        while len(self._queue) >= self.max_queued:
            self._room.clear()
            await self._room.wait()
        done: asyncio.Future[None] = self._loop.create_future()
        self._queue.append((channel, message, done))
        self._wake()
        await done

    async def flush(self) -> None:
        """Wait until every message queued so far was sent (or failed)."""
        while self._queue or not self._idle.is_set():
            self._wake()
            await self._idle.wait()
            await asyncio.sleep(0)  # let the writer see what came meanwhile

    async def stop(self) -> None:
        """End the task, after :meth:`flush` (the caller flushes first)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _wake(self) -> None:
        # On the loop thread.
        self._idle.clear()
        if self._task is None:
            self._task = self._loop.create_task(
                self._run(), name="eventspype-redis-writer"
            )
            return
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._idle.set()
                    self._wakeup = self._loop.create_future()
                    await self._wakeup
                    continue
                await self._send_batch(self._take())
        except asyncio.CancelledError:
            # The loop is shutting down without aclose(), or stop() came with
            # messages left: say what is lost.
            lost = self._in_flight + list(self._queue)
            self._queue.clear()
            if lost:
                self._failed(lost, RuntimeError("the writer task was cancelled"))
            raise

    def _take(self) -> list[_Entry]:
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(len(queue), _MAX_BATCH))]
        self._room.set()
        return batch

    async def _send_batch(self, batch: list[_Entry]) -> None:
        live = [entry for entry in batch if entry[2] is None or not entry[2].done()]
        if not live:
            return
        self._in_flight = live  # kept when cancelled: _run reports it
        try:
            await self._send([(channel, message) for channel, message, _ in live])
        except Exception as error:
            self._in_flight = []
            self._failed(live, error)
            return
        self._in_flight = []
        self._counters.add_published(len(live))
        for _, _, done in live:
            if done is not None and not done.done():
                done.set_result(None)

    def _failed(self, entries: list[_Entry], error: BaseException) -> None:
        # Every failed event counts once in publish_errors; those of plain
        # publish() calls are logged, the others raise from publish_async().
        unawaited = 0
        for _, _, done in entries:
            self._counters.add_publish_error()
            if done is None:
                unawaited += 1
            elif not done.done():
                done.set_exception(error)
        if unawaited:
            self._log_lost(unawaited, error)

    def _log_lost(self, count: int, error: BaseException) -> None:
        now = time.monotonic()
        last = self._last_logged
        if last is not None and now - last < _ERROR_LOG_INTERVAL:
            self._unlogged += count
            return
        self._last_logged = now
        earlier, self._unlogged = self._unlogged, 0
        _logger.warning(
            "%d published event(s) not sent to Redis (%s: %s)%s",
            count,
            type(error).__name__,
            error,
            f" [and {earlier} more since the last warning]" if earlier else "",
        )


class ConnectionSender:
    """Pre-encoded PUBLISH commands on one connection of the broker's own.

    The connection has the client's settings, no retry policy and a timeout
    (see ``_connections``): during an outage a batch fails at once. After a
    failure the connection is dropped; the next batch opens a new one.
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def __call__(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        connection = self._connection
        await _drop_if_stale(connection)
        packed = b"".join([pack_publish(c, m) for c, m in messages])
        try:
            await connection.send_packed_command(packed, check_health=False)
            refused: ResponseError | None = None
            for _ in messages:
                try:
                    await connection.read_response()
                except ResponseError as error:
                    refused = refused or error
        except BaseException:
            # Replies may be pending: the connection cannot be reused.
            await connection.disconnect(nowait=True)
            raise
        if refused is not None:
            raise refused

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._connection.disconnect(nowait=True)


class ClientSender:
    """``client.pipeline(transaction=False)``: the client's own machinery."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def __call__(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        pipeline = self._client.pipeline(transaction=False)
        for channel, message in messages:
            pipeline.publish(channel, message)
        await pipeline.execute()

    async def close(self) -> None:
        pass  # the client is the user's


async def _drop_if_stale(connection: Any) -> None:
    # Between batches nothing is expected on the socket: readable means the
    # server closed it (restart, CLIENT KILL, idle timeout) or stray data.
    # Drop it so the send reconnects instead of failing a batch that could
    # succeed.
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
        await connection.disconnect(nowait=True)
