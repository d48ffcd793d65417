"""``with broker.batch():`` — many PUBLISH commands in one round trip."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType

__all__ = ["Batch", "BatchBuffer", "Held"]

_logger = logging.getLogger("eventspype.broker.redis")

#: ``(channel, message)`` pairs waiting to be sent, already encoded.
Messages = list[tuple[bytes, bytes]]


class Held:
    """The messages of one open (outermost) ``batch()`` block and its depth."""

    __slots__ = ("depth", "messages", "owner")

    def __init__(self) -> None:
        self.depth = 0
        self.messages: Messages = []
        self.owner = _owner()


def _owner() -> tuple[int, object]:
    """The running thread and asyncio task (``None`` outside a task).

    Called inside ``batch()`` blocks only: ``publish()`` outside one never
    gets here.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop in this thread
        task = None
    return threading.get_ident(), task


class BatchBuffer:
    """Per thread *and* per asyncio task: the open ``batch()`` block, if any.

    A context variable rather than a thread-local: tasks interleaving on one
    thread each see their own (a task's plain ``publish()`` must not land in
    another task's batch). A task started inside a block, or a thread given a
    copy of the context (``asyncio.to_thread``), inherits the variable; the
    block's owner check keeps it out of the batch too: it could outlive the
    block, and its events would be lost. ``current()`` is ``None`` outside a
    batch, so ``publish()`` tells the cases apart with one lookup.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: ContextVar[Held | None] = ContextVar(
            "eventspype_redis_batch", default=None
        )

    def current(self) -> Held | None:
        """The open batch of the running thread or task."""
        held = self._held.get()
        if held is None or held.owner != _owner():
            return None
        return held

    def enter(self) -> Held:
        """Open a block (or join the open one)."""
        held = self.current()
        if held is None:
            held = Held()
            self._held.set(held)
        held.depth += 1
        return held

    def leave(self) -> Messages | None:
        """Close a block; the messages to send when it was the outermost."""
        held = self.current()
        if held is None:  # left elsewhere than entered: nothing to send here
            return None
        held.depth -= 1
        if held.depth:
            return None
        self._held.set(None)
        return held.messages


class Batch:
    """Holds the publishes of this thread or task until the outermost block ends.

    On a normal exit every held event is sent in one round trip (pipelined,
    not a transaction: subscribers see them one by one, in order). If the
    block raises, the held events are discarded and the exception propagates.
    A failed send raises the connection error from ``__exit__``; none of the
    batch is counted as published then, although Redis may have received some.
    Nested blocks join the outermost one. Other threads, and other asyncio
    tasks (each runs in its own ``contextvars`` context), are not affected.
    """

    __slots__ = ("_buffer", "_send")

    def __init__(self, buffer: BatchBuffer, send: Callable[[Messages], None]) -> None:
        self._buffer = buffer
        self._send = send

    def __enter__(self) -> Batch:
        self._buffer.enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        messages = self._buffer.leave()
        if not messages:
            return
        if exc_type is not None:
            _logger.warning(
                "batch() block raised %s: %d held event(s) not published",
                exc_type.__name__,
                len(messages),
            )
            return
        self._send(messages)

    @property
    def pending(self) -> int:
        """How many events this thread or task holds for sending."""
        held = self._buffer.current()
        return 0 if held is None else len(held.messages)
