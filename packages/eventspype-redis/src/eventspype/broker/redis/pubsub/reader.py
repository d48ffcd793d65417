"""What the listener thread runs: open the Pub/Sub connection, read it, answer it.

The other half of :class:`~pubsub.listener.Listener` (whose docs give the
threading rules): :class:`PubSubReader` is everything that happens on the
listener thread itself. It only moves bytes and time: it opens a
:class:`~pubsub.link.Link` and sends what the
:class:`~pubsub.protocol.PubSubProtocol` says, hands each message to the
broker's ``deliver``, feeds every other reply, failure and timeout to the
protocol, and does what it decides (PING, give the connection up, back off).
Other threads only read what it sets, under ``_lock``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from eventspype.broker.redis.pubsub.link import Link, UndecodableMessage
from eventspype.broker.redis.pubsub.protocol import Command, PubSubProtocol

__all__ = ["Deliver", "PubSubReader"]

_logger = logging.getLogger("eventspype.broker.redis")

#: ``deliver(channel, data)``: the broker's handler for one Pub/Sub message.
Deliver = Callable[[bytes, Any], None]


class PubSubReader:
    """The listener thread's loop (see the module docs); state set by ``Listener``."""

    _proto: PubSubProtocol
    _new_link: Callable[[], Link]
    _deliver: weakref.WeakMethod[Deliver]
    _tidy: weakref.WeakMethod[Callable[[], None]]
    _idle_timeout: float
    _read_timeout: float
    _stopping: bool
    _lock: threading.Lock
    _io_lock: threading.Lock
    _stop: threading.Event
    _work: threading.Event
    _progress: threading.Event
    _tidy_requested: bool
    _link: Link | None
    _opening: Link | None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._loop()
                except BaseException as error:
                    if self._stop.is_set():
                        break
                    # A bug of ours: start over on a new connection, after a
                    # pause that grows if it happens again and again.
                    link = self._link
                    with self._io_lock, self._lock:
                        self._link = None
                        self._proto.failed_internally(error)
                        delay = self._proto.next_delay()
                    self._progress.set()
                    if link is not None:
                        link.close()
                    self._stop.wait(delay)
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
                wanted = bool(self._proto.wanted)
                delay = self._proto.next_delay()
            if not wanted:
                self._work.wait()
            elif not delay or not self._stop.wait(delay):
                self._open()

    def _open(self) -> None:
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
                if not self._stop.is_set():
                    self._proto.open_failed(error)
            self._progress.set()
            link.close()
            return
        with self._io_lock:
            with self._lock:
                self._opening = None
                if self._stop.is_set():  # request_stop() came meanwhile
                    link.close()
                    return
                self._link = link
                # SUBSCRIBE every wanted channel, one command each.
                commands = self._proto.opened(time.monotonic())
                self._read_timeout = self._idle_timeout
            self._send(link, commands)

    def _send(self, link: Link, commands: list[Command]) -> None:
        # Caller holds _io_lock. A failed send is the reader's to find out.
        if not commands:
            return
        try:
            link.send(commands)
        except Exception as error:
            _logger.debug("Pub/Sub command failed; reconnecting: %s", error)
            link.interrupt()

    def _read(self, link: Link) -> None:
        try:
            reply = link.read(self._read_timeout)
        except Exception as error:
            if not self._stop.is_set():
                if isinstance(error, UndecodableMessage):
                    self._proto.undecodable(error)
                self._drop_link(link, error)
            return
        except BaseException as error:
            self._drop_link(link, error)
            raise
        if reply is None:
            self._idle(link)
            return
        kind, channel, data = reply
        if kind == b"message":
            self._proto.heard()
            deliver = self._deliver()
            if deliver is None:  # the broker was garbage-collected
                self._stop.set()
                return
            try:
                deliver(channel or b"", data)
            except BaseException:
                self._proto.delivery_failed(channel)
            return
        unused = False
        with self._lock:
            if kind == b"error":
                self._proto.error_reply(data, time.monotonic())
            else:
                unused = self._proto.answered(kind, channel, time.monotonic())
        self._progress.set()
        if unused:
            self._give_back(link)

    def _give_back(self, link: Link) -> None:
        """Nothing subscribed any more: close the connection, unless a channel
        was wanted since (its SUBSCRIBE may be on this connection already)."""
        with self._io_lock, self._lock:
            if self._link is not link or not self._proto.idle:
                return
            self._link = None
            self._proto.closed()
        self._progress.set()
        link.close()

    def _idle(self, link: Link) -> None:
        # Nothing for a while: the protocol's health rule says what to do.
        now = time.monotonic()
        with self._lock:
            verdict = self._proto.tick(now)
            wait = self._proto.wait_time(now)
        self._read_timeout = min(self._idle_timeout, max(wait, 0.01))
        if verdict == "ping":
            self._ping(link, wait=True)
        elif verdict == "dead":
            self._drop_link(link, TimeoutError("no reply to PING"))

    def _ping(self, link: Link, *, wait: bool = False) -> None:
        if not self._io_lock.acquire(blocking=wait):
            return  # another send is under way; its reply wakes the reader
        try:
            with self._lock:
                current = self._link is link
                ping = self._proto.ping() if current else ("PING",)
            if current or self._opening is link:
                link.send([ping])
        except Exception as error:  # the reader finds out on its next read
            _logger.debug("PING failed: %s", error)
        finally:
            self._io_lock.release()

    def _drop_link(self, link: Link | None, error: BaseException | None = None) -> None:
        """Close ``link`` (the current one if ``None``); tell the protocol if current.

        ``error`` is why the connection is lost (``None``: given back, or
        stopping).
        """
        with self._io_lock, self._lock:
            current = self._link
            if link is None:
                link = current
            if link is current:
                self._link = None
                if error is None or self._stop.is_set():
                    self._proto.closed()
                else:
                    self._proto.lost(error)
        self._progress.set()
        if link is not None:
            link.close()
