"""The listener task of ``AsyncRedisBroker``: one Pub/Sub connection, read on the loop.

The asyncio twin of ``_listener.Listener``, with the same interface towards the
broker's subscription tables (:meth:`add`, :meth:`remove`, :meth:`sync`,
:meth:`request_tidy`, callable from any thread) and the same behaviour: it
reads a connection of the broker's own (the client's settings, no retry
policy), delivers each message by calling ``deliver`` on the loop, and when the
connection drops it reconnects with backoff and jitter (``_outage.Outage``,
shared with the thread listener) and subscribes every channel again.

One task reads; SUBSCRIBE, UNSUBSCRIBE and PING are written by short tasks
under ``_send_lock`` (asyncio reads and writes of one connection are
independent). The reader waits up to ``health_check_interval`` for a reply,
then PINGs; a second silent interval means a dead connection. An idle
listener therefore wakes once per interval and otherwise costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from eventspype.broker.redis._link import Reply, _normalize
from eventspype.broker.redis._outage import Outage
from eventspype.broker.redis._stats import Counters

__all__ = ["AsyncListener"]

_logger = logging.getLogger("eventspype.broker.redis")

#: ``deliver(channel, data)``: the broker's handler for one Pub/Sub message.
Deliver = Callable[[bytes, Any], None]


class AsyncListener:
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
    ) -> None:
        if not health_check_interval > 0:
            raise ValueError(
                f"health_check_interval must be > 0, got {health_check_interval}"
            )
        self._loop = loop
        self._outage = Outage(counters, reconnect_delay)
        self._new_connection = new_connection
        self._deliver = deliver
        self._tidy = tidy
        self._health_check_interval = health_check_interval
        # _channels is changed from any thread (under _lock); the rest is
        # touched on the loop only.
        self._lock = threading.Lock()
        self._channels: dict[bytes, None] = {}  # wanted, in order
        self._connection: Any = None  # subscribed, read by the task
        self._sent: set[bytes] = set()  # subscribed on _connection, as sent
        self._unconfirmed: dict[bytes, int] = {}  # commands awaiting a reply
        self._send_lock = asyncio.Lock()
        self._sync_scheduled = False
        self._sends: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._work = asyncio.Event()  # channels wanted while idle
        self._settled = asyncio.Event()  # every wanted channel confirmed
        self._stopping = False
        self._last_error: BaseException | None = None

    @property
    def down(self) -> bool:
        """Whether Redis is known to be unreachable right now."""
        return self._outage.down

    # -- what is wanted (any thread) ----------------------------------------

    def add(self, channel: bytes) -> None:
        """Want ``channel``; call :meth:`sync` next."""
        with self._lock:
            if self._stopping:
                return
            self._channels[channel] = None

    def remove(self, channel: bytes) -> None:
        """Stop wanting ``channel``; call :meth:`sync` next."""
        with self._lock:
            self._channels.pop(channel, None)

    def sync(self) -> None:
        """Have the loop send what :meth:`add` and :meth:`remove` changed."""
        self._on_loop(self._schedule_sync)

    def request_tidy(self) -> None:
        """Have the loop call ``tidy`` soon (safe from a weakref callback).

        Always deferred, even on the loop's thread: a garbage-collection
        callback may run while this thread holds the subscription tables' lock.
        """
        with contextlib.suppress(RuntimeError):  # the loop is closed: too late
            self._loop.call_soon_threadsafe(self._tidy)

    async def wait_settled(self, timeout: float) -> None:
        """Wait until Redis confirmed every wanted channel.

        Raises:
            TimeoutError: not within ``timeout`` seconds; the message names
                the channels and the last connection error.
        """
        deadline = self._loop.time() + timeout
        while not self._is_settled():
            left = deadline - self._loop.time()
            if left <= 0 or self._stopping:
                with self._lock:
                    pending = sorted(set(self._channels) - self._confirmed_channels())
                error = self._last_error
                raise TimeoutError(
                    f"Redis has not confirmed the subscription to "
                    f"{b', '.join(pending).decode(errors='replace')} within "
                    f"{timeout} s"
                    + (f" (last connection error: {error})" if error else "")
                )
            self._settled.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._settled.wait(), min(left, 0.5))

    def _confirmed_channels(self) -> set[bytes]:
        if self._connection is None:
            return set()
        return {c for c in self._sent if c not in self._unconfirmed}

    async def stop(self) -> None:
        """End the task and close the connection (idempotent)."""
        with self._lock:
            self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_connection()

    # -- on the loop --------------------------------------------------------

    def _on_loop(self, callback: Callable[[], None]) -> None:
        if asyncio._get_running_loop() is self._loop:
            callback()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: too late
            self._loop.call_soon_threadsafe(callback)

    def _is_settled(self) -> bool:
        with self._lock:
            wanted = set(self._channels)
        return not wanted or (
            self._connection is not None
            and wanted == self._sent
            and not self._unconfirmed
        )

    def _schedule_sync(self) -> None:
        if self._stopping:
            return
        with self._lock:
            wanted = bool(self._channels)
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
                new = [c for c in self._channels if c not in self._sent]
                gone = [c for c in self._sent if c not in self._channels]
            for channel in (*new, *gone):
                self._unconfirmed[channel] = self._unconfirmed.get(channel, 0) + 1
            self._sent.update(new)
            self._sent.difference_update(gone)
            try:
                if new:
                    await connection.send_command("SUBSCRIBE", *new, check_health=False)
                if gone:
                    await connection.send_command(
                        "UNSUBSCRIBE", *gone, check_health=False
                    )
            except Exception as error:  # the reader sees the broken connection
                _logger.debug("Pub/Sub command failed; reconnecting: %s", error)

    async def _run(self) -> None:
        try:
            while not self._stopping:
                with self._lock:
                    channels = list(self._channels)
                if not channels:
                    self._work.clear()
                    await self._work.wait()
                    continue
                if self._outage.failures:
                    await asyncio.sleep(self._outage.next_delay())
                await self._connect_and_read(channels)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: say so once, never die with a traceback
            _logger.exception("Redis listener task failed; no more deliveries")

    async def _connect_and_read(self, channels: list[bytes]) -> None:
        connection = self._new_connection()
        try:
            await connection.connect()
            await connection.send_command("SUBSCRIBE", *channels, check_health=False)
        except BaseException as error:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            if not isinstance(error, Exception):  # cancelled: stopping
                raise
            self._last_error = error
            self._outage.failed(error)
            return
        async with self._send_lock:
            self._connection = connection
            self._sent = set(channels)
            self._unconfirmed = dict.fromkeys(channels, 1)
        # Healthy only once Redis confirms a subscription (see _confirmed): a
        # server that accepts connections but refuses commands must keep the
        # backoff growing.
        recovering = True
        self._schedule_sync()  # channels added or removed while connecting
        try:
            while not self._stopping:
                reply = await self._read(connection)
                kind, channel, data = reply
                if kind == b"message":
                    try:
                        self._deliver(channel or b"", data)
                    except Exception:  # the broker's handler never raises
                        _logger.exception("Delivering a Redis message failed")
                elif kind == b"subscribe":
                    if recovering:
                        recovering = False
                        with self._lock:
                            count = len(self._channels)
                        self._outage.recovered(count)
                    self._confirmed(channel or b"")
                elif kind == b"unsubscribe" and self._confirmed(channel or b""):
                    return  # nothing subscribed any more: give it back
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not self._stopping:
                with self._lock:
                    count = len(self._channels)
                self._last_error = error
                self._outage.lost(error, count)
        finally:
            await self._drop_connection()

    async def _read(self, connection: Any) -> Reply:
        """The next Pub/Sub reply; PINGs when quiet, raises if unanswered."""
        pinged = False
        while True:
            response = await connection.read_response(
                timeout=self._health_check_interval,
                disconnect_on_error=False,
                push_request=True,
            )
            if response is None:  # quiet for a whole interval
                if pinged:
                    raise TimeoutError("no reply to PING")
                pinged = True
                async with self._send_lock:
                    await connection.send_command("PING", check_health=False)
                continue
            reply = _normalize(response)
            if reply is not None and reply[0] != b"pong":
                return reply
            pinged = False

    def _confirmed(self, channel: bytes) -> bool:
        """Count a confirmation; whether the connection is unused now."""
        left = self._unconfirmed.get(channel, 0) - 1
        if left > 0:  # a later command for this channel is in flight
            self._unconfirmed[channel] = left
            return False
        self._unconfirmed.pop(channel, None)
        if self._is_settled():
            self._settled.set()
        with self._lock:
            return not (self._channels or self._sent or self._unconfirmed)

    async def _drop_connection(self) -> None:
        async with self._send_lock:
            connection, self._connection = self._connection, None
            self._sent = set()
            self._unconfirmed = {}
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
