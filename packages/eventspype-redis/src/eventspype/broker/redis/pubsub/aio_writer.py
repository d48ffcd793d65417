"""The writer of ``AsyncRedisBroker``: what ``publish()`` queues, sent in batches.

``publish()`` must not block the event loop, so it only appends the encoded
message to a bounded queue and wakes the writer task; or, when the writer
is idle (nothing queued, nothing being written) and the connection has
nothing waiting to be sent, it writes the message to the socket at once (a
non-blocking write; the next messages of that loop turn queue). The writer takes
everything queued since it last ran and writes it as one pipeline: the events
of one loop turn cost one write. It does not wait for the replies before
writing the next batch: a reader task, started once, reads them in order and
settles each batch, so an event published while another batch is on its way
is not held back by that batch's round trip. At most ``_MAX_IN_FLIGHT`` batches await
their replies; after that the writer waits. ``max_queued`` bounds every event
the writer holds, queued or on its way (written, awaiting its reply): past it
``publish()`` refuses (``PublishQueueFull``) and ``publish_async()`` waits, so
memory stays bounded while Redis is slow or paused.

``publish_async()`` goes through the same queue, so it keeps its place among
plain publishes, and waits on a future settled once Redis answered. The
caller never touches the connection: cancelling it cannot leave a reply
unread on the socket. A message whose future was cancelled before the writer
took it is not sent.

A batch that fails is logged (rate limited) and counted, one publish error
per event; the futures of its ``publish_async()`` calls get the error. A
connection error fails every batch awaiting replies on that connection (their
replies are lost with it); the next batch opens a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import redis.exceptions
from redis.exceptions import ResponseError

from eventspype._internal.ratelimit import RateLimitedWarning
from eventspype.broker.redis._wire.stats import Counters
from eventspype.broker.redis.pubsub.aio_senders import Sender

__all__ = ["AsyncWriter", "PublishQueueFull"]

_logger = logging.getLogger("eventspype.broker.redis")

#: At most one warning about failed batches per this many seconds.
_ERROR_LOG_INTERVAL = 1.0
#: The largest pipeline the writer sends at once (a full queue goes in several).
_MAX_BATCH = 4096
#: Batches written whose replies have not all been read yet, at most.
_MAX_IN_FLIGHT = 64

_Entry = tuple[bytes, bytes, "asyncio.Future[None] | None"]


class PublishQueueFull(asyncio.QueueFull):
    """``publish()`` found the writer's queue full: the event was not queued.

    The queue holds ``max_queued`` events; it fills when events are published
    faster than Redis takes them, or while Redis does not answer. Await
    ``broker.publish_async()`` (which waits for room) or ``broker.flush()``.
    """


class AsyncWriter:
    """The bounded queue, the writer task and the reply reader (module docs).

    ``put_nowait`` may be called from any thread; everything else runs on the
    loop. The tasks start with the first message.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sender: Sender,
        counters: Counters,
        max_queued: int,
    ) -> None:
        if max_queued < 1:
            raise ValueError(f"max_queued must be at least 1, got {max_queued}")
        self._loop = loop
        self._sender = sender
        self._counters = counters
        self.max_queued = max_queued
        # deque.append and popleft are atomic: other threads append directly.
        self._queue: deque[_Entry] = deque()
        # Written, awaiting replies, oldest first, with the sender's generation
        # they were written in (read by the reader task).
        self._in_flight: deque[tuple[int, list[_Entry]]] = deque()
        self._writing: list[_Entry] = []  # the batch being written
        # Taken off the queue and not settled yet (written, or being written);
        # changed on the loop only, read from any thread (an int: atomic).
        self._carried = 0
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None  # set while idle
        self._replied = asyncio.Event()  # the reader settled a batch
        self._written = asyncio.Event()  # a batch is in flight for the reader
        self._room = asyncio.Event()  # a message was settled (or dropped)
        self._idle = asyncio.Event()  # nothing queued, written or in flight
        self._idle.set()
        self._lost_log = RateLimitedWarning(_logger, _ERROR_LOG_INTERVAL)

    @property
    def queued(self) -> int:
        """Messages waiting for the writer (not those on their way)."""
        return len(self._queue)

    @property
    def held(self) -> int:
        """Messages queued or on their way, what ``max_queued`` bounds."""
        return len(self._queue) + self._carried

    def put_nowait(self, channel: bytes, message: bytes) -> None:
        """Queue one message to send; from any thread.

        Raises:
            PublishQueueFull: ``max_queued`` messages are waiting already.
        """
        held = self.held
        if held >= self.max_queued:
            self._counters.add_publish_error()
            raise PublishQueueFull(
                f"{held} events wait to be sent to Redis, or for its reply, "
                f"already (max_queued={self.max_queued}); the event was not "
                "published"
            )
        if asyncio._get_running_loop() is not self._loop:
            self._queue.append((channel, message, None))
            # Another thread: the writer may be going idle right now.
            self._loop.call_soon_threadsafe(self._wake)
        elif not self._write_now((channel, message, None)):
            self._queue.append((channel, message, None))
            if self._wakeup is not None or self._task is None:
                self._wake()

    async def put(self, channel: bytes, message: bytes) -> None:
        """Queue one message, waiting for room, and wait until Redis has it.

        Raises what sending raised (``redis.exceptions.ConnectionError``,
        ``TimeoutError``, ``ResponseError``).
        """
        while self.held >= self.max_queued:
            self._room.clear()
            await self._room.wait()
        done: asyncio.Future[None] = self._loop.create_future()
        entry = (channel, message, done)
        if not self._write_now(entry):
            self._queue.append(entry)
            self._wake()
        await done

    async def flush(self) -> None:
        """Wait until every message queued so far was sent (or failed)."""
        while not self._is_idle():
            self._wake()
            self._idle.clear()
            await self._idle.wait()

    def abandon(self) -> list[str]:
        """Cancel the tasks without waiting (the broker was collected).

        Returns the names of the tasks cancelled; what they held is reported
        lost by their clean-up.
        """
        stopped = []
        for task in (self._task, self._reader):
            if task is not None and not task.done():
                task.cancel()
                stopped.append(task.get_name())
        return stopped

    async def stop(self) -> None:
        """End the tasks; what is still queued or on its way is reported lost."""
        for task in (self._task, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._reader = None
        self._report_abandoned()

    # -- the writer task ----------------------------------------------------

    def _wake(self) -> None:
        # On the loop thread.
        self._idle.clear()
        if self._task is None:
            self._task = self._loop.create_task(
                self._run(), name="eventspype-redis-writer"
            )
            return
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _write_now(self, entry: _Entry) -> bool:
        """Send ``entry`` at once, on the loop, if the writer is idle; whether it did.

        Idle: the writer task waits for work (so nothing is queued or being
        written, and the order holds) and fewer than ``_MAX_IN_FLIGHT``
        batches await replies. The message goes out as a batch of one for the
        reader, and the writer is woken: what the rest of this loop turn
        queues goes in one pipeline, as without this shortcut. Saves the
        loop turn that waking the writer costs, the latency of ``publish()``
        at a moderate rate.
        """
        if (
            self._wakeup is None
            or self._queue
            or len(self._in_flight) >= _MAX_IN_FLIGHT
        ):
            return False
        sender = self._sender
        generation = sender.generation
        if not sender.write_now(entry[0], entry[1]):
            return False
        self._carried += 1
        self._in_flight.append((generation, [entry]))
        if self._reader is None:
            self._reader = self._loop.create_task(
                self._read(), name="eventspype-redis-replies"
            )
        else:
            self._written.set()
        self._wake()  # not idle any more: the next message queues
        return True

    def _is_idle(self) -> bool:
        return not (self._queue or self._writing or self._in_flight)

    def _settled(self) -> None:
        if self._is_idle():
            self._idle.set()

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._settled()
                    self._wakeup = self._loop.create_future()
                    await self._wakeup
                    continue
                while len(self._in_flight) >= _MAX_IN_FLIGHT:
                    self._replied.clear()
                    await self._replied.wait()
                await self._write(self._take())
        except asyncio.CancelledError:
            self._report_abandoned()
            raise

    def _take(self) -> list[_Entry]:
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(len(queue), _MAX_BATCH))]
        kept = [e for e in batch if e[2] is None or not e[2].done()]
        self._carried += len(kept)
        if len(kept) < len(batch):  # cancelled publish_async calls: not sent
            self._room.set()
        return kept

    async def _write(self, batch: list[_Entry]) -> None:
        if not batch:
            return
        sender = self._sender
        if not self._in_flight:
            await sender.drop_if_stale()
        generation = sender.generation
        self._writing = batch  # reported if the task is cancelled meanwhile
        try:
            await sender.write([(channel, message) for channel, message, _ in batch])
        except Exception as error:
            self._writing = []
            # The connection is gone, with the replies of earlier batches.
            self._fail_in_flight(generation, error)
            self._carried -= len(batch)
            self._failed(batch, error)
            return
        self._writing = []
        self._in_flight.append((generation, batch))
        if self._reader is None:
            self._reader = self._loop.create_task(
                self._read(), name="eventspype-redis-replies"
            )
        else:
            self._written.set()

    # -- the reply reader task ----------------------------------------------

    async def _read(self) -> None:
        sender = self._sender
        try:
            while True:
                if not self._in_flight:
                    self._settled()
                    self._written.clear()
                    await self._written.wait()
                    continue
                generation, batch = self._in_flight[0]
                refused: ResponseError | None = None
                try:
                    if generation != sender.generation:
                        raise redis.exceptions.ConnectionError(
                            "the connection to Redis was lost before the replies"
                        )
                    await sender.read_replies(len(batch))
                except ResponseError as error:  # every reply was read
                    refused = error
                except Exception as error:
                    self._fail_in_flight(generation, error)
                    self._replied.set()
                    continue
                # A failed write may have failed this batch meanwhile.
                if self._in_flight and self._in_flight[0][1] is batch:
                    self._in_flight.popleft()
                    if refused is None:
                        self._succeeded(batch)
                    else:
                        self._carried -= len(batch)
                        self._failed(batch, refused)
                self._replied.set()
        finally:
            self._reader = None
            self._settled()

    def _succeeded(self, batch: list[_Entry]) -> None:
        self._carried -= len(batch)
        self._room.set()
        self._counters.add_published(len(batch))
        for _, _, done in batch:
            if done is not None and not done.done():
                done.set_result(None)

    def _fail_in_flight(self, generation: int, error: BaseException) -> None:
        """Fail the batches written in ``generation`` (their replies are lost)."""
        lost: list[_Entry] = []
        in_flight = self._in_flight
        while in_flight and in_flight[0][0] == generation:
            lost += in_flight.popleft()[1]
        self._carried -= len(lost)
        self._failed(lost, error)

    def _report_abandoned(self) -> None:
        # The tasks are cancelled (the loop is ending without aclose(), or
        # stop() came with messages left): say what is lost.
        lost = self._writing + [e for _, b in self._in_flight for e in b]
        lost += list(self._queue)
        self._writing = []
        self._in_flight.clear()
        self._queue.clear()
        self._carried = 0
        self._idle.set()  # nothing left: a flush() waiting must not wait forever
        if lost:
            self._failed(lost, RuntimeError("the writer task was cancelled"))

    def _failed(self, entries: list[_Entry], error: BaseException) -> None:
        # Every failed event counts once in publish_errors; those of plain
        # publish() calls are logged, the others raise from publish_async().
        self._room.set()
        unawaited = 0
        for _, _, done in entries:
            self._counters.add_publish_error()
            if done is None:
                unawaited += 1
            elif not done.done():
                done.set_exception(error)
        if unawaited:
            self._log_lost(unawaited, error)

    def _log_lost(self, count: int, error: BaseException) -> None:
        self._lost_log.warning(
            "%d published event(s) not sent to Redis (%s: %s)",
            count,
            type(error).__name__,
            error,
            count=count,
        )
