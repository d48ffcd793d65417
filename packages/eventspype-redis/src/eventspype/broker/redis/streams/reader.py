"""The reader thread of a RedisStreamBroker: read, hand over, acknowledge, claim.

One thread per broker (per master on a cluster: ``streams.cluster``), on a
connection of its own:

* ``XREADGROUP GROUP g c COUNT n BLOCK t STREAMS s1 s2 ... > > ...`` over
  every subscribed stream (by hash slot on a cluster: ``streams.slots``).
  ``n`` keeps at most ``prefetch`` entries in hand; the wait blocks in Redis.
* Each entry goes to the broker's ``handle(channel, data)``, which decodes it
  and calls the local subscribers; the entries that were handled are
  acknowledged together, one pipelined round trip per batch.
* An entry a subscriber raised on stays pending. Every ``claim_idle / 2`` the
  reader takes over (XAUTOCLAIM) what stayed pending longer than
  ``claim_idle``, its own failures as well as the entries of consumers that
  died, and delivers them again. Once an entry has been delivered
  ``max_deliveries`` times without success it is dead-lettered (see
  ``streams.dead_letters``), as is an entry ``handle`` refuses.
* Redis down (or, on a cluster, the node no longer the owner): the reader
  logs once, reconnects with doubling, jittered delays and goes on. A group
  that vanished (NOGROUP: a restart without persistence) is made again.
* Consumers of the group idle for longer than ``forget_after`` and with nothing
  pending are removed, and so is this one when the broker closes cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import redis
from redis.exceptions import AskError, ClusterDownError, TryAgainError

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._io.process import join_thread, stop_at_exit
from eventspype.broker.redis._wire.printable import Printable
from eventspype.broker.redis.streams.dead_letters import EVENT_FIELD, move_to_dead
from eventspype.broker.redis.streams.slots import Entry, SlotOf, read_group
from eventspype.broker.redis.streams.stats import StreamCounters

__all__ = ["Handled", "StreamReader"]

_logger = logging.getLogger("eventspype.broker.redis")

#: ``handle()``'s verdict: ``("ok", None)`` acknowledge; ``("failed", why)``
#: retry later; ``("refused", why)`` dead-letter now; ``("skip", None)`` leave
#: it pending for the group (no local subscriber any more).
Handled = tuple[Literal["ok", "failed", "refused", "skip"], "str | None"]

#: Reconnect on these; on a cluster, MOVED (an AskError), ASK, CLUSTERDOWN
#: and TRYAGAIN too: the next connection looks the node up again.
_DOWN = (
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
    AskError,
    ClusterDownError,
    TryAgainError,
)
#: The longest time between two looks for consumers that are gone.
_CLEANUP_INTERVAL = 60.0


class StreamReader:
    """The reader thread and its Redis state (see the module docs)."""

    def __init__(
        self,
        connect: Callable[[], Any],
        handle: Callable[[str, bytes], Handled],
        counters: StreamCounters,
        *,
        group: bytes,
        consumer: bytes,
        rename: Callable[[], bytes] | None,
        start: Literal["new", "all"],
        prefetch: int,
        claim_idle: float,
        max_deliveries: int,
        maxlen: int | None,
        forget_after: float,
        reconnect_delay: tuple[float, float],
        slot_of: SlotOf | None = None,
        created: set[bytes] | None = None,
    ) -> None:
        self._connect = connect
        self._slot_of = slot_of
        self._handle = handle
        self._counters = counters
        self.group, self.consumer = group, consumer
        self._start_id = "$" if start == "new" else "0"
        self._prefetch = prefetch
        self._claim_idle_ms = max(1, int(claim_idle * 1000))
        self._claim_every = max(0.05, claim_idle / 2)
        self._block_ms = max(10, int(min(1.0, self._claim_every) * 1000))
        self._max_deliveries = max_deliveries
        self._maxlen = maxlen
        self._forget_after_ms = int(forget_after * 1000)
        self._cleanup_every = min(
            _CLEANUP_INTERVAL, max(self._claim_every, forget_after / 2)
        )
        self._delay_min, self._delay_max = reconnect_delay
        #: Stream key -> channel, replaced whole by the broker (copy-on-write).
        self.streams: dict[bytes, str] = {}
        self._ready: set[bytes] = set()  # streams whose group is known to exist
        self._client: Any = None
        self._client_id: int | None = None
        # Streams whose group we saw once (shared by the readers of a cluster).
        self._created: set[bytes] = set() if created is None else created
        self._rename = rename
        self._start_over()
        register_for_fork(self)

    def _start_over(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_claim = 0.0
        self._next_cleanup = 0.0
        self._failures = 0
        self._down_since: float | None = None

    def _after_fork_in_child(self) -> None:
        # The child has no reader thread; the connection is the parent's
        # (forget it, do not close it). Subscriptions start afresh (see
        # StreamReceiving), and a generated consumer name gets a new value:
        # parent and child are two consumers.
        self.streams = {}
        self._client = None
        self._client_id = None
        self._ready = set()
        if self._rename is not None:
            self.consumer = self._rename()
        self._start_over()

    # -- control (any thread) -------------------------------------------------

    @property
    def block_seconds(self) -> float:
        """The longest wait of one XREADGROUP."""
        return self._block_ms / 1000

    def set_streams(self, streams: dict[bytes, str], waker: Any) -> None:
        """Read these streams from now on; start the thread on first use."""
        self.streams = streams
        if self._thread is None and streams and not self._stop.is_set():
            self._thread = threading.Thread(
                target=self._run, name="eventspype-redis-stream-reader", daemon=True
            )
            stop_at_exit(self)
            self._thread.start()
        else:
            self.wake(waker)

    def wake(self, waker: Any) -> None:
        """End the reader's current wait now (CLIENT UNBLOCK), if possible."""
        client_id = self._client_id
        if client_id is None or waker is None:
            return
        # fakeredis, an ACL or Redis down: it wakes within block_seconds.
        with contextlib.suppress(Exception):
            waker.client_unblock(client_id)

    def request_stop(self) -> None:
        """Stop after the entries in hand are handled and acknowledged."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; ``False`` if it is still running."""
        return join_thread(self._thread, timeout)

    # -- the thread -------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except _DOWN as error:
                self._lost(error)
            except redis.ResponseError as error:
                if str(error).startswith("UNBLOCKED"):  # its key moved or went
                    continue  # away: the next read finds where, or NOGROUP
                if "NOGROUP" not in str(error):
                    _logger.exception("Redis refused a stream command; going on")
                    self._stop.wait(self._claim_every)
                    continue
                _logger.warning(
                    "Consumer group %r vanished (%s); creating it again from "
                    "the start of each stream",
                    self.group.decode(errors="replace"),
                    error,
                )
                self._ready.clear()
            except Exception:  # a bug of ours: log, never die
                _logger.exception("Redis stream reader failed; going on")
                self._stop.wait(1.0)
        self._finish()

    def _step(self) -> None:
        if self._client is None:
            self._client = self._connect()
            self._client_id = int(self._client.client_id())
            self._ready.clear()  # the server may have restarted: check the groups
        streams = self.streams
        for stream in streams:
            if stream not in self._ready:
                self._ensure_group(stream)
        if not streams:
            self._recovered()
            self._stop.wait(self._claim_every)
            return
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self._claim_every
            for stream in streams:
                self._claim(stream, streams[stream])
        if now >= self._next_cleanup:
            self._next_cleanup = now + self._cleanup_every
            for stream in streams:
                self._forget_gone(stream)
        count = max(1, self._prefetch // len(streams))
        replies = read_group(
            self._client,
            self.group,
            self.consumer,
            streams,
            count,
            self._block_ms,
            self._slot_of,
            self._stop,
        )
        self._recovered()  # only now: a cluster node may refuse (CLUSTERDOWN)
        for stream, entries in replies:
            channel = streams.get(stream)
            if channel is not None and entries:
                self._process(stream, channel, entries, {})

    def ensure_group(self, client: Any, stream: bytes) -> None:
        """XGROUP CREATE ... MKSTREAM; an existing group is fine.

        A group that existed once and is gone (a restart without persistence)
        is made again from the stream's start, not from ``start``.
        """
        start = "0" if stream in self._created else self._start_id
        try:
            client.xgroup_create(stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._created.add(stream)
        self._ready.add(stream)

    def _ensure_group(self, stream: bytes) -> None:
        self.ensure_group(self._client, stream)

    def _claim(self, stream: bytes, channel: str) -> None:
        start: bytes | str = "0-0"
        while not self._stop.is_set():
            reply = self._client.xautoclaim(
                stream,
                self.group,
                self.consumer,
                self._claim_idle_ms,
                start_id=start,
                count=self._prefetch,
            )
            start, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:  # trimmed away while pending: nothing left to deliver
                self._client.xack(stream, self.group, *deleted)
            if entries:
                self._counters.add("claimed", len(entries))
                times = self._deliveries(stream, entries)
                self._process(stream, channel, entries, times)
            if start in (b"0-0", "0-0"):
                return

    def _deliveries(self, stream: bytes, entries: list[Entry]) -> dict[bytes, int]:
        """How many times each claimed entry has been delivered (XPENDING)."""
        pending = self._client.xpending_range(
            stream,
            self.group,
            min=entries[0][0],
            max=entries[-1][0],
            count=len(entries) * 2 + 10,
            consumername=self.consumer,
        )
        return {item["message_id"]: int(item["times_delivered"]) for item in pending}

    def _process(
        self,
        stream: bytes,
        channel: str,
        entries: list[Entry],
        deliveries: dict[bytes, int],
    ) -> None:
        """Hand every entry over, then acknowledge and dead-letter in one go."""
        counters = self._counters
        acks: list[bytes] = []
        dead: list[tuple[bytes, bytes, str, int]] = []
        for entry_id, fields in entries:
            data = fields.get(EVENT_FIELD) if fields else None
            if data is None:  # deleted, or not ours: nothing to deliver
                acks.append(entry_id)
                continue
            times = deliveries.get(entry_id, 1)
            if times > self._max_deliveries:  # its consumers kept dying on it
                gave_up = f"delivered {times - 1} times, never acknowledged"
                dead.append((entry_id, data, gave_up, times - 1))
                continue
            if times > 1:
                counters.add("redelivered")
            verdict, why = self._handle(channel, data)
            if verdict == "ok":
                acks.append(entry_id)
            elif verdict == "refused" or (
                verdict == "failed" and times >= self._max_deliveries
            ):
                dead.append((entry_id, data, why or "", times))
        if dead:
            move_to_dead(
                self._client, stream, self.group, self.consumer, dead, self._maxlen
            )
            counters.add("dead_lettered", len(dead))
            counters.add("acknowledged", len(dead))
            for entry_id, _, error, times in dead:
                _logger.warning(
                    "Moved entry %s of %r to its dead-letter stream after %d "
                    "deliveries: %s",
                    entry_id.decode(errors="replace"),
                    stream.decode(errors="replace"),
                    times,
                    Printable(error),  # quotes the sender's names
                )
        if acks:
            self._client.xack(stream, self.group, *acks)
            counters.add("acknowledged", len(acks))

    def _forget_gone(self, stream: bytes) -> None:
        """Remove consumers idle for ``forget_after`` with nothing pending."""
        for info in self._client.xinfo_consumers(stream, self.group):
            name = info["name"]
            name = name.encode() if isinstance(name, str) else name
            if (
                name != self.consumer
                and int(info["pending"]) == 0
                and int(info["idle"]) > self._forget_after_ms
            ):
                self._client.xgroup_delconsumer(stream, self.group, name)

    # -- connection state ---------------------------------------------------------

    def _lost(self, error: BaseException) -> None:
        self._failures += 1
        self._drop_client()
        if self._down_since is None:
            self._down_since = time.monotonic()
            _logger.warning(
                "Redis stream reader lost its connection (%s: %s); reconnecting "
                "with backoff (unacknowledged entries stay pending)",
                type(error).__name__,
                error,
            )
        exponent = min(self._failures - 1, 30)
        delay = min(self._delay_max, self._delay_min * 2.0**exponent)
        self._stop.wait(delay * random.uniform(0.5, 1.0))

    def _recovered(self) -> None:
        if self._down_since is not None:
            self._counters.add("reconnects")
            _logger.warning(
                "Redis stream reader reconnected after %.1f s",
                time.monotonic() - self._down_since,
            )
        self._failures = 0
        self._down_since = None

    def _drop_client(self) -> None:
        client, self._client, self._client_id = self._client, None, None
        if client is not None:
            try:
                client.close()
                client.connection_pool.disconnect()
            except Exception:
                pass

    def _finish(self) -> None:
        """On stop: leave the group if nothing is pending here; close."""
        try:
            if self._client is not None:
                for stream in self.streams:
                    for info in self._client.xinfo_consumers(stream, self.group):
                        name = info["name"]
                        name = name.encode() if isinstance(name, str) else name
                        if name == self.consumer and int(info["pending"]) == 0:
                            self._client.xgroup_delconsumer(
                                stream, self.group, self.consumer
                            )
        except Exception:  # Redis down: the consumer is forgotten later
            pass
        self._drop_client()
