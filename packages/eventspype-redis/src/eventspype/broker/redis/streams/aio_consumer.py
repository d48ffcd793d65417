"""The consumer task of AsyncRedisStreamBroker: the Streams core, driven by asyncio.

It moves bytes and time, nothing else: every decision (what to read, claim,
renew, acknowledge, retry, dead-letter, hand back) is the core's
(``streams.protocol``), exactly as for the thread driver. One loop, on one
connection of the broker's own (made like the user's client, no retries, a
timeout longer than a blocking read)::

    batch = core.poll(now)                  # commands, in order
    send the batch in one pipeline; feed core.reply / core.failed per command
    for delivery in core.take(now):         # entries to hand over
        StreamReceiving.handle (the thread driver's): synchronous subscribers
        run now; coroutine subscribers are awaited on their loop, and when
        they all returned core.finished(...) is fed, back on this loop
    nothing sent: sleep until core.next_wakeup(now), or until a delivery
    finishes, a subscription changes or a stop is asked for

A read blocks in Redis (``XREADGROUP ... BLOCK``) for at most ``block``
seconds; when a delivery finishes meanwhile the task ends the wait with
``CLIENT UNBLOCK`` from a second connection, so acknowledgements never wait
for new entries. Commands go out as the thread driver sends them
(``streams.sending``: ``prepare``, an awaited pipeline, ``collect``; the Lua
scripts with ``EVAL``, see ``streams.aio_upkeep``), executed on a connection
held by the consumer, not borrowed from a pool: a pool would re-make a
connection the server closed without a word, and the core must know about
every outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from eventspype.broker.redis._io.aio_pipeline import (
    packer_for,
    read_replies,
    read_replies_slow,
    reads_faster,
    send,
)
from eventspype.broker.redis._io.resp import PipelinePacker
from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.aio_upkeep import SCRIPTS, Upkeep, close_client
from eventspype.broker.redis.streams.held import Delivery
from eventspype.broker.redis.streams.protocol import StreamProtocol
from eventspype.broker.redis.streams.reader import Outcome
from eventspype.broker.redis.streams.receiving import StreamReceiving
from eventspype.broker.redis.streams.sending import (
    DOWN,
    Failure,
    collect,
    prepare,
)

__all__ = ["AsyncConsumer"]

_logger = logging.getLogger("eventspype.broker.redis")

#: Loop turns a just-started coroutine delivery gets before the next poll
#: (a handler that does not wait on I/O is done within about five).
_QUICK_TURNS = 16
#: How often the consumer-name lease is renewed (its key lives 15 s).
_HOUSEKEEPING_INTERVAL = 5.0


class AsyncConsumer:
    """The task and its connection (see the module docs).

    Args:
        loop: The broker's loop; the task runs there.
        proto: The core.
        receiving: Hands deliveries to the subscribers.
        connect: Makes the consumer's client: ``redis.asyncio`` on a pool of
            the broker's own (bytes, no retries, a timeout longer than a
            blocking read); the consumer's connection is made from its pool.
        waker: A ``redis.asyncio`` client on a connection pool of the
            broker's own, for ``CLIENT UNBLOCK``.
        dead_maxlen: ``MAXLEN ~`` of the dead-letter streams (``None``: none).
        forget_after_s: Consumers of the group idle this long with nothing
            pending are removed from it.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        proto: StreamProtocol,
        receiving: StreamReceiving,
        connect: Callable[[], Any],
        waker: Any,
        dead_maxlen: int | None,
        forget_after_s: float,
    ) -> None:
        self._loop = loop
        self.proto = proto
        self._receiving = receiving
        self._connect = connect
        self._waker = waker
        self._dead_maxlen = dead_maxlen
        self._upkeep = Upkeep(proto, forget_after_s)
        self._group = proto.options.group
        # The consumer's connection (commands, blocking reads) and a client
        # whose pool serves the housekeeping and builds the pipelines.
        self._connection: Any = None
        self._client: Any = None
        self._packer: PipelinePacker | None = None  # the connection's
        self._client_id: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        # Deliveries whose coroutine subscribers run, and their outcomes so far.
        self._running: set[tuple[bytes, bytes]] = set()
        self._blocked = False  # a blocking read is on its way
        self._unblocking = False
        self._stopping = False
        #: Set once the task has nothing left in hand (after a stop).
        self.finished = asyncio.Event()
        #: Streams whose group Redis confirmed (XGROUP CREATE or BUSYGROUP).
        self.ready: set[bytes] = set()

    # -- control (on the loop) ---------------------------------------------------

    @property
    def alive(self) -> bool:
        """Whether the task runs."""
        return self._task is not None and not self._task.done()

    @property
    def streams(self) -> dict[bytes, str]:
        """The streams read (key -> channel)."""
        return self.proto.streams

    @property
    def consumer(self) -> bytes:
        """This consumer's name."""
        return self.proto.options.consumer

    def set_streams(self, streams: dict[bytes, str], waker: Any = None) -> None:
        """Read these streams from now on; starts the task on first use."""
        self.proto.set_streams(streams)
        if self._task is None and streams and not self._stopping:
            self._task = self._loop.create_task(
                self._run(), name="eventspype-redis-stream-consumer"
            )
        self.wake()

    def wake(self) -> None:
        """Poll the core now (and end a blocking read)."""
        self._wakeup.set()
        if self._blocked and not self._unblocking and self._client_id is not None:
            self._unblocking = True
            self._loop.create_task(self._unblock(self._client_id))

    def stop(self) -> None:
        """Stop reading; finish what is in hand (see ``StreamProtocol.stop``)."""
        self._stopping = True
        self.proto.stop()
        if self._task is None:
            self.finished.set()
        self.wake()

    def hand_back_rest(self) -> None:
        """The drain deadline: hand back everything not yet settled."""
        self.proto.hand_back_rest()
        self.wake()

    def abandon(self) -> list[str]:
        """The broker was collected: stop and hand back everything now.

        Returns the name of the task that was running (it ends once what it
        holds is handed back; :meth:`close` ends it anyway).
        """
        task = self._task
        self.stop()
        self.hand_back_rest()
        return [task.get_name()] if task is not None and not task.done() else []

    async def close(self) -> None:
        """End the task and close its connection (after :meth:`stop`)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()

    # -- the task -------------------------------------------------------------------

    async def _run(self) -> None:
        proto = self.proto
        clock = time.monotonic
        next_cleanup = 0.0
        try:
            while not (self._stopping and proto.finished_all):
                try:
                    now = clock()
                    if not self._stopping and now >= next_cleanup and self._client:
                        next_cleanup = now + _HOUSEKEEPING_INTERVAL
                        await self._upkeep.every_few_seconds(self._client, now)
                    batch = proto.poll(clock())
                    if batch:
                        await self._send(batch)
                    started = await self._hand_over(proto.take(clock()))
                    if started:
                        await self._let_run(started)
                except Exception:  # a bug of ours: log, never die
                    _logger.exception("Redis stream consumer failed; going on")
                    batch = []
                    await asyncio.sleep(1.0)
                if not batch:
                    self._wakeup.clear()
                    pause = proto.next_wakeup(clock()) - clock()
                    if pause > 0:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(self._wakeup.wait(), pause)
            await self._upkeep.on_stop(self._client)
        finally:
            self.finished.set()
            await self._drop()

    async def _send(self, batch: list[c.Command]) -> None:
        """Send ``batch`` in one pipeline and feed the core its replies.

        The replies are read by ``_io.aio_pipeline`` (one read per batch,
        then the client's own callbacks), or by redis-py's parser where that
        cannot read the connection. Not ``pipe.execute()``: a pool would
        re-make a connection the server closed without a word, and the core
        must know about every outage (its groups may be gone).
        """
        proto = self.proto
        clock = time.monotonic
        if isinstance(batch[0], c.Connect):
            await self._open(batch[0])
            for cmd in batch[1:]:
                proto.failed(cmd, "down", "not connected", clock())
            return
        client, connection = self._client, self._connection
        if client is None:  # dropped after the batch was made
            for cmd in batch:
                proto.failed(cmd, "down", "connection lost", clock())
            return
        last = batch[-1]
        self._blocked = isinstance(last, c.Read) and last.block_ms is not None
        self._wakeup.clear()
        pipe = client.pipeline(transaction=False)
        try:
            parts = prepare(
                pipe, SCRIPTS, self._group, proto.options.consumer, batch,
                self._dead_maxlen,
            )  # fmt: skip
            await send(connection, pipe, self._packer)
            if reads_faster(connection):
                replies = await read_replies(connection, pipe)
            else:
                replies = await read_replies_slow(connection, pipe)
            results = collect(batch, parts, replies)
        except DOWN as error:
            for cmd in batch:
                proto.failed(cmd, "down", f"{type(error).__name__}: {error}", clock())
            await self._drop()
            return
        finally:
            self._blocked = False
        for cmd, (ok, value) in zip(batch, results, strict=True):
            if not ok:
                kind, message = cast("Failure", value)
                proto.failed(cmd, kind, message, clock())
                continue
            if isinstance(cmd, c.EnsureGroup):
                self.ready.add(cmd.stream)
            proto.reply(cmd, value, clock())

    async def _open(self, cmd: c.Connect) -> None:
        await self._drop()
        client = self._connect()
        connection = client.connection_pool.make_connection()
        try:
            await connection.connect()
            await connection.send_command("CLIENT", "ID")
            self._client_id = int(await connection.read_response())
        except Exception as error:  # down, refused (an ACL): retried with backoff
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            await close_client(client)
            why = f"{type(error).__name__}: {error}"
            self.proto.failed(cmd, "down", why, time.monotonic())
            return
        self._client, self._connection = client, connection
        # The read repeats itself once a round trip: packed once.
        self._packer = packer_for(connection, repeated=("XREADGROUP",))
        self.proto.reply(cmd, None, time.monotonic())

    async def _drop(self) -> None:
        client, self._client, self._client_id = self._client, None, None
        connection, self._connection = self._connection, None
        self._packer = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
        if client is not None:
            await close_client(client)

    async def _unblock(self, client_id: int) -> None:
        try:
            # TIMEOUT (the default): the read returns as if its wait ended.
            await self._waker.client_unblock(client_id)
        except Exception:  # Redis down, an ACL: the read ends within block
            pass
        finally:
            self._unblocking = False

    # -- deliveries -------------------------------------------------------------------

    async def _let_run(self, started: set[tuple[bytes, bytes]]) -> None:
        """Give the deliveries just started a few loop turns before the next
        poll: a fast coroutine finishes within them, and its acknowledgement
        goes with the next read instead of waking a blocked one."""
        for _ in range(_QUICK_TURNS):
            if not started & self._running:
                return
            await asyncio.sleep(0)

    async def _hand_over(self, deliveries: list[Delivery]) -> set[tuple[bytes, bytes]]:
        """Hand each delivery over (``StreamReceiving.handle``, as the thread
        driver); the keys of those whose coroutine subscribers still run.

        Between deliveries whose synchronous subscribers took long, leases
        that fell due are renewed (a poll without a read), as the thread
        driver does.
        """
        proto = self.proto
        started: set[tuple[bytes, bytes]] = set()
        for index, delivery in enumerate(deliveries):
            if self._stopping and index:  # stopped during a renewal below
                proto.release(delivery)
                continue
            key = (delivery.stream, delivery.entry_id)
            # Running from now: a coroutine subscriber may report its outcome
            # before handle() returns (an eager task that never waited).
            self._running.add(key)
            try:
                result = self._receiving.handle(
                    delivery, partial(self._report, delivery)
                )
            except Exception as error:  # a bug of ours: retry it later
                _logger.exception("Handling a stream entry failed")
                result = ("failed", f"{type(error).__name__}: {error}", frozenset())
            if result is None:  # coroutine subscribers run: reported later
                started.add(key)
                continue
            self._running.discard(key)
            now = time.monotonic()
            proto.finished(delivery, *result, now)
            if index + 1 < len(deliveries) and now >= proto.renew_due:
                batch = proto.poll(now, read=False)
                if batch:
                    await self._send(batch)
        return started

    def _report(self, delivery: Delivery, outcome: Outcome) -> None:
        """From any thread (a subscriber's loop): back on ours."""
        if asyncio._get_running_loop() is self._loop:
            self._finished(delivery, outcome)
            return
        # Our loop closed (RuntimeError): nothing is left to acknowledge.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._finished, delivery, outcome)

    def _finished(self, delivery: Delivery, outcome: Outcome) -> None:
        self._running.discard((delivery.stream, delivery.entry_id))
        self.proto.finished(delivery, *outcome, time.monotonic())
        self.wake()
