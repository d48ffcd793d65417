"""The listener thread: one Pub/Sub connection, kept alive, read by one thread.

Threading rules (why the locks look the way they do):

* Only the listener thread reads the Pub/Sub connection, and only it creates or
  discards the ``PubSub`` object.
* Other threads may *send* on it (SUBSCRIBE, UNSUBSCRIBE, the PING that wakes
  the reader on close), always under ``_lock``, so two commands never interleave
  on the socket, whatever the redis-py version.
* ``_lock`` is never held while blocking on the socket or calling back into the
  broker, so subscribing never waits behind a slow read or a subscriber.

The reader blocks in ``get_message(timeout=idle_timeout)``: an idle listener
wakes once per ``idle_timeout`` and does nothing else. When the connection drops
it logs the gap, reconnects with exponential backoff and jitter, and subscribes
every channel again itself (it does not rely on redis-py doing so). After
``health_check_interval`` quiet seconds it PINGs: a connection that died
silently (half-open TCP, a frozen server) gets no PONG and is replaced.
"""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from eventspype.broker.redis._stats import Counters
from eventspype.broker.redis._transport import non_decoding

__all__ = ["Listener", "Subscription"]

_logger = logging.getLogger("eventspype.broker.redis")

#: ``deliver(channel, data)``: the broker's handler for one Pub/Sub message.
Deliver = Callable[[Any, Any], None]

_live_listeners: weakref.WeakSet[Listener] = weakref.WeakSet()


class Subscription:
    """Set once Redis confirms a SUBSCRIBE (``ok``) or gives up on it (not ``ok``)."""

    __slots__ = ("_done", "ok")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.ok = False

    def settle(self, ok: bool) -> None:
        self.ok = ok
        self._done.set()

    def wait(self, timeout: float) -> bool:
        """Wait until settled; ``True`` if Redis confirmed the subscription."""
        return self._done.wait(timeout) and self.ok


