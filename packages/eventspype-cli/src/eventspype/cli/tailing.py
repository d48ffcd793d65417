"""Where ``eventspype tail`` reads from: Pub/Sub channels and streams, no group.

Each source is polled by the one loop of the command and returns
:class:`Received` messages, raw: deciding what they are is
:func:`~eventspype.broker.redis.describe_message`'s job.

* :class:`PatternSource`: a single server; ``PSUBSCRIBE <prefix><pattern>``.
* :class:`ShardSource`: Redis Cluster, where brokers publish with SPUBLISH to
  sharded channels, which cannot be pattern-subscribed. Each master is asked
  ``PUBSUB SHARDCHANNELS <prefix><pattern>`` (the channels someone is
  subscribed to there) every :data:`REFRESH` seconds, and the new ones are
  SSUBSCRIBEd on a connection to that master, one SSUBSCRIBE per hash slot
  (the server refuses one that names channels of several slots). A channel
  nobody listens to is not seen: nobody receives its events either.
* :class:`StreamSource`: ``XREAD`` (never ``XREADGROUP``: nothing is claimed
  or acknowledged) of the streams whose channel matches, found again every
  :data:`REFRESH` seconds. On a single server one blocking XREAD covers every
  stream; on a cluster each stream is read on its own node without blocking
  (a multi-key command cannot span slots).
"""

from __future__ import annotations

import contextlib
import fnmatch
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis
from redis.crc import key_slot

from eventspype.broker.redis import StreamAdmin

__all__ = [
    "REFRESH",
    "PatternSource",
    "Received",
    "ShardSource",
    "StreamSource",
    "by_slot",
]

#: Seconds between looks for new channels or streams that match.
REFRESH = 2.0
#: Seconds before a sharded connection lost once is made again; doubled for
#: each further loss without a message in between, up to ``REFRESH``.
LOST_RETRY = 0.05
#: Entries read per stream per round trip.
_COUNT = 100
#: What a node that went away (failover, restart) raises.
_LOST = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError)


@dataclass(frozen=True)
class Received:
    """One raw message: ``channel`` without the prefix; ``entry_id`` for streams."""

    time: datetime
    source: str
    channel: str
    data: bytes
    entry_id: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _local(prefix: bytes, channel: Any) -> str | None:
    if not isinstance(channel, bytes) or not channel.startswith(prefix):
        return None
    try:
        return channel[len(prefix) :].decode("utf-8")
    except UnicodeDecodeError:
        return channel[len(prefix) :].decode("utf-8", "backslashreplace")


def _data(message: Any) -> bytes:
    data = message.get("data")
    return data if isinstance(data, bytes) else str(data).encode()


def by_slot(channels: Iterable[bytes]) -> list[list[bytes]]:
    """``channels`` in groups of one hash slot each: what one SSUBSCRIBE may name.

    A cluster refuses (CROSSSLOT) an SSUBSCRIBE whose channels are in
    different slots, even slots of the same master. Groups are ordered by
    slot and each is sorted, so that the same channels give the same commands.
    """
    groups: dict[int, list[bytes]] = {}
    for channel in sorted(set(channels)):
        groups.setdefault(key_slot(channel), []).append(channel)
    return [groups[slot] for slot in sorted(groups)]


def _by_stream(reply: Any) -> list[tuple[Any, list[Any]]]:
    """An XREAD reply as ``[(key, [(id, fields), ...]), ...]``.

    RESP2 gives ``[[key, [(id, fields), ...]], ...]``; RESP3 (``protocol=3``)
    a map ``{key: [[(id, fields), ...]]}``, one list deeper.
    """
    if not reply:
        return []
    pairs = list(reply.items()) if isinstance(reply, dict) else list(reply)
    result = []
    for key, entries in pairs:
        nested = entries and isinstance(entries[0], list) and entries[0]
        if nested and isinstance(entries[0][0], (list, tuple)):
            entries = entries[0]
        result.append((key, list(entries)))
    return result


class PatternSource:
    """Pub/Sub of one server, by pattern (see the module docs)."""

    def __init__(self, client: Any, admin: StreamAdmin, patterns: list[str]) -> None:
        self._prefix = admin.prefix.encode()
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(*[admin.channel_pattern(p) for p in patterns])

    def poll(self, timeout: float) -> list[Received]:
        message = self._pubsub.get_message(timeout=timeout)
        if message is None or message.get("type") != "pmessage":
            return []
        channel = _local(self._prefix, message.get("channel"))
        if channel is None:
            return []
        return [Received(_now(), "pubsub", channel, _data(message))]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pubsub.close()


