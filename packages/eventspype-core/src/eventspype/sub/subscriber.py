"""The subscriber interface: anything that receives events."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from eventspype.event import NormalizedTag

__all__ = ["EventSubscriber", "OwnedEventSubscriber"]


class EventSubscriber(ABC):
    """Receives events from publishers and brokers.

    Implement :meth:`call`. Publishers and brokers hold subscribers by **weak
    reference**: keep a strong reference to a subscriber for as long as it
    should receive events; once it is garbage-collected it stops receiving.
    """

    def __call__(
        self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
    ) -> None:
        """Deliver an event; the same as :meth:`call`."""
        self.call(arg, current_event_tag, current_event_caller)

    @abstractmethod
    def call(
        self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
    ) -> object:
        """Handle one event; what it returns is ignored.

        Args:
            arg: The event object.
            current_event_tag: The normalized tag it was published under.
            current_event_caller: Who delivered it: the publisher (or the
                ``caller`` given to ``publish``) for in-process delivery, the
                broker for events that arrive through a remote broker.

        It runs synchronously in the publishing thread (or a broker's listener
        thread). An exception is logged and does not stop delivery to the
        other subscribers.
        """


class OwnedEventSubscriber(EventSubscriber, ABC):
    """A subscriber that knows the object it works for (its ``owner``)."""

    def __init__(self, owner: Any) -> None:
        super().__init__()
        self._owner = owner

    @property
    def owner(self) -> Any:
        """The object this subscriber was created for."""
        return self._owner
