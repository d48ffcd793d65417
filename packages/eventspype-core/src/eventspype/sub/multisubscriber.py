"""An object that subscribes to several publishers through declared subscriptions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import wraps
from typing import Any, ClassVar

from eventspype._declarations import declared_attributes
from eventspype._internal.fork import register_for_fork
from eventspype.pub.multipublisher import MultiPublisher
from eventspype.pub.publisher import EventPublisher
from eventspype.sub.functional import FunctionalEventSubscriber
from eventspype.sub.subscription import EventSubscription

__all__ = ["MultiSubscriber"]

_AnyPublisher = EventPublisher | MultiPublisher


class MultiSubscriber:
    """Declares :class:`EventSubscription` class attributes and attaches them to
    publishers with :meth:`add_subscription`::

        class Audit(MultiSubscriber):
            def on_order(self, event): ...
            orders = EventSubscription(OrderService, "order_placed", on_order,
                                       callback_with_event_info=False)

        audit.add_subscription(Audit.orders, service)

    The subscriber objects created for a subscription are kept here, so they
    live as long as this object (or until :meth:`remove_subscription`).
    """

    _definitions_cache: ClassVar[dict[type, dict[str, EventSubscription]]] = {}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[
            _AnyPublisher, dict[EventSubscription, list[FunctionalEventSubscriber]]
        ] = {}
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def get_event_definitions(cls) -> dict[str, EventSubscription]:
        """All subscriptions of this class and its bases, by attribute name."""
        return declared_attributes(
            cls, EventSubscription, MultiSubscriber._definitions_cache
        )

    @property
    def subscribers(
        self,
    ) -> dict[_AnyPublisher, dict[EventSubscription, list[FunctionalEventSubscriber]]]:
        """The live subscriptions: publisher -> subscription -> subscriber objects."""
        return self._subscribers

    def _check_declared(self, subscription: EventSubscription) -> None:
        if not any(s is subscription for s in self.get_event_definitions().values()):
            raise ValueError(
                "Subscription not defined in event definitions: "
                f"{subscription!r} is not declared on {type(self).__name__}"
            )

    def add_subscription(
        self, subscription: EventSubscription, publisher: _AnyPublisher
    ) -> None:
        """Attach ``subscription`` to ``publisher``; attaching twice is a no-op.

        In the child of a ``fork()``, attaching again re-subscribes on the
        publisher's broker (see :meth:`EventPublisher.add_subscriber
        <eventspype.pub.publisher.EventPublisher.add_subscriber>`).
        """
        self._check_declared(subscription)
        with self._lock:
            existing = self._subscribers.get(publisher)
            if existing is not None and subscription in existing:
                subscription._reattach(publisher, existing[subscription])
                return
            created = subscription.subscribe(publisher, self)
            self._subscribers.setdefault(publisher, {})[subscription] = created

    def remove_subscription(
        self, subscription: EventSubscription, publisher: _AnyPublisher
    ) -> None:
        """Detach ``subscription`` from ``publisher``; unknown pairs are ignored."""
        self._check_declared(subscription)
        with self._lock:
            by_subscription = self._subscribers.get(publisher)
            if by_subscription is None or subscription not in by_subscription:
                return
            for subscriber in by_subscription.pop(subscription):
                subscription.unsubscribe(publisher, subscriber)
            if not by_subscription:
                del self._subscribers[publisher]

    def logger(self) -> logging.Logger:
        """The logger :meth:`log_event` writes to; override to use one."""
        raise NotImplementedError(
            f"{type(self).__name__} must override logger() to use log_event"
        )

    @staticmethod
    def log_event(
        log_level: int = logging.INFO, log_prefix: str = "Event"
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorate a one-argument handler so each event is logged before it runs."""

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(func)
            def wrapper(self: MultiSubscriber, event: Any) -> Any:
                self.logger().log(log_level, "[%s] %s", log_prefix, event)
                return func(self, event)

            return wrapper

        return decorator
