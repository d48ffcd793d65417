"""The reader of a RedisStreamBroker on Redis Cluster: one stream reader per master.

Each channel's stream (``<prefix>{<channel>}``) lives on the master owning its
hash slot, and a read can only name keys that one node serves (of one slot,
even: see ``streams.slots``). :class:`ClusterStreamReader` has the interface of
:class:`~streams.reader.StreamReader` that the broker and ``StreamReceiving``
use, and keeps one ``StreamReader`` (thread, connection, claims, backoff) per
master that owns subscribed streams, with the streams of that master.

* Grouping: by the client's slot map. A reader's connection is opened to the
  master owning its streams; each connection after its first refreshes the map
  first (it replaces one that failed, maybe because the node died), and the
  streams are grouped again: the reader takes the node that owns its streams
  now (the promoted replica, after a failover), streams that moved to another
  master go to that master's reader (made if needed), and a reader left
  without streams stops.
* ``MOVED``, ``ASK``, ``CLUSTERDOWN`` and ``TRYAGAIN`` make a reader reconnect
  (see ``streams.reader._DOWN``): a resharding or a failover the reader did
  not see as a lost connection ends the same way.
* Deliveries: the readers hand every entry to the broker under one lock, so
  subscribers are called one at a time, as with one reader (events of one
  channel stay in order: a stream has one node). Acknowledging, claiming and
  dead-lettering run in each reader's thread, on its node.

After a failover, what the promoted replica had received of the group's state
(its pending entries, its last-delivered id) is what the new reader finds:
pending entries are claimed again after ``claim_idle``, as on one server.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import redis
from redis.crc import key_slot

from eventspype._internal.fork import register_for_fork
from eventspype.broker.redis._io.connections import DEFAULT_TIMEOUT
from eventspype.broker.redis.streams.held import Delivery
from eventspype.broker.redis.streams.nodes import NodeClients
from eventspype.broker.redis.streams.reader import (
    Handle,
    Outcome,
    ReaderOptions,
    StreamReader,
)
from eventspype.broker.redis.streams.stats import StreamCounters

__all__ = ["ClusterStreamReader", "stream_reader"]

#: ``make_reader(connect, handle, created)``: a StreamReader with the broker's
#: options for one master.
MakeReader = Callable[[Callable[[], Any], Handle, set[bytes]], StreamReader]


class _Shard:
    """One master's reader and the node it reads from now."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.connects = 0
        self.reader: StreamReader | None = None


