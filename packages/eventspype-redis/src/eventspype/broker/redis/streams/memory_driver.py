"""The in-memory driver: runs a Streams protocol core on a :class:`MemoryRedis`.

Synchronous, no threads, deterministic: each :meth:`MemoryConsumer.step` is
one batch of the core (poll, execute every command on the model, feed the
replies), then hands the entries to deliver to ``handle``. ``handle`` returns
the verdict at once (``"ok"``, ``("failed", error)``...), or ``None`` to
finish later with :meth:`MemoryConsumer.finish` (a coroutine subscriber
still running). A test broker's consumer-group emulation and the protocol's
property tests both use it.
"""

from __future__ import annotations

from collections.abc import Callable

from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.held import Delivery, Verdict
from eventspype.broker.redis.streams.memory import MemoryRedis, RedisDown, RedisError
from eventspype.broker.redis.streams.protocol import StreamProtocol

__all__ = ["HandleResult", "MemoryConsumer", "execute"]

#: What ``handle`` returns: a verdict, ``(verdict, error)``, ``(verdict,
#: error, succeeded subscriber ids)``, or ``None`` (finished later).
HandleResult = (
    Verdict | tuple[Verdict, str] | tuple[Verdict, str, frozenset[object]] | None
)


def execute(redis: MemoryRedis, proto: StreamProtocol, cmd: c.Command) -> object:
    """Run one command on the model; returns the reply in the core's shape.

    Raises:
        RedisDown: the model is down.
        RedisError: Redis would answer an error (BUSYGROUP is a success).
    """
    group, me = proto.options.group, proto.options.consumer
    if isinstance(cmd, c.Connect):
        if redis.down:
            raise RedisDown("connection refused")
        return None
    if isinstance(cmd, c.EnsureGroup):
        try:
            redis.xgroup_create(cmd.stream, group, cmd.start)
        except RedisError as error:
            if error.kind != "busy":
                raise
        return None
    if isinstance(cmd, c.Read):
        return redis.xreadgroup(group, me, cmd.streams, cmd.count)
    if isinstance(cmd, c.OwnPending):
        return redis.pending_of(cmd.stream, group, me, cmd.start, cmd.end, cmd.count)
    if isinstance(cmd, c.Sweep):
        return redis.xautoclaim(
            cmd.stream, group, me, cmd.min_idle_ms, cmd.start, cmd.count
        )
    if isinstance(cmd, c.Claim):
        return redis.xclaim(
            cmd.stream,
            group,
            me,
            cmd.ids,
            justid=cmd.justid,
            idle_ms=cmd.idle_ms,
            only_owned=cmd.only_owned,
        )
    if isinstance(cmd, c.Ack):
        return redis.xack(cmd.stream, group, me, cmd.ids, cmd.only_owned)
    entries = []
    for dead in cmd.entries:
        fields = {
            b"error": dead.error.encode(),
            b"deliveries": b"%d" % dead.deliveries,
            b"id": dead.entry_id,
            b"group": group,
            b"consumer": me,
            b"size": b"%d" % dead.size,
            b"reason": dead.reason.encode(),
        }
        if dead.data is not None:
            fields[b"event"] = dead.data
        entries.append((dead.entry_id, fields))
    return redis.dead_letter(cmd.stream, group, me, entries, cmd.only_owned)


class MemoryConsumer:
    """One consumer process on the model (see the module docs)."""

    def __init__(
        self,
        redis: MemoryRedis,
        proto: StreamProtocol,
        handle: Callable[[Delivery], HandleResult],
        clock: Callable[[], float],
    ) -> None:
        self.redis = redis
        self.proto = proto
        self._handle = handle
        self._clock = clock
        #: Deliveries ``handle`` left running (``None``), by (stream, id).
        self.running: dict[tuple[bytes, bytes], Delivery] = {}

    def step(self) -> bool:
        """One batch and its deliveries; ``False`` when it did nothing but
        wait (no command, or only reads that returned nothing, and nothing
        to deliver)."""
        proto = self.proto
        batch = proto.poll(self._clock())
        broken = False
        busy = False
        for cmd in batch:
            now = self._clock()
            if broken:
                proto.failed(cmd, "down", "connection lost", now)
                continue
            try:
                value = execute(self.redis, proto, cmd)
            except RedisDown as error:
                broken = True
                proto.failed(cmd, "down", str(error), now)
            except RedisError as error:
                busy = True
                proto.failed(cmd, error.kind, str(error), now)  # type: ignore[arg-type]
            else:
                busy = busy or not isinstance(cmd, c.Read) or bool(value)
                proto.reply(cmd, value, now)
        deliveries = proto.take(self._clock())
        for delivery in deliveries:
            result = self._handle(delivery)
            if result is None:
                self.running[(delivery.stream, delivery.entry_id)] = delivery
            else:
                self._finish(delivery, result)
        return busy or bool(deliveries)

    def finish(self, delivery: Delivery, result: HandleResult) -> None:
        """Report a delivery ``handle`` left running."""
        self.running.pop((delivery.stream, delivery.entry_id), None)
        if result is not None:
            self._finish(delivery, result)

    def _finish(self, delivery: Delivery, result: HandleResult) -> None:
        now = self._clock()
        if isinstance(result, str):
            self.proto.finished(delivery, result, "", (), now)
        elif result is not None:
            succeeded = result[2] if len(result) > 2 else ()
            self.proto.finished(delivery, result[0], result[1], succeeded, now)

    def run_until_idle(self, max_steps: int = 1000) -> int:
        """Step until a step does nothing but wait; returns the steps taken.

        The clock does not move here: advance it to make timers (retries,
        sweeps, lease renewals, reconnections) fire.
        """
        for steps in range(1, max_steps + 1):
            if not self.step():
                return steps
        return max_steps
