"""TestBroker: a broker for unit tests that behaves like a production broker
where a test can see it, and fails loudly where production would only log."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from eventspype.broker.broker import MessageBroker
from eventspype.event import NormalizedTag
from eventspype.sub.asynchronous import AsyncEventSubscriber
from eventspype.sub.subscriber import require_subscriber
from eventspype.testing import _observing
from eventspype.testing._coroutines import CoroutineDelivery, Queued
from eventspype.testing._groups import GroupMethods

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication
    from eventspype.serializers import EventSerializer
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["SubscriberFailure", "TestBroker"]

_Errors = Literal["raise", "collect"]


@dataclass(frozen=True)
class SubscriberFailure:
    """A subscriber call that raised, as :attr:`TestBroker.failures` keeps it."""

    channel: str
    event: Any
    event_tag: NormalizedTag
    subscriber: EventSubscriber
    error: BaseException


class _Entry:
    """One subscription: the subscriber (weakly) and the class it accepts."""

    __slots__ = ("accepts", "ref")

    def __init__(self, ref: weakref.ref[EventSubscriber], accepts: type | None):
        self.ref = ref
        self.accepts = accepts


class TestBroker(CoroutineDelivery, GroupMethods, MessageBroker):
    """A :class:`~eventspype.MessageBroker` for tests, needing no argument.

    What it does that ``LocalBroker`` does not, so that a unit test fails
    where production would:

    - **Serialization.** Every event is serialized and deserialized with
      ``serializer`` (a ``JsonEventSerializer`` by default: what the Redis
      brokers use) and subscribers receive the copy, as in another process.
      An event the serializer cannot encode raises from ``publish()``; one
      that comes back different (a tuple turned into a list...) raises an
      ``AssertionError`` naming both. Pass ``serialize=False`` to deliver the
      object itself.
    - **Class checks.** A subscriber added through a publisher (that is,
      :meth:`subscribe_publication`) receives only instances of the
      publication's class, as from a Redis broker.
    - **Errors.** A subscriber that raises does not stop the others, and then
      its exception is raised from ``publish()`` in the test
      (``errors="raise"``, the default), or kept in :attr:`failures` and
      raised by :meth:`drain` (``errors="collect"``). The exception raised is
      the subscriber's own (the first, if several raised); all are in
      :attr:`failures`.
    - **Coroutine subscribers** (:class:`~eventspype.AsyncEventSubscriber`)
      are awaited, in subscription order, by ``await publisher.publish_async()``;
      a synchronous ``publish()`` queues them for :meth:`drain` (or
      :meth:`drain_async` inside a running loop).
    - **Consumer groups** (``durable=True``, needs eventspype-redis): every
      event goes through the Streams protocol core of ``RedisStreamBroker``,
      run on an in-memory model of Redis streams on a clock that moves only
      with :meth:`advance` / :meth:`settle`: an event is acknowledged once
      every subscriber returned; one that failed is delivered again after
      ``retry_delay`` (doubling), only to the subscribers that failed; after
      ``max_deliveries`` it is a dead letter (:meth:`dead_letters`). Errors
      are collected by default in this mode (``errors="collect"``).

    Delivery is synchronous, in subscription order, in the publishing thread;
    subscribers are held by weak reference and called with the broker as
    ``caller``, like events that arrive through Redis. ``subscribe``,
    ``unsubscribe`` and ``publish`` are thread-safe.

    ``__test__ = False``: importing it into a test module does not make pytest
    try to collect it as a test class.
    """

    __test__ = False

    def __init__(
        self,
        serializer: EventSerializer | None = None,
        *,
        serialize: bool = True,
        errors: _Errors | None = None,
        durable: bool = False,
        max_deliveries: int = 5,
        retry_delay: tuple[float, float] = (1.0, 60.0),
        claim_idle: float = 30.0,
        group: str = "eventspype",
    ) -> None:
        if errors is None:
            errors = "collect" if durable else "raise"
        if errors not in ("raise", "collect"):
            raise ValueError(f'errors must be "raise" or "collect", got {errors!r}')
        if serializer is None and serialize:
            from eventspype.serializers import JsonEventSerializer

            serializer = JsonEventSerializer()
        self._serializer = serializer if serialize else None
        self._errors: _Errors = errors
        self._lock = threading.Lock()
        self._channels: dict[str, dict[int, _Entry]] = {}
        self._queued: list[Queued] = []
        self._unraised: list[SubscriberFailure] = []
        self._closed = False
        #: Every subscriber call that raised, oldest first.
        self.failures: list[SubscriberFailure] = []
        #: Events published, by channel, as delivered (after the round trip).
        self.published: dict[str, list[Any]] = {}
        self._classes = {}
        self._group = None
        if durable:
            if self._serializer is None:
                raise ValueError("durable=True needs serialize=True")
            from eventspype.testing.consumer_group import EmulatedGroup

            self._group = EmulatedGroup(
                self,
                group=group,
                consumer="test-consumer",
                max_deliveries=max_deliveries,
                claim_idle=claim_idle,
                retry_delay=retry_delay,
            )

    # --- subscriptions ----------------------------------------------------------

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Deliver ``channel`` to ``subscriber`` (held weakly); twice is once.

        Raises:
            TypeError: ``subscriber`` has no ``call`` method.
            RuntimeError: the broker is closed.
        """
        self._add(channel, subscriber, None)

    def subscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        """Like :meth:`subscribe`, delivering only instances of the
        publication's class (what the Redis brokers check on receipt)."""
        self._add(str(publication.event_tag), subscriber, publication.event_class)

    def _add(
        self, channel: str, subscriber: EventSubscriber, accepts: type | None
    ) -> None:
        require_subscriber(subscriber, "subscribe")
        self._check_open()
        key = id(subscriber)

        def forget(_: object, channel: str = channel, key: int = key) -> None:
            # May run on any thread, inside a lock holder: no lock here; the
            # dict operation is atomic and a stale read only sees a dead ref.
            entries = self._channels.get(channel)
            if entries is not None:
                entries.pop(key, None)

        with self._lock:
            entries = self._channels.setdefault(channel, {})
            if key not in entries:
                entries[key] = _Entry(weakref.ref(subscriber, forget), accepts)
        if self._group is not None:
            self._group.watch(channel)

    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Stop delivering ``channel`` to ``subscriber``; unknown ones are ignored."""
        with self._lock:
            entries = self._channels.get(channel)
            if entries is not None:
                entries.pop(id(subscriber), None)
                if not entries:
                    del self._channels[channel]

    def subscriber_count(self, channel: str) -> int:
        """How many live subscribers ``channel`` has."""
        entries = self._channels.get(channel, {})
        return sum(1 for e in list(entries.values()) if e.ref() is not None)

    # --- delivery ---------------------------------------------------------------

    def publish(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """Deliver the round-tripped copy of ``event`` to ``channel``'s subscribers.

        Raises:
            eventspype.serializers.SerializationError: the serializer cannot
                encode or decode ``event``; nobody received it.
            AssertionError: the copy differs from ``event``.
            Exception: with ``errors="raise"``, what a subscriber raised
                (after every other subscriber received the event).
            RuntimeError: the broker is closed.
        """
        copy = self._cross(channel, event)
        if self._group is not None:
            self._through_group(channel, event, event_tag)
            self._raise_now()
            return
        for subscriber in self._receivers(channel, copy):
            if isinstance(subscriber, AsyncEventSubscriber):
                with self._lock:
                    self._queued.append(
                        (
                            channel,
                            subscriber,
                            copy,
                            event_tag,
                            _observing.handing_context(),
                        )
                    )
                continue
            try:
                _observing.call(subscriber, copy, event_tag, self, channel)
            except Exception as error:
                self._failed(channel, copy, event_tag, subscriber, error)
        self._raise_now()

    async def publish_async(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        """Deliver like :meth:`publish`, awaiting coroutine subscribers."""
        copy = self._cross(channel, event)
        if self._group is not None:
            self._through_group(channel, event, event_tag)
            await self.drain_async()
            return
        for subscriber in self._receivers(channel, copy):
            try:
                if isinstance(subscriber, AsyncEventSubscriber):
                    await _observing.call_async(
                        subscriber, copy, event_tag, self, channel
                    )
                else:
                    _observing.call(subscriber, copy, event_tag, self, channel)
            except Exception as error:
                self._failed(channel, copy, event_tag, subscriber, error)
        self._raise_now()

    def _cross(self, channel: str, event: Any) -> Any:
        """``event`` as another process would receive it."""
        self._check_open()
        copy = event
        if self._serializer is not None:
            data = self._serializer.serialize(event)
            copy = self._serializer.deserialize(data, type(event))
            if _compares_by_value(type(event)) and copy != event:
                raise AssertionError(
                    f"{type(event).__qualname__} changes when it crosses a "
                    f"process with {type(self._serializer).__name__}: published "
                    f"{event!r}, received {copy!r}"
                )
        with self._lock:
            self.published.setdefault(channel, []).append(copy)
        return copy

    def _receivers(self, channel: str, event: Any) -> list[EventSubscriber]:
        with self._lock:
            entries = list(self._channels.get(channel, {}).values())
        receivers = []
        for entry in entries:
            subscriber = entry.ref()
            if subscriber is None:
                continue
            if entry.accepts is None or isinstance(event, entry.accepts):
                receivers.append(subscriber)
        return receivers

    def _failed(
        self,
        channel: str,
        event: Any,
        tag: NormalizedTag,
        subscriber: EventSubscriber,
        error: Exception,
    ) -> None:
        failure = SubscriberFailure(channel, event, tag, subscriber, error)
        with self._lock:
            self.failures.append(failure)
            self._unraised.append(failure)

    def _raise_now(self) -> None:
        if self._errors == "raise":
            self._raise_pending()

    def _raise_pending(self) -> None:
        with self._lock:
            unraised, self._unraised = self._unraised, []
        if unraised:
            raise unraised[0].error

    # --- lifecycle ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("TestBroker is closed")

    def close(self) -> None:
        """Refuse further publishing and subscribing; idempotent."""
        self._closed = True
        with self._lock:
            self._channels.clear()

    def __enter__(self) -> TestBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._channels)} channel(s)"
        return f"<TestBroker {state}>"


def _compares_by_value(cls: type) -> bool:
    """Whether ``cls`` (or a base other than ``object``) defines ``__eq__``:
    instances that compare by identity never equal their copy."""
    return any("__eq__" in vars(base) for base in cls.__mro__[:-1])
