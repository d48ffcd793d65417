"""``with broker.batch():`` — many PUBLISH commands in one round trip."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["Batch", "BatchBuffer"]

_logger = logging.getLogger("eventspype.broker.redis")

#: ``(channel, message)`` pairs waiting to be sent, already encoded.
Messages = list[tuple[bytes, bytes]]


class BatchBuffer(threading.local):
    """Per thread: the messages held by the open ``batch()`` blocks, if any.

    ``messages`` is ``None`` outside a batch, so ``publish()`` tells the two
    cases apart with one attribute read.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.messages: Messages | None = None


class Batch:
    """Holds this thread's publishes until the outermost block ends.

    On a normal exit every held event is sent in one round trip (pipelined,
    not a transaction: subscribers see them one by one, in order). If the
    block raises, the held events are discarded and the exception propagates.
    A failed send raises the connection error from ``__exit__``; none of the
    batch is counted as published then, although Redis may have received some.
    Nested blocks join the outermost one. Other threads are not affected.
    """

    __slots__ = ("_buffer", "_send")

    def __init__(self, buffer: BatchBuffer, send: Callable[[Messages], None]) -> None:
        self._buffer = buffer
        self._send = send

    def __enter__(self) -> Batch:
        buffer = self._buffer
        if buffer.depth == 0:
            buffer.messages = []
        buffer.depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        buffer = self._buffer
        buffer.depth -= 1
        if buffer.depth:
            return
        messages, buffer.messages = buffer.messages, None
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
        """How many events this thread holds for sending."""
        messages = self._buffer.messages
        return 0 if messages is None else len(messages)
