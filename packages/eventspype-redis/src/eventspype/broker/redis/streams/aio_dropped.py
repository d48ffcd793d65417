"""An AsyncRedisStreamBroker collected without ``aclose()``: stop its tasks, warn.

The broker's tasks hold it weakly (the consumer reaches the broker only
through ``StreamReceiving``'s weak reference), so a broker nobody holds is
collected while its consumer task still reads. Its finalizer, set up with
:func:`watch_drop`, stops the consumer as ``aclose(drain=0)`` would (what it
holds is handed back to the group, so that another consumer takes it at its
next claim sweep), cancels the writer's tasks, closes the broker's own
connections and says so with a ``ResourceWarning``, as ``AsyncRedisBroker``
does.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
import weakref
from collections.abc import Awaitable, Callable

from eventspype.broker.redis.pubsub.aio_writer import AsyncWriter
from eventspype.broker.redis.streams.aio_consumer import AsyncConsumer

__all__ = ["watch_drop"]

#: How long the hand-back of an abandoned consumer may take before its task
#: is cancelled (Redis down: what it holds waits for ``claim_idle``).
_HAND_BACK_TIMEOUT = 5.0

#: Clean-up tasks of abandoned brokers, held until done (the loop keeps only
#: weak references to tasks).
_closing: set[asyncio.Task[None]] = set()


def watch_drop(
    broker: object,
    description: str,
    loop: asyncio.AbstractEventLoop,
    consumer: AsyncConsumer,
    writer: AsyncWriter,
    closers: tuple[Callable[[], Awaitable[None]], ...],
) -> weakref.finalize[..., object]:
    """Arrange for :func:`_abandoned` when ``broker`` is collected.

    ``closers`` close the broker's own clients; none may hold the broker.
    Detach the returned finalizer in ``aclose()``. It does not run at exit
    (the loop is gone by then, and leaving without ``aclose()`` is no
    mistake there).
    """
    finalizer = weakref.finalize(
        broker, _abandoned, description, loop, consumer, writer, closers
    )
    finalizer.atexit = False
    return finalizer


def _abandoned(
    description: str,
    loop: asyncio.AbstractEventLoop,
    consumer: AsyncConsumer,
    writer: AsyncWriter,
    closers: tuple[Callable[[], Awaitable[None]], ...],
) -> None:
    """Runs wherever the garbage collector ran; the tasks stop on the loop."""

    def stop() -> None:
        stopped = consumer.abandon() + writer.abandon()
        task = loop.create_task(_tidy(consumer, closers))
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        warnings.warn(
            f"{description} was garbage-collected without aclose(); stopped "
            f"its tasks ({', '.join(stopped) or 'none running'}), handed back "
            "the entries its consumer held and closed its connections. Close "
            "it with 'await broker.aclose()' or 'async with broker:'.",
            ResourceWarning,
            stacklevel=2,
        )

    if asyncio._get_running_loop() is loop:
        stop()
        return
    with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
        loop.call_soon_threadsafe(stop)


async def _tidy(
    consumer: AsyncConsumer, closers: tuple[Callable[[], Awaitable[None]], ...]
) -> None:
    """Let the consumer hand back what it holds, then close everything."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(consumer.finished.wait(), _HAND_BACK_TIMEOUT)
    await consumer.close()
    for close in closers:
        with contextlib.suppress(Exception):
            await close()
