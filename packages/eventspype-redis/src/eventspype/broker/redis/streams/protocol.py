"""The Streams consumer's decisions, no I/O: what to send, what to deliver.

:class:`StreamProtocol` is one consumer of one group over a set of streams.
It never touches a socket, a thread, a loop or a clock: a driver feeds it
replies, errors, handler outcomes and the time (``now``, monotonic seconds),
and it returns the commands to send (``streams.commands``) and the entries
to deliver (:class:`~streams.held.Delivery`).

How to drive it (thread, asyncio task, or the in-memory driver of
``streams.memory``), one loop::

    proto.set_streams({b"prefix{orders}": "orders"})      # any time
    while not (stopping and proto.finished_all):
        batch = proto.poll(now())
        send every command of ``batch`` in order (one pipeline is fine; a
          Read, if any, is last and may block for ``block_ms``);
        for each command, in order: proto.reply(cmd, decoded_reply, now())
          or proto.failed(cmd, kind, str(error), now()) -- every command of
          the batch gets exactly one of the two; when the connection broke,
          feed "down" for the rest of the batch;
        for delivery in proto.take(now()):
            call the local subscribers not in delivery.succeeded, with the
            delivery context set; when they are all done (a coroutine
            subscriber: when its coroutine returned), possibly later and
            in any order:
            proto.finished(delivery, verdict, error, succeeded, now())
        if the batch was empty: wait until proto.next_wakeup(now()) or until
          a subscriber finishes, whichever comes first.

Only one batch is in flight at a time: feed every reply of a batch before
the next ``poll``. ``finished`` may come at any time between. Replies are
fed in the shapes documented on each command; errors are classified by the
driver (``commands.ErrorKind``). ``Connect`` opens the connection (the
core asks for it at start and after an outage, with backoff).

What it decides:

* per entry: deliver; acknowledge once every local subscriber returned;
  retry after a growing backoff (an XCLAIM to itself: Redis counts the
  delivery, so ``max_deliveries`` survives a crash) calling only the
  subscribers that have not succeeded; dead-letter (one atomic script)
  after ``max_deliveries``, when refused by the receive checks, when it has
  no ``event`` field (``malformed``) or is larger than ``max_entry_bytes``
  (``oversized``, its body not copied); hand it back (``skip``).
* leases: every held entry's idle time is reset (XCLAIM JUSTID to itself)
  once it is ``renew_age`` old, so no other consumer claims an entry that
  waits in a batch or a backoff; a command about an entry whose lease may
  have run out (``stale_age``, e.g. after an outage) is sent
  ``only_owned``, so an acknowledgement never removes an entry another
  consumer has claimed meanwhile.
* claims: a sweep (XAUTOCLAIM of entries idle ``claim_idle``) at start and
  every ``claim_interval``; own pending entries resumed at once after a
  start or a reconnection (XPENDING for this consumer, then XCLAIM).
* prefetch: at most ``prefetch`` entries held, failed and retrying ones
  included; when every slot is taken reading pauses (``reads_paused``).
* errors: ``down`` reconnects with backoff and resends what was lost
  (acknowledgements included); ``nogroup`` makes the group again from the
  stream's start; a ``key`` error takes that stream out of reading for a
  backoff while the others go on.
* shutdown: :meth:`stop` stops reading and hands back what was not started;
  :meth:`hand_back_rest` at the drain deadline hands back the rest.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping

from eventspype._internal.ratelimit import RateLimitedWarning
from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.held import (
    ConsumerHealth,
    ConsumerOptions,
    Delivery,
    Held,
    ProtocolCounters,
    Verdict,
)
from eventspype.broker.redis.streams.outgoing import renew, settle
from eventspype.broker.redis.streams.replies import on_failure, on_reply

__all__ = ["EVENT_FIELD", "StreamProtocol"]

_logger = logging.getLogger("eventspype.broker.redis")

#: The one field of a stream entry: the envelope.
EVENT_FIELD = b"event"
_ZERO = b"0-0"


class StreamProtocol:
    """One consumer's state machine (see the module docs for how to drive it)."""

    def __init__(
        self, options: ConsumerOptions, rand: Callable[[], float] = random.random
    ) -> None:
        self.options = options
        self.counters = ProtocolCounters()
        self._rand = rand
        self._claim_idle_ms = max(1, int(options.claim_idle * 1000))
        self.streams: dict[bytes, str] = {}
        self._held: dict[tuple[bytes, bytes], Held] = {}
        self._ready: set[bytes] = set()
        self._created: set[bytes] = set()  # groups seen once: recreate from 0
        self._broken: dict[bytes, tuple[float, int]] = {}  # until, failures
        self._resume: dict[bytes, bytes] = {}  # stream -> exclusive start
        self._sweep_at: dict[bytes, bytes] = {}  # stream -> XAUTOCLAIM cursor
        self._next_sweep = float("-inf")
        self._connected = False
        self._down_since: float | None = None
        self._failures = 0
        self._next_connect = float("-inf")
        self._in_flight = False
        self._reading = True
        self._paused = False
        self._rotate = 0
        self._log = RateLimitedWarning(_logger, 10.0)
        #: No lease needs renewing before this time (a cheap check for a
        #: driver between two deliveries: ``now >= renew_due``).
        self.renew_due = float("inf")

    # -- inputs ------------------------------------------------------------

    def set_streams(self, streams: Mapping[bytes, str]) -> None:
        """Read these streams (key -> local channel) from now on."""
        self.streams = dict(streams)
        for stream in list(self._ready):
            if stream not in self.streams:
                self._ready.discard(stream)
        for held in self._held.values():
            if held.stream not in self.streams and held.state in ("new", "retry"):
                held.state = "give_back"

    def stop(self) -> None:
        """Stop reading and claiming; what is not started yet is handed back."""
        self._reading = False
        for held in self._held.values():
            if held.state in ("new", "retry", "counting"):
                held.state = "give_back"

    def hand_back_rest(self) -> None:
        """At the drain deadline: hand back everything not yet settled."""
        self.stop()
        for held in self._held.values():
            if held.state == "running":
                held.state = "give_back"

    def release(self, delivery: Delivery) -> None:
        """Hand back a delivery taken but never given to the subscribers (a
        driver stopping between two deliveries of a batch)."""
        held = self._held.get((delivery.stream, delivery.entry_id))
        if held is not None and held.state == "running":
            held.state = "give_back"

    @property
    def finished_all(self) -> bool:
        """Nothing held and nothing in flight (a stopped consumer may exit)."""
        return not self._held and not self._in_flight

    def take(self, now: float) -> list[Delivery]:
        """The entries to hand to the subscribers now (each once)."""
        out: list[Delivery] = []
        for held in self._held.values():
            if held.state != "new" or held.data is None:
                continue
            held.state, held.since = "running", now
            channel = self.streams.get(held.stream)
            if channel is None:
                held.state = "give_back"
                continue
            self.counters.delivered += 1
            if held.count > 1:
                self.counters.redelivered += 1
            out.append(
                Delivery(
                    held.stream,
                    channel,
                    held.entry_id,
                    held.data,
                    held.count,
                    held.succeeded,
                    held.error,
                )
            )
        return out

    def finished(
        self,
        delivery: Delivery,
        verdict: Verdict,
        error: str = "",
        succeeded: Iterable[object] = (),
        now: float = 0.0,
    ) -> None:
        """What the subscribers made of ``delivery`` (see ``held.Verdict``).

        ``succeeded`` are the ids of the subscribers that handled it (kept for
        a retry). An outcome for an entry no longer held (its lease was lost,
        the group vanished, it was handed back) is ignored.
        """
        held = self._held.get((delivery.stream, delivery.entry_id))
        if held is None or held.state != "running":
            return
        held.succeeded = held.succeeded | frozenset(succeeded)
        held.error = error
        if verdict == "ok":
            held.state = "ack"
        elif verdict == "skip" or not self._reading:
            held.state = "give_back" if verdict != "refused" else "dead"
            held.reason = "refused"
        elif verdict == "refused":
            held.state, held.reason = "dead", "refused"
        else:
            held.failures += 1
            if held.count >= self.options.max_deliveries:
                held.state, held.reason = "dead", "max_deliveries"
            else:
                delay = self.options.retry.delay(held.failures, self._rand())
                held.state, held.since = "retry", now + delay

    # -- polling ------------------------------------------------------------

    def poll(self, now: float, read: bool = True) -> list[c.Command]:
        """The next batch of commands to send (see the module docs).

        ``read=False`` leaves out reads and claims (a driver renewing leases
        between two deliveries of a batch).
        """
        assert not self._in_flight, "feed every reply of a batch before polling"
        batch = self._batch(now, read)
        self._in_flight = bool(batch)
        self._pending = len(batch)
        return batch

    def _batch(self, now: float, read: bool) -> list[c.Command]:
        if not self._connected:
            return [c.Connect(now)] if now >= self._next_connect else []
        out: list[c.Command] = []
        for stream in self.streams:
            if stream not in self._ready and self._broken_until(stream) <= now:
                start = b"0" if stream in self._created else self._start_id
                out.append(c.EnsureGroup(stream, start, now))
        settle(self, now, out)
        renew(self, now, out)
        free = self.options.prefetch - len(self._held)
        if self._reading and read:
            free = self._claims(now, out, free)
            self._read(now, out, free)
        return out

    def _claims(self, now: float, out: list[c.Command], free: int) -> int:
        """Resume own pending entries, sweep the group; the slots left."""
        for stream, after in self._resume.items():
            if free > 0 and stream in self._ready:
                out.append(c.OwnPending(stream, after, b"+", free, True, now))
                free = 0  # the reply's entries take the slots
        if now >= self._next_sweep and self._ready:
            self._next_sweep = now + self.options.claim_interval
            for stream in self._ready:
                self._sweep_at.setdefault(stream, _ZERO)
        for stream, cursor in list(self._sweep_at.items()):
            if free <= 0:
                break
            if stream not in self._ready:
                del self._sweep_at[stream]
                continue
            out.append(c.Sweep(stream, self._claim_idle_ms, cursor, free, now))
            free = 0
        return free

    def _read(self, now: float, out: list[c.Command], free: int) -> None:
        streams = [s for s in self.streams if s in self._ready]
        if not streams:
            return
        full = len(self._held) >= self.options.prefetch
        if full and not self._paused:
            self.counters.reads_paused += 1
        self._paused = full
        if free <= 0:  # full, or the slots go to a claim in this batch
            return
        if free >= len(streams):
            count = free // len(streams)
        else:  # fewer slots than streams: read some of them, in turn
            self._rotate = (self._rotate + 1) % len(streams)
            streams = (streams[self._rotate :] + streams[: self._rotate])[:free]
            count = 1
        # Block unless this batch brings entries to deliver (a claim, a sweep,
        # own pending entries) or some wait: acknowledgements and lease
        # renewals travel with the blocking read, ahead of it.
        busy = any(
            not isinstance(cmd, (c.Ack, c.DeadLetter))
            and not (isinstance(cmd, c.Claim) and cmd.justid)
            for cmd in out
        ) or any(h.state == "new" for h in self._held.values())
        wait = 0.0 if busy else self.next_wakeup(now) - now
        block = int(min(wait, self.options.block) * 1000)
        out.append(c.Read(tuple(streams), count, block if block >= 1 else None, now))

    def next_wakeup(self, now: float) -> float:
        """When :meth:`poll` has something to send at the latest, without a reply."""
        if not self._connected:
            return max(now, self._next_connect)
        if self._has_work(now):
            return now
        times = [now + self.options.block]
        if self._reading:
            times.append(self._next_sweep)
        renew = self.options.renew_age
        for held in self._held.values():
            if held.state in ("retry", "dead"):
                times.append(held.since)
            if not held.renewing and held.state in ("new", "running", "retry"):
                times.append(held.leased_at + renew)
        times.extend(until for until, _ in self._broken.values())
        return max(now, min(times))

    def _has_work(self, now: float) -> bool:
        """Whether :meth:`poll` would send something other than a read now."""
        if any(s not in self._ready and s not in self._broken for s in self.streams):
            return True
        settle = ("new", "ack", "give_back")
        for held in self._held.values():
            if held.state in settle or (held.state == "dead" and held.since <= now):
                return True
        if not self._reading or len(self._held) >= self.options.prefetch:
            return False
        return any(s in self._ready for s in (*self._resume, *self._sweep_at))

    @property
    def _start_id(self) -> bytes:
        return b"$" if self.options.start == "new" else b"0"

    def _broken_until(self, stream: bytes) -> float:
        return self._broken.get(stream, (float("-inf"), 0))[0]

    # -- replies --------------------------------------------------------------

    def reply(self, command: c.Command, value: object, now: float) -> None:
        """Feed the decoded reply of ``command`` (shapes: ``streams.commands``)."""
        self._answered()
        on_reply(self, command, value, now)
        # Entries it brought in may need renewing from then on.
        due = command.sent_at + self.options.renew_age
        self.renew_due = min(self.renew_due, due)

    def failed(
        self, command: c.Command, kind: c.ErrorKind, message: str, now: float
    ) -> None:
        """Feed the failure of ``command`` (kinds: ``commands.ErrorKind``)."""
        self._answered()
        on_failure(self, command, kind, message, now)

    def _answered(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self._in_flight = False

    # -- reporting -------------------------------------------------------------

    @property
    def held_count(self) -> int:
        """Entries held (counts against ``prefetch``)."""
        return len(self._held)

    def held(self) -> list[Held]:
        """The entries held (for tests and diagnostics; do not modify)."""
        return list(self._held.values())

    def health(self, now: float) -> ConsumerHealth:
        """Liveness and readiness figures (see :class:`ConsumerHealth`)."""
        running = [h.since for h in self._held.values() if h.state == "running"]
        return ConsumerHealth(
            connected=self._connected,
            down_for=None if self._down_since is None else now - self._down_since,
            held=len(self._held),
            running=len(running),
            oldest_running=now - min(running) if running else None,
            paused=self._paused,
            broken_streams=tuple(sorted(self._broken)),
        )
