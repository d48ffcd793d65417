"""Which channels a broker subscribes on Redis, and who subscribes to them locally.

A channel is subscribed on Redis while it has a live local subscriber in the
:class:`~_wire.fanout.Fanout`. A subscriber that is garbage-collected is reported
by the fan-out's callback, which only asks the listener thread to come back
(it may run on any thread, in the middle of anything, so it takes no lock);
the listener then calls :meth:`Subscriptions.tidy` within about a second.
Every change is made under ``_lock`` and the listener is told what is wanted
there (state only); the SUBSCRIBE or UNSUBSCRIBE is sent afterwards, outside
the lock (``Listener.sync``), so that nobody waits for another caller's I/O
to change the tables.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._wire.channels import ChannelNames
from eventspype.broker.redis._wire.fanout import Fanout
from eventspype.broker.redis.pubsub.subscribing import Subscription

if TYPE_CHECKING:
    from eventspype.broker.redis._wire.stats import ConnectionState
    from eventspype.pub.publication import EventPublication
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["ChannelListener", "Subscriptions", "ThreadListener"]


class ChannelListener(Protocol):
    """What :class:`Subscriptions` tells a listener (thread or asyncio task).

    Channels are names on the wire. ``add`` and ``remove`` change what is
    wanted (state only: called under the tables' lock); ``sync`` sends the
    difference (I/O: called outside it); ``request_tidy`` asks for
    :meth:`Subscriptions.tidy` soon and must be safe from a weakref callback.
    """

    def add(self, channel: bytes) -> Subscription | None:
        """Want ``channel``; what to wait on for the confirmation, if anything."""

    def remove(self, channel: bytes) -> None:
        """Stop wanting ``channel``."""

    def sync(self) -> None:
        """Send what ``add`` and ``remove`` changed."""

    def request_tidy(self) -> None:
        """Have ``Subscriptions.tidy`` called soon, from the listener."""


class ThreadListener(ChannelListener, Protocol):
    """A listener with its own thread(s): ``Listener`` and ``ShardedListener``."""

    @property
    def on_listener_thread(self) -> bool:
        """Whether the caller runs on (one of) the listener thread(s)."""

    def ensure_running(self) -> None:
        """Start a new thread if channels are wanted and the thread died."""

    def state(self) -> ConnectionState:
        """The connection's state, for ``stats()``."""

    def wait_until_subscribed(self, timeout: float) -> None:
        """Wait until Redis has confirmed every wanted channel."""

    def request_stop(self) -> None:
        """Ask the thread(s) to stop, without waiting (takes no lock)."""

    def threads(self) -> list[threading.Thread]:
        """The listener thread(s) that run."""

    def join(self, timeout: float) -> bool:
        """Wait for the thread(s) to end; ``False`` if one did not."""


class Subscriptions:
    """The channel tables of one broker (thread-safe; see the module docs)."""

    def __init__(
        self,
        names: ChannelNames,
        listener: ChannelListener,
        *,
        on_event_loop: bool = False,
    ) -> None:
        self._names = names
        self._listener = listener
        self._on_event_loop = on_event_loop  # see _wire.fanout
        self.closed = False
        self._start_over()
        register_for_fork(self)

    def _start_over(self) -> None:
        self._lock = threading.Lock()
        listener = self._listener
        #: The local fan-out (its subscriber_errors count the isolated failures).
        self.local = Fanout(
            lambda channel: listener.request_tidy(), on_event_loop=self._on_event_loop
        )
        # Copy-on-write, so that the listener thread reads it without the lock.
        self._by_wire: dict[bytes, str] = {}  # subscribed: wire name -> channel

    def _after_fork_in_child(self) -> None:
        # The child starts with no subscription: the parent's subscribers (copies
        # in the child) would otherwise act on every event a second time. Its
        # listener has forgotten the channels too (see Listener).
        self._start_over()

    @property
    def count(self) -> int:
        """How many channels are subscribed."""
        return len(self._by_wire)

    def close(self) -> bool:
        """Refuse new subscriptions; ``False`` if already closed."""
        with self._lock:
            if self.closed:
                return False
            self.closed = True
            return True

    def add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None = None,
    ) -> Subscription | None:
        """Subscribe ``subscriber``; what to wait on (see ``ChannelListener.add``).

        Raises:
            RuntimeError: the broker is closed.
        """
        with self._lock:
            if self.closed:
                raise RuntimeError("RedisBroker is closed")
            self.local.add(channel, subscriber, publication)
            wire = self._names.wire(channel)
            if wire not in self._by_wire:
                self._by_wire = {**self._by_wire, wire: channel}
            pending = self._listener.add(wire)
        self._listener.sync()
        return pending

    def discard(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None = None,
    ) -> None:
        """Unsubscribe ``subscriber``; the channel too if it was the last."""
        with self._lock:
            if self.local.remove(channel, subscriber, publication):
                self._forget(channel)
        self._listener.sync()

    def channel_of(self, wire: bytes) -> str | None:
        """The local channel of a wire name, if subscribed (no lock: listener)."""
        return self._by_wire.get(wire)

    def forget_if_unused(self, channel: str) -> None:
        """End the subscription of ``channel`` if no subscriber is left."""
        with self._lock:
            if not self.local.has_live(channel):
                self._forget(channel)
        self._listener.sync()

    def tidy(self) -> None:
        """Forget the channels whose last subscribers were collected (listener)."""
        with self._lock:
            for channel in self.local.reap():
                if not self.local.has_live(channel):
                    self._forget(channel)
        self._listener.sync()

    def _forget(self, channel: str) -> None:
        # Caller holds _lock.
        wire = self._names.wire(channel)
        if wire not in self._by_wire:
            return
        self._by_wire = {w: c for w, c in self._by_wire.items() if w != wire}
        if not self.closed:
            self._listener.remove(wire)
