"""A subscriber that fans events out to asyncio queues as plain dicts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from eventspype._internal.fork import ForkSafeLock
from eventspype._internal.ratelimit import RateLimitedWarning
from eventspype._json_safe import make_json_safe
from eventspype.event import NormalizedTag
from eventspype.sub._loop_handoff import call_in_loop
from eventspype.sub.subscriber import EventSubscriber

__all__ = ["QueueEventSubscriber"]

_logger = logging.getLogger(__name__)

_Queue = asyncio.Queue[dict[str, Any]]

# Put in an iterating consumer's queue by close(): ends ``async for``.
_CLOSED: dict[str, Any] = {}


class _Consumer:
    """What the subscriber knows about one consumer queue."""

    __slots__ = ("in_flight", "iterating", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None, iterating: bool) -> None:
        #: The loop that reads the queue; ``None`` until a coroutine awaits
        #: ``get()`` on it, for a queue made outside a running loop.
        self.loop = loop
        #: Events handed to ``loop`` (``call_soon_threadsafe``), not yet queued.
        self.in_flight = 0
        self.iterating = iterating


class _ConsumerQueue(asyncio.Queue[dict[str, Any]]):
    """An ``asyncio.Queue`` that tells its subscriber which loop reads it."""

    def __init__(
        self, maxsize: int, bind: Callable[[_Queue, asyncio.AbstractEventLoop], None]
    ) -> None:
        super().__init__(maxsize)
        self._bind: Callable[[_Queue, asyncio.AbstractEventLoop], None] | None = bind

    async def get(self) -> dict[str, Any]:
        bind = self._bind
        if bind is not None:  # the first get(): from now on, puts go via its loop
            self._bind = None
            bind(self, asyncio.get_running_loop())
        return await super().get()


class QueueEventSubscriber(ForkSafeLock, EventSubscriber):
    """Gives each consumer its own ``asyncio.Queue`` of event dicts.

    Each event becomes ``{"event_type", "event_tag", "caller", "timestamp",
    "data"}`` (``data`` through :func:`~eventspype.make_json_safe`) and is put
    in every consumer queue. Events may be published from any thread: the put
    happens in the loop that reads the queue, through
    ``loop.call_soon_threadsafe``.

    **The bound** (``max_queue_size`` per consumer) counts the events in the
    queue plus those handed to its loop and not yet queued, so a busy loop
    cannot accumulate more than that many. An event that does not fit is
    dropped for that consumer only (the others still get it), counted in
    :attr:`dropped`, and logged as a warning at most once every 10 seconds,
    with the number of drops in between.

    **Iteration**: ``async for event in subscriber:`` subscribes a consumer
    for the duration of the loop and yields its events; it ends after
    :meth:`close`, once the events already queued for it are consumed.
    """

    def __init__(self, max_queue_size: int = 1000) -> None:
        super().__init__()
        self._max_queue_size = max_queue_size
        self._init_lock()
        self._queues: dict[_Queue, _Consumer] = {}
        self._closed = False
        self._drop_log = RateLimitedWarning(_logger)
        #: Events dropped because a consumer's queue was full.
        self.dropped = 0

    @property
    def logger(self) -> logging.Logger:
        """The ``logging.Logger`` of this module, where dropped events are logged."""
        return _logger

    def subscribe_consumer(self) -> _Queue:
        """Create a consumer queue, read by the loop this is called from.

        Called outside a running loop, the queue is bound to the loop of the
        first coroutine that awaits its ``get()``; until then events are put
        synchronously by the publishing thread (there is nobody to wake).
        """
        return self._subscribe(iterating=False)

    def _subscribe(self, iterating: bool) -> _Queue:
        queue = _ConsumerQueue(self._max_queue_size, self._bind)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            queue._bind = None
        with self._lock:
            self._queues[queue] = _Consumer(loop, iterating)
        return queue

    def _bind(self, queue: _Queue, loop: asyncio.AbstractEventLoop) -> None:
        # Under the lock, so no synchronous put (made under it too) can
        # interleave with the switch to call_soon_threadsafe.
        with self._lock:
            consumer = self._queues.get(queue)
            if consumer is not None and consumer.loop is None:
                consumer.loop = loop

    def unsubscribe_consumer(self, queue: _Queue) -> None:
        """Stop filling ``queue``; unknown queues are ignored."""
        with self._lock:
            self._queues.pop(queue, None)

    @property
    def consumer_count(self) -> int:
        """How many consumer queues are subscribed."""
        with self._lock:
            return len(self._queues)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop delivering events and end every ``async for`` over this subscriber.

        Consumer queues keep what they hold; later events are ignored.
        Safe from any thread; closing twice has no effect.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            iterating = [(q, c) for q, c in self._queues.items() if c.iterating]
        for queue, consumer in iterating:
            if consumer.loop is None:
                self._put_end(queue)
            else:
                call_in_loop(consumer.loop, self._put_end, queue)

    @staticmethod
    def _put_end(queue: _Queue) -> None:
        # A full queue needs no marker: its reader checks `closed` when empty.
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(_CLOSED)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        queue = self._subscribe(iterating=True)
        try:
            while not (self._closed and queue.empty()):
                item = await queue.get()
                if item is _CLOSED:
                    return
                yield item
        finally:
            self.unsubscribe_consumer(queue)

    def call(
        self,
        arg: Any,
        current_event_tag: NormalizedTag,
        current_event_caller: Any,
    ) -> None:
        if self._closed or not self._queues:
            return
        item = self._build_event_dict(arg, current_event_tag, current_event_caller)
        bound = self._max_queue_size
        handoffs = []
        full = 0
        with self._lock:
            for queue, consumer in self._queues.items():
                loop = consumer.loop
                if loop is None:
                    # Synchronous, under the lock (see _bind).
                    try:
                        queue.put_nowait(item)
                    except asyncio.QueueFull:
                        full += 1
                elif bound > 0 and queue.qsize() + consumer.in_flight >= bound:
                    full += 1
                else:
                    consumer.in_flight += 1
                    handoffs.append((queue, consumer, loop))
        if full:
            self._dropped(full, item)
        for queue, consumer, loop in handoffs:
            if not call_in_loop(loop, self._put, queue, consumer, item):
                # The consumer's loop is gone; it will never read this queue.
                self.unsubscribe_consumer(queue)

    def _put(self, queue: _Queue, consumer: _Consumer, item: dict[str, Any]) -> None:
        # In the consumer's loop. The bound was checked on hand-off; the event
        # is queued before it stops counting as in flight, so the sum that
        # call() checks never undercounts.
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:  # pragma: no cover - only if others put in it
            self._dropped(1, item)
        finally:
            with self._lock:
                consumer.in_flight -= 1

    def _dropped(self, count: int, item: dict[str, Any]) -> None:
        with self._lock:
            self.dropped += count
            total = self.dropped
        self._drop_log.warning(
            "Consumer queue full (max %d): dropped %s event (%d dropped in all)",
            self._max_queue_size,
            item["event_type"],
            total,
        )

    @staticmethod
    def _build_event_dict(
        event: Any, event_tag: NormalizedTag, caller: Any
    ) -> dict[str, Any]:
        return {
            "event_type": type(event).__qualname__,
            "event_tag": event_tag,
            "caller": getattr(caller, "name", None) or type(caller).__name__,
            "timestamp": time.time(),
            "data": make_json_safe(event),
        }
