"""The transport contract every broker implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from eventspype.event import NormalizedTag

if TYPE_CHECKING:
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["MessageBroker"]


class MessageBroker(ABC):
    """Delivers events from publishers to subscribers.

    A publisher created with ``broker=...`` hands every event to
    :meth:`publish` and registers its subscribers with :meth:`subscribe`,
    using ``str(publication.event_tag)`` as the channel. A subclass that does
    not implement all three methods cannot be instantiated.

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

    @abstractmethod
    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Start delivering events published on ``channel`` to ``subscriber``."""

    @abstractmethod
    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Stop delivering ``channel`` to ``subscriber``; unknown ones are ignored."""
