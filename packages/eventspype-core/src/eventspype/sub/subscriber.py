"""The subscriber interface: anything that receives events."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from eventspype.event import NormalizedTag

__all__ = ["EventSubscriber", "OwnedEventSubscriber", "SubscriberLostWarning"]


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


class SubscriberLostWarning(RuntimeWarning):
    """A subscriber was garbage-collected while subscribed, before its first event.

    Publishers and brokers hold subscribers weakly, so
    ``publisher.add_subscriber(FunctionalEventSubscriber(handler))`` subscribes
    an object that nothing else keeps alive: it disappears at once and never
    receives anything. The warning names the publication or channel and points
    at the line that dropped the last reference. A subscriber that did receive
    events and is then dropped, or one removed with ``remove_subscriber``
    first, is ordinary clean-up and is not reported.

    A :class:`RuntimeWarning`, so Python, ``python -X dev`` and pytest show it
    (once per line). Silence it where dropping unused subscribers is intended
    with ``warnings.filterwarnings("ignore", category=SubscriberLostWarning)``.
    """


def require_subscriber(subscriber: object, method: str) -> None:
    """Raise ``TypeError`` unless ``subscriber`` has a callable ``call``.

    ``method`` names the call that received it, for the message. Duck-typed
    subscribers (not derived from :class:`EventSubscriber`) are accepted, as
    in eventspype 1.4.2; a plain function is not: it would be accepted, then
    fail at every publish, only in the log.
    """
    if callable(getattr(subscriber, "call", None)):
        return
    if callable(subscriber):
        hint = (
            ": wrap a function in FunctionalEventSubscriber(fn) "
            "(with_event_info=False for fn(event)) and keep a reference to the "
            "wrapper, or use MultiPublisher.add_subscriber_with_callback()"
        )
    else:
        hint = ""
    raise TypeError(
        f"{method} needs an EventSubscriber (an object with a "
        "call(event, tag, caller) method), got "
        f"{type(subscriber).__name__}: {subscriber!r}{hint}"
    )
