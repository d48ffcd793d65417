"""A publisher for several publications declared as class attributes."""

from __future__ import annotations

import logging
import threading
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from eventspype._declarations import declared_attributes
from eventspype._internal.fork import register_for_fork
from eventspype.event import EventTag, NormalizedTag, normalize_event_tag
from eventspype.pub.publication import EventPublication
from eventspype.pub.publisher import EventPublisher
from eventspype.sub.functional import FunctionalEventSubscriber
from eventspype.sub.subscriber import require_subscriber

if TYPE_CHECKING:
    from eventspype.broker.broker import MessageBroker
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["MultiPublisher"]

_logger = logging.getLogger(__name__)


class MultiPublisher:
    """Publishes several kinds of events, declared as class attributes::

        class OrderService(MultiPublisher):
            PLACED = EventPublication("order_placed", OrderPlaced)
            SHIPPED = EventPublication("order_shipped", OrderShipped)

        service.publish(OrderService.PLACED, OrderPlaced(...))

    Each publication gets its own :class:`EventPublisher`, created on first
    subscription; publishing a declared publication that nobody subscribed to
    is a no-op, publishing an undeclared one raises ``ValueError``. Subclasses
    inherit their parents' publications. Two publications of one class that
    normalize to the same tag are rejected when the class is first used.
    """

    # Per-class caches, filled on first use (keyed by the class itself).
    _definitions_cache: ClassVar[dict[type, dict[str, EventPublication]]] = {}
    _tags_cache: ClassVar[dict[type, dict[NormalizedTag, EventPublication]]] = {}

    def __init__(self, broker: MessageBroker | None = None) -> None:
        # Reentrant: the *_with_callback helpers call add/remove_subscriber.
        self._lock = threading.RLock()
        self._publishers: dict[EventPublication, EventPublisher] = {}
        # Functional subscribers are kept alive here, keyed by (publication, callback).
        self._functional_subscribers: dict[
            tuple[EventPublication, Any], FunctionalEventSubscriber
        ] = {}
        self._broker = broker
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.RLock()

    @property
    def name(self) -> str:
        """The class name, used by subscribers that report who published."""
        return type(self).__name__

    # --- declarations -------------------------------------------------------

    @classmethod
    def get_event_definitions(cls) -> dict[str, EventPublication]:
        """All publications of this class and its bases, by attribute name."""
        return declared_attributes(
            cls, EventPublication, MultiPublisher._definitions_cache
        )

    @classmethod
    def _publications_by_tag(cls) -> dict[NormalizedTag, EventPublication]:
        cached = MultiPublisher._tags_cache.get(cls)
        if cached is None:
            cached = {}
            for name, publication in cls.get_event_definitions().items():
                if (
                    publication.event_tag in cached
                    and cached[publication.event_tag] is not publication
                ):
                    raise ValueError(
                        f"Duplicate normalized event_tag {publication.event_tag!r}: "
                        f"publication {name!r} of {cls.__name__} reuses the tag of "
                        "another publication"
                    )
                cached[publication.event_tag] = publication
            MultiPublisher._tags_cache[cls] = cached
        return cached

    @classmethod
    def is_publication_valid(
        cls, publication: EventPublication, raise_error: bool = True
    ) -> bool:
        """Whether ``publication`` is declared on this class.

        Raises:
            ValueError: it is not and ``raise_error`` is true.
        """
        if cls._publications_by_tag().get(publication.event_tag) is publication:
            return True
        if raise_error:
            raise ValueError(
                f"Invalid publication: {publication!r} is not declared on "
                f"{cls.__name__}"
            )
        return False

    @classmethod
    def get_event_definition_by_tag(
        cls, event_tag: EventTag | NormalizedTag
    ) -> EventPublication:
        """The declared publication for ``event_tag`` (raw or already normalized)."""
        by_tag = cls._publications_by_tag()
        # An already-normalized tag is a key as is; bools and floats would
        # match int keys (True == 1) although they are not valid tags.
        if (
            isinstance(event_tag, (int, str))
            and not isinstance(event_tag, (bool, Enum))
            and event_tag in by_tag
        ):
            return by_tag[event_tag]
        publication = by_tag.get(normalize_event_tag(event_tag))
        if publication is None:
            raise ValueError(
                f"No event definition found for tag: {event_tag!r} "
                f"(not declared on {cls.__name__})"
            )
        return publication

    # --- broker -------------------------------------------------------------

    @property
    def broker(self) -> MessageBroker | None:
        """The broker of every publication's publisher; assigning migrates them all.

        All or nothing: when the new broker refuses a subscriber, every
        publisher stays on the old broker and the error propagates.
        """
        return self._broker

    @broker.setter
    def broker(self, broker: MessageBroker | None) -> None:
        with self._lock:
            old = self._broker
            moved: list[EventPublisher] = []
            try:
                for publisher in self._publishers.values():
                    publisher.broker = broker
                    moved.append(publisher)
            except BaseException:
                # One publication was refused (its publisher undid its own
                # part): move the others back, so that all stay on ``old``.
                for publisher in moved:
                    try:
                        publisher.broker = old
                    except Exception:
                        _logger.warning(
                            "Undoing a refused broker swap: %r could not "
                            "return to the old broker",
                            publisher,
                            exc_info=True,
                        )
                raise
            self._broker = broker

    # --- subscribers --------------------------------------------------------

    def _publisher_for(self, publication: EventPublication) -> EventPublisher:
        # Caller holds self._lock (get-or-create is check-then-act).
        publisher = self._publishers.get(publication)
        if publisher is None:
            publisher = EventPublisher(publication, broker=self._broker)
            self._publishers[publication] = publisher
        return publisher

    def add_subscriber(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        """Subscribe ``subscriber`` (held weakly) to ``publication``.

        Raises:
            ValueError: ``publication`` is not declared on this class.
            Exception: whatever the broker raised when subscribing (see
                :meth:`EventPublisher.add_subscriber
                <eventspype.pub.publisher.EventPublisher.add_subscriber>`);
                ``subscriber`` is then not added.
        """
        require_subscriber(subscriber, "add_subscriber")
        self.is_publication_valid(publication)
        with self._lock:
            publisher = self._publisher_for(publication)
            try:
                publisher.add_subscriber(subscriber)
            except BaseException:
                if not publisher.get_subscribers():
                    del self._publishers[publication]
                raise

    def remove_subscriber(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        """Unsubscribe ``subscriber`` from ``publication``; unknown ones are ignored."""
        self.is_publication_valid(publication)
        with self._lock:
            publisher = self._publishers.get(publication)
            if publisher is None:
                return
            publisher.remove_subscriber(subscriber)
            if not publisher.get_subscribers():
                del self._publishers[publication]

    def get_subscribers(self, publication: EventPublication) -> list[EventSubscriber]:
        """The live subscribers of ``publication``."""
        self.is_publication_valid(publication)
        publisher = self._publishers.get(publication)
        return [] if publisher is None else publisher.get_subscribers()

    def add_subscriber_with_callback(
        self,
        publication: EventPublication,
        callback: Any,
        with_event_info: bool = True,
    ) -> None:
        """Subscribe a function; this publisher keeps its wrapper alive.

        Adding the same function twice for one publication is a no-op, except
        in the child of a ``fork()``, where it subscribes the wrapper on the
        broker again (see :meth:`EventPublisher.add_subscriber
        <eventspype.pub.publisher.EventPublisher.add_subscriber>`).
        """
        self.is_publication_valid(publication)
        key = (publication, callback)
        with self._lock:
            existing = self._functional_subscribers.get(key)
            if existing is not None:
                # A no-op, unless a fork made the broker forget it.
                self.add_subscriber(publication, existing)
                return
            subscriber = FunctionalEventSubscriber(callback, with_event_info)
            self.add_subscriber(publication, subscriber)
            self._functional_subscribers[key] = subscriber

    def remove_subscriber_with_callback(
        self, publication: EventPublication, callback: Any
    ) -> None:
        """Unsubscribe a function added with :meth:`add_subscriber_with_callback`."""
        self.is_publication_valid(publication)
        with self._lock:
            subscriber = self._functional_subscribers.pop((publication, callback), None)
            if subscriber is not None:
                self.remove_subscriber(publication, subscriber)

    # --- publishing ---------------------------------------------------------

    def publish(
        self, publication: EventPublication, event: Any, caller: Any | None = None
    ) -> None:
        """Publish ``event`` on ``publication``; ``caller`` defaults to this object.

        Raises:
            ValueError: the publication is not declared on this class, or the
                event is not an instance of its class.
        """
        publisher = self._publishers.get(publication)
        if publisher is None:
            publisher = self._publisher_on_demand(publication, event)
            if publisher is None:
                return
        publisher.publish(event, self if caller is None else caller)

    async def publish_async(
        self, publication: EventPublication, event: Any, caller: Any | None = None
    ) -> None:
        """Publish like :meth:`publish` and return once it has been delivered.

        See :meth:`EventPublisher.publish_async
        <eventspype.pub.publisher.EventPublisher.publish_async>`.

        Raises:
            ValueError: as :meth:`publish`.
        """
        publisher = self._publishers.get(publication)
        if publisher is None:
            publisher = self._publisher_on_demand(publication, event)
            if publisher is None:
                return
        await publisher.publish_async(event, self if caller is None else caller)

    def _publisher_on_demand(
        self, publication: EventPublication, event: Any
    ) -> EventPublisher | None:
        """The publisher of ``publication``, which has none yet; ``None``: skip.

        Raises:
            ValueError: as :meth:`publish`.
        """
        self.is_publication_valid(publication)
        if self._broker is None:
            # Nobody in this process listens and there is no transport to
            # anyone else: only the type check remains.
            if not isinstance(event, publication.event_class):
                raise publication._wrong_type_error(event)
            return None
        # With a broker, subscribers may live in other processes.
        with self._lock:
            return self._publisher_for(publication)
