"""A read-only view of a prefix's streams, for operators: no group is joined.

:class:`StreamAdmin` answers what an operator asks at 3 a.m. (which streams
exist, how far behind each group is, which consumers hold what, how many dead
letters) without becoming a consumer: it creates no group, reads no entry
through a group and acknowledges nothing. It finds streams with ``SCAN ...
TYPE stream`` (never ``KEYS``), on every master of a Redis Cluster, and reads
``XINFO`` on the node that owns each key. Its dead-letter operations are those
of :class:`RedisStreamBroker` (``streams.dead_letters``): the same reader and
the same re-publishing transaction, so both views agree on the layout.

The key layout: channel ``C`` is the stream ``<prefix>{C}``, its dead letters
``<prefix>{C}:dead``. ``XINFO STREAM`` returns the stream's first and last
entries whole, so a stats call holds at most two entries in memory per stream
(bounded by the server's ``proto-max-bulk-len``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

import redis

from eventspype.broker.redis._wire.peek import MAX_BYTES, describe_message
from eventspype.broker.redis.streams.admin_model import (
    Readiness,
    Replay,
    StreamInfo,
    UnknownChannel,
    UnknownGroup,
    stream_info,
    text,
)
from eventspype.broker.redis.streams.dead_letters import (
    DEAD_SUFFIX,
    DeadLetter,
    read_dead_letters,
    republish,
    stream_key,
)
from eventspype.broker.redis.streams.nodes import NodeClients
from eventspype.broker.redis.streams.writer import own_pool

__all__ = ["StreamAdmin"]

_T = TypeVar("_T")

#: Entries per round trip when a dead-letter operation walks a whole stream.
_PAGE = 500


def _glob_escape(pattern: str) -> str:
    """``pattern`` with SCAN's glob characters escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in pattern)


