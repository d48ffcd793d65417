"""The listener thread: one Pub/Sub connection, kept alive, read by one thread.

:class:`Listener` is the side other threads call (what is wanted, starting,
waiting, stopping); what the thread itself runs is its base class,
:class:`~pubsub.reader.PubSubReader`.

Threading rules (why the locks look the way they do):

* Only the listener thread reads the connection (a :class:`~pubsub.link.Link`) and
  only it opens, replaces or discards it.
* ``_lock`` guards the state (wanted channels, waiters, what was sent) and is
  never held during I/O. ``_io_lock`` serializes *sending* (SUBSCRIBE,
  UNSUBSCRIBE, PING) from any thread, so commands never interleave on the
  socket; a send is bounded by the connection's timeout. ``_io_lock`` is
  taken before ``_lock``, never after.
* Callers change what is wanted with :meth:`Listener.add` and
  :meth:`Listener.remove` (state only: safe under the broker's lock), then call
  :meth:`Listener.sync` (I/O: never under the broker's lock), which sends the
  difference between what is wanted and what was sent. Whatever order
  concurrent callers run in, the last sync sends the final state.
* Stopping takes no lock: it sets flags and shuts the socket down, which wakes
  the reader at once.

What to send, what each reply means, when to PING and how long to back off
is the :class:`~pubsub.protocol.PubSubProtocol`'s (no I/O): an error reply
to a SUBSCRIBE (an ACL that forbids the channel) is a refusal of that
channel, reported to whoever waits for it and counted, never a lost
connection: the other channels go on delivering.

Nothing ends delivery: an exception of any kind raised while handling a
message is logged with its traceback and counted, and the loop goes on; one
raised by the loop itself (a bug of ours) makes it start over on a new
connection; a thread that died anyway is replaced by the next :meth:`Listener.add`
(or :meth:`Listener.ensure_running`).

The reader waits in ``read(timeout=idle_timeout)``: an idle listener wakes once
per ``idle_timeout`` and does nothing else. When the connection drops it
reconnects with backoff and subscribes every channel again. After
``health_check_interval`` quiet seconds it PINGs: a connection that died
silently (half-open TCP, a frozen server) gets no answer and is replaced (the
protocol's one health rule, the asyncio listener's too).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._io.process import join_thread, stop_at_exit
from eventspype.broker.redis._wire.stats import ConnectionState, Counters
from eventspype.broker.redis.pubsub.link import Link
from eventspype.broker.redis.pubsub.protocol import PubSubProtocol, Waiter
from eventspype.broker.redis.pubsub.reader import Deliver, PubSubReader
from eventspype.broker.redis.pubsub.subscribing import Subscription, check_subscribed

__all__ = ["Deliver", "Listener"]

_logger = logging.getLogger("eventspype.broker.redis")


class Listener(PubSubReader):
    """Owns the broker's Pub/Sub connection and the daemon thread reading it.

    Channels are the names on the wire, as bytes. ``new_link`` makes an
    unopened connection; ``deliver`` and ``tidy`` are bound methods of the
    broker, held weakly (a broker nobody uses can be collected, which stops
    this thread); ``tidy`` runs on this thread after :meth:`request_tidy`.
    """

    def __init__(
        self,
        new_link: Callable[[], Link],
        deliver: Deliver,
        tidy: Callable[[], None],
        counters: Counters,
        *,
        idle_timeout: float,
        health_check_interval: float,
        reconnect_delay: tuple[float, float],
        encoding: str = "utf-8",
    ) -> None:
        self._proto = PubSubProtocol(
            counters,
            health_check_interval=health_check_interval,
            reconnect_delay=reconnect_delay,
            encoding=encoding,
        )
        self._new_link = new_link
        self._deliver = weakref.WeakMethod(deliver)
        self._tidy = weakref.WeakMethod(tidy)
        self._counters = counters
        self._idle_timeout = idle_timeout
        self._stopping = False
        self._start_over()
        register_for_fork(self)

    def _start_over(self) -> None:
        """Fresh locks and no connection, thread or channel (also after a fork)."""
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._stop = threading.Event()
        self._work = threading.Event()  # channels were added while idle
        self._thread: threading.Thread | None = None
        self._tidy_requested = False
        # Under _lock (and _io_lock for the link and what was sent on it).
        self._proto.reset()  # what _link is asked and answered, health, backoff
        self._link: Link | None = None  # subscribed, read by the thread
        self._opening: Link | None = None  # being opened, for request_stop
        self._progress = threading.Event()  # set on every confirmation or failure
        self._read_timeout = self._idle_timeout  # the thread's only

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and its socket is not ours
        # (dropped, not closed). The broker forgets its subscriptions too.
        self._start_over()

    @property
    def on_listener_thread(self) -> bool:
        """Whether the caller runs on the listener thread (a subscriber callback)."""
        return threading.current_thread() is self._thread

    # -- what is wanted (any thread) ----------------------------------------

    def add(self, channel: bytes) -> Subscription | None:
        """Want ``channel``; call :meth:`sync` next (outside your own locks).

        Returns what to wait on for Redis's confirmation, or ``None`` when
        waiting is pointless: Redis already confirmed it, Redis is known to be
        down, or the listener stopped.
        """
        with self._lock:
            if self._stopping:
                return None
            waiter = Subscription()
            if not self._proto.want(channel, waiter):
                return None  # subscribed on the live connection already
            self._start_thread()
            self._work.set()
            return None if self._proto.down else waiter

    def hand_over(self, channel: bytes) -> list[Waiter]:
        """Stop wanting ``channel``, for another listener; its unsettled waiters.

        Call :meth:`sync` next, and give the waiters to :meth:`adopt`.
        """
        with self._lock:
            return self._proto.hand_over(channel)

    def adopt(self, channel: bytes, waiters: list[Waiter]) -> None:
        """Want ``channel`` for the waiters another listener handed over.

        Call :meth:`sync` next. They are settled when Redis confirms it here
        (at once if it is confirmed already).
        """
        with self._lock:
            if self._stopping:
                for waiter in waiters:
                    waiter.settle(False)
                return
            if not waiters:
                self._proto.want(channel)
            for waiter in waiters:
                if not self._proto.want(channel, waiter):
                    waiter.settle(True)  # confirmed here already
            self._start_thread()
            self._work.set()

    def ensure_running(self) -> None:
        """Start a new thread if channels are wanted and the thread died."""
        with self._lock:
            if self._proto.wanted and not self._stopping:
                self._start_thread()

    def _start_thread(self) -> None:
        # Caller holds _lock.
        thread = self._thread
        if thread is not None and (thread.is_alive() or self._stopping):
            return
        if thread is not None:  # died: nothing should, but never stay dead
            self._proto.replaced("thread")
            if self._link is not None:  # nobody reads it any more
                self._link.close()
                self._link = None
        self._thread = threading.Thread(
            target=self._run, name="eventspype-redis-listener", daemon=True
        )
        self._thread.start()
        stop_at_exit(self)

    def remove(self, channel: bytes) -> None:
        """Stop wanting ``channel``; call :meth:`sync` next."""
        with self._lock:
            self._proto.unwant(channel)

    def wants(self, channel: bytes) -> bool:
        """Whether ``channel`` is wanted here (a sharded wait checks moves)."""
        with self._lock:
            return channel in self._proto.wanted

    def sync(self) -> None:
        """Send what :meth:`add` and :meth:`remove` changed, if connected.

        A failed send is not raised: the connection is broken, and the reader
        replaces it and subscribes every wanted channel on the new one.
        """
        with self._io_lock:
            with self._lock:
                link = self._link
                if link is None or self._stopping:
                    return
                # Recorded before sending: the reply may beat the bookkeeping.
                commands = self._proto.commands()
            self._send(link, commands)

    # -- what is true now (any thread) ----------------------------------------

    def wait_until_subscribed(self, timeout: float) -> None:
        """Wait until Redis has confirmed every wanted channel on a live connection.

        Returns at once when no channel is wanted.

        Raises:
            SubscriptionRefused: Redis refused a channel (the first one).
            TimeoutError: not done within ``timeout`` seconds; the message
                names the channels still waiting and the last connection error.
        """
        self.ensure_running()
        deadline = time.monotonic() + timeout
        while True:
            self._progress.clear()
            left = deadline - time.monotonic()
            with self._lock:
                if check_subscribed(self._proto, timeout, left <= 0):
                    return
            self._progress.wait(min(left, 0.1))

    def state(self) -> ConnectionState:
        """Connected or not, since when, the last error, what is subscribed."""
        with self._lock:
            return self._proto.state()

    def request_tidy(self) -> None:
        """Have the thread call ``tidy`` soon (safe from a weakref callback)."""
        self._tidy_requested = True

    # -- stopping -----------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the thread to stop, without waiting (idempotent).

        Takes no lock, so a garbage-collection callback may call it anywhere.
        """
        self._stopping = True
        self._stop.set()
        self._work.set()
        for link in (self._link, self._opening):
            if link is not None and not link.interrupt():
                self._ping(link)  # a reply wakes the reader as well

    def threads(self) -> list[threading.Thread]:
        """The listener thread, if it runs."""
        thread = self._thread
        return [thread] if thread is not None and thread.is_alive() else []

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the thread to end; ``False`` if it did not.

        Returns ``True`` at once on the listener thread itself (a subscriber
        closing the broker), which ends as soon as that subscriber returns.
        """
        return join_thread(self._thread, timeout)
