"""The listener task of ``AsyncRedisBroker``: one Pub/Sub connection, read on the loop.

The asyncio driver of what ``pubsub.listener.Listener`` drives with a thread. What
to send and what each reply means is the shared, I/O-free
:class:`~pubsub.channel_book.ChannelBook` (one channel per SUBSCRIBE, so a refusal
concerns that channel only); backoff and its warnings are the shared
:class:`~pubsub.outage.Outage`. Towards the broker's subscription tables it has the
thread listener's interface (:meth:`add`, :meth:`remove`, :meth:`sync`,
:meth:`request_tidy`, callable from any thread).

It reads a connection of the broker's own (the client's settings, no retry
policy) and calls ``deliver`` on the loop for each message. When the
connection drops it reconnects with backoff and jitter and subscribes every
wanted channel again. One task reads; commands are written by short tasks
under ``_send_lock`` (reading and writing one asyncio connection are
independent). The reader waits up to ``health_check_interval`` for traffic,
then PINGs; another silent interval means a dead connection. An idle listener
wakes once per interval and costs nothing otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis.exceptions

from eventspype.broker.redis._wire.stats import Counters
from eventspype.broker.redis.pubsub.channel_book import ChannelBook, Command
from eventspype.broker.redis.pubsub.link import _normalize
from eventspype.broker.redis.pubsub.listener_core import (
    ListenerCore,
    check_health_check_interval,
)
from eventspype.broker.redis.pubsub.outage import Outage

__all__ = ["AsyncListener"]

_logger = logging.getLogger("eventspype.broker.redis")

#: ``deliver(channel, data)``: the broker's handler for one Pub/Sub message.
Deliver = Callable[[bytes, Any], None]


class AsyncListener(ListenerCore):
    """Owns the Pub/Sub connection and the task reading it (see the module docs).

    ``new_connection`` makes an unconnected ``redis.asyncio`` connection;
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
    ) -> None:
        check_health_check_interval(health_check_interval)
        self._loop = loop
        self._outage = Outage(counters, reconnect_delay)
        self._new_connection = new_connection
        self._deliver = deliver
        self._tidy = tidy
        self._counters = counters
        self._health_check_interval = health_check_interval
        # The book is changed from any thread (add/remove) under _lock.
        self._lock = threading.Lock()
        self._book = ChannelBook(encoding)
        self._connection: Any = None  # subscribed, read by the task
        self._connected = False  # Redis answered on _connection
        self._state_since: float | None = None  # time.time() of the last change
        self._send_lock = asyncio.Lock()
        self._sync_scheduled = False
        self._sends: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._work = asyncio.Event()  # channels wanted while idle
        self._progress = asyncio.Event()  # a confirmation, refusal or failure
        self._stopping = False

    @property
    def _live(self) -> bool:
        return self._connection is not None

    # -- what is wanted (any thread) ----------------------------------------

    def add(self, channel: bytes) -> None:
        """Want ``channel``; call :meth:`sync` next."""
        with self._lock:
            if not self._stopping:
                self._book.want(channel)

    def remove(self, channel: bytes) -> None:
        """Stop wanting ``channel``; call :meth:`sync` next."""
        with self._lock:
            self._book.unwant(channel)

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
            self._loop.call_soon_threadsafe(self._tidy)

    # -- what is true now ------------------------------------------------------

    async def wait_until_subscribed(self, timeout: float) -> None:
        """Wait until Redis confirmed every wanted channel on a live connection.

        Raises:
            SubscriptionRefused: Redis refused a channel (the first one).
            TimeoutError: not within ``timeout`` seconds; the message names
                the channels still waiting and the last connection error.
        """
        deadline = self._loop.time() + timeout
        while True:
            self._progress.clear()
            left = deadline - self._loop.time()
            if self._all_confirmed(timeout, left <= 0 or self._stopping):
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, 0.5))

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

    # -- sending (on the loop) ---------------------------------------------------

    def _schedule_sync(self) -> None:
        if self._stopping:
            return
        with self._lock:
            wanted = bool(self._book.wanted)
        if self._task is None and wanted:
            self._task = self._loop.create_task(
                self._run(), name="eventspype-redis-listener"
            )
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
                commands = self._book.commands()
            await self._send(connection, commands)

    async def _send(self, connection: Any, commands: list[Command]) -> None:
        # Caller holds _send_lock. A failed send is the reader's to find out.
        if not commands:
            return
        try:
            packed = connection.pack_commands(commands)
            await connection.send_packed_command(packed, check_health=False)
        except Exception as error:
            _logger.debug("Pub/Sub command failed; reconnecting: %s", error)

    # -- the task ------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                with self._lock:
                    wanted = bool(self._book.wanted)
                if not wanted:
                    self._work.clear()
                    await self._work.wait()
                    continue
                if self._outage.failures:
                    await asyncio.sleep(self._outage.next_delay())
                await self._connect_and_read()
            except (asyncio.CancelledError, SystemExit, KeyboardInterrupt):
                raise  # SystemExit: a subscriber's, on the loop (see _wire.fanout)
            except BaseException:  # a bug of ours: never end delivery for it
                self._counters.add("listener_restarts")
                _logger.exception("Redis listener task failed; starting over")
                await self._drop_connection()

    async def _connect_and_read(self) -> None:
        connection = self._new_connection()
        try:
            await connection.connect()
        except BaseException as error:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            if not isinstance(error, Exception):  # cancelled: stopping
                raise
            self._outage.failed(error)
            self._progress.set()
            return
        async with self._send_lock:
            self._connection = connection
            with self._lock:
                self._book.new_connection()
                commands = self._book.commands()  # every wanted channel
            await self._send(connection, commands)
        try:
            await self._read(connection)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not self._stopping:
                with self._lock:
                    count = len(self._book.wanted)
                self._outage.lost(error, count)
        finally:
            await self._drop_connection()

    async def _read(self, connection: Any) -> None:
        """Read and handle replies until the connection fails or is unused."""
        # Healthy only once Redis answers on this connection: a server that
        # accepts connections but refuses commands (NOAUTH, LOADING) must keep
        # the backoff growing.
        recovering = True
        pinged = False
        while not self._stopping:
            try:
                response = await connection.read_response(
                    timeout=self._health_check_interval,
                    disconnect_on_error=False,
                    push_request=True,
                )
            except redis.exceptions.ResponseError as error:
                response = error  # refuses one command; the others go on
            if response is None:  # quiet for a whole interval
                if pinged:
                    raise TimeoutError("no reply to PING")
                pinged = True
                async with self._send_lock:
                    with self._lock:
                        ping = self._book.ping()
                    await self._send(connection, [ping])
                continue
            pinged = False
            reply = _normalize(response)
            if reply is None:
                continue
            kind, channel, data = reply
            if kind == b"message":
                try:
                    self._deliver(channel or b"", data)
                except Exception:  # the broker's handler never raises; be sure
                    self._counters.add("listener_errors")
                    _logger.exception("Handling a Redis message on %r failed", channel)
                continue
            if recovering:
                recovering = False
                self._mark_connected()
            if kind == b"error":
                self._refused(data)
            elif self._answered(kind, channel):
                return  # nothing subscribed any more: give the connection back

    def _answered(self, kind: bytes, channel: bytes | None) -> bool:
        """A confirmation arrived; whether the connection is unused now."""
        with self._lock:
            self._book.answered(kind, channel)
            unused = kind == b"unsubscribe" and self._book.idle
        self._progress.set()
        return unused

    def _refused(self, error: Any) -> None:
        with self._lock:
            kind, channel, _ = self._book.error_reply(error)
            reason = self._book.refused.get(channel) if channel else None
        self._progress.set()
        self._report_refusal(kind, channel, reason, error)

    async def _drop_connection(self) -> None:
        async with self._send_lock:
            connection, self._connection = self._connection, None
            with self._lock:
                self._book.new_connection()
                self._book.release_waiters()
                self._mark_disconnected()
        self._progress.set()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
