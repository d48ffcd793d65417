"""Coroutine subscribers: handlers written as ``async def``, run on one loop.

Design: brokers and publishers deliver through the synchronous
``subscriber.call(event, tag, caller)`` of the :class:`EventSubscriber`
contract, from any thread. An :class:`AsyncEventSubscriber` subclass writes
``async def call(...)`` instead; when the class is created, that coroutine
function is moved aside (to ``_call_coroutine``) and ``call`` becomes the
base class's synchronous method, which appends the event to the subscriber's
backlog and wakes the loop with ``call_soon_threadsafe``. Worker tasks on the
loop run the coroutine for each event, in publish order. So every broker
delivers to a coroutine subscriber unchanged, and ``await
subscriber.call_async(...)`` (used by ``publish_async``) goes through the same
backlog and returns once the event has been handled.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Union

from eventspype._internal.fork import ForkSafeLock
from eventspype._internal.ratelimit import RateLimitedWarning
from eventspype._subscribers import log_subscriber_error
from eventspype.delivery import Delivery, current_delivery
from eventspype.delivery import _current as _current_delivery
from eventspype.event import NormalizedTag
from eventspype.hooks import _observe_run
from eventspype.sub.subscriber import EventSubscriber

if TYPE_CHECKING:
    from eventspype.hooks import DeliveryInfo

__all__ = ["AsyncEventSubscriber", "AsyncFunctionalEventSubscriber"]

_logger = logging.getLogger(__name__)

#: Who hears how one handed-over event ended: the future ``call_async``
#: awaits, or a broker's callback (``None``: it succeeded; else the error).
Outcome = Union["asyncio.Future[None]", Callable[[BaseException | None], None]]

# (event, tag, caller, outcome of call_async or a broker's hand-over or None,
# what hooks see or None, the delivery being handled where the event was
# scheduled: eventspype.delivery)
_Item = tuple[
    Any,
    NormalizedTag,
    Any,
    "Outcome | None",
    "DeliveryInfo | None",
    "Delivery | None",
]


def _report(done: Outcome, error: BaseException | None) -> None:
    """Tell ``done`` how a handed-over event ended (see ``_submit``)."""
    if isinstance(done, asyncio.Future):
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
        return
    try:
        done(error)
    except Exception:  # the broker's bug must not end the worker
        _logger.exception("Reporting a handled event to its broker failed")


class AsyncEventSubscriber(ForkSafeLock, EventSubscriber):
    """A subscriber whose handler is a coroutine, run on one event loop.

    Subclass it and write the handler as a coroutine::

        class Notifier(AsyncEventSubscriber):
            async def call(self, event, event_tag, caller):
                await send_mail(event)

    Create it inside a coroutine (it binds to the running loop) or pass
    ``loop=``. Publishers and brokers deliver with the synchronous
    ``call(event, tag, caller)``, from any thread: it schedules the handler on
    the loop and returns at once (the ``async def call`` you wrote is what the
    loop runs; see the module docstring for how the two coexist). Inside an
    override, ``super().call(...)`` therefore schedules; it does not await the
    parent's handler.

    **Order and concurrency**: events are handled one at a time in the order
    they were delivered, unless ``max_concurrency`` > 1 allows that many
    handlers to run at once (started in delivery order).

    **Backlog and overflow policy**: at most ``max_pending`` events may wait
    or run. An event delivered while the backlog is full is dropped (the
    newest one: blocking the publisher could deadlock the loop's own thread),
    counted in :attr:`dropped`, and logged as a warning at most every 10
    seconds with the number dropped in between. ``await
    publisher.publish_async(...)`` is not subject to the bound: the awaiting
    publisher is the backpressure.

    **Errors**: a handler that raises is logged with the event tag (and the
    traceback) and counted in :attr:`errors`; the next events are handled.

    **Shutdown**: :meth:`drain` waits until the backlog is empty. If the loop
    shuts down with events pending (``asyncio.run`` cancels the workers), they
    are logged as an error and counted in :attr:`abandoned`; an event delivered
    after the loop is closed is counted the same way and logged at most every
    10 seconds, with the number not logged in between. Nothing waits on a
    closed loop.

    Held by weak reference like every subscriber: keep it alive for as long
    as it should receive events.
    """

    _call_coroutine: Callable[..., Awaitable[Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handler = cls.__dict__.get("call")
        if handler is None:
            return
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(
                f"{cls.__qualname__}.call must be a coroutine function "
                "(async def call(self, event, event_tag, caller)): an "
                "AsyncEventSubscriber runs it on its event loop"
            )
        cls._call_coroutine = handler
        cls.call = AsyncEventSubscriber.call  # type: ignore[method-assign]

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        max_concurrency: int = 1,
        max_pending: int = 1000,
    ) -> None:
        super().__init__()
        if getattr(type(self), "_call_coroutine", None) is None:
            raise TypeError(
                f"{type(self).__qualname__} must define "
                "async def call(self, event, event_tag, caller)"
            )
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    f"{type(self).__qualname__} binds to an event loop: create it "
                    "inside a coroutine (the running loop) or pass loop=..."
                ) from None
        self._loop = loop
        self._max_concurrency = max_concurrency
        self._max_pending = max_pending
        self._init_lock()
        self._backlog: deque[_Item] = deque()
        # Accepted and not yet finished: queued plus running.
        self._pending = 0
        self._workers = 0
        self._kick_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._drop_log = RateLimitedWarning(_logger)
        # A closed loop stays closed: every later event would log a line.
        self._closed_log = RateLimitedWarning(_logger)
        #: Events whose handler returned.
        self.handled = 0
        #: Events whose handler raised (delivered with ``call``).
        self.errors = 0
        #: Events refused because the backlog was full.
        self.dropped = 0
        #: Events never handled because the loop shut down or was closed.
        self.abandoned = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the handler runs on."""
        return self._loop

    @property
    def pending(self) -> int:
        """Events accepted and not yet handled (waiting or running)."""
        return self._pending

    # --- delivery -------------------------------------------------------------

    if TYPE_CHECKING:
        # What subclasses write (see the module docstring): the class creation
        # moves it aside and installs the synchronous scheduler below.
        async def call(
            self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
        ) -> None: ...

    else:

        def call(self, arg, current_event_tag, current_event_caller):
            """Schedule the handler for this event on the loop; returns at once."""
            self._schedule(arg, current_event_tag, current_event_caller)

    def _schedule(
        self,
        arg: Any,
        current_event_tag: NormalizedTag,
        current_event_caller: Any,
        info: DeliveryInfo | None = None,
    ) -> None:
        """Schedule the handler for this event on the loop and return at once.

        Safe from any thread. See the class docstring for what happens when
        the backlog is full or the loop is closed. With ``info`` (hooks are
        installed), the hooks run around the handler (see eventspype.hooks).
        """
        if self._loop.is_closed():
            self._abandon("its event loop is closed", extra=1, rate_limited=True)
            return
        with self._lock:
            if self._pending >= self._max_pending:
                self.dropped += 1
                dropped = self.dropped
                kick = False
            else:
                dropped = 0
                self._pending += 1
                self._backlog.append(
                    (
                        arg,
                        current_event_tag,
                        current_event_caller,
                        None,
                        info,
                        current_delivery(),
                    )
                )
                kick = not self._kick_scheduled and (
                    self._workers < self._max_concurrency
                )
                if kick:
                    self._kick_scheduled = True
        if dropped:
            self._drop_log.warning(
                "%r: backlog full (max_pending=%d), dropped %s event with tag %r "
                "(%d dropped in all)",
                self,
                self._max_pending,
                type(arg).__qualname__,
                current_event_tag,
                dropped,
            )
        elif kick:
            if asyncio._get_running_loop() is self._loop:
                # Delivered on the loop's own thread (AsyncRedisBroker's
                # listener, a publish from a coroutine): start the worker now,
                # without a hop through call_soon_threadsafe and its self-pipe.
                self._spawn()
                return
            try:
                self._loop.call_soon_threadsafe(self._spawn)
            except RuntimeError:  # closed between the check and now
                self._abandon("its event loop is closed", rate_limited=True)

    async def call_async(
        self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
    ) -> None:
        """Handle one event and return once the handler has finished.

        The event joins the same backlog as those delivered with ``call`` (so
        the order holds), without the ``max_pending`` bound: the caller waits.
        What the handler raises is raised here (and not counted in
        :attr:`errors`: the caller isolates it). Awaitable from any loop.
        """
        await self._call_async(arg, current_event_tag, current_event_caller, None)

    async def _call_async(
        self, arg: Any, tag: NormalizedTag, caller: Any, info: DeliveryInfo | None
    ) -> None:
        # call_async, with what the hooks see (None: no hook installed).
        current_event_tag, current_event_caller = tag, caller
        running = asyncio.get_running_loop()
        if self._loop.is_closed():
            raise RuntimeError(f"{self!r}: its event loop is closed")
        if running is not self._loop:
            future = asyncio.run_coroutine_threadsafe(
                self._call_async(arg, current_event_tag, current_event_caller, info),
                self._loop,
            )
            await asyncio.wrap_future(future)
            return
        done: asyncio.Future[None] = running.create_future()
        self._submit(arg, current_event_tag, current_event_caller, info, done)
        await done

    def _submit(
        self,
        arg: Any,
        tag: NormalizedTag,
        caller: Any,
        info: DeliveryInfo | None,
        done: Outcome,
    ) -> None:
        """Queue one event whose outcome ``done`` reports, and start a worker;
        on the loop's thread.

        What :meth:`call_async` does without a task of its own to await
        ``done``: a broker driving its consumer on this loop hands the event
        over here, so the handler runs without waiting for another task's
        first step. ``done`` is a future of this loop (it gets the handler's
        exception, not counted in :attr:`errors`, or is cancelled when the
        backlog is abandoned) or a callback, called once on the worker's
        step with ``None`` or the exception (a ``RuntimeError`` when the
        backlog is abandoned): no future, and no loop turn before the broker
        hears of it. From Python 3.12 the worker starts as an eager task, so
        a handler that never waits has finished, and the callback has been
        called, when this returns. The current delivery
        (``eventspype.delivery``) is the one of the handler.
        """
        with self._lock:
            self._pending += 1
            self._backlog.append((arg, tag, caller, done, info, current_delivery()))
        self._spawn(eager=True)

    async def drain(self) -> None:
        """Wait until the backlog is empty: every accepted event was handled
        (or abandoned). Await it on the subscriber's loop."""
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("drain() must be awaited on the subscriber's loop")
        while True:
            with self._lock:
                if self._pending == 0:
                    return
                waiter: asyncio.Future[None] = self._loop.create_future()
                self._idle_waiters.append(waiter)
            await waiter

    # --- on the loop ----------------------------------------------------------

    def _spawn(self, eager: bool = False) -> None:
        """Start workers for the backlog, up to ``max_concurrency``.

        ``eager`` (Python 3.12+, for a broker handing events over on this
        loop): a worker's first step runs now, as an eager task, so a handler
        starts without waiting for the next loop turn (one that does not
        wait on anything finishes here).
        """
        with self._lock:
            self._kick_scheduled = False
            count = min(len(self._backlog), self._max_concurrency - self._workers)
            if count <= 0:
                return
            self._workers += count
        for _ in range(count):
            if sys.version_info >= (3, 12) and eager:
                task = asyncio.Task(self._work(), loop=self._loop, eager_start=True)
                if task.done():  # finished in its first step
                    continue
            else:
                task = self._loop.create_task(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self) -> None:
        item: _Item | None = None
        try:
            while True:
                with self._lock:
                    if not self._backlog:
                        self._workers -= 1
                        return
                    item = self._backlog.popleft()
                await self._run(*item)
                item = None
        except (asyncio.CancelledError, GeneratorExit):
            # Cancelled (asyncio.run cancels every task at shutdown) or closed
            # unfinished (a loop closed with this task still pending).
            with self._lock:
                self._workers -= 1
            self._abandon(
                "the task handling its events was stopped (loop shutting down?)",
                current=item,
            )
            raise

    async def _run(
        self,
        event: Any,
        tag: NormalizedTag,
        caller: Any,
        done: Outcome | None,
        info: DeliveryInfo | None,
        delivery: Delivery | None,
    ) -> None:
        # The worker task outlives one event (and was started under whatever
        # delivery was current then): the one current when this event was
        # scheduled, or none, is made current for its handler.
        token = _current_delivery.set(delivery)
        try:
            run = self._call_coroutine(event, tag, caller)
            # Hooks installed when the event was handed over see the run.
            await (run if info is None else _observe_run(info, run))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if done is None:
                self.errors += 1
                log_subscriber_error(_logger, self, event, tag)
            else:
                _report(done, error)
        else:
            self.handled += 1
            if done is not None:
                _report(done, None)
        finally:
            _current_delivery.reset(token)
        self._finished(1)

    def _finished(self, count: int) -> None:
        with self._lock:
            self._pending -= count
            idle = self._pending == 0
            waiters, self._idle_waiters = (
                (self._idle_waiters, []) if idle else ([], self._idle_waiters)
            )
        for waiter in waiters:
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(None)

    def _abandon(
        self,
        reason: str,
        current: _Item | None = None,
        extra: int = 0,
        *,
        rate_limited: bool = False,
    ) -> None:
        """Give up the backlog (plus ``current``, being handled, and ``extra``
        events refused now), and say so (at most every 10 s when
        ``rate_limited``: the loop is closed and every event would log)."""
        with self._lock:
            items = list(self._backlog)
            self._backlog.clear()
        if current is not None:
            items.append(current)
        count = len(items) + extra
        if not count:
            return
        for _event, _tag, _caller, done, _info, _delivery in items:
            if isinstance(done, asyncio.Future):
                if not done.done() and not done.get_loop().is_closed():
                    done.cancel()
            elif done is not None:
                _report(done, RuntimeError(f"abandoned: {reason}"))
        self.abandoned += count
        self._finished(len(items))
        message = "%r: %d event(s) not handled because %s (%d abandoned in all)"
        if rate_limited:
            self._closed_log.error(
                message, self, count, reason, self.abandoned, count=count
            )
        else:
            _logger.error(message, self, count, reason, self.abandoned)

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} at {id(self):#x}>"


# Defined in its own module, importable from here as before.
from eventspype.sub.async_functional import (  # noqa: E402
    AsyncFunctionalEventSubscriber as AsyncFunctionalEventSubscriber,
)
