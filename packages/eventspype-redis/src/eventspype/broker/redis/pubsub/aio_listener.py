"""The listener task of ``AsyncRedisBroker``: one Pub/Sub connection, read on the loop.

The asyncio driver of what ``pubsub.listener.Listener`` drives with a thread:
every decision (what to send, what a reply means, when to PING, when the
connection is dead, how long to back off, what is counted) is the shared,
I/O-free :class:`~pubsub.protocol.PubSubProtocol`'s, so both behave the same.
Towards the broker's subscription tables it has the thread listener's
interface (:meth:`add`, :meth:`remove`, :meth:`sync`, :meth:`request_tidy`,
callable from any thread).

It reads a connection of the broker's own (the client's settings, no retry
policy) and calls ``deliver`` on the loop for each message. One task reads;
commands are written by short tasks under ``_send_lock`` (reading and
writing one asyncio connection are independent). A task that ended by
itself (cancelled from outside, say) is replaced, counted and logged by the
next :meth:`sync`, :meth:`ensure_running` or :meth:`wait_until_subscribed`,
as a dead listener thread is. The broker's handlers are held weakly: a broker
nobody closed can still be collected (its finalizer calls :meth:`abandon`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from eventspype.broker.redis._wire.stats import ConnectionState, Counters
from eventspype.broker.redis.pubsub.aio_reader import AsyncReader, Deliver
from eventspype.broker.redis.pubsub.protocol import Command, PubSubProtocol
from eventspype.broker.redis.pubsub.shard_dialect import ShardDialect
from eventspype.broker.redis.pubsub.subscribing import check_subscribed

__all__ = ["AsyncListener"]

_logger = logging.getLogger("eventspype.broker.redis")


class AsyncListener(AsyncReader):
    """Owns the Pub/Sub connection and the task reading it (see the module docs).

    ``new_connection`` makes an unconnected ``redis.asyncio`` connection (or
    returns an awaitable of one: a shard's, after looking its node up); with
    ``sharded`` the connection speaks sharded Pub/Sub (see
    ``pubsub.shard_dialect``);
    channels are names on the wire, as bytes.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        new_connection: Callable[[], Any],
        deliver: Deliver,
        tidy: Callable[[], None],
        counters: Counters,
        *,
        health_check_interval: float,
        reconnect_delay: tuple[float, float],
        encoding: str,
        sharded: bool = False,
    ) -> None:
        self._loop = loop
        self._proto = PubSubProtocol(
            counters,
            health_check_interval=health_check_interval,
            reconnect_delay=reconnect_delay,
            encoding=encoding,
        )
        self._new_connection = new_connection
        self._deliver = weakref.WeakMethod(deliver)
        self._tidy = weakref.WeakMethod(tidy)
        # The protocol is changed from any thread (add/remove) under _lock.
        self._lock = threading.Lock()
        self._connection: Any = None  # subscribed, read by the task
        self._send_lock = asyncio.Lock()
        self._sync_scheduled = False
        self._sends: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._work = asyncio.Event()  # channels wanted while idle
        self._progress = asyncio.Event()  # a confirmation, refusal or failure
        self._stopping = False
        self._sharded = sharded
        self._dialect: ShardDialect | None = None  # the connection's, if sharded

    # -- what is wanted (any thread) ----------------------------------------

    def add(self, channel: bytes) -> None:
        """Want ``channel``; call :meth:`sync` next."""
        with self._lock:
            if not self._stopping:
                self._proto.want(channel)

    def remove(self, channel: bytes) -> None:
        """Stop wanting ``channel``; call :meth:`sync` next."""
        with self._lock:
            self._proto.unwant(channel)

    def wants(self, channel: bytes) -> bool:
        """Whether ``channel`` is wanted here (a sharded wait checks moves)."""
        with self._lock:
            return channel in self._proto.wanted

    def sync(self) -> None:
        """Have the loop send what :meth:`add` and :meth:`remove` changed."""
        if asyncio._get_running_loop() is self._loop:
            self._schedule_sync()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: too late
            self._loop.call_soon_threadsafe(self._schedule_sync)

    def request_tidy(self) -> None:
        """Have the loop call ``tidy`` soon (safe from a weakref callback).

        Always deferred, even on the loop's thread: a garbage-collection
        callback may run while this thread holds the subscription tables' lock.
        """
        with contextlib.suppress(RuntimeError):  # the loop is closed: too late
            self._loop.call_soon_threadsafe(self._call_tidy)

    def _call_tidy(self) -> None:
        tidy = self._tidy()
        if tidy is not None:
            tidy()

    # -- what is true now ------------------------------------------------------

    def state(self) -> ConnectionState:
        """Connected or not, since when, the last error, what is subscribed."""
        with self._lock:
            return self._proto.state()

    async def wait_until_subscribed(self, timeout: float) -> None:
        """Wait until Redis confirmed every wanted channel on a live connection.

        Raises:
            SubscriptionRefused: Redis refused a channel (the first one).
            TimeoutError: not within ``timeout`` seconds; the message names
                the channels still waiting and the last connection error.
        """
        self.ensure_running()
        deadline = self._loop.time() + timeout
        while True:
            self._progress.clear()
            left = deadline - self._loop.time()
            with self._lock:
                if check_subscribed(self._proto, timeout, left <= 0 or self._stopping):
                    return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, 0.5))

    def ensure_running(self) -> None:
        """Start a new task if channels are wanted and the task ended (on the loop)."""
        if self._stopping:
            return
        with self._lock:
            wanted = bool(self._proto.wanted)
        task = self._task
        if task is not None and task.done():
            # Nothing ends it but stop(): cancelled from outside, say.
            self._task = None
            self._connection = None  # its finally: closed it, or never will
            with self._lock:
                self._proto.replaced("task")
            self._progress.set()
        if self._task is None and wanted:
            self._task = self._loop.create_task(
                self._run(), name="eventspype-redis-listener"
            )

    async def stop(self) -> None:
        """End the task and close the connection (idempotent)."""
        with self._lock:
            self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # SystemExit, KeyboardInterrupt: ended the loop once already.
            with contextlib.suppress(
                asyncio.CancelledError, SystemExit, KeyboardInterrupt
            ):
                await task
        await self._drop_connection()

    def abandon(self) -> list[str]:
        """Stop without waiting (the broker was collected); what was stopped.

        Call on the loop: cancels the task, whose clean-up closes the
        connection.
        """
        with self._lock:
            self._stopping = True
        task, self._task = self._task, None
        if task is None or task.done():
            return []
        task.cancel()
        return [task.get_name()]

    # -- sending (on the loop) ---------------------------------------------------

    def _schedule_sync(self) -> None:
        if self._stopping:
            return
        self.ensure_running()
        self._work.set()
        if self._connection is not None and not self._sync_scheduled:
            self._sync_scheduled = True
            # Held until done: the loop keeps only weak references to tasks.
            task = self._loop.create_task(self._send_changes())
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send_changes(self) -> None:
        self._sync_scheduled = False
        async with self._send_lock:
            connection = self._connection
            if connection is None or self._stopping:
                return
            with self._lock:
                # Recorded before sending: the reply may beat the bookkeeping.
                commands = self._proto.commands()
            await self._send(connection, commands)

    async def _send(self, connection: Any, commands: list[Command]) -> None:
        # Caller holds _send_lock. A failed send is the reader's to find out.
        if not commands:
            return
        try:
            if self._dialect is not None:
                commands = self._dialect.commands(commands)
            packed = connection.pack_commands(commands)
            await connection.send_packed_command(packed, check_health=False)
        except Exception as error:
            _logger.debug("Pub/Sub command failed; reconnecting: %s", error)

    # -- the task ------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                with self._lock:
                    wanted = bool(self._proto.wanted)
                    delay = self._proto.next_delay()
                if not wanted:
                    self._work.clear()
                    await self._work.wait()
                    continue
                if delay:
                    await asyncio.sleep(delay)
                await self._connect_and_read()
            except (asyncio.CancelledError, SystemExit, KeyboardInterrupt):
                raise  # SystemExit: a subscriber's, on the loop (see _wire.fanout)
            except BaseException as error:  # a bug of ours: never end delivery
                await self._drop_connection(internal=error)

    async def _connect_and_read(self) -> None:
        try:
            made = self._new_connection()
            connection = await made if inspect.isawaitable(made) else made
        except Exception as error:  # no node serves the channels now, say
            if not self._stopping:
                with self._lock:
                    self._proto.open_failed(error)
            self._progress.set()
            return
        if self._sharded:
            name = (
                f"{getattr(connection, 'host', '?')}:{getattr(connection, 'port', '?')}"
            )
            self._dialect = ShardDialect(name)
        try:
            await connection.connect()
        except BaseException as error:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            if not isinstance(error, Exception):  # cancelled: stopping
                raise
            with self._lock:
                self._proto.open_failed(error)
            self._progress.set()
            return
        async with self._send_lock:
            self._connection = connection
            with self._lock:
                commands = self._proto.opened(self._loop.time())
            await self._send(connection, commands)
        lost: Exception | None = None
        try:
            await self._read(connection)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            lost = error
        finally:
            await self._drop_connection(lost=lost)

    async def _drop_connection(
        self, *, lost: Exception | None = None, internal: BaseException | None = None
    ) -> None:
        async with self._send_lock:
            connection, self._connection = self._connection, None
            with self._lock:
                if internal is not None:
                    self._proto.failed_internally(internal)
                elif lost is not None and not self._stopping:
                    self._proto.lost(lost)
                else:
                    self._proto.closed()
        self._progress.set()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
