"""What the listener thread runs: open the Pub/Sub connection, read it, answer it.

The other half of :class:`~pubsub.listener.Listener` (whose docs give the
threading rules): :class:`PubSubReader` is everything that happens on the
listener thread itself. It opens a :class:`~pubsub.link.Link` and subscribes every
wanted channel, hands each message to the broker's ``deliver``, settles the
waiters of confirmations, reports refusals, PINGs a connection that has been
quiet for ``health_check_interval`` and replaces one that does not answer,
and starts over on a new connection after a bug of ours. Other threads only
read what it sets, under ``_lock``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from eventspype.broker.redis.pubsub.link import Link, UndecodableMessage
from eventspype.broker.redis.pubsub.listener_core import ListenerCore

__all__ = ["Deliver", "PubSubReader"]

_logger = logging.getLogger("eventspype.broker.redis")

#: ``deliver(channel, data)``: the broker's handler for one Pub/Sub message.
Deliver = Callable[[bytes, Any], None]


class PubSubReader(ListenerCore):
    """The listener thread's loop (see the module docs); state set by ``Listener``."""

    _new_link: Callable[[], Link]
    _deliver: weakref.WeakMethod[Deliver]
    _tidy: weakref.WeakMethod[Callable[[], None]]
    _idle_timeout: float
    _health_check_interval: float
    _stopping: bool
    _io_lock: threading.Lock
    _stop: threading.Event
    _work: threading.Event
    _progress: threading.Event
    _tidy_requested: bool
    _link: Link | None
    _opening: Link | None
    _quiet_since: float | None
    _ping_sent: float | None
    _recovering: bool

    def sync(self) -> None:
        """Send what is wanted and not sent yet (``Listener.sync``)."""
        raise NotImplementedError

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._loop()
                except BaseException as error:
                    if self._stop.is_set():
                        break
                    # A bug of ours: start over on a new connection, after a
                    # pause that grows if it happens again and again. Counted
                    # once the old connection is dropped: whoever sees the
                    # restart counted then waits for the new subscriptions.
                    _logger.exception("Redis listener failed; starting over")
                    self._drop_link(None)
                    self._counters.add("listener_errors")
                    self._counters.add("listener_restarts")
                    self._outage.failed(error)
                    self._stop.wait(self._outage.next_delay())
        finally:
            self._drop_link(None)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._tidy_requested:
                self._tidy_requested = False
                tidy = self._tidy()
                if tidy is not None:
                    tidy()
            link = self._link
            if link is not None:
                self._read(link)
                continue
            self._work.clear()
            with self._lock:
                channels = list(self._book.wanted)
            if not channels:
                self._work.wait()
            elif not self._outage.failures or not self._stop.wait(
                self._outage.next_delay()
            ):
                self._open(channels)

    def _open(self, channels: list[bytes]) -> None:
        link = self._new_link()
        with self._lock:
            if self._stopping:
                return
            self._opening = link
        try:
            link.open()
        except Exception as error:
            with self._lock:
                self._opening = None
            link.close()
            if not self._stop.is_set():
                self._outage.failed(error)
                self._drop_link(None)  # nobody should wait minutes to subscribe
            return
        with self._io_lock, self._lock:
            self._opening = None
            if not self._stopping:
                self._link = link
                self._book.new_connection()
        if self._link is not link:  # stopping
            link.close()
            return
        self._quiet_since = self._ping_sent = None
        # Healthy only once Redis confirms a subscription (see _confirmed): a
        # server that accepts connections but refuses commands (NOAUTH,
        # LOADING) must keep the backoff growing.
        self._recovering = True
        self.sync()  # SUBSCRIBE every wanted channel, one command each

    def _read(self, link: Link) -> None:
        try:
            reply = link.read(self._idle_timeout)
        except Exception as error:
            if not self._stop.is_set():
                if isinstance(error, UndecodableMessage):
                    self._counters.drop("invalid_json", "(unknown)", error)
                self._connection_lost(link, error)
            return
        except BaseException as error:
            self._connection_lost(link, error)
            raise
        if reply is None:
            self._idle(link)
            return
        self._quiet_since = None
        kind, channel, data = reply
        if kind == b"message":
            deliver = self._deliver()
            if deliver is None:  # the broker was garbage-collected
                self._stop.set()
                return
            try:
                deliver(channel or b"", data)
            except BaseException:
                self._counters.add("listener_errors")
                _logger.exception(
                    "Handling a Redis message on %r failed; going on", channel
                )
        elif kind == b"error":
            self._error_reply(data)
        else:
            self._answered(link, kind, channel)

    def _answered(self, link: Link, kind: bytes, channel: bytes | None) -> None:
        if kind == b"pong":
            self._ping_sent = None
        elif kind == b"subscribe":
            self._healthy()
        with self._lock:
            waiters = self._book.answered(kind, channel)
            unused = kind == b"unsubscribe" and self._book.idle
        for waiter in waiters:
            waiter.settle(True)
        self._progress.set()
        if unused:
            # Nothing subscribed any more: give the connection back.
            self._drop_link(link, release=False)

    def _error_reply(self, error: Any) -> None:
        with self._lock:
            kind, channel, _ = self._book.error_reply(error)
            reason = self._book.refused.get(channel) if channel else None
        self._healthy()  # the server answered
        self._progress.set()
        if kind == b"ping":
            self._ping_sent = None  # refused, but answered: the server is alive
        self._report_refusal(kind, channel, reason, error)

    def _healthy(self) -> None:
        if self._recovering:
            # Healthy: the server answered a command on this connection.
            self._recovering = False
            self._mark_connected()

    def _idle(self, link: Link) -> None:
        # Nothing for idle_timeout seconds: a silent half-open connection looks
        # the same as a quiet one, so PING now and then and expect the answer.
        now = time.monotonic()
        if self._quiet_since is None:
            self._quiet_since = now
        elif self._ping_sent is not None:
            if now - self._ping_sent > max(self._health_check_interval, 1.0):
                self._connection_lost(link, TimeoutError("no reply to PING"))
        elif now - self._quiet_since >= self._health_check_interval:
            self._ping_sent = now
            self._ping(link, wait=True)

    def _ping(self, link: Link, *, wait: bool = False) -> None:
        if not self._io_lock.acquire(blocking=wait):
            return  # another send is under way; its reply wakes the reader
        try:
            with self._lock:
                current = self._link is link
                ping = self._book.ping() if current else ("PING",)
            if current or self._opening is link:
                link.send([ping])
        except Exception as error:  # the reader finds out on its next read
            _logger.debug("PING failed: %s", error)
        finally:
            self._io_lock.release()

    def _drop_link(self, link: Link | None, *, release: bool = True) -> None:
        """Close ``link`` (the current one if ``None``) and forget it if current."""
        with self._io_lock, self._lock:
            current = self._link
            if link is None:
                link = current
            if link is not None and link is current:
                self._link = None
                self._book.new_connection()
                self._mark_disconnected()
            if release:
                # Nobody should wait for a confirmation that may take minutes.
                self._book.release_waiters()
        self._progress.set()
        if link is not None:
            link.close()

    def _connection_lost(self, link: Link, error: BaseException) -> None:
        with self._lock:
            count = len(self._book.wanted)
        self._drop_link(link)
        self._outage.lost(error, count)