class StreamAdmin:
    """A read-only view of the streams under ``prefix`` (see the module docs).

    Args:
        client: A ``redis.Redis`` (or ``fakeredis.FakeRedis``) or a
            ``redis.cluster.RedisCluster``. The view opens connections of its
            own, like the client's and replying bytes; the client stays yours.
        prefix: The brokers' ``channel_prefix``.

    Every method raises ``redis.RedisError`` when the server cannot answer.
    """

    def __init__(self, client: Any, prefix: str = "eventspype:") -> None:
        self.prefix = prefix
        self._cluster = client if hasattr(client, "get_primaries") else None
        self._nodes = NodeClients(client) if self._cluster is not None else None
        self._commands: Any = (
            None
            if self._cluster is not None
            else redis.Redis(connection_pool=own_pool(client))
        )

    def close(self) -> None:
        """Disconnect the view's own connections."""
        if self._nodes is not None:
            self._nodes.close()
        else:
            self._commands.connection_pool.disconnect()

    def __enter__(self) -> StreamAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- where keys live --------------------------------------------------

    def _on_owner(self, key: bytes, call: Callable[[Any], _T]) -> _T:
        if self._nodes is None:
            return call(self._commands)
        return self._nodes.on_owner(key, call)

    def _masters(self) -> list[Any]:
        if self._nodes is None:
            return [self._commands]
        assert self._cluster is not None
        return [self._nodes.client(node.name) for node in self._cluster.get_primaries()]

    def ping(self) -> None:
        """Check that every master answers; raises ``redis.RedisError`` if not."""
        for client in self._masters():
            client.ping()

    def stream_key(self, channel: str) -> str:
        """The key of ``channel``'s stream (its dead letters: ``+ ":dead"``)."""
        return stream_key(self.prefix, channel)

    def channel_pattern(self, pattern: str = "*") -> str:
        """The server-side glob (``SCAN``, ``PSUBSCRIBE``) of the channels
        matching ``pattern`` under the prefix: the prefix's own glob
        characters escaped, ``pattern`` kept as a glob."""
        return _glob_escape(self.prefix) + pattern

    def channels(self) -> list[str]:
        """The channels that have a stream or a dead-letter stream, sorted."""
        start, found = len(self.prefix) + 1, set()
        match = self.channel_pattern("{*")
        for client in self._masters():
            for raw in client.scan_iter(match=match, count=1000, _type="stream"):
                try:
                    key = raw.decode("utf-8")
                except UnicodeDecodeError:
                    continue  # not a name a broker writes
                key = key.removesuffix(DEAD_SUFFIX)
                if key.endswith("}") and len(key) > start:
                    found.add(key[start:-1])
        return sorted(found)

    # --- stats ------------------------------------------------------------

    def stream(self, channel: str, group: str | None = None) -> StreamInfo:
        """``channel``'s stream; with ``group``, only that group is shown.

        Raises:
            UnknownChannel: neither the stream nor its dead letters exist.
        """
        key = self.stream_key(channel).encode()
        dead = key + DEAD_SUFFIX.encode()

        def read(client: Any) -> tuple[Any, list[Any], list[list[Any]], int]:
            pipeline = client.pipeline(transaction=False)
            pipeline.exists(key)
            pipeline.exists(dead)
            pipeline.xlen(dead)
            exists, dead_exists, dead_count = pipeline.execute()
            if not exists and not dead_exists:
                raise UnknownChannel(
                    f"no stream of channel {channel!r} under {self.prefix!r}"
                )
            if not exists:
                return None, [], [], int(dead_count)
            stream = client.xinfo_stream(key)
            groups = [
                g
                for g in client.xinfo_groups(key)
                if group is None or text(g.get("name")) == group
            ]
            consumers = [client.xinfo_consumers(key, g["name"]) for g in groups]
            return stream, groups, consumers, int(dead_count)

        reply = self._on_owner(key, read)
        return stream_info(channel, key.decode(), *reply)

    def streams(
        self,
        group: str | None = None,
        progress: Callable[[int, int], object] | None = None,
    ) -> list[StreamInfo]:
        """Every channel's :meth:`stream`; with ``group``, the streams it reads.

        ``progress(done, total)`` is called after each stream is read (one
        round trip each: thousands of streams take a while).

        Raises:
            UnknownGroup: ``group`` is given and no stream has it.
        """
        found = []
        channels = self.channels()
        for done, channel in enumerate(channels, 1):
            try:
                info = self.stream(channel, group)
            except UnknownChannel:
                continue  # deleted since the scan
            finally:
                if progress is not None:
                    progress(done, len(channels))
            if group is None or info.groups:
                found.append(info)
        if group is not None and not found:
            raise UnknownGroup(f"no stream under {self.prefix!r} has a group {group!r}")
        return found

    def readiness(
        self,
        group: str | None = None,
        max_lag: int | None = None,
        max_dead: int | None = None,
        max_pending: int | None = None,
    ) -> Readiness:
        """Whether the streams (of ``group``) are within the thresholds.

        Not ready when Redis cannot be reached (``connected`` is then
        ``False``: an outage makes a consumer not ready, not dead), when the
        summed lag, pending entries or dead letters exceed a given maximum.
        ``group`` unknown raises :class:`UnknownGroup`: a probe with a typo
        must fail loudly, not pass.
        """
        try:
            infos = self.streams(group)
        except (redis.RedisError, OSError) as error:
            return Readiness(False, f"cannot reach Redis: {error}", connected=False)
        groups = [g for info in infos for g in info.groups]
        lag = sum(g.lag or 0 for g in groups)
        pending = sum(g.pending for g in groups)
        dead = sum(info.dead_letters for info in infos)
        facts = {"streams": len(infos), "lag": lag, "pending": pending}
        facts["dead_letters"] = dead
        for name, value, limit in (
            ("lag", lag, max_lag),
            ("pending", pending, max_pending),
            ("dead letters", dead, max_dead),
        ):
            if limit is not None and value > limit:
                return Readiness(
                    False, f"{name} {value} > {limit}", connected=True, **facts
                )
        summary = (
            f"{len(infos)} streams, lag {lag}, pending {pending}, dead letters {dead}"
        )
        return Readiness(True, summary, connected=True, **facts)

    # --- dead letters (the broker's own functions) ---------------------------

    def dead_letters(
        self, channel: str, count: int = 100, after: str = "0", group: str | None = None
    ) -> list[DeadLetter]:
        """The oldest ``count`` dead letters of ``channel`` with an id above ``after``.

        As ``RedisStreamBroker.dead_letters()``; with ``group``, only the letters
        that group gave up on (pages are read until ``count`` are found).
        """
        found: list[DeadLetter] = []
        for page in self._pages(channel, after, min(count, _PAGE)):
            found.extend(
                page if group is None else [x for x in page if x.group == group]
            )
            if len(found) >= count:
                break
        return found[:count]

    def dead_letter(self, channel: str, letter_id: str) -> DeadLetter | None:
        """The dead letter ``letter_id`` of ``channel``, or ``None``."""
        millis, _, seq = letter_id.partition("-")
        if not millis.isdigit() or not (seq or "0").isdigit():
            return None
        whole, number = int(millis), int(seq or 0)
        before = (
            f"{whole}-{number - 1}" if number else f"{whole - 1}-18446744073709551615"
        )
        letters = self.dead_letters(channel, 1, "0" if whole == number == 0 else before)
        return letters[0] if letters and letters[0].id == f"{whole}-{number}" else None

    def _pages(self, channel: str, after: str, size: int) -> Iterator[list[DeadLetter]]:
        stream = self.stream_key(channel).encode()
        while True:
            read = partial(
                read_dead_letters,
                stream=stream,
                channel=channel,
                count=size,
                after=after,
            )
            page = self._on_owner(stream, read)
            if not page:
                return
            yield page
            after = page[-1].id

    def all_dead_letters(
        self, channel: str, group: str | None = None
    ) -> Iterator[list[DeadLetter]]:
        """Every dead letter of ``channel`` (of ``group``), page by page."""
        for page in self._pages(channel, "0", _PAGE):
            yield page if group is None else [x for x in page if x.group == group]

    def republish_dead_letters(
        self,
        channel: str,
        letters: Iterable[DeadLetter],
        maxlen: int | None = None,
        max_bytes: int = MAX_BYTES,
    ) -> Replay:
        """Put ``letters`` back at the end of the stream, as the broker does.

        Each accepted letter becomes a new entry (every group receives it
        again) and leaves the dead-letter stream, in one transaction per call;
        ``maxlen`` trims as the publishing brokers do. Letters whose envelope
        fails the shape checks (:func:`describe_message`) stay where they are
        and come back in :attr:`Replay.refused`.
        """
        good, refused = [], []
        for letter in letters:
            if not letter.event:  # an oversized or malformed entry's letter
                refused.append((letter, "no body kept"))
                continue
            problem = describe_message(channel, letter.event, max_bytes).problem
            if problem is not None and not problem.startswith("invalid_payload"):
                refused.append((letter, problem))
            else:
                good.append(letter)
        stream = self.stream_key(channel).encode()
        done = self._on_owner(
            stream, lambda client: republish(client, stream, good, maxlen)
        )
        return Replay(done, tuple(refused))

    def purge_dead_letters(self, channel: str, letters: Iterable[DeadLetter]) -> int:
        """Delete ``letters`` from ``channel``'s dead-letter stream (``XDEL``).

        Only the letters given are deleted, so one that arrived after they were
        listed survives. Returns how many were deleted.
        """
        ids = [letter.id for letter in letters]
        if not ids:
            return 0
        dead = self.stream_key(channel).encode() + DEAD_SUFFIX.encode()
        return int(self._on_owner(dead, lambda client: client.xdel(dead, *ids)))
