"""The reader thread of a RedisStreamBroker: the thread driver of the Streams core.

One thread per broker (per master on a cluster: ``streams.cluster``), on a
connection of its own. It moves bytes and time and decides nothing: every
decision (what to read, acknowledge, retry, claim, dead-letter, hand back;
when to reconnect) is the protocol core's (``streams.protocol``), every
command goes out through ``streams.sending``. Its loop:

* poll the core; send the batch in one pipeline (a blocking XREADGROUP
  last); feed the replies;
* hand each delivery to ``handle``: synchronous subscribers are called here,
  in order; coroutine subscribers run on their loop and report back through
  a queue (the entry stays held, and counted in ``prefetch``, until their
  coroutine returned); between two deliveries the leases that fell due are
  renewed, so entries waiting behind a slow handler are not claimed;
* with nothing to send, wait on that queue until the core's next timer.

Consumers of the group idle for longer than ``forget_after`` with nothing
pending are removed, and so is this one when it stops with nothing pending.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._io.process import join_thread, stop_at_exit
from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.health import trimmed_unread
from eventspype.broker.redis.streams.held import (
    ConsumerHealth,
    Delivery,
    ReaderOptions,
    Verdict,
)
from eventspype.broker.redis.streams.lease import ConsumerLease
from eventspype.broker.redis.streams.protocol import StreamProtocol
from eventspype.broker.redis.streams.sending import DOWN, Failure, Scripts, send
from eventspype.broker.redis.streams.slots import POLL_INTERVAL, SlotOf
from eventspype.broker.redis.streams.stats import StreamCounters

__all__ = ["Handle", "Outcome", "ReaderOptions", "StreamReader"]

_logger = logging.getLogger("eventspype.broker.redis")

#: What the subscribers made of a delivery: verdict, error, succeeded ids.
Outcome = tuple[Verdict, str, frozenset[object]]
#: ``handle(delivery, report)``: the outcome now, or ``None`` and
#: ``report(outcome)`` later, from any thread (coroutine subscribers).
Handle = Callable[[Delivery, Callable[[Outcome], None]], "Outcome | None"]
#: The longest time between two looks for consumers that are gone.
_CLEANUP_INTERVAL = 60.0
_WAKE = object()


class StreamReader:
    """The reader thread and its connection (see the module docs)."""

    def __init__(
        self,
        connect: Callable[[], Any],
        handle: Handle,
        counters: StreamCounters,
        options: ReaderOptions,
        *,
        group: bytes,
        consumer: bytes,
        rename: Callable[[], bytes] | None,
        slot_of: SlotOf | None = None,
        created: set[bytes] | None = None,
    ) -> None:
        self._connect = connect
        self._slot_of = slot_of
        self._handle = handle
        self._counters = counters
        self.options = options
        self.group, self._consumer = group, consumer
        self._start_id = "$" if options.start == "new" else "0"
        #: Stream key -> channel, replaced whole by the broker (copy-on-write).
        self.streams: dict[bytes, str] = {}
        self._created: set[bytes] = set() if created is None else created
        self._rename = rename
        self._start_over()
        register_for_fork(self)

    def _start_over(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._client: Any = None
        self._client_id: int | None = None
        self._scripts: Scripts | None = None
        self._drain_until = 0.0
        self._calling_since: float | None = None
        self._new_protocol()

    def _new_protocol(self) -> None:
        self.proto = StreamProtocol(self.options.consumer(self.group, self._consumer))
        self._lease = ConsumerLease(self.group, self._consumer)
        self._next_forget = 0.0
        self._counters.add_source(self.proto.counters)

    @property
    def consumer(self) -> bytes:
        """This consumer's name (set before the thread starts)."""
        return self._consumer

    @consumer.setter
    def consumer(self, name: bytes) -> None:
        if name != self._consumer:
            self._consumer = name
            if self._thread is None:
                self._new_protocol()

    def _after_fork_in_child(self) -> None:
        # The child has no reader thread; the connection is the parent's
        # (forget it, do not close it). Subscriptions start afresh, and a
        # generated consumer name gets a new value: two consumers.
        self.streams = {}
        if self._rename is not None:
            self.consumer = self._rename()
        self._start_over()

    # -- control (any thread) -------------------------------------------------

    @property
    def block_seconds(self) -> float:
        """The longest wait of one XREADGROUP."""
        return self.options.block

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
        self._inbox.put(_WAKE)
        client_id = self._client_id
        if client_id is None or waker is None:
            return
        # fakeredis, an ACL or Redis down: it wakes within block_seconds.
        with contextlib.suppress(Exception):
            waker.client_unblock(client_id)

    def request_stop(self, drain: float = 0.0) -> None:
        """Stop reading; finish what is in hand within ``drain`` seconds, then
        hand the rest back to the group."""
        self._drain_until = time.monotonic() + drain
        self._stop.set()
        self._inbox.put(_WAKE)

    def join(self, timeout: float) -> bool:
        """Wait for the thread; ``False`` if it is still running."""
        return join_thread(self._thread, timeout)

    def ensure_group(self, client: Any, stream: bytes) -> None:
        """XGROUP CREATE ... MKSTREAM now (``subscribe()``); an existing
        group is fine. Raises what Redis raises (WRONGTYPE: not a stream)."""
        import redis

        start = "0" if stream in self._created else self._start_id
        try:
            client.xgroup_create(stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._created.add(stream)

    def readers(self) -> list[StreamReader]:
        """This reader (the cluster reader has one per master)."""
        return [self]

    @property
    def running(self) -> bool:
        """The thread runs, or is not needed yet (no stream subscribed)."""
        if self._thread is None:
            return not self._stop.is_set()
        return self._thread.is_alive()

    def health(self) -> ConsumerHealth:
        """The core's health figures (read without a lock: a snapshot).

        While a subscriber is being called, ``oldest_running`` is that call's
        age (the entries waiting behind it in the batch are not "running");
        otherwise the oldest coroutine delivery still awaited.
        """
        now = time.monotonic()
        health = self.proto.health(now)
        since = self._calling_since
        if since is None:
            return health
        return dataclasses.replace(health, oldest_running=now - since)

    # -- the thread -------------------------------------------------------------

    def _run(self) -> None:
        proto = self.proto
        streams: dict[bytes, str] | None = None
        stopping = handed_back = False
        next_cleanup = 0.0
        while True:
            now = time.monotonic()
            self._take_inbox(proto, now, wait=0.0)
            if self.streams is not streams:
                streams = self.streams
                proto.set_streams(streams)
            if self._stop.is_set():
                if not stopping:
                    stopping = True
                    proto.stop()
                if now >= self._drain_until and not handed_back:
                    handed_back = True
                    proto.hand_back_rest()
                if proto.finished_all or now >= self._drain_until + 5.0:
                    break
            elif now >= next_cleanup and self._client is not None and streams:
                next_cleanup = now + 5.0
                self._housekeeping(streams, now)
            batch = proto.poll(now)
            if not batch:
                wait = proto.next_wakeup(now) - now
                if stopping:
                    wait = min(wait, max(0.0, self._drain_until - now))
                self._take_inbox(proto, now, wait=max(0.0, wait))
                continue
            self._send(proto, batch)
            self._deliver(proto, proto.take(time.monotonic()))
        self._finish()

    def _take_inbox(self, proto: StreamProtocol, now: float, wait: float) -> None:
        """Feed finished coroutine deliveries; wait up to ``wait`` for one."""
        try:
            item = (
                self._inbox.get(timeout=wait) if wait > 0 else self._inbox.get_nowait()
            )
        except queue.Empty:
            return
        while True:
            if item is not _WAKE:
                delivery, (verdict, error, succeeded) = item
                proto.finished(delivery, verdict, error, succeeded, time.monotonic())
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _deliver(self, proto: StreamProtocol, deliveries: list[Delivery]) -> None:
        inbox = self._inbox
        for index, delivery in enumerate(deliveries):
            if self._stop.is_set() and time.monotonic() >= self._drain_until:
                proto.release(delivery)  # drained long enough: hand it back
                continue
            self._calling_since = time.monotonic()
            try:
                outcome = self._handle(
                    delivery,
                    lambda o, d=delivery: inbox.put((d, o)),  # type: ignore[misc]
                )
            except Exception as error:  # a bug of ours: retry it later
                _logger.exception("Handling a stream entry failed")
                outcome = ("failed", f"{type(error).__name__}: {error}", frozenset())
            self._calling_since = None
            now = time.monotonic()
            if outcome is not None:
                proto.finished(delivery, *outcome, now)
            if index + 1 < len(deliveries) and now >= proto.renew_due:
                batch = proto.poll(now, read=False)  # leases fell due: renew
                if batch:
                    self._send(proto, batch)

    def _send(self, proto: StreamProtocol, batch: list[c.Command]) -> None:
        if isinstance(batch[0], c.Connect):
            self._open(proto, batch[0])
            return
        try:
            if self._client is None or self._scripts is None:
                raise ConnectionError("not connected")
            results = send(
                self._client,
                self._scripts,
                self.group,
                self.consumer,
                batch,
                self.options.maxlen,
                self._slot_of,
            )
        except DOWN as error:
            self._lost(proto, batch, error)
            return
        except Exception as error:  # a bug of ours: start over
            _logger.exception("Redis stream reader failed; reconnecting")
            self._lost(proto, batch, error)
            return
        now = time.monotonic()
        for cmd, (ok, value) in zip(batch, results, strict=True):
            if ok and isinstance(cmd, c.Read) and not value and self._slot_of:
                self._take_inbox(proto, now, POLL_INTERVAL)  # polled, unblocked
            if ok:
                proto.reply(cmd, value, now)
            else:
                failure: Failure = value  # type: ignore[assignment]
                proto.failed(cmd, failure[0], failure[1], now)

    def _open(self, proto: StreamProtocol, cmd: c.Connect) -> None:
        self._drop_client()
        try:
            client = self._connect()
            # Its one connection, which every batch uses (streams.sending).
            self._client_id = int(client.client_id())
            self._scripts = Scripts(client)
            self._client = client
        except Exception as error:
            self._drop_client()
            proto.failed(
                cmd, "down", f"{type(error).__name__}: {error}", time.monotonic()
            )
            return
        proto.reply(cmd, None, time.monotonic())

    def _lost(
        self, proto: StreamProtocol, batch: list[c.Command], error: BaseException
    ) -> None:
        self._drop_client()
        now = time.monotonic()
        message = f"{type(error).__name__}: {error}"
        for cmd in batch:
            proto.failed(cmd, "down", message, now)

    def _housekeeping(self, streams: dict[bytes, str], now: float) -> None:
        """Every 5 s: the consumer-name lease; now and then, gone consumers."""
        with contextlib.suppress(Exception):  # Redis down: next time
            self._lease.refresh(self._client, min(streams))
        if now >= self._next_forget:
            self._next_forget = now + min(
                _CLEANUP_INTERVAL, max(1.0, self.options.forget_after / 2)
            )
            self._forget_gone(streams)
            for stream in streams:  # trimmed before this group read them?
                with contextlib.suppress(Exception):
                    if trimmed_unread(self._client, stream, self.group):
                        self.proto.counters.trimmed_unread += 1
                        self.proto._log.warning(
                            "Entries of %r were trimmed (MAXLEN) before group %r "
                            "read them: they are lost to it; raise maxlen",
                            stream.decode(errors="replace"),
                            self.group.decode(errors="replace"),
                        )

    def _forget_gone(self, streams: dict[bytes, str], me: bool = False) -> None:
        """Remove consumers idle for ``forget_after`` with nothing pending
        (``me``: this one, if nothing is pending here)."""
        limit = int(self.options.forget_after * 1000)
        try:
            for stream in streams:
                for info in self._client.xinfo_consumers(stream, self.group):
                    name = info["name"]
                    name = name.encode() if isinstance(name, str) else name
                    if int(info["pending"]) == 0 and (
                        name == self.consumer
                        if me
                        else name != self.consumer and int(info["idle"]) > limit
                    ):
                        self._client.xgroup_delconsumer(stream, self.group, name)
        except Exception:  # Redis down, or a stream not there: next time
            pass

    def _drop_client(self) -> None:
        client, self._client, self._client_id = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
                client.connection_pool.disconnect()

    def _finish(self) -> None:
        """On stop: leave the group if nothing is pending here; close."""
        if self._client is not None and self.streams:
            self._forget_gone(self.streams, me=True)
            with contextlib.suppress(Exception):
                self._lease.release(self._client, min(self.streams))
        self._drop_client()
