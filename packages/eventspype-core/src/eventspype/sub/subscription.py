"""Declarative subscriptions: which publisher class, which tags, which callback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

from eventspype.event import EventTag, NormalizedTag, normalize_event_tag
from eventspype.pub.multipublisher import MultiPublisher
from eventspype.pub.publication import EventPublication
from eventspype.pub.publisher import EventPublisher
from eventspype.sub.functional import FunctionalEventCallback, FunctionalEventSubscriber

__all__ = [
    "EventSubscription",
    "EventSubscriptionCallback",
    "PublicationSubscription",
    "SubscriberCompleteEventCallback",
    "SubscriberSimpleEventCallback",
]

#: ``callback(subscriber, event, tag, caller)``
SubscriberCompleteEventCallback = Callable[[Any, Any, NormalizedTag, Any], Any]
#: ``callback(subscriber, event)``
SubscriberSimpleEventCallback = Callable[[Any, Any], Any]
EventSubscriptionCallback = (
    FunctionalEventCallback
    | SubscriberCompleteEventCallback
    | SubscriberSimpleEventCallback
)


class EventSubscription:
    """A reusable description of a subscription, typically a class attribute
    of a :class:`~eventspype.sub.multisubscriber.MultiSubscriber`.

    Calling it with a publisher (and the owning subscriber object when
    ``callback_with_subscriber`` is true) creates one
    :class:`FunctionalEventSubscriber` per tag, subscribes them and returns
    them: the caller must keep them alive.

    With ``callback_with_subscriber=True`` and a named function as callback, the
    owner's attribute of the same name is called, so subclasses may override
    the handler method.
    """

    def __init__(
        self,
        publisher_class: type[EventPublisher] | type[MultiPublisher],
        event_tag: EventTag | list[EventTag],
        callback: EventSubscriptionCallback,
        callback_with_subscriber: bool = True,
        callback_with_event_info: bool = True,
    ) -> None:
        if not (
            isinstance(publisher_class, type)
            and issubclass(publisher_class, (EventPublisher, MultiPublisher))
        ):
            raise ValueError(
                "Publisher class must be a subclass of EventPublisher or "
                f"MultiPublisher, got {publisher_class!r}"
            )
        self._publisher_class = publisher_class
        self._event_tag = event_tag
        # Normalize now: a bad tag fails at declaration, not at first subscribe.
        tags = event_tag if isinstance(event_tag, list) else [event_tag]
        self._tags: list[NormalizedTag] = [normalize_event_tag(t) for t in tags]
        self._callback = callback
        self._callback_with_subscriber = callback_with_subscriber
        self._callback_with_event_info = callback_with_event_info

    def __call__(
        self,
        publisher: EventPublisher | MultiPublisher,
        subscriber: Any | None = None,
    ) -> list[FunctionalEventSubscriber]:
        """Same as :meth:`subscribe`."""
        return self.subscribe(publisher, subscriber)

    def __hash__(self) -> int:
        return hash((self._publisher_class, self.event_tag_str, self._callback))

    @property
    def publisher_class(self) -> type[EventPublisher] | type[MultiPublisher]:
        """The class a publisher must be an instance of."""
        return self._publisher_class

    @property
    def event_tag(self) -> EventTag | list[EventTag]:
        """The tag(s) as declared."""
        return self._event_tag

    @property
    def callback(self) -> Callable[..., Any]:
        """The declared callback."""
        return self._callback

    @property
    def callback_with_subscriber(self) -> bool:
        """Whether the callback receives the owning subscriber first."""
        return self._callback_with_subscriber

    @property
    def event_tag_str(self) -> str:
        """The declared tag(s) as text; lists sorted, for stable display."""
        if isinstance(self._event_tag, list):
            return "[" + ", ".join(sorted(str(t) for t in self._event_tag)) + "]"
        return str(self._event_tag)

    def subscribe(
        self, publisher: EventPublisher | MultiPublisher, subscriber: Any | None
    ) -> list[FunctionalEventSubscriber]:
        """Subscribe to every tag; return the new subscribers (keep them alive).

        All or nothing: when attaching one tag raises (a broker refusing the
        channel, an undeclared tag), the tags attached before it are detached
        again and the error propagates.

        Raises:
            ValueError: ``publisher`` is not a ``publisher_class``, a tag is not
                declared on it, or the owner is missing while required.
        """
        self._check_publisher(publisher)
        callback: Callable[..., Any] = self._callback
        if self._callback_with_subscriber:
            if subscriber is None:
                raise ValueError(
                    "Subscriber is required for callback with subscriber: this "
                    "subscription calls its callback with the subscriber object"
                )
            name = getattr(callback, "__name__", None)
            bound = getattr(subscriber, name, None) if name else None
            callback = bound if callable(bound) else partial(callback, subscriber)
        created: list[FunctionalEventSubscriber] = []
        try:
            for tag in self._tags:
                functional = FunctionalEventSubscriber(
                    callback, with_event_info=self._callback_with_event_info
                )
                self._attach(publisher, tag, functional)
                created.append(functional)
        except BaseException:
            for tag, functional in zip(self._tags, created, strict=False):
                # Best effort: the error that stopped the loop is the one to see.
                with contextlib.suppress(Exception):
                    self._detach(publisher, tag, functional)
            raise
        return created

    def _attach(
        self,
        publisher: EventPublisher | MultiPublisher,
        tag: NormalizedTag,
        functional: FunctionalEventSubscriber,
    ) -> None:
        if isinstance(publisher, MultiPublisher):
            publisher.add_subscriber(self._publication(publisher, tag), functional)
        else:
            publisher.add_subscriber(functional)

    def _detach(
        self,
        publisher: EventPublisher | MultiPublisher,
        tag: NormalizedTag,
        functional: FunctionalEventSubscriber,
    ) -> None:
        if isinstance(publisher, MultiPublisher):
            publisher.remove_subscriber(self._publication(publisher, tag), functional)
        else:
            publisher.remove_subscriber(functional)

    def _reattach(
        self,
        publisher: EventPublisher | MultiPublisher,
        created: list[FunctionalEventSubscriber],
    ) -> None:
        """Add again what :meth:`subscribe` returned (a no-op except after a fork)."""
        for tag, functional in zip(self._tags, created, strict=True):
            self._attach(publisher, tag, functional)

    def unsubscribe(
        self,
        publisher: EventPublisher | MultiPublisher,
        subscriber: FunctionalEventSubscriber,
    ) -> None:
        """Remove ``subscriber`` (one returned by :meth:`subscribe`) from every tag."""
        self._check_publisher(publisher)
        for tag in self._tags:
            self._detach(publisher, tag, subscriber)

    def _check_publisher(self, publisher: EventPublisher | MultiPublisher) -> None:
        if not isinstance(publisher, self._publisher_class):
            raise ValueError(
                f"Publisher type mismatch: {publisher!r} is not a "
                f"{self._publisher_class.__name__}"
            )

    def _publication(
        self, publisher: MultiPublisher, event_tag: NormalizedTag
    ) -> EventPublication:
        return publisher.get_event_definition_by_tag(event_tag)


class PublicationSubscription(EventSubscription):
    """An :class:`EventSubscription` to one publication of a
    :class:`~eventspype.pub.multipublisher.MultiPublisher`, named directly."""

    def __init__(
        self,
        publisher_class: type[MultiPublisher],
        event_publication: EventPublication,
        callback: Callable[..., Any],
        callback_with_subscriber: bool = True,
        callback_with_event_info: bool = True,
    ) -> None:
        if not (
            isinstance(publisher_class, type)
            and issubclass(publisher_class, MultiPublisher)
        ):
            raise ValueError(
                "Publisher class must be a subclass of MultiPublisher, "
                f"got {publisher_class!r}"
            )
        super().__init__(
            publisher_class,
            event_publication.event_tag,
            callback,
            callback_with_subscriber=callback_with_subscriber,
            callback_with_event_info=callback_with_event_info,
        )
        self._event_publication = event_publication

    @property
    def event_publication(self) -> EventPublication:
        """The publication subscribed to."""
        return self._event_publication

    def _publication(
        self, publisher: MultiPublisher, event_tag: NormalizedTag
    ) -> EventPublication:
        return self._event_publication
