"""The single-event publisher."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from eventspype._deliver_async import broker_publish_async, deliver_async
from eventspype._internal import observed as _observed
from eventspype._internal.fork import register_for_fork
from eventspype._subscribers import WeakSubscriberList, log_subscriber_error
from eventspype.broker.broker import _subscribe_through, _unsubscribe_through
from eventspype.broker.local import LocalBroker
from eventspype.hooks import REGISTRY as _HOOKS
from eventspype.pub._route import BrokerRoute, route_for
from eventspype.pub.publication import EventPublication
from eventspype.sub.subscriber import require_subscriber

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
        "_direct",
        "_event_class",
        "_event_tag",
        "_lock",
        "_publication",
        "_stale",
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
        # Watched only while this list is the one publish() dispatches to.
        self._subscribers = WeakSubscriberList(
            repr(publication) if broker is None else None
        )
        # What publish() loops over (see eventspype.pub._route): one
        # attribute read decides the route on the hot path.
        self._direct: WeakSubscriberList | BrokerRoute = route_for(
            self._subscribers, broker, self._channel
        )
        self.subscriber_errors = 0
        # Ids of subscribers the broker may have forgotten at a fork (see
        # _after_fork_in_child): re-adding one subscribes it again.
        self._stale: set[int] = set()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.RLock()
        if self._broker is not None:
            # A broker may drop the parent's subscriptions in the child
            # (RedisBroker does: they are copies there). The documented way to
            # resume is add_subscriber() again, which must then subscribe.
            # The keys are the subscribers' ids; read without the list's lock,
            # whose own fork hook may not have run yet.
            self._stale = set(self._subscribers._refs)

    @property
    def name(self) -> str:
        """The class name, used by subscribers that report who published."""
        return type(self).__name__

    @property
    def logger(self) -> logging.Logger:
        """The ``logging.Logger`` of this module, where subscriber errors go.

        The same object every time (as in eventspype 1.4.2).
        """
        return _logger

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

        When the new broker refuses a subscriber (its ``subscribe_publication``
        raises), the swap is undone: the ones it had accepted are unsubscribed
        from it again, the old broker stays, and the error propagates.

        Swap brokers while no other thread publishes on this publisher: an
        event published at the very moment of the swap may go through the old
        broker after the subscribers have left it, and reach nobody.
        """
        return self._broker

    @broker.setter
    def broker(self, broker: MessageBroker | None) -> None:
        with self._lock:
            old = self._broker
            if old is broker:
                return
            subscribers = self._subscribers.live()
            if broker is not None:
                _subscribe_all(broker, self._publication, subscribers)
            # Switch only once the new broker knows everyone. publish() reads
            # _direct alone, which carries its broker: one write switches the
            # route. A publish that already read the old route may still reach
            # the old broker after the unsubscribes below (documented).
            self._direct = route_for(self._subscribers, broker, self._channel)
            self._broker = broker
            self._stale = set()
            self._subscribers.set_watch(
                repr(self._publication) if broker is None else None
            )
            if old is not None:
                for subscriber in subscribers:
                    _unsubscribe_through(old, self._publication, subscriber)

    def add_subscriber(self, subscriber: EventSubscriber) -> None:
        """Start delivering events to ``subscriber``, held weakly.

        Adding a subscriber twice has no effect, except in the child of a
        ``fork()``: there, adding again a subscriber that was added before the
        fork subscribes it on the broker again (a broker such as RedisBroker
        forgets the parent's subscriptions in the child), once.

        Raises:
            TypeError: ``subscriber`` has no ``call`` method (a plain function:
                wrap it in :class:`~eventspype.FunctionalEventSubscriber`).
            Exception: whatever the broker's ``subscribe_publication`` (or
                ``subscribe``) raised, e.g. RedisBroker's
                ``SubscriptionRefused``; ``subscriber`` is then not added.
        """
        require_subscriber(subscriber, "add_subscriber")
        with self._lock:
            # Only a new subscriber concerns the broker: a repeated add must
            # not subscribe twice on a broker that does not deduplicate.
            added = self._subscribers.add(subscriber)
            if self._broker is None:
                return
            if self._stale:
                stale = id(subscriber) in self._stale
                self._stale.discard(id(subscriber))
                added = added or stale
            if added:
                try:
                    _subscribe_through(self._broker, self._publication, subscriber)
                except BaseException:
                    # Refused (SubscriptionRefused, a closed broker): the
                    # broker does not deliver to it, so neither list keeps it.
                    self._subscribers.discard(subscriber)
                    raise

    def remove_subscriber(self, subscriber: EventSubscriber) -> None:
        """Stop delivering events to ``subscriber``; unknown subscribers are ignored."""
        with self._lock:
            # Only one of ours: on a shared broker, another publisher's
            # subscriber on the same channel must stay subscribed.
            self._stale.discard(id(subscriber))
            if self._subscribers.discard(subscriber) and self._broker is not None:
                _unsubscribe_through(self._broker, self._publication, subscriber)

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
        # The hot path, shaped by benchmarks/bench_core.py (one subscriber,
        # against a bare loop over the same bound methods: 1.48x before this
        # shape, 1.27x after; ~1.15x is the floor with a weak reference and
        # no check at all). ``event.__class__ is`` first: about 6 ns less
        # than isinstance() or type() for the usual exact class; isinstance()
        # decides the rest (a subclass, a mock), so the answer is the same.
        if event.__class__ is not self._event_class and not isinstance(
            event, self._event_class
        ):
            raise self._publication._wrong_type_error(event)
        if caller is None:
            caller = self
        # One loop for every route (see eventspype.pub._route): no test of
        # the route, no test of the dereferenced subscriber. A collected one
        # is None, so ``None.call`` raises AttributeError and _failed drops
        # it. The tag is read per subscriber: cheaper than a local for one
        # subscriber (~4 ns), dearer by ~1 ns a subscriber beyond three.
        for ref in self._direct.snapshot:
            subscriber = ref()
            try:
                subscriber.call(  # type: ignore[union-attr]
                    event, self._event_tag, caller
                )
            except Exception:
                if self._failed(subscriber, event):
                    raise

    def _failed(
        self, subscriber: EventSubscriber | BrokerRoute | None, event: Any
    ) -> bool:
        """The except block of :meth:`publish`: whether to re-raise.

        ``None`` is a subscriber collected before the event reached it: the
        list applies the removal its weakref queued. A :class:`BrokerRoute`
        is the broker itself, whose errors propagate. Any other raised: it
        is logged and counted, by the LocalBroker whose list this is if any.
        """
        if subscriber is None:
            self._direct.reconcile()
            return False
        if isinstance(subscriber, BrokerRoute):
            return True
        broker = self._broker
        if isinstance(broker, LocalBroker) and self._direct is not self._subscribers:
            # Delivered for the LocalBroker, on its list: as it would count.
            broker._subscriber_failed(subscriber, event, self._event_tag, self._channel)
            return False
        self.subscriber_errors += 1
        log_subscriber_error(_logger, subscriber, event, self._event_tag)
        return False

    def _publish_observed(self, event: Any, caller: Any | None = None) -> None:
        # publish() while hooks are installed (see _use_hooks below).
        if not isinstance(event, self._event_class):
            raise self._publication._wrong_type_error(event)
        _observed.publish(_HOOKS.hooks, self, event, self if caller is None else caller)

    async def publish_async(self, event: Any, caller: Any | None = None) -> None:
        """Publish ``event`` and return once it has been delivered.

        Without a broker, every subscriber gets it in subscription order:
        synchronous ones are called, coroutine subscribers
        (:class:`~eventspype.sub.asynchronous.AsyncEventSubscriber`) are
        awaited, so when this returns every subscriber has handled it. With a
        broker, its coroutine ``publish_async(channel, event, tag, caller)`` is
        awaited (a ``LocalBroker`` delivers as above; a remote broker returns
        once the transport has the event); a broker without one gets the
        synchronous ``publish``. The type check and the error isolation are
        those of :meth:`publish`.

        Raises:
            ValueError: ``event`` is not an instance of the publication's class.
        """
        if not isinstance(event, self._event_class):
            raise self._publication._wrong_type_error(event)
        if caller is None:
            caller = self
        if _HOOKS.hooks:
            await _observed.publish_async(_HOOKS.hooks, self, event, caller)
            return
        broker = self._broker
        if broker is not None:
            await broker_publish_async(
                broker, self._channel, event, self._event_tag, caller
            )
            return
        # _broker is cleared only after _direct is back to our own list.
        subscribers = self._subscribers
        errors, collected = await deliver_async(
            subscribers.snapshot, event, self._event_tag, caller, _logger
        )
        self.subscriber_errors += errors
        if collected:
            subscribers.reconcile()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._publication!r}, broker={self._broker!r})"