class ClusterStreamReader:
    """One :class:`StreamReader` per master (see the module docs)."""

    def __init__(
        self,
        nodes: NodeClients,
        make_reader: MakeReader,
        handle: Handle,
        *,
        group: bytes,
        consumer: bytes,
        rename: Callable[[], bytes] | None,
        start: Literal["new", "all"],
    ) -> None:
        self._nodes = nodes
        self._make_reader = make_reader
        self._handle = handle
        self.group, self.consumer = group, consumer
        self._rename = rename
        self._start_id = "$" if start == "new" else "0"
        #: Stream key -> channel, every subscribed stream (copy-on-write).
        self.streams: dict[bytes, str] = {}
        self._shards: dict[str, _Shard] = {}  # by node name
        self._created: set[bytes] = set()
        self._lock = threading.RLock()  # the grouping
        self._deliver_lock = threading.Lock()
        self._stopping = False
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # As StreamReader: no thread in the child, subscriptions start afresh,
        # a generated consumer name gets a new value.
        self.streams = {}
        self._shards = {}
        self._lock = threading.RLock()
        self._deliver_lock = threading.Lock()
        if self._rename is not None:
            self.consumer = self._rename()

    # -- StreamReader's interface ----------------------------------------------

    def ensure_group(self, client: Any, stream: bytes) -> None:
        """XGROUP CREATE ... MKSTREAM on the stream's master (``client`` unused).

        Raises:
            redis.ConnectionError: the master cannot be reached, or the slot
                map was out of date (refreshed: the reader creates it later).
        """
        start = "0" if stream in self._created else self._start_id

        def create(node: redis.Redis) -> None:
            try:
                node.xgroup_create(stream, self.group, id=start, mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

        self._nodes.on_owner(stream, create)
        self._created.add(stream)

    def set_streams(self, streams: dict[bytes, str], waker: Any) -> None:
        """Read these streams from now on, each on its master's reader."""
        with self._lock:
            self.streams = streams
            self._regroup(None)

    def wake(self, waker: Any) -> None:
        """End every reader's current wait (``CLIENT UNBLOCK`` on its node)."""
        for shard in list(self._shards.values()):
            self._wake(shard)

    def readers(self) -> list[StreamReader]:
        """The readers of the masters, one each."""
        return [s.reader for s in list(self._shards.values()) if s.reader is not None]

    def request_stop(self, drain: float = 0.0) -> None:
        """Stop every reader after the entries in hand."""
        self._stopping = True
        for shard in list(self._shards.values()):
            if shard.reader is not None:
                shard.reader.request_stop(drain)

    def join(self, timeout: float) -> bool:
        """Wait for every reader; ``False`` if one is still running."""
        return all(
            shard.reader.join(timeout)
            for shard in list(self._shards.values())
            if shard.reader is not None
        )

    # -- grouping ----------------------------------------------------------------

    def _regroup(self, moving: _Shard | None) -> None:
        """Give each master's reader the streams that master owns (lock held).

        ``moving`` is a reader about to connect, after the map was refreshed:
        it takes over a master without a reader, or stops.
        """
        groups: dict[str, dict[bytes, str]] = {}
        for stream, channel in self.streams.items():
            try:
                owner = self._nodes.owner(stream)
            except redis.ConnectionError:  # not covered now: keep it where it is
                owner = self._holder(stream) or ""
            groups.setdefault(owner, {})[stream] = channel
        if moving is not None and moving.node not in groups:
            old = moving.reader.streams if moving.reader is not None else {}
            free = Counter(
                owner
                for owner, part in groups.items()
                if owner not in self._shards
                for stream in old
                if stream in part
            )
            if self._shards.get(moving.node) is moving:
                del self._shards[moving.node]
            if free:
                moving.node = free.most_common(1)[0][0]
                self._shards[moving.node] = moving
        for name, part in groups.items():
            shard = self._shards.get(name)
            if shard is None:
                shard = self._shards[name] = _Shard(name)
            self._assign(shard, part, shard is not moving)
        for name, shard in list(self._shards.items()):
            if name not in groups:
                del self._shards[name]
                self._retire(shard)
        if moving is not None and self._shards.get(moving.node) is not moving:
            self._retire(moving)

    def _holder(self, stream: bytes) -> str | None:
        for name, shard in self._shards.items():
            if shard.reader is not None and stream in shard.reader.streams:
                return name
        return None

    def _assign(self, shard: _Shard, streams: dict[bytes, str], wake: bool) -> None:
        if shard.reader is None:
            if self._stopping:
                return
            shard.reader = self._make_reader(
                lambda: self._connect(shard), self._deliver, self._created
            )
            shard.reader.consumer = self.consumer
        if streams == shard.reader.streams:
            return
        if wake:
            shard.reader.set_streams(streams, None)
            self._wake(shard)
        else:  # its own thread, before it reads: no wait to end
            shard.reader.streams = streams

    def _retire(self, shard: _Shard) -> None:
        if shard.reader is not None:
            shard.reader.streams = {}
            shard.reader.request_stop()
            self._wake(shard)

    def _wake(self, shard: _Shard) -> None:
        reader = shard.reader
        if reader is None or not shard.node:
            return
        with contextlib.suppress(Exception):  # the node is gone: it wakes anyway
            reader.wake(self._nodes.client(shard.node))

    # -- the readers' threads ---------------------------------------------------

    def _connect(self, shard: _Shard) -> Any:
        """The reader's connection: to the master owning its streams now."""
        shard.connects += 1
        if shard.connects > 1:
            self._nodes.refresh()
        with self._lock:
            self._regroup(shard)
            if self._shards.get(shard.node) is not shard or not shard.node:
                raise redis.ConnectionError("this reader's streams moved to another")
            name = shard.node
        assert shard.reader is not None
        recipe = self._nodes.recipe(name, shard.reader.block_seconds + DEFAULT_TIMEOUT)
        return redis.Redis(connection_pool=recipe.pool(), single_connection_client=True)

    def _deliver(
        self, delivery: Delivery, report: Callable[[Outcome], None]
    ) -> Outcome | None:
        """``handle`` under the one lock; hands it back on stop."""
        while not self._deliver_lock.acquire(timeout=0.1):
            if self._stopping:
                return "skip", "", frozenset()
        try:
            return self._handle(delivery, report)
        finally:
            self._deliver_lock.release()


def stream_reader(
    nodes: NodeClients | None,
    connect: Callable[[], Any],
    handle: Handle,
    counters: StreamCounters,
    options: ReaderOptions,
    *,
    rename: Callable[[], bytes] | None,
    group: bytes,
    consumer: bytes,
) -> StreamReader | ClusterStreamReader:
    """The broker's reader: one :class:`StreamReader` on one server
    (connecting with ``connect``), a :class:`ClusterStreamReader` on a cluster
    (``nodes``).
    """
    if nodes is None:
        return StreamReader(
            connect,
            handle,
            counters,
            options,
            rename=rename,
            group=group,
            consumer=consumer,
        )

    def make_reader(
        connect: Callable[[], Any], handle: Handle, created: set[bytes]
    ) -> StreamReader:
        return StreamReader(
            connect,
            handle,
            counters,
            options,
            rename=None,
            group=group,
            consumer=consumer,
            slot_of=key_slot,
            created=created,
        )

    return ClusterStreamReader(
        nodes,
        make_reader,
        handle,
        group=group,
        consumer=consumer,
        rename=rename,
        start=options.start,
    )
