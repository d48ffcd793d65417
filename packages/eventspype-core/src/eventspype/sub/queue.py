"""A subscriber that fans events out to asyncio queues as plain dicts."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from eventspype._json_safe import make_json_safe
from eventspype.event import NormalizedTag
from eventspype.sub._loop_handoff import call_in_loop
from eventspype.sub.subscriber import EventSubscriber

__all__ = ["QueueEventSubscriber"]

_logger = logging.getLogger(__name__)

_Queue = asyncio.Queue[dict[str, Any]]


class QueueEventSubscriber(EventSubscriber):
    """Gives each consumer its own ``asyncio.Queue`` of event dicts.

    Each event becomes ``{"event_type", "event_tag", "caller", "timestamp",
    "data"}`` (``data`` through :func:`~eventspype.make_json_safe`) and is put
    in every consumer queue. A full queue drops the event for that consumer,
    logs a warning and counts it in :attr:`dropped`; the others still get it.

    Events may be published from any thread: the put happens in the consumer's
    own event loop (captured by :meth:`subscribe_consumer`).
    """

    def __init__(self, max_queue_size: int = 1000) -> None:
        super().__init__()
        self._max_queue_size = max_queue_size
        self._lock = threading.Lock()
        self._queues: dict[_Queue, asyncio.AbstractEventLoop | None] = {}
        #: Events dropped because a consumer's queue was full.
        self.dropped = 0

    @property
    def logger(self) -> logging.Logger:
        """The ``logging.Logger`` of this module, where dropped events are logged."""
        return _logger

    def subscribe_consumer(self) -> _Queue:
        """Create a consumer queue. Call it from the loop that will read the queue.

        Outside a running loop the queue is filled synchronously, which is only
        safe when events are published from that same thread.
        """
        queue: _Queue = asyncio.Queue(maxsize=self._max_queue_size)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._queues[queue] = loop
        return queue

    def unsubscribe_consumer(self, queue: _Queue) -> None:
        """Stop filling ``queue``; unknown queues are ignored."""
        with self._lock:
            self._queues.pop(queue, None)

    @property
    def consumer_count(self) -> int:
        """How many consumer queues are subscribed."""
        with self._lock:
            return len(self._queues)

    def call(
        self,
        arg: Any,
        current_event_tag: NormalizedTag,
        current_event_caller: Any,
    ) -> None:
        with self._lock:
            targets = list(self._queues.items())
        if not targets:
            return
        item = self._build_event_dict(arg, current_event_tag, current_event_caller)
        for queue, loop in targets:
            if loop is None:
                self._put(queue, item)
            elif not call_in_loop(loop, self._put, queue, item):
                # The consumer's loop is gone; it will never read this queue.
                self.unsubscribe_consumer(queue)

    def _put(self, queue: _Queue, item: dict[str, Any]) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            _logger.warning(
                "Consumer queue full (max %d): dropped %s event",
                self._max_queue_size,
                item["event_type"],
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
