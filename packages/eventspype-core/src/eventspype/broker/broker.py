"""The transport contract every broker implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from eventspype.event import NormalizedTag

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["MessageBroker"]


class MessageBroker(ABC):
    """Delivers events from publishers to subscribers.

    A publisher created with ``broker=...`` hands every event to
    :meth:`publish` and registers its subscribers with
    :meth:`subscribe_publication`, whose default calls :meth:`subscribe` with
    ``str(publication.event_tag)`` as the channel. A subclass that does not
    implement :meth:`publish`, :meth:`subscribe` and :meth:`unsubscribe`
    cannot be instantiated; calling them on the base class (``super()``)
    raises ``NotImplementedError``.

    Implementations should hold subscribers by weak reference (as
    :class:`~eventspype.broker.local.LocalBroker` does), call
    ``subscriber.call(event, event_tag, caller)`` to deliver, and isolate a
    subscriber that raises from the others.
    """

    @abstractmethod
    def publish(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """Deliver ``event`` to the subscribers of ``channel``.

        Args:
            channel: The channel name (``str(event_tag)`` for publishers).
            event: The event object, already checked against the publication.
            event_tag: The normalized tag, passed on to subscribers.
            caller: The publisher (or the caller it was given).
        """
        raise NotImplementedError

    @abstractmethod
    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Start delivering events published on ``channel`` to ``subscriber``."""
        raise NotImplementedError

    @abstractmethod
    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Stop delivering ``channel`` to ``subscriber``; unknown ones are ignored."""
        raise NotImplementedError

    def subscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        """Subscribe ``subscriber`` to ``publication`` (its tag and class).

        Publishers call this (not :meth:`subscribe`) when a subscriber is
        added, so a broker that receives events from outside the process can
        deliver to ``subscriber`` only events with ``publication.event_tag``
        that are instances of ``publication.event_class``. The default just
        calls ``self.subscribe(str(publication.event_tag), subscriber)``, so a
        broker written against :meth:`subscribe` alone keeps working.
        """
        self.subscribe(str(publication.event_tag), subscriber)

    def unsubscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        """Undo :meth:`subscribe_publication`; the default calls :meth:`unsubscribe`."""
        self.unsubscribe(str(publication.event_tag), subscriber)


def _subscribe_through(
    broker: Any, publication: EventPublication, subscriber: EventSubscriber
) -> None:
    """``broker.subscribe_publication(...)``, or ``broker.subscribe(channel, ...)``
    for a duck-typed broker that does not derive from :class:`MessageBroker`."""
    method = getattr(broker, "subscribe_publication", None)
    if method is not None:
        method(publication, subscriber)
    else:
        broker.subscribe(str(publication.event_tag), subscriber)


def _unsubscribe_through(
    broker: Any, publication: EventPublication, subscriber: EventSubscriber
) -> None:
    """The counterpart of :func:`_subscribe_through`."""
    method = getattr(broker, "unsubscribe_publication", None)
    if method is not None:
        method(publication, subscriber)
    else:
        broker.unsubscribe(str(publication.event_tag), subscriber)
