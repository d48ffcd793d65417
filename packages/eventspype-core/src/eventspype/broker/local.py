"""The in-process broker."""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

from eventspype._deliver_async import deliver_async
from eventspype._internal import observed as _observed
from eventspype._internal.fork import ForkSafeLock
from eventspype._subscribers import WeakSubscriberList, log_subscriber_error
from eventspype.broker.broker import MessageBroker
from eventspype.event import NormalizedTag
from eventspype.hooks import REGISTRY as _HOOKS
from eventspype.sub.subscriber import require_subscriber

if TYPE_CHECKING:
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["LocalBroker"]

_logger = logging.getLogger(__name__)


class LocalBroker(ForkSafeLock, MessageBroker):
    """Delivers events in-process, synchronously, in the publishing thread.

    Publishing through a ``LocalBroker`` behaves exactly like a publisher with
    no broker: subscribers are held by weak reference and called in the order
    they subscribed; one that raises is logged (with the channel and tag),
    counted in :attr:`subscriber_errors`, and the others still get the event.
    Subscribing, unsubscribing and publishing are safe from any thread.

    Other brokers can compose one for their local fan-out (``RedisBroker``
    does): :meth:`subscriber_count` and :meth:`channels` tell them which
    channels still have live subscribers.
    """

    def __init__(self) -> None:
        self._init_lock()
        self._channels: dict[str, WeakSubscriberList] = {}
        # Every channel's list still referenced by someone (an EventPublisher
        # dispatching to it, see _dispatch_list): a channel keeps one list for
        # as long as it is held, even while it has no subscriber.
        self._lists: weakref.WeakValueDictionary[str, WeakSubscriberList] = (
            weakref.WeakValueDictionary()
        )
        #: How many subscriber calls raised since the broker was created.
        self.subscriber_errors = 0

    @property
    def logger(self) -> logging.Logger:
        """The ``logging.Logger`` of this module, where subscriber errors go."""
        return _logger

    def publish(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        subscribers = self._channels.get(channel)
        if subscribers is None:
            return
        # Hot path, kept inline (no helper call per event); the loop of
        # EventPublisher.publish, which runs it itself for a publisher on this
        # broker (see _dispatch_list). No test of the dereferenced subscriber:
        # a collected one is None, whose ``call`` raises AttributeError.
        for ref in subscribers.snapshot:
            subscriber = ref()
            try:
                subscriber.call(event, event_tag, caller)  # type: ignore[union-attr]
            except Exception:
                if subscriber is None:
                    subscribers.reconcile()  # drop it: its weakref queued it
                else:
                    self._subscriber_failed(subscriber, event, event_tag, channel)

    def _publish_observed(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        # publish() while hooks are installed (see _use_hooks below).
        subscribers = self._channels.get(channel)
        if subscribers is not None:
            errors, collected = _observed.deliver(
                _HOOKS.hooks,
                subscribers.snapshot,
                event,
                event_tag,
                caller,
                channel,
                _logger,
                channel,
            )
            self.subscriber_errors += errors
            if collected:
                subscribers.reconcile()

    async def publish_async(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """Deliver like :meth:`publish`, awaiting coroutine subscribers.

        Synchronous subscribers are called and coroutine subscribers
        (:class:`~eventspype.sub.asynchronous.AsyncEventSubscriber`) awaited,
        in subscription order: when this returns every subscriber has handled
        the event. Errors are isolated and counted as in :meth:`publish`.
        """
        subscribers = self._channels.get(channel)
        if subscribers is None:
            return
        errors, collected = await deliver_async(
            subscribers.snapshot, event, event_tag, caller, _logger, channel
        )
        self.subscriber_errors += errors
        if collected:
            subscribers.reconcile()

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Add ``subscriber`` to ``channel``; subscribing twice has no effect.

        Raises:
            TypeError: ``subscriber`` has no ``call`` method.
        """
        require_subscriber(subscriber, "subscribe")
        with self._lock:
            subscribers = self._channels.get(channel)
            if subscribers is None:
                subscribers = self._list(channel)
                self._channels[channel] = subscribers
            subscribers.add(subscriber)

    def _dispatch_list(self, channel: str) -> WeakSubscriberList:
        """The list ``publish(channel, ...)`` delivers to, for a publisher to
        deliver to it itself (the same loop, one call less per event).

        The same list for as long as the caller holds it: subscribers added
        to ``channel`` later go to it, even after it was left empty. Errors
        of its subscribers belong to this broker (see ``_subscriber_failed``).
        """
        with self._lock:
            subscribers = self._channels.get(channel)
            return subscribers if subscribers is not None else self._list(channel)

    def _subscriber_failed(
        self,
        subscriber: EventSubscriber,
        event: Any,
        event_tag: NormalizedTag,
        channel: str,
    ) -> None:
        """Count and log a subscriber error, as :meth:`publish` does (call it
        from an ``except`` block, for the traceback)."""
        self.subscriber_errors += 1
        log_subscriber_error(_logger, subscriber, event, event_tag, channel)

    def _list(self, channel: str) -> WeakSubscriberList:
        # The held list of channel, or a new one (caller holds the lock).
        subscribers = self._lists.get(channel)
        if subscribers is None:
            subscribers = WeakSubscriberList(f"channel {channel!r}")
            self._lists[channel] = subscribers
        return subscribers

    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        with self._lock:
            subscribers = self._channels.get(channel)
            if subscribers is None:
                return
            subscribers.discard(subscriber)
            if not subscribers:
                del self._channels[channel]

    def subscriber_count(self, channel: str) -> int:
        """How many live subscribers ``channel`` has."""
        subscribers = self._channels.get(channel)
        return 0 if subscribers is None else len(subscribers)

    def channels(self) -> list[str]:
        """The channels that have at least one live subscriber.

        Also forgets channels whose subscribers have all been collected.
        """
        with self._lock:
            for channel in [c for c, subs in self._channels.items() if not subs]:
                del self._channels[channel]
            return list(self._channels)


_PUBLISH = LocalBroker.publish


def _use_hooks(installed: bool) -> None:
    # As EventPublisher.publish: hooks are looked at only while installed.
    LocalBroker.publish = (  # type: ignore[method-assign]
        LocalBroker._publish_observed if installed else _PUBLISH
    )


_HOOKS.switch(_use_hooks)