_PUBLISH = EventPublisher.publish
EventPublisher._publish_observed.__doc__ = _PUBLISH.__doc__


def _use_hooks(installed: bool) -> None:
    # Hooks installed: publish() goes through them; none: the plain fast path
    # again, with not even a test for hooks in it (see eventspype.hooks).
    EventPublisher.publish = (  # type: ignore[method-assign]
        EventPublisher._publish_observed if installed else _PUBLISH
    )


_HOOKS.switch(_use_hooks)


def _subscribe_all(
    broker: MessageBroker,
    publication: EventPublication,
    subscribers: list[EventSubscriber],
) -> None:
    """Subscribe every one of ``subscribers`` on ``broker``, or none of them.

    If the broker refuses one, those it had accepted are unsubscribed again
    (best effort: a failure there is logged) and the refusal propagates.
    """
    done: list[EventSubscriber] = []
    try:
        for subscriber in subscribers:
            _subscribe_through(broker, publication, subscriber)
            done.append(subscriber)
    except BaseException:
        for subscriber in done:
            try:
                _unsubscribe_through(broker, publication, subscriber)
            except Exception:
                _logger.warning(
                    "Undoing a refused broker swap of %r: unsubscribing %r "
                    "from the new broker failed",
                    publication,
                    subscriber,
                    exc_info=True,
                )
        raise
