"""EventRecorder: record what a publisher or a broker carried, and assert on it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, NamedTuple, TypeVar, overload

from eventspype.broker.broker import MessageBroker
from eventspype.event import NormalizedTag
from eventspype.pub.multipublisher import MultiPublisher
from eventspype.pub.publication import EventPublication
from eventspype.pub.publisher import EventPublisher
from eventspype.sub.subscriber import EventSubscriber
from eventspype.testing._matching import EventMatcher, report

__all__ = ["EventRecorder", "RecordedEvent"]

E = TypeVar("E")
_Where = Callable[[Any], object]


class RecordedEvent(NamedTuple):
    """One delivery the recorder saw."""

    event: Any
    event_tag: NormalizedTag | None
    caller: Any
    #: The name of the thread that delivered it.
    thread: str


class _Subscriber(EventSubscriber):
    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    def call(self, arg: Any, current_event_tag: NormalizedTag, caller: Any) -> None:
        self._recorder._record(arg, current_event_tag, caller)


@dataclass
class _Waiter:
    matcher: EventMatcher
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class EventRecorder:
    """Records the events a publisher, a publication on a broker, or a broker
    carried, and asserts on them with messages that show what was published.

    - ``EventRecorder(publisher)``: what an :class:`~eventspype.EventPublisher`
      delivers (through its broker too, if it has one).
    - ``EventRecorder(multi_publisher)``: every publication of a
      :class:`~eventspype.MultiPublisher`; ``EventRecorder(multi_publisher,
      publication)`` one of them.
    - ``EventRecorder(broker, publication)``: what ``broker`` delivers for
      ``publication``, whoever published it: with a Redis broker, events
      published by other processes too (they arrive on the broker's thread).
    - ``EventRecorder(broker)``: every ``publish()`` made through this broker
      object, on any channel (recorded as it is handed to the broker, so
      nothing from other processes: use the publication form for that).

    The recorder subscribes when it is created and holds its subscriber
    strongly for as long as it lives (publishers and brokers hold subscribers
    weakly, so a bare subscriber would vanish). Use it as a plain object, or
    as a context manager that stops recording on exit (:meth:`close`).
    Recording is thread-safe.

    Every ``assert_*`` method and :meth:`wait_for` takes the same description
    of an event: an instance (equality), a class (any instance of it), field
    values as keywords (a partial match: ``assert_published(OrderPlaced,
    order_id=1)``), and/or ``where=`` a predicate. With ``timeout=`` seconds,
    ``assert_published`` and ``assert_published_once`` wait that long for the
    event to arrive, for brokers that deliver on another thread.
    """

    __test__ = False  # not a test class, whatever module imports it

    def __init__(
        self,
        source: EventPublisher | MultiPublisher | MessageBroker,
        publication: EventPublication | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._records: list[RecordedEvent] = []
        self._waiters: list[_Waiter] = []
        self._subscriber = _Subscriber(self)
        self._undo: list[Callable[[], None]] = []
        self._where = self._attach(source, publication)

    def _attach(self, source: Any, publication: EventPublication | None) -> str:
        subscriber = self._subscriber
        if isinstance(source, EventPublisher):
            if publication is not None and publication is not source.publication:
                raise ValueError(
                    f"{source!r} publishes {source.publication!r}, not {publication!r}"
                )
            source.add_subscriber(subscriber)
            self._undo.append(lambda: source.remove_subscriber(subscriber))
            return f"by {source!r}"
        if isinstance(source, MultiPublisher):
            publications = (
                [publication]
                if publication is not None
                else list(type(source).get_event_definitions().values())
            )
            for each in publications:
                source.add_subscriber(each, subscriber)
                self._undo.append(partial(source.remove_subscriber, each, subscriber))
            return f"by {type(source).__qualname__}"
        if isinstance(source, MessageBroker):
            if publication is not None:
                source.subscribe_publication(publication, subscriber)
                self._undo.append(
                    lambda: source.unsubscribe_publication(publication, subscriber)
                )
                return f"on {publication!r} through {type(source).__qualname__}"
            self._wrap_publish(source)
            return f"through {type(source).__qualname__}"
        raise TypeError(
            "EventRecorder records an EventPublisher, a MultiPublisher or a "
            f"MessageBroker, got {type(source).__name__}: {source!r}"
        )

    def _wrap_publish(self, broker: MessageBroker) -> None:
        """Record every event handed to ``broker`` by shadowing its ``publish``
        (and ``publish_async``) on the instance; :meth:`close` removes them."""
        original = broker.publish

        def publish(channel: str, event: Any, event_tag: Any, caller: Any) -> None:
            self._record(event, event_tag, caller)
            original(channel, event, event_tag, caller)

        broker.publish = publish  # type: ignore[method-assign]
        names = ["publish"]
        original_async = getattr(broker, "publish_async", None)
        if original_async is not None:

            async def publish_async(
                channel: str, event: Any, event_tag: Any, caller: Any
            ) -> None:
                self._record(event, event_tag, caller)
                await original_async(channel, event, event_tag, caller)

            broker.publish_async = publish_async  # type: ignore[attr-defined]
            names.append("publish_async")

        def restore() -> None:
            for name in names:
                broker.__dict__.pop(name, None)

        self._undo.append(restore)

    # --- recording ------------------------------------------------------------

    def _record(self, event: Any, event_tag: Any, caller: Any) -> None:
        record = RecordedEvent(
            event, event_tag, caller, threading.current_thread().name
        )
        with self._lock:
            self._records.append(record)
            self._arrived.notify_all()
            ready = [w for w in self._waiters if w.matcher.matches(event)]
            for waiter in ready:
                self._waiters.remove(waiter)
        for waiter in ready:
            # A closed loop raises RuntimeError: nobody waits there any more.
            with contextlib.suppress(RuntimeError):
                waiter.loop.call_soon_threadsafe(_resolve, waiter.future, event)

    @property
    def records(self) -> list[RecordedEvent]:
        """Every delivery so far, in arrival order, with its tag and caller."""
        with self._lock:
            return list(self._records)

    @overload
    def events(self) -> list[Any]: ...
    @overload
    def events(self, event_class: type[E]) -> list[E]: ...
    def events(self, event_class: type[Any] | None = None) -> list[Any]:
        """The recorded events, in arrival order; only the instances of
        ``event_class`` (subclasses included) when given."""
        with self._lock:
            events = [r.event for r in self._records]
        if event_class is None:
            return events
        return [e for e in events if isinstance(e, event_class)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def clear(self) -> None:
        """Forget what was recorded (recording goes on)."""
        with self._lock:
            self._records.clear()

    def close(self) -> None:
        """Stop recording (unsubscribe); what was recorded stays readable."""
        undo, self._undo = self._undo, []
        for step in reversed(undo):
            step()

    def __enter__(self) -> EventRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- assertions -------------------------------------------------------------

    @overload
    def assert_published(
        self,
        expected: type[E],
        *,
        where: _Where | None = ...,
        timeout: float | None = ...,
        **fields: Any,
    ) -> E: ...
    @overload
    def assert_published(
        self,
        expected: E | None = ...,
        *,
        where: _Where | None = ...,
        timeout: float | None = ...,
        **fields: Any,
    ) -> E: ...
    def assert_published(
        self,
        expected: Any = None,
        *,
        where: _Where | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Any:
        """Assert that a matching event was published; return the first one.

        Raises:
            AssertionError: none did (within ``timeout`` seconds, when given),
                with the recorded events and how each differs.
        """
        matcher = EventMatcher(expected, where, fields)
        matched = self._matching(matcher, 1, timeout)
        if not matched:
            raise AssertionError(self._report("no event published matches", matcher))
        return matched[0]

    @overload
    def assert_published_once(
        self,
        expected: type[E],
        *,
        where: _Where | None = ...,
        timeout: float | None = ...,
        **fields: Any,
    ) -> E: ...
    @overload
    def assert_published_once(
        self,
        expected: E | None = ...,
        *,
        where: _Where | None = ...,
        timeout: float | None = ...,
        **fields: Any,
    ) -> E: ...
    def assert_published_once(
        self,
        expected: Any = None,
        *,
        where: _Where | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> Any:
        """Assert that exactly one matching event was published; return it.

        With ``timeout``, waits for the first match only: a duplicate that
        arrives after this returned is not seen.

        Raises:
            AssertionError: none, or more than one, did.
        """
        matcher = EventMatcher(expected, where, fields)
        matched = self._matching(matcher, 1, timeout)
        if len(matched) != 1:
            headline = (
                "no event published matches"
                if not matched
                else f"{len(matched)} events published (expected one) match"
            )
            raise AssertionError(self._report(headline, matcher))
        return matched[0]

    def assert_not_published(
        self, expected: Any = None, *, where: _Where | None = None, **fields: Any
    ) -> None:
        """Assert that no matching event was published (so far: for a broker
        that delivers on another thread, check after something that proves
        delivery has happened, such as a later event's arrival).

        Raises:
            AssertionError: one did; the message marks it with ``*``.
        """
        matcher = EventMatcher(expected, where, fields)
        if self._matching(matcher, 0, None):
            raise AssertionError(self._report("an event published matches", matcher))

    async def wait_for(
        self,
        expected: Any = None,
        *,
        where: _Where | None = None,
        timeout: float = 10.0,
        **fields: Any,
    ) -> Any:
        """Wait for a matching event and return it, from a coroutine.

        An event recorded before the call counts (no race between publishing
        and waiting); after :meth:`clear`, only new ones do. Events may arrive
        from any thread.

        Raises:
            AssertionError: none within ``timeout`` seconds, with the report
                of :meth:`assert_published`.
        """
        matcher = EventMatcher(expected, where, fields)
        loop = asyncio.get_running_loop()
        with self._lock:
            for record in self._records:
                if matcher.matches(record.event):
                    return record.event
            waiter = _Waiter(matcher, loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter.future, timeout)
        except asyncio.TimeoutError:
            headline = f"no event within {timeout} s matches"
            raise AssertionError(self._report(headline, matcher)) from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _matching(
        self, matcher: EventMatcher, wanted: int, timeout: float | None
    ) -> list[Any]:
        """The recorded events ``matcher`` accepts, waiting up to ``timeout``
        seconds until there are at least ``wanted``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                matched = [r.event for r in self._records if matcher.matches(r.event)]
                if len(matched) >= wanted or deadline is None:
                    return matched
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return matched
                self._arrived.wait(remaining)

    def _report(self, headline: str, matcher: EventMatcher) -> str:
        return report(headline, matcher, self.events(), self._where)

    def __repr__(self) -> str:
        return f"<EventRecorder {self._where}: {len(self)} events>"


def _resolve(future: asyncio.Future[Any], event: Any) -> None:
    if not future.done():
        future.set_result(event)
