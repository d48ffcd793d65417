"""The single-event publisher."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from eventspype._subscribers import WeakSubscriberList, log_subscriber_error
from eventspype.pub.publication import EventPublication

if TYPE_CHECKING:
    from eventspype.broker.broker import MessageBroker
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["EventPublisher"]

_logger = logging.getLogger(__name__)


class EventPublisher:
    """Publishes the events of one :class:`EventPublication` to its subscribers.

    Without a broker, :meth:`publish` calls every live subscriber synchronously,
    in subscription order, in the calling thread. With a broker, the event is
    handed to ``broker.publish(str(publication.event_tag), event, tag, caller)``
    and the broker delivers it; subscribers added here are registered with the
    broker on the same channel.

    Subscribers are held by weak reference. A subscriber that raises is logged
    with the event tag and counted in :attr:`subscriber_errors`; the others
    still receive the event. All methods are safe to call from several threads
    at once.
    """

    __slots__ = (
        "__weakref__",
        "_broker",
        "_channel",
        "_event_class",
        "_event_tag",
        "_lock",
        "_publication",
        "_subscribers",
        "subscriber_errors",
    )

    def __init__(
        self, publication: EventPublication, broker: MessageBroker | None = None
    ) -> None:
        if not isinstance(publication, EventPublication):
            raise TypeError(
                "EventPublisher needs an EventPublication, got "
                f"{type(publication).__name__}: {publication!r}"
            )
        self._publication = publication
        self._event_class: type = publication.event_class
        self._event_tag = publication.event_tag
        self._channel = str(publication.event_tag)
        self._broker = broker
        # Serializes broker swaps against add/remove so none is lost mid-migration.
        self._lock = threading.RLock()
        self._subscribers = WeakSubscriberList()
        self.subscriber_errors = 0

    @property
    def name(self) -> str:
        """The class name, used by subscribers that report who published."""
        return type(self).__name__

    @property
    def publication(self) -> EventPublication:
        """The publication this publisher publishes."""
        return self._publication

    @property
    def channel(self) -> str:
        """The broker channel: ``str(publication.event_tag)``."""
        return self._channel

    @property
    def broker(self) -> MessageBroker | None:
        """The broker events go through, or ``None`` for direct dispatch.

        Assigning moves every live subscriber: each is unsubscribed from the old
        broker and subscribed to the new one; ``None`` returns to direct
        in-process dispatch.
        """
        return self._broker

    @broker.setter
    def broker(self, broker: MessageBroker | None) -> None:
        with self._lock:
            old = self._broker
            if old is broker:
                return
            subscribers = self._subscribers.live()
            for subscriber in subscribers:
                if broker is not None:
                    broker.subscribe(self._channel, subscriber)
            # Switch only once the new broker knows everyone: a publish racing
            # this setter reaches every subscriber through one route or the other.
            self._broker = broker
            if old is not None:
                for subscriber in subscribers:
                    old.unsubscribe(self._channel, subscriber)

    def add_subscriber(self, subscriber: EventSubscriber) -> None:
        """Start delivering events to ``subscriber``, held weakly.

        Adding a subscriber twice has no effect.
        """
        with self._lock:
            self._subscribers.add(subscriber)
            if self._broker is not None:
                self._broker.subscribe(self._channel, subscriber)

    def remove_subscriber(self, subscriber: EventSubscriber) -> None:
        """Stop delivering events to ``subscriber``; unknown subscribers are ignored."""
        with self._lock:
            self._subscribers.discard(subscriber)
            if self._broker is not None:
                self._broker.unsubscribe(self._channel, subscriber)

    def get_subscribers(self) -> list[EventSubscriber]:
        """The live subscribers, in subscription order."""
        return self._subscribers.live()

    def publish(self, event: Any, caller: Any | None = None) -> None:
        """Publish ``event`` to every subscriber.

        Args:
            event: An instance of the publication's event class.
            caller: Passed to subscribers as the caller; defaults to this
                publisher.

        Raises:
            ValueError: ``event`` is not an instance of the publication's class.
        """
        event_class = self._event_class
        if type(event) is not event_class and not isinstance(event, event_class):
            raise self._publication._wrong_type_error(event)
        if caller is None:
            caller = self
        broker = self._broker
        if broker is not None:
            broker.publish(self._channel, event, self._event_tag, caller)
            return
        subscribers = self._subscribers
        if subscribers.pending:
            subscribers.reconcile()
        event_tag = self._event_tag
        # Hot path: kept inline (no helper call per event), mirrors
        # LocalBroker.publish.
        for ref in subscribers.snapshot:
            subscriber = ref()
            if subscriber is not None:
                try:
                    subscriber.call(event, event_tag, caller)
                except Exception:
                    self.subscriber_errors += 1
                    log_subscriber_error(_logger, subscriber, event, event_tag)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._publication!r}, broker={self._broker!r})"
