"""How an AsyncRedisStreamBroker runs a consumer process: serve, stop, health.

A mixin of :class:`~streams.aio.AsyncRedisStreamBroker`: ``await aserve()``
until SIGTERM or SIGINT (or :meth:`AsyncServing.request_stop`), then the
broker's drain; ``health()`` for liveness and readiness probes, from the
core's figures (``StreamProtocol.health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import TYPE_CHECKING

from eventspype.broker.redis.streams.health import StreamHealth, stream_health

if TYPE_CHECKING:
    from eventspype.broker.redis.streams.aio_consumer import AsyncConsumer

__all__ = ["AsyncServing"]


class AsyncServing:
    """``aserve``, ``request_stop`` and ``health`` (see the module docs).

    Needs ``_loop``, ``_consumer``, ``_closed``, ``_stuck_after`` and
    ``_stop_requested``, ``_hurry`` and ``aclose(drain=...)`` from the broker.
    """

    _loop: asyncio.AbstractEventLoop
    _consumer: AsyncConsumer
    _closed: bool
    _stuck_after: float
    _stop_requested: asyncio.Event
    _hurry: bool

    async def aclose(self, drain: float = 10.0) -> None:
        raise NotImplementedError

    def health(self, stuck_after: float | None = None) -> StreamHealth:
        """What liveness and readiness probes need (see ``StreamHealth``).

        As ``RedisStreamBroker.health()``: live while the consumer task runs
        (or nothing is subscribed yet) and no delivery has been with the
        subscribers longer than ``stuck_after`` (default ``claim_idle``);
        ready when also connected with every stream readable. The group's
        backlog is ``await backlog()`` (a round trip per channel).
        """
        consumer = self._consumer
        running = not self._closed and (consumer.alive or not consumer.proto.streams)
        limit = self._stuck_after if stuck_after is None else stuck_after
        figures = consumer.proto.health(time.monotonic())
        return stream_health([figures], running, limit)

    def request_stop(self) -> None:
        """Make :meth:`aserve` drain and return (as SIGTERM does); any thread."""
        self._loop.call_soon_threadsafe(self._stop_signal)

    async def aserve(self, drain: float = 30.0) -> None:
        """Consume until SIGTERM or SIGINT (or :meth:`request_stop`), then drain.

        Draining stops reading, lets the handlers in hand finish and
        acknowledges them for up to ``drain`` seconds, then hands what is left
        back to the group (its idle time set past ``claim_idle``, so another
        consumer's next claim sweep takes it) and closes the broker. A second
        signal stops at once (everything in hand is handed back). A process
        whose main coroutine is ``await broker.aserve()`` exits 0. Signal
        handlers need the main thread (elsewhere, use :meth:`request_stop`).
        """
        installed: list[signal.Signals] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(signum, self._stop_signal)
                installed.append(signum)
        try:
            await self._stop_requested.wait()
            await self.aclose(drain=drain)
        finally:
            for signum in installed:
                self._loop.remove_signal_handler(signum)

    def _stop_signal(self) -> None:
        if self._stop_requested.is_set():  # the second one: at once
            self._hurry = True
            self._consumer.hand_back_rest()
        self._stop_requested.set()
