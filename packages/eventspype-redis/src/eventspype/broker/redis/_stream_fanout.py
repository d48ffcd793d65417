"""TEMPORARY: local fan-out that reports which subscribers raised.

The Streams broker acknowledges an entry only when every local subscriber of
its channel handled it. The shared inbound path of the hardening work (issue
8, branch ``wip-redis``) provides a fan-out that does this *and* applies the
per-subscriber publication checks (``tag_mismatch``, ``class_mismatch``).
Until it is merged, this adapter stands in for it with the same shape as on
that branch: ``add``/``remove`` (optionally with the publication the
subscriber came through) and ``deliver() -> Delivery`` (``handled``,
``failed``, ``complete``). It applies no check of its own
(checks belong to the shared path); it only remembers the publications so that
switching to the shared fan-out is a change of one import in
``_stream_broker``. Delete this module then.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eventspype._subscribers import WeakSubscriberList, log_subscriber_error
from eventspype.event import NormalizedTag

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["Delivery", "LocalFanout"]

_logger = logging.getLogger("eventspype.broker.redis")


@dataclass
class Delivery:
    """What happened to one event in the local fan-out.

    Attributes:
        handled: Subscribers that returned normally.
        failed: ``(subscriber, exception)`` for each subscriber that raised.
    """

    handled: int = 0
    failed: list[tuple[object, BaseException]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether no subscriber raised (the entry may be acknowledged)."""
        return not self.failed


class LocalFanout:
    """Subscribers per channel, by weak reference; thread-safe (see module docs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, WeakSubscriberList] = {}
        # (channel, id(subscriber)) -> publications it came through (kept for
        # the shared fan-out's checks; unused here).
        self._publications: dict[tuple[str, int], list[EventPublication]] = {}
        #: Subscriber calls that raised.
        self.subscriber_errors = 0

    def add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None = None,
    ) -> None:
        """Add ``subscriber`` to ``channel`` (again: no effect)."""
        with self._lock:
            subscribers = self._channels.get(channel)
            if subscribers is None:
                subscribers = self._channels[channel] = WeakSubscriberList()
            subscribers.add(subscriber)
            if publication is not None:
                known = self._publications.setdefault((channel, id(subscriber)), [])
                if all(p is not publication for p in known):
                    known.append(publication)

    def remove(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None = None,
    ) -> None:
        """Remove ``subscriber`` from ``channel`` (unknown: ignored)."""
        with self._lock:
            key = (channel, id(subscriber))
            known = self._publications.get(key, [])
            if publication is not None:
                known[:] = [p for p in known if p is not publication]
                if known:
                    return  # still subscribed through another publication
            self._publications.pop(key, None)
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
        """The channels with at least one live subscriber."""
        with self._lock:
            return [c for c, subs in self._channels.items() if len(subs)]

    def deliver(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> Delivery:
        """Call every live subscriber of ``channel``; report who raised."""
        outcome = Delivery()
        subscribers = self._channels.get(channel)
        if subscribers is None:
            return outcome
        collected = False
        for ref in subscribers.snapshot:
            subscriber = ref()
            if subscriber is None:
                collected = True
                continue
            try:
                subscriber.call(event, event_tag, caller)
            except Exception as error:
                self.subscriber_errors += 1
                outcome.failed.append((subscriber, error))
                log_subscriber_error(_logger, subscriber, event, event_tag, channel)
            else:
                outcome.handled += 1
        if collected:
            subscribers.reconcile()  # drop collected subscribers, once
        return outcome