class Listener:
    """Owns the broker's Pub/Sub connection and the daemon thread reading it."""

    def __init__(
        self,
        client: Any,
        deliver: Deliver,
        counters: Counters,
        *,
        idle_timeout: float,
        health_check_interval: float,
        reconnect_delay: tuple[float, float],
    ) -> None:
        first, longest = reconnect_delay
        if not 0 < first <= longest or health_check_interval <= 0:
            raise ValueError(
                "reconnect_delay must be (first, longest) with 0 < first <= "
                f"longest, and health_check_interval > 0; got {reconnect_delay}, "
                f"{health_check_interval}"
            )
        self._client = non_decoding(client)
        self._owns_client = self._client is not client
        # A weak reference: a broker nobody uses any more can be collected,
        # which stops this thread (see RedisBroker.__init__).
        self._deliver: Callable[[], Deliver | None] = _weak_callable(deliver)
        self._counters = counters
        self._idle_timeout = idle_timeout
        self._health_check_interval = health_check_interval
        self._delay_min, self._delay_max = first, longest
        self._lock = threading.Lock()
        self._channels: dict[str, None] = {}  # wanted channels, in order
        self._waiters: dict[str, list[Subscription]] = {}
        self._pubsub: Any = None
        self._stopping = False
        self._stop = threading.Event()
        self._work = threading.Event()  # channels were added while idle
        self._thread: threading.Thread | None = None
        # Read and written by the listener thread only.
        self._confirmed: set[str] = set()
        self._down_since: float | None = None
        self._ever_connected = False
        self._failures = 0
        self._quiet_since: float | None = None
        self._ping_sent: float | None = None
        self._recovering = False

    @property
    def on_listener_thread(self) -> bool:
        """Whether the caller runs on the listener thread (a subscriber callback)."""
        return threading.current_thread() is self._thread

    def add(self, channel: str) -> Subscription | None:
        """Subscribe ``channel`` (sent now if connected, else on (re)connection).

        Returns what to wait on for Redis's confirmation, or ``None`` when
        waiting is pointless: Redis is known to be down, or the listener stopped.
        """
        with self._lock:
            if self._stopping:
                return None
            self._channels[channel] = None
            waiter = Subscription()
            self._waiters.setdefault(channel, []).append(waiter)
            if self._pubsub is not None:
                self._send(self._pubsub.subscribe, channel)
            else:
                self._work.set()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="eventspype-redis-listener", daemon=True
                )
                self._thread.start()
                _live_listeners.add(self)
            return None if self._down_since is not None else waiter

    def remove(self, channel: str) -> None:
        """Unsubscribe ``channel``."""
        with self._lock:
            if channel not in self._channels:
                return
            del self._channels[channel]
            for waiter in self._waiters.pop(channel, ()):
                waiter.settle(False)
            if self._pubsub is not None:
                self._send(self._pubsub.unsubscribe, channel)

    def request_stop(self) -> None:
        """Ask the thread to stop, without waiting (idempotent)."""
        with self._lock:
            self._stopping = True
            self._stop.set()
            self._work.set()
            thread = self._thread
            if self._pubsub is not None:
                # The reply wakes the reader out of its blocking read now
                # rather than at the next idle wake-up.
                self._send(self._pubsub.ping)
            self._release_waiters()
        if thread is None and self._owns_client:
            self._client.connection_pool.disconnect()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the thread to end; ``False`` if it did not.

        Returns ``True`` at once on the listener thread itself (a subscriber
        closing the broker), which ends as soon as that subscriber returns.
        """
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- the thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                pubsub = self._pubsub
                if pubsub is not None:
                    self._read(pubsub)
                    continue
                self._work.clear()
                with self._lock:
                    channels = list(self._channels)
                if not channels:
                    self._work.wait()
                elif not self._failures or not self._stop.wait(self._next_delay()):
                    self._connect(channels)
        except Exception:  # a bug: say so once, never die with a traceback
            _logger.exception("Redis listener thread failed; no more deliveries")
        finally:
            with self._lock:
                pubsub, self._pubsub = self._pubsub, None
                self._release_waiters()
            _close_quietly(pubsub)
            if self._owns_client:
                self._client.connection_pool.disconnect()

    def _connect(self, channels: list[str]) -> None:
        pubsub = self._client.pubsub()
        try:
            pubsub.subscribe(*channels)  # opens the connection
        except Exception as error:
            _close_quietly(pubsub)
            self._connection_failed(error)
            return
        with self._lock:
            if self._stopping:
                _close_quietly(pubsub)
                return
            # Channels added or removed while we were connecting.
            missing = [c for c in self._channels if c not in channels]
            extra = [c for c in channels if c not in self._channels]
            if missing:
                self._send(pubsub.subscribe, *missing)
            if extra:
                self._send(pubsub.unsubscribe, *extra)
            self._pubsub = pubsub
        self._confirmed.clear()
        self._quiet_since = self._ping_sent = None
        # Healthy only once Redis confirms a subscription (see _subscribed):
        # a server that accepts connections but refuses commands (NOAUTH,
        # LOADING) must keep the backoff growing.
        self._recovering = True

    def _read(self, pubsub: Any) -> None:
        try:
            message = pubsub.get_message(timeout=self._idle_timeout)
        except Exception as error:
            if not self._stop.is_set():
                self._connection_lost(pubsub, error)
            return
        if message is None:
            self._idle(pubsub)
            return
        self._quiet_since = None
        kind = message["type"]
        if kind == "message":
            deliver = self._deliver()
            if deliver is None:  # the broker was garbage-collected
                self._stop.set()
                return
            try:
                deliver(message["channel"], message["data"])
            except Exception:  # the broker's handler never raises; be sure
                _logger.exception("Delivering a Redis message failed")
        elif kind == "subscribe":
            self._subscribed(_text(message["channel"]))
        elif kind == "unsubscribe":
            self._confirmed.discard(_text(message["channel"]))
            self._close_if_unused(pubsub)
        elif kind == "pong":
            self._ping_sent = None

    def _subscribed(self, channel: str) -> None:
        if self._recovering:
            self._recovered()
        elif channel in self._confirmed:
            # A second confirmation: redis-py reconnected underneath us (it
            # does so inside get_message in some versions) and re-subscribed.
            self._confirmed.clear()
            self._counters.reconnects += 1
            _logger.warning(
                "Redis Pub/Sub connection was re-established by redis-py and "
                "its channels re-subscribed; events published in between "
                "were not delivered"
            )
        self._confirmed.add(channel)
        with self._lock:
            waiters = self._waiters.pop(channel, ())
        for waiter in waiters:
            waiter.settle(True)

    def _recovered(self) -> None:
        self._recovering = False
        self._failures = 0
        if self._down_since is not None:
            with self._lock:
                count = len(self._channels)
            away = time.monotonic() - self._down_since
            if self._ever_connected:
                self._counters.reconnects += 1
                _logger.warning(
                    "Redis Pub/Sub connection back after %.1f s; re-subscribed "
                    "%d channel(s). Events published in between were lost.",
                    away,
                    count,
                )
            else:
                _logger.warning(
                    "Redis reachable after %.1f s; subscribed %d channel(s)",
                    away,
                    count,
                )
            self._down_since = None
        self._ever_connected = True

    def _idle(self, pubsub: Any) -> None:
        # Nothing for idle_timeout seconds: a silent half-open connection looks
        # the same as a quiet one, so PING now and then and expect the PONG.
        now = time.monotonic()
        if self._quiet_since is None:
            self._quiet_since = now
        elif self._ping_sent is not None:
            if now - self._ping_sent > max(self._health_check_interval, 1.0):
                self._connection_lost(pubsub, TimeoutError("no reply to PING"))
        elif now - self._quiet_since >= self._health_check_interval:
            with self._lock:
                if self._pubsub is pubsub:
                    self._send(pubsub.ping)
            self._ping_sent = now

    def _close_if_unused(self, pubsub: Any) -> None:
        with self._lock:
            if self._channels or self._pubsub is not pubsub:
                return
            self._pubsub = None
        _close_quietly(pubsub)

    def _connection_lost(self, pubsub: Any, error: BaseException) -> None:
        with self._lock:
            if self._pubsub is pubsub:
                self._pubsub = None
            count = len(self._channels)
            self._release_waiters()  # see _connection_failed
        _close_quietly(pubsub)
        self._failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            _logger.warning(
                "Redis Pub/Sub connection lost (%s: %s); reconnecting with "
                "backoff to re-subscribe %d channel(s)",
                type(error).__name__,
                error,
                count,
            )

    def _connection_failed(self, error: BaseException) -> None:
        self._failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            _logger.warning(
                "Cannot reach Redis for Pub/Sub (%s: %s); retrying with backoff",
                type(error).__name__,
                error,
            )
        else:
            _logger.debug("Redis still unreachable (%s)", error)
        with self._lock:
            # Nobody should wait for a confirmation that may take minutes.
            self._release_waiters()

    def _next_delay(self) -> float:
        exponent = min(self._failures - 1, 30)
        delay = min(self._delay_max, self._delay_min * 2.0**exponent)
        return delay * random.uniform(0.5, 1.0)  # jitter: no thundering herd

    def _release_waiters(self) -> None:
        # Caller holds _lock.
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.settle(False)
        self._waiters.clear()

    def _send(self, command: Callable[..., Any], *args: str) -> None:
        # Caller holds _lock. A failed send means a broken connection: the
        # reader sees the same failure and reconnects, re-subscribing all.
        try:
            command(*args)
        except Exception as error:
            _logger.debug("Pub/Sub command failed; the reader reconnects: %s", error)


def _text(channel: Any) -> str:
    return channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel


def _close_quietly(pubsub: Any) -> None:
    if pubsub is None:
        return
    try:
        pubsub.close()
    except Exception as error:  # the connection is already broken
        _logger.debug("Closing the Pub/Sub connection failed: %s", error)


def _weak_callable(function: Deliver) -> Callable[[], Deliver | None]:
    return weakref.WeakMethod(function)


@atexit.register
def _stop_all() -> None:
    # A broker nobody closed: stop its thread before the interpreter tears
    # down the modules it uses, so exit prints nothing.
    listeners = list(_live_listeners)
    for listener in listeners:
        listener.request_stop()
    for listener in listeners:
        listener.join(1.0)
