"""How ``TestBroker`` runs coroutine subscribers: ``drain()`` and
``drain_async()``, for events published synchronously and for entries of
the consumer-group emulation waiting for them."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import TYPE_CHECKING, Any, Literal

from eventspype.delivery import delivering
from eventspype.event import NormalizedTag
from eventspype.sub.asynchronous import AsyncEventSubscriber
from eventspype.testing import _observing

if TYPE_CHECKING:
    from eventspype.sub.subscriber import EventSubscriber
    from eventspype.testing.consumer_group import EmulatedGroup, _Running

__all__ = ["CoroutineDelivery", "Queued"]

#: A coroutine subscriber's event published synchronously, waiting for
#: ``drain()``: channel, subscriber, event, tag, and the context it was
#: published in when hooks were installed (see ``_observing``).
Queued = tuple[
    str, AsyncEventSubscriber, Any, NormalizedTag, contextvars.Context | None
]


class CoroutineDelivery:
    """Mixed into :class:`~eventspype.testing.TestBroker`."""

    _lock: threading.Lock
    _group: EmulatedGroup | None
    _queued: list[Queued]

    def _failed(
        self,
        channel: str,
        event: Any,
        tag: NormalizedTag,
        subscriber: EventSubscriber,
        error: Exception,
    ) -> None:
        raise NotImplementedError  # TestBroker's

    def _raise_pending(self) -> None:
        raise NotImplementedError  # TestBroker's

    def drain(self) -> None:
        """Run the coroutine subscribers' queued events, then raise the first
        subscriber error not raised yet (with ``errors="collect"``).

        Outside a running event loop: each coroutine subscriber's loop runs
        until its events are handled. Inside one, use :meth:`drain_async`.

        Raises:
            Exception: the first subscriber error not raised yet.
            RuntimeError: called inside a running event loop with coroutine
                events queued.
        """
        if self._queued or (self._group is not None and self._group.running):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise RuntimeError(
                    "TestBroker.drain() inside a running event loop: "
                    "await broker.drain_async() instead"
                )
        for channel, subscriber, event, tag, context in self._take_queued():
            self._outcome(channel, subscriber, event, tag, None, context=context)
        while self._group is not None and self._group.running:
            for running in self._group.take_running():
                with delivering(running.context):
                    for subscriber in running.waiting:
                        channel = running.entry.channel
                        self._outcome(
                            channel, subscriber, running.event, running.tag, running
                        )
                self._group.finish(running)
        self._raise_pending()

    async def drain_async(self) -> None:
        """:meth:`drain` for code that runs in an event loop."""
        for channel, subscriber, event, tag, context in self._take_queued():
            error = await _awaited(subscriber, event, tag, self, channel, context)
            self._outcome(channel, subscriber, event, tag, None, error)
        while self._group is not None and self._group.running:
            for running in self._group.take_running():
                for subscriber in running.waiting:
                    # The handler sees the entry's delivery, as from the broker.
                    channel = running.entry.channel
                    with delivering(running.context):
                        error = await _awaited(
                            subscriber, running.event, running.tag, self, channel
                        )
                    self._outcome(
                        channel, subscriber, running.event, running.tag, running, error
                    )
                self._group.finish(running)
        self._raise_pending()

    def _outcome(
        self,
        channel: str,
        subscriber: AsyncEventSubscriber,
        event: Any,
        tag: NormalizedTag,
        running: _Running | None,
        error: Exception | Literal["run"] | None = "run",
        context: contextvars.Context | None = None,
    ) -> None:
        """Record how a coroutine subscriber handled ``event``; with the
        default ``error="run"``, run it first on its own (idle) loop."""
        if error == "run":
            error = subscriber.loop.run_until_complete(
                _awaited(subscriber, event, tag, self, channel, context)
            )
        if error is not None and not isinstance(error, str):
            self._failed(channel, event, tag, subscriber, error)
            if running is not None:
                running.error = running.error or f"{type(error).__name__}: {error}"
        elif running is not None:
            running.succeeded.add(id(subscriber))

    def _take_queued(self) -> list[Queued]:
        with self._lock:
            queued, self._queued = self._queued, []
        return queued


async def _awaited(
    subscriber: AsyncEventSubscriber,
    event: Any,
    tag: NormalizedTag,
    caller: Any,
    channel: str,
    context: contextvars.Context | None = None,
) -> Exception | None:
    """Await ``subscriber`` on ``event`` (between the hooks, if any); what it
    raised, or ``None``."""
    try:
        await _observing.call_async(subscriber, event, tag, caller, channel, context)
    except Exception as error:
        return error
    return None
