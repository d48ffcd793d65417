"""A subscriber that records events and lets coroutines wait for them."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

from eventspype._internal.fork import register_for_fork
from eventspype.event import NormalizedTag
from eventspype.sub._loop_handoff import WaitTimeout, call_in_loop
from eventspype.sub.subscriber import EventSubscriber

__all__ = ["TrackingEventSubscriber"]

_Waiter = tuple["asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _resolve(future: asyncio.Future[Any], event: Any) -> None:
    if not future.done():
        future.set_result(event)


class TrackingEventSubscriber(EventSubscriber):
    """Keeps the last ``max_len`` events and wakes coroutines waiting for a type.

    Events may arrive on any thread (a broker's listener thread included):
    waiters are woken in their own event loop with ``call_soon_threadsafe``.
    """

    def __init__(self, event_source: str | None = None, max_len: int = 50) -> None:
        super().__init__()
        self._event_source = event_source
        self._max_len = max_len
        self._lock = threading.Lock()
        self._generic_collected_events: deque[Any] = deque(maxlen=max_len)
        self._collected_events: dict[type, deque[Any]] = {}
        self._waiters: dict[type, list[_Waiter]] = {}
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def event_source(self) -> str | None:
        """The label given at construction."""
        return self._event_source

    @property
    def event_log(self) -> list[Any]:
        """Recorded events of the types not registered with :meth:`track_event_type`."""
        with self._lock:
            return list(self._generic_collected_events)

    def events_of(self, event_type: type) -> list[Any]:
        """Recorded events of a type registered with :meth:`track_event_type`."""
        with self._lock:
            return list(self._collected_events.get(event_type, ()))

    def track_event_type(self, event_type: type) -> None:
        """Record ``event_type`` in its own bounded log, so frequent other events
        cannot push it out of :attr:`event_log`."""
        with self._lock:
            self._collected_events.setdefault(event_type, deque(maxlen=self._max_len))

    def clear(self) -> None:
        """Forget every recorded event (waiters keep waiting)."""
        with self._lock:
            self._generic_collected_events.clear()
            for log in self._collected_events.values():
                log.clear()

    async def wait_for(self, event_type: type, timeout_seconds: float = 180) -> Any:
        """Wait for the next event whose type is exactly ``event_type`` and return it.

        Only events that arrive after the call count. Safe when events are
        delivered from another thread.

        Raises:
            TimeoutError: no such event within ``timeout_seconds``.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        waiter: _Waiter = (future, loop)
        with self._lock:
            self._waiters.setdefault(event_type, []).append(waiter)
        try:
            return await asyncio.wait_for(future, timeout_seconds)
        except asyncio.TimeoutError:
            raise WaitTimeout(
                f"no {event_type.__qualname__} event within {timeout_seconds} s"
            ) from None
        finally:
            with self._lock:
                waiters = self._waiters.get(event_type)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._waiters[event_type]

    def call(
        self,
        event_object: Any,
        current_event_tag: NormalizedTag,
        current_event_caller: Any,
    ) -> None:
        event_type = type(event_object)
        with self._lock:
            log = self._collected_events.get(event_type, self._generic_collected_events)
            log.append(event_object)
            waiters = self._waiters.pop(event_type, None)
        for future, loop in waiters or ():
            call_in_loop(loop, _resolve, future, event_object)