class ShardSource:
    """Sharded Pub/Sub of a cluster, by pattern (see the module docs)."""

    def __init__(self, cluster: Any, admin: StreamAdmin, patterns: list[str]) -> None:
        self._cluster = cluster
        self._prefix = admin.prefix.encode()
        self._patterns = [admin.channel_pattern(p) for p in patterns]
        self._pubsubs: dict[str, Any] = {}  # node name -> its PubSub
        self._subscribed: dict[str, set[bytes]] = {}
        self._next_refresh = 0.0
        self._losses = 0  # connections lost since a message last came

    def refresh(self) -> None:
        """Subscribe the matching channels each master reports now.

        A master that cannot answer is skipped (its channels come back with
        the next refresh, on whichever node then owns them); when none can,
        the error is raised.
        """
        self._next_refresh = time.monotonic() + REFRESH
        primaries = self._cluster.get_primaries()
        for name in set(self._pubsubs) - {node.name for node in primaries}:
            self._forget(name)  # no longer a master (failover, resharding)
        failures: list[Exception] = []
        for node in primaries:
            try:
                self._subscribe_new(node)
            except _LOST as error:
                failures.append(error)
                self._forget(node.name)
        if failures:
            self._reread_slot_map()
            if len(failures) == len(primaries):
                raise failures[0]

    def _subscribe_new(self, node: Any) -> None:
        client = self._cluster.get_redis_connection(node)
        found: set[bytes] = set()
        for pattern in self._patterns:
            found.update(client.execute_command("PUBSUB SHARDCHANNELS", pattern))
        new = found - self._subscribed.setdefault(node.name, set())
        if new:
            pubsub = self._pubsubs.get(node.name)
            if pubsub is None:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                self._pubsubs[node.name] = pubsub
            for group in by_slot(new):
                pubsub.ssubscribe(*group)
            self._subscribed[node.name] |= new

    def _forget(self, name: str) -> None:
        pubsub = self._pubsubs.pop(name, None)
        self._subscribed.pop(name, None)
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()

    def _reread_slot_map(self) -> None:
        with contextlib.suppress(Exception):
            self._cluster.nodes_manager.initialize()

    def poll(self, timeout: float) -> list[Received]:
        if time.monotonic() >= self._next_refresh:
            self.refresh()
        received = []
        share = timeout / max(1, len(self._pubsubs))
        for name, pubsub in list(self._pubsubs.items()):
            try:
                message = pubsub.get_sharded_message(timeout=share)
            except _LOST:
                # Subscribed again at the next refresh: at once after one
                # loss (a failover), then backing off up to REFRESH, so that
                # an error that stays does not have tail reconnect each poll.
                self._forget(name)
                retry = time.monotonic() + min(REFRESH, LOST_RETRY * 2**self._losses)
                self._next_refresh = min(self._next_refresh, retry)
                self._losses += 1
                continue
            if message is None or message.get("type") != "smessage":
                continue
            self._losses = 0
            channel = _local(self._prefix, message.get("channel"))
            if channel is not None:
                received.append(Received(_now(), "pubsub", channel, _data(message)))
        if not self._pubsubs:
            time.sleep(timeout)
        return received

    def close(self) -> None:
        for pubsub in self._pubsubs.values():
            with contextlib.suppress(Exception):
                pubsub.close()


class StreamSource:
    """The streams of matching channels, from ``start`` on (see the module docs).

    ``start`` is a stream id: entries after it are shown, in every stream
    (also one that appears later).
    """

    def __init__(
        self, client: Any, admin: StreamAdmin, patterns: list[str], start: str
    ) -> None:
        self._client = client
        self._admin = admin
        self._patterns = patterns
        self._start = start
        self._cluster = hasattr(client, "get_primaries")
        self._positions: dict[bytes, str] = {}  # stream key -> last id shown
        self._channels: dict[bytes, str] = {}
        self._next_refresh = 0.0

    def refresh(self) -> None:
        """Add the streams whose channel matches a pattern now."""
        self._next_refresh = time.monotonic() + REFRESH
        for channel in self._admin.channels():
            if any(fnmatch.fnmatchcase(channel, p) for p in self._patterns):
                key = self._admin.stream_key(channel).encode()
                if key not in self._positions:
                    self._positions[key] = self._start
                    self._channels[key] = channel

    def poll(self, timeout: float) -> list[Received]:
        if time.monotonic() >= self._next_refresh:
            self.refresh()
        if not self._positions:
            time.sleep(timeout)
            return []
        replies: list[tuple[Any, list[Any]]] = []
        if self._cluster:
            for key, position in list(self._positions.items()):
                replies += _by_stream(self._client.xread({key: position}, count=_COUNT))
            if not replies:
                time.sleep(timeout)
        else:
            block = max(1, int(timeout * 1000))
            replies = _by_stream(
                self._client.xread(dict(self._positions), count=_COUNT, block=block)
            )
        received = []
        for key, entries in replies:
            channel = self._channels.get(key)
            if channel is None:
                continue
            for entry_id, fields in entries:
                entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                self._positions[key] = entry
                data = fields.get(b"event", b"")
                millis = int(entry.partition("-")[0])
                moment = datetime.fromtimestamp(millis / 1000, tz=timezone.utc)
                received.append(Received(moment, "stream", channel, data, entry))
        return received

    def close(self) -> None:
        pass  # the client is the session's
