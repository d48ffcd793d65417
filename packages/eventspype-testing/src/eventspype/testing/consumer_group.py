"""The consumer-group emulation of ``TestBroker(durable=True)``.

It is not a second model of a Redis consumer group: it runs the Streams
protocol core that ``RedisStreamBroker`` runs (``streams.protocol``), on the
in-memory model of streams and groups of eventspype-redis
(``streams.memory``), driven by its synchronous in-memory driver, on a clock
that moves only when the test says so. What the core decides for the real
broker (acknowledge after every subscriber returned, retry a failed entry
after a backoff, calling only the subscribers that have not succeeded yet,
dead-letter it after ``max_deliveries``), it decides here, in the test's
thread, without threads or sleeps.

Needs eventspype-redis: ``pip install "eventspype-testing[redis]"``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

try:
    from eventspype.broker.redis._wire import envelope
    from eventspype.broker.redis.streams.dead_letters import DeadLetter, stream_key
    from eventspype.broker.redis.streams.held import ConsumerOptions
    from eventspype.broker.redis.streams.held import Delivery as Entry
    from eventspype.broker.redis.streams.memory import ManualClock, MemoryRedis
    from eventspype.broker.redis.streams.memory_driver import (
        HandleResult,
        MemoryConsumer,
    )
    from eventspype.broker.redis.streams.protocol import StreamProtocol
except ImportError as error:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "TestBroker(durable=True) runs the Streams protocol core of "
        'eventspype-redis: pip install "eventspype-testing[redis]" '
        f"(or eventspype-redis) ({error})"
    ) from error

from eventspype._internal.backoff import Backoff
from eventspype.delivery import Delivery as DeliveryContext
from eventspype.delivery import delivering
from eventspype.event import NormalizedTag
from eventspype.sub.asynchronous import AsyncEventSubscriber
from eventspype.sub.subscriber import EventSubscriber
from eventspype.testing import _observing

__all__ = ["DeadLetter", "EmulatedGroup", "FanOut"]

#: Where streams live in the model (the production default prefix).
PREFIX = "eventspype:"
#: The most steps one :meth:`EmulatedGroup.pump` takes (a runaway guard).
MAX_STEPS = 10_000


class FanOut(Protocol):
    """What the emulation needs from the broker (``TestBroker`` is one)."""

    def _receivers(self, channel: str, event: Any) -> list[EventSubscriber]: ...
    def _failed(
        self,
        channel: str,
        event: Any,
        tag: NormalizedTag,
        subscriber: EventSubscriber,
        error: Exception,
    ) -> None: ...
    def _decode(self, event_module: str, event_class: str, payload: bytes) -> Any: ...


@dataclass
class _Running:
    """An entry whose coroutine subscribers wait for ``drain()``."""

    entry: Entry
    event: Any
    tag: NormalizedTag
    waiting: list[AsyncEventSubscriber]
    succeeded: set[int]
    error: str
    context: DeliveryContext


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(
    method: Callable[Concatenate[EmulatedGroup, _P], _R],
) -> Callable[Concatenate[EmulatedGroup, _P], _R]:
    """One thread at a time in the emulation, as one real consumer is one
    reader (publishing from several threads raced in the model and lost
    entries). Reentrant: a handler may publish to the same broker."""

    def locked(self: EmulatedGroup, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    functools.update_wrapper(locked, method)
    return locked


class EmulatedGroup:
    """One consumer of one group, over the streams of the subscribed channels."""

    def __init__(
        self,
        broker: FanOut,
        *,
        group: str,
        consumer: str,
        max_deliveries: int,
        claim_idle: float,
        retry_delay: tuple[float, float],
    ) -> None:
        self._lock = threading.RLock()
        self.group, self.consumer = group, consumer
        self.clock = ManualClock()
        self.redis = MemoryRedis(self.clock)
        options = ConsumerOptions(
            group=group.encode(),
            consumer=consumer.encode(),
            max_deliveries=max_deliveries,
            claim_idle=claim_idle,
            retry=Backoff(*retry_delay),
        )
        # rand pinned at the middle of the jitter range: the same waits every run.
        self.proto = StreamProtocol(options, rand=lambda: 0.5)
        self._broker = broker
        #: Entries waiting for their coroutine subscribers, for ``drain()``.
        self.running: list[_Running] = []
        self._streams: dict[bytes, str] = {}
        self.driver = MemoryConsumer(self.redis, self.proto, self._deliver, self.clock)

    def _key(self, channel: str) -> bytes:
        return stream_key(PREFIX, channel).encode()

    def _deliver(self, entry: Entry) -> HandleResult:
        """Deliver one entry to the local subscribers that have not succeeded
        with it yet, as the production driver does; a coroutine subscriber
        leaves the entry running until ``drain()``."""
        broker, channel = self._broker, entry.channel
        try:
            decoded = envelope.decode(entry.data, max_bytes=1 << 30)
            event = broker._decode(
                decoded.event_module, decoded.event_class, decoded.payload
            )
        except Exception as refusal:  # what production's receive checks refuse
            return ("refused", f"{type(refusal).__name__}: {refusal}")
        context = DeliveryContext(
            channel,
            system="redis",  # as RedisStreamBroker sets it
            message_id=entry.entry_id.decode(),
            delivery_count=entry.delivery_count,
            group=self.group,
            consumer=self.consumer,
        )
        succeeded, waiting, error = set(), [], ""
        with delivering(context):
            for subscriber in broker._receivers(channel, event):
                key = id(subscriber)
                if key in entry.succeeded:
                    continue
                if isinstance(subscriber, AsyncEventSubscriber):
                    waiting.append(subscriber)
                    continue
                try:
                    _observing.call(
                        subscriber, event, decoded.event_tag, broker, channel
                    )
                except Exception as failure:
                    broker._failed(
                        channel, event, decoded.event_tag, subscriber, failure
                    )
                    error = error or f"{type(failure).__name__}: {failure}"
                else:
                    succeeded.add(key)
        if waiting:
            self.running.append(
                _Running(
                    entry, event, decoded.event_tag, waiting, succeeded, error, context
                )
            )
            return None
        return _verdict(entry, succeeded, error)

    @_locked
    def watch(self, channel: str) -> None:
        """Read ``channel``'s stream from now on (its group is created now)."""
        key = self._key(channel)
        if key not in self._streams:
            self._streams[key] = channel
            self.proto.set_streams(dict(self._streams))
            self.pump()

    @_locked
    def add(
        self, channel: str, event_tag: Any, event_class: type, payload: bytes
    ) -> None:
        """XADD the envelope production would write, then deliver what is due."""
        data = envelope.encode(event_tag, event_class, payload)
        self.redis.xadd(self._key(channel), {b"event": data})
        self.pump()

    @_locked
    def pump(self) -> None:
        """Run the consumer until it only waits (the clock does not move)."""
        self.driver.run_until_idle(MAX_STEPS)

    @_locked
    def take_running(self) -> list[_Running]:
        """The entries waiting for coroutine subscribers (now the caller's)."""
        running, self.running = self.running, []
        return running

    @_locked
    def finish(self, running: _Running) -> None:
        """Report an entry whose coroutine subscribers have run."""
        verdict = _verdict(running.entry, running.succeeded, running.error)
        self.driver.finish(running.entry, verdict)
        self.pump()

    @_locked
    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward, running the consumer at every
        moment it is due (retries, claims, lease renewals) on the way."""
        target = self.clock.now + seconds
        for _ in range(MAX_STEPS):
            due = self.proto.next_wakeup(self.clock.now)
            if due > target:
                break
            self.clock.now = max(self.clock.now, due)
            self.pump()
        self.clock.now = target
        self.pump()

    @_locked
    def pending(self) -> int:
        """Entries delivered to the group and not acknowledged, every stream."""
        group = self.group.encode()
        return sum(len(self.redis.pel(key, group)) for key in self._streams)

    @_locked
    def settle(self, max_seconds: float) -> None:
        """Advance until nothing is pending (each entry acknowledged or
        dead-lettered), or ``max_seconds`` of emulated time passed.

        Raises:
            RuntimeError: a coroutine subscriber still runs an entry
                (``drain()`` first), or the group did not settle in time.
        """
        start = self.clock.now
        while self.pending():
            if self.driver.running:
                raise RuntimeError(
                    "coroutine subscribers still hold entries: drain() first"
                )
            if self.clock.now - start >= max_seconds:
                raise RuntimeError(
                    f"{self.pending()} entries still pending after "
                    f"{max_seconds} s of emulated time"
                )
            due = self.proto.next_wakeup(self.clock.now)
            self.advance(max(due - self.clock.now, 0.0) + 1e-3)

    @_locked
    def dead_letters(self, channel: str) -> list[DeadLetter]:
        """The dead letters of ``channel``, oldest first, as
        ``RedisStreamBroker.dead_letters()`` returns them."""
        dead = self.redis.keys.get(self._key(channel) + b":dead")
        entries = getattr(dead, "entries", None)
        if not entries:
            return []
        letters = []
        for entry_id, fields in entries.items():
            letters.append(
                DeadLetter(
                    id=f"{entry_id[0]}-{entry_id[1]}",
                    channel=channel,
                    event=fields.get(b"event", b""),
                    error=fields.get(b"error", b"").decode(errors="replace"),
                    deliveries=int(fields.get(b"deliveries", b"0")),
                    original_id=fields.get(b"id", b"").decode(),
                    group=fields.get(b"group", b"").decode(),
                    consumer=fields.get(b"consumer", b"").decode(),
                )
            )
        return letters


def _verdict(entry: Entry, succeeded: set[int], error: str) -> HandleResult:
    done = frozenset(succeeded) | entry.succeeded
    return ("failed", error, done) if error else ("ok", "", done)
