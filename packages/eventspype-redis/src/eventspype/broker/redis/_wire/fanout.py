"""The local fan-out: which subscriber accepts which event, and what happened.

No I/O: every Redis broker (Pub/Sub, Streams, asyncio) hands a decoded event
to :meth:`Fanout.deliver` and gets a :class:`Delivery` back, so that a broker
that acknowledges messages (Streams) can tell whether every local subscriber
handled it.

What a subscriber accepts depends on how it subscribed:

* through a publisher (``subscribe_publication``): events whose tag equals the
  publication's tag and that are instances of its event class (subclasses
  included); a subscriber of several publications on one channel accepts what
  any of them accepts;
* directly (``subscribe(channel, subscriber)``): every event of the channel
  (the receiver has already checked that the event's tag is the channel's).

An event a subscriber does not accept is not given to it; the
:class:`Delivery` lists the refusal (reason ``tag_mismatch`` or
``class_mismatch``) for the broker to count and log.

A subscriber that raises is logged with its traceback and counted, and the
others still get the event. What counts as "raises" depends on the thread
(DESIGN section 10): on a broker's own thread (a listener or reader thread),
anything, ``SystemExit`` and ``KeyboardInterrupt`` included, since nothing a
subscriber does may end delivery; on the event loop's thread
(``on_event_loop=True``: AsyncRedisBroker), ``Exception`` only, as
``LocalBroker`` does: ``SystemExit`` and ``KeyboardInterrupt`` propagate and
end the loop, as they would from any other code on it.

Subscribers are held by weak reference. When one is garbage-collected, the
``on_collected`` callback gets its channel (from the garbage collector, on any
thread, holding who knows what lock: it must only record it); :meth:`reap`
then removes the dead entries and returns the channels left without a
subscriber. One collected while subscribed and before it was given any event
raises a ``SubscriberLostWarning``, as with ``LocalBroker``: nothing else
would tell that ``add_subscriber(FunctionalEventSubscriber(handler))`` kept
no reference. Checking costs one test per delivery while such a subscriber
is waiting for its first event, nothing otherwise.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from eventspype._internal import observed as _observed
from eventspype._internal.lost import lost_subscriber_message, warn_lost_subscriber
from eventspype.broker.redis._wire.stats import DropReason
from eventspype.delivery import current_delivery
from eventspype.event import NormalizedTag
from eventspype.hooks import REGISTRY as _HOOKS

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["Delivery", "Fanout"]

_logger = logging.getLogger("eventspype.broker.redis")


class Delivery(NamedTuple):
    """What :meth:`Fanout.deliver` did with one event."""

    #: Subscribers that were called and returned normally.
    handled: int
    #: ``(subscriber, exception)`` for each subscriber that raised (logged).
    failed: tuple[tuple[EventSubscriber, BaseException], ...]
    #: ``(reason, detail)`` for each subscriber that did not accept the event.
    refused: tuple[tuple[DropReason, str], ...]

    @property
    def complete(self) -> bool:
        """Whether no subscriber raised (a Streams broker may acknowledge)."""
        return not self.failed


_NOBODY = Delivery(0, (), ())
# The usual outcomes, made once: deliver() runs for every message.
_HANDLED = tuple(Delivery(count, (), ()) for count in range(16))


class _Entry:
    """One subscriber of one channel and the rules it accepts events by."""

    __slots__ = ("ref", "rules")

    def __init__(self, ref: weakref.ref[EventSubscriber]) -> None:
        self.ref = ref
        # Replaced whole under the fan-out's lock; read without it.
        self.rules: tuple[tuple[NormalizedTag, type] | None, ...] = ()


class Fanout:
    """Subscribers by channel, with their rules (see the module docs).

    Thread-safe: changes take a lock and replace the per-channel tuple
    whole; :meth:`deliver` reads without a lock.

    Args:
        on_collected: Called with the channel of a subscriber that was
            garbage-collected (see the module docs); ``None`` to ignore.
        on_event_loop: Whether :meth:`deliver` runs on an event loop's thread
            (what a subscriber's exception may then do: see the module docs).
    """

    def __init__(
        self,
        on_collected: Callable[[str], None] | None = None,
        *,
        on_event_loop: bool = False,
    ) -> None:
        #: What deliver() contains; anything else propagates.
        self._contained: type[BaseException] = (
            Exception if on_event_loop else BaseException
        )
        self._lock = threading.Lock()
        self._channels: dict[str, tuple[_Entry, ...]] = {}
        self._on_collected = on_collected
        self._dead: deque[str] = deque()
        # id(entry.ref) -> the SubscriberLostWarning text, for subscribers
        # not given any event yet; the weakref callbacks only read and pop.
        self._unconfirmed: dict[int, str] = {}
        #: Subscriber calls that raised (each logged with its traceback).
        self.subscriber_errors = 0

    # -- bookkeeping ----------------------------------------------------------

    def add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None = None,
    ) -> bool:
        """Deliver ``channel`` to ``subscriber`` (through ``publication``'s rule).

        Adding the same subscriber and rule twice has no effect. Returns
        whether the channel had no live subscriber before.
        """
        rule = _rule_of(publication)
        with self._lock:
            entries = self._channels.get(channel, ())
            was_empty = not any(e.ref() is not None for e in entries)
            entry = _find(entries, subscriber)
            if entry is None:
                entry = _Entry(weakref.ref(subscriber, self._collected_cb(channel)))
                self._unconfirmed[id(entry.ref)] = lost_subscriber_message(
                    subscriber, f"channel {channel!r}"
                )
                self._channels[channel] = (*entries, entry)
            if rule not in entry.rules:
                entry.rules = (*entry.rules, rule)
            return was_empty

    def remove(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None = None,
    ) -> bool:
        """Stop delivering ``channel`` to ``subscriber``.

        With ``publication``, only that publication's rule goes (the
        subscriber stays while it has others); without, the subscriber goes.
        Returns whether the channel is left without a live subscriber.
        """
        with self._lock:
            entries = self._channels.get(channel, ())
            entry = _find(entries, subscriber)
            if entry is not None:
                if publication is not None:
                    rule = _rule_of(publication)
                    entry.rules = tuple(r for r in entry.rules if r != rule)
                if publication is None or not entry.rules:
                    entry.rules = ()
                    self._unconfirmed.pop(id(entry.ref), None)
                    self._set(channel, tuple(e for e in entries if e is not entry))
            return not self.has_live(channel)

    def reap(self) -> list[str]:
        """Drop collected subscribers; the channels they left without any."""
        channels: list[str] = []
        while self._dead:
            channel = self._dead.popleft()
            with self._lock:
                entries = self._channels.get(channel, ())
                self._set(channel, tuple(e for e in entries if e.ref() is not None))
                if not self.has_live(channel) and channel not in channels:
                    channels.append(channel)
        return channels

    def subscriber_count(self, channel: str) -> int:
        """How many live subscribers ``channel`` has."""
        return sum(e.ref() is not None for e in self._channels.get(channel, ()))

    def has_live(self, channel: str) -> bool:
        """Whether ``channel`` has a live subscriber (stops at the first)."""
        return any(e.ref() is not None for e in self._channels.get(channel, ()))

    def channels(self) -> list[str]:
        """The channels that have at least one live subscriber."""
        return [c for c in list(self._channels) if self.has_live(c)]

    # -- delivery -------------------------------------------------------------

    def deliver(
        self,
        channel: str,
        event: Any,
        event_tag: NormalizedTag,
        caller: Any,
        on_first: Callable[[], None] | None = None,
    ) -> Delivery:
        """Call every subscriber of ``channel`` that accepts the event, in order.

        A subscriber that raises is logged with its traceback and counted,
        and the others still get the event. ``on_first`` is called once, just
        before the first subscriber that accepts the event (so a counter it
        bumps is already up when that subscriber runs). Never raises, unless
        ``on_first`` does or, on an event loop's thread, a subscriber raises
        ``SystemExit``, ``KeyboardInterrupt`` or another exception that is not
        an ``Exception`` (see the module docs).
        """
        entries = self._channels.get(channel)
        if not entries:
            return _NOBODY
        first = on_first
        unconfirmed = self._unconfirmed
        # Installed hooks (eventspype.hooks) see each call, with the transport.
        hooks = _HOOKS.hooks
        transport = current_delivery() if hooks else None
        handled = 0
        failed: tuple[tuple[EventSubscriber, BaseException], ...] = ()
        refused: tuple[tuple[DropReason, str], ...] = ()
        for entry in entries:
            subscriber = entry.ref()
            if subscriber is None:
                continue
            if not _accepts(entry.rules, event, event_tag):
                refused += (_refusal(entry.rules, event, event_tag, channel),)
                continue
            if first is not None:
                first()
                first = None
            if unconfirmed:
                unconfirmed.pop(id(entry.ref), None)
            try:
                if hooks:
                    _observed.call(
                        hooks, subscriber, event, event_tag, caller, channel, transport
                    )
                else:
                    subscriber.call(event, event_tag, caller)
            except self._contained as error:
                with self._lock:  # one listener thread per cluster node
                    self.subscriber_errors += 1
                failed += ((subscriber, error),)
                _logger.exception(
                    "Subscriber %r raised while handling %s event with tag %r on "
                    "channel %r; the other subscribers still receive it",
                    subscriber,
                    type(event).__qualname__,
                    event_tag,
                    channel,
                )
            else:
                handled += 1
        if not failed and not refused and handled < 16:
            return _HANDLED[handled]
        return Delivery(handled, failed, refused)

    def matching(
        self, channel: str, event: Any, event_tag: NormalizedTag
    ) -> tuple[list[EventSubscriber], tuple[tuple[DropReason, str], ...]]:
        """The live subscribers of ``channel`` that accept the event, in order,
        and a refusal per one that does not (for a broker that calls them
        itself: the Streams reader, which awaits coroutine subscribers)."""
        accepted: list[EventSubscriber] = []
        refused: tuple[tuple[DropReason, str], ...] = ()
        unconfirmed = self._unconfirmed
        for entry in self._channels.get(channel, ()):
            subscriber = entry.ref()
            if subscriber is None:
                continue
            if _accepts(entry.rules, event, event_tag):
                accepted.append(subscriber)
                if unconfirmed:  # it is given the event: not lost if dropped
                    unconfirmed.pop(id(entry.ref), None)
            else:
                refused += (_refusal(entry.rules, event, event_tag, channel),)
        return accepted, refused

    # -- internals ------------------------------------------------------------

    def _set(self, channel: str, entries: tuple[_Entry, ...]) -> None:
        # Caller holds _lock.
        if entries:
            self._channels[channel] = entries
        else:
            self._channels.pop(channel, None)

    def _collected_cb(
        self, channel: str
    ) -> Callable[[weakref.ref[EventSubscriber]], None]:
        dead, notify, unconfirmed = self._dead, self._on_collected, self._unconfirmed

        def collected(ref: weakref.ref[EventSubscriber]) -> None:
            dead.append(channel)  # atomic; no lock (see the module docs)
            lost = unconfirmed.pop(id(ref), None)  # atomic too
            if notify is not None:
                notify(channel)
            if lost is not None:
                warn_lost_subscriber(lost)

        return collected


def _rule_of(
    publication: EventPublication | None,
) -> tuple[NormalizedTag, type] | None:
    if publication is None:
        return None
    return (publication.event_tag, publication.event_class)


def _accepts(
    rules: tuple[tuple[NormalizedTag, type] | None, ...],
    event: Any,
    event_tag: NormalizedTag,
) -> bool:
    """Whether a subscriber with ``rules`` accepts the event."""
    for rule in rules:
        if rule is None or (rule[0] == event_tag and isinstance(event, rule[1])):
            return True
    return False


def _find(entries: tuple[_Entry, ...], subscriber: EventSubscriber) -> _Entry | None:
    for entry in entries:
        if entry.ref() is subscriber:
            return entry
    return None


def _refusal(
    rules: tuple[tuple[NormalizedTag, type] | None, ...],
    event: Any,
    event_tag: NormalizedTag,
    channel: str,
) -> tuple[DropReason, str]:
    declared = ", ".join(
        f"({tag!r}, {cls.__module__}.{cls.__qualname__})"
        for tag, cls in (r for r in rules if r is not None)
    )
    kind = type(event)
    reason: DropReason = (
        "class_mismatch"
        if any(r is not None and r[0] == event_tag for r in rules)
        else "tag_mismatch"
    )
    return reason, (
        f"{kind.__module__}.{kind.__qualname__} event with tag {event_tag!r} on "
        f"channel {channel!r} does not match the publication(s) its subscriber "
        f"came through: {declared}; not delivered to that subscriber"
    )
