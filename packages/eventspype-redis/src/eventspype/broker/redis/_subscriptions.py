"""Which channels a broker subscribes on Redis, and who subscribes to them locally.

A channel is subscribed on Redis while it has a live local subscriber. The local
fan-out is a :class:`~eventspype.broker.local.LocalBroker`, which holds
subscribers by weak reference; a subscriber that is garbage-collected is seen by
a weak reference of our own, whose callback only queues the channel (it may run
on any thread, in the middle of anything, so it takes no lock) and asks the
listener thread to come back for it, within about a second. Every change is
made under ``_lock`` and the listener is told what is wanted there (state
only); the SUBSCRIBE or UNSUBSCRIBE is sent afterwards, outside the lock
(``Listener.sync``), so that nobody waits for another caller's I/O to change
the tables.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING

from eventspype.broker.local import LocalBroker
from eventspype.broker.redis._listener import Listener, Subscription
from eventspype.broker.redis._process import track

if TYPE_CHECKING:
    from eventspype.broker.redis._sharded_listener import ShardedListener
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["Subscriptions"]

_Key = tuple[str, int]  # (channel, id(subscriber)): subscribers may be unhashable


class Subscriptions:
    """The channel tables of one broker (thread-safe; see the module docs)."""

    def __init__(
        self, prefix: str, encoding: str, listener: Listener | ShardedListener
    ) -> None:
        self._prefix = prefix
        self._encoding = encoding
        self._listener = listener
        self.closed = False
        self._start_over()
        track(self)

    def _start_over(self) -> None:
        self._lock = threading.Lock()
        #: The local fan-out (its subscriber_errors count the isolated failures).
        self.local = LocalBroker()
        # Copy-on-write, so that the listener thread reads them without the lock.
        self._wire: dict[str, bytes] = {}  # channel -> name on the wire
        self._by_wire: dict[bytes, str] = {}
        self._watches: dict[_Key, weakref.ref[EventSubscriber]] = {}
        self._collected: deque[tuple[_Key, weakref.ref[EventSubscriber]]] = deque()

    def _after_fork_in_child(self) -> None:
        # The child starts with no subscription: the parent's subscribers (copies
        # in the child) would otherwise act on every event a second time. Its
        # listener has forgotten the channels too (see Listener).
        self._start_over()

    @property
    def count(self) -> int:
        """How many channels are subscribed."""
        return len(self._wire)

    def close(self) -> bool:
        """Refuse new subscriptions; ``False`` if already closed."""
        with self._lock:
            if self.closed:
                return False
            self.closed = True
            return True

    def add(self, channel: str, subscriber: EventSubscriber) -> Subscription | None:
        """Subscribe ``subscriber``; what to wait on (see ``Listener.add``).

        Raises:
            RuntimeError: the broker is closed.
        """
        with self._lock:
            if self.closed:
                raise RuntimeError("RedisBroker is closed")
            self.local.subscribe(channel, subscriber)
            self._watch(channel, subscriber)
            wire = self._wire.get(channel)
            if wire is None:
                wire = (self._prefix + channel).encode(self._encoding)
                self._wire = {**self._wire, channel: wire}
                self._by_wire = {**self._by_wire, wire: channel}
            pending = self._listener.add(wire)
        self._listener.sync()
        return pending

    def discard(self, channel: str, subscriber: EventSubscriber) -> None:
        """Unsubscribe ``subscriber``; the channel too if it was the last."""
        with self._lock:
            self.local.unsubscribe(channel, subscriber)
            key = (channel, id(subscriber))
            ref = self._watches.get(key)
            if ref is not None and ref() is subscriber:
                del self._watches[key]
            self._forget_if_unused(channel)
        self._listener.sync()

    def channel_of(self, wire: bytes) -> str | None:
        """The local channel of a wire name, if subscribed (no lock: listener)."""
        return self._by_wire.get(wire)

    def forget_if_unused(self, channel: str) -> None:
        """End the subscription of ``channel`` if no subscriber is left."""
        with self._lock:
            self._forget_if_unused(channel)
        self._listener.sync()

    def tidy(self) -> None:
        """Forget the channels whose last subscribers were collected (listener)."""
        while self._collected:
            key, ref = self._collected.popleft()
            with self._lock:
                if self._watches.get(key) is ref:
                    del self._watches[key]
                self._forget_if_unused(key[0])
        self._listener.sync()

    def _watch(self, channel: str, subscriber: EventSubscriber) -> None:
        # Caller holds _lock.
        key = (channel, id(subscriber))
        known = self._watches.get(key)
        if known is not None and known() is subscriber:
            return
        collected, listener = self._collected, self._listener

        def on_collected(ref: weakref.ref[EventSubscriber]) -> None:
            collected.append((key, ref))  # atomic; no lock (see module docs)
            listener.request_tidy()

        self._watches[key] = weakref.ref(subscriber, on_collected)

    def _forget_if_unused(self, channel: str) -> None:
        # Caller holds _lock.
        wire = self._wire.get(channel)
        if wire is None or self.local.subscriber_count(channel):
            return
        self._wire = {c: w for c, w in self._wire.items() if c != channel}
        self._by_wire = {w: c for w, c in self._by_wire.items() if c != channel}
        if not self.closed:
            self._listener.remove(wire)
