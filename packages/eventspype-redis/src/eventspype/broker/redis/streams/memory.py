"""An in-memory model of Redis streams and consumer groups, on a given clock.

No I/O, deterministic: what the Streams protocol core is tested against, and
what a test broker's consumer-group emulation runs it on (with
:class:`~streams.memory_driver.MemoryConsumer`). It models what the core
relies on, as Redis 7.0 does it: XADD (with MAXLEN), XGROUP CREATE
MKSTREAM, XREADGROUP ``>``, the PEL with owners, delivery counts and idle
times, XCLAIM (JUSTID, IDLE), XAUTOCLAIM (deleted ids removed from the PEL),
XPENDING for one consumer, XACK, and the atomic dead-letter move. A key
holding a string answers WRONGTYPE. ``down`` makes every call raise
:class:`RedisDown`.

It also watches the rules the core promises to keep: an XACK or XCLAIM that
touches an entry another consumer owns (without ``only_owned``) is appended
to :attr:`MemoryRedis.violations`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["ManualClock", "MemoryRedis", "RedisDown", "RedisError"]

Id = tuple[int, int]
Fields = dict[bytes, bytes]


class RedisDown(Exception):
    """The model is unreachable (a connection error)."""


class RedisError(Exception):
    """An error reply; ``kind`` is the core's ``ErrorKind`` for it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ManualClock:
    """A clock that moves only when told (seconds)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


def parse_id(raw: bytes) -> Id:
    """``b"12-3"`` as ``(12, 3)`` (``b"12"`` is ``(12, 0)``)."""
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq or 0)


def format_id(entry_id: Id) -> bytes:
    """``(12, 3)`` as ``b"12-3"``."""
    return b"%d-%d" % entry_id


@dataclass
class Pending:
    """One PEL entry."""

    consumer: bytes
    delivered_ms: int
    count: int


@dataclass
class Group:
    """One consumer group of one stream."""

    last: Id
    pel: dict[Id, Pending] = field(default_factory=dict)


@dataclass
class Stream:
    """One stream key."""

    entries: dict[Id, Fields] = field(default_factory=dict)
    last: Id = (0, 0)
    groups: dict[bytes, Group] = field(default_factory=dict)


class MemoryRedis:
    """The model (see the module docs). Times in the PEL are in ms."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.keys: dict[bytes, Stream | bytes] = {}
        self.down = False
        self.violations: list[str] = []
        #: (stream, id) of every XACK that removed an entry, in order.
        self.acked: list[tuple[bytes, bytes, bytes]] = []

    def _ms(self) -> int:
        return int(self._clock() * 1000)

    def _stream(self, key: bytes, create: bool = False) -> Stream | None:
        if self.down:
            raise RedisDown("connection refused")
        value = self.keys.get(key)
        if isinstance(value, bytes):
            raise RedisError(
                "key",
                "WRONGTYPE Operation against a key holding the wrong kind of value",
            )
        if value is None and create:
            value = self.keys[key] = Stream()
        return value

    def _group(self, key: bytes, group: bytes) -> tuple[Stream, Group]:
        stream = self._stream(key)
        if stream is None or group not in stream.groups:
            raise RedisError("nogroup", "NOGROUP No such key or consumer group")
        return stream, stream.groups[group]

    # -- writing ----------------------------------------------------------------

    def xadd(self, key: bytes, fields: Fields, maxlen: int | None = None) -> bytes:
        """Append an entry; trim to ``maxlen`` exactly when given."""
        stream = self._stream(key, create=True)
        assert stream is not None
        ms = self._ms()
        entry_id = (
            (ms, 0) if ms > stream.last[0] else (stream.last[0], stream.last[1] + 1)
        )
        stream.entries[entry_id] = dict(fields)
        stream.last = entry_id
        if maxlen is not None:
            while len(stream.entries) > maxlen:
                del stream.entries[next(iter(stream.entries))]
        return format_id(entry_id)

    def set_string(self, key: bytes, value: bytes) -> None:
        """Replace ``key`` by a string (a broken stream key)."""
        self.keys[key] = value

    def delete_entry(self, key: bytes, entry_id: bytes) -> None:
        """XDEL: the entry goes, its PEL entries stay (as in Redis)."""
        stream = self._stream(key)
        if stream is not None:
            stream.entries.pop(parse_id(entry_id), None)

    # -- groups ------------------------------------------------------------------

    def xgroup_create(self, key: bytes, group: bytes, start: bytes) -> None:
        """XGROUP CREATE ... MKSTREAM; BUSYGROUP raised as ``RedisError("busy")``."""
        stream = self._stream(key, create=True)
        assert stream is not None
        if group in stream.groups:
            raise RedisError("busy", "BUSYGROUP Consumer Group name already exists")
        last = stream.last if start == b"$" else parse_id(start)
        stream.groups[group] = Group(last)

    def destroy_group(self, key: bytes, group: bytes) -> None:
        """The group vanishes (a restart without persistence)."""
        stream = self._stream(key)
        if stream is not None:
            stream.groups.pop(group, None)

    def xreadgroup(
        self, group: bytes, consumer: bytes, keys: Iterable[bytes], count: int
    ) -> list[tuple[bytes, list[tuple[bytes, Fields]]]]:
        """XREADGROUP ... STREAMS keys > ...: new entries, into the PEL."""
        out = []
        for key in keys:
            stream, grp = self._group(key, group)
            got: list[tuple[bytes, Fields]] = []
            for entry_id, fields in stream.entries.items():
                if entry_id > grp.last and len(got) < count:
                    got.append((format_id(entry_id), dict(fields)))
                    grp.last = entry_id
                    grp.pel[entry_id] = Pending(consumer, self._ms(), 1)
            if got:
                out.append((key, got))
        return out

    def pending_of(
        self,
        key: bytes,
        group: bytes,
        consumer: bytes,
        start: bytes,
        end: bytes,
        count: int,
    ) -> list[tuple[bytes, int]]:
        """XPENDING key group start end count consumer."""
        _, grp = self._group(key, group)
        lo = _bound(start, low=True)
        hi = _bound(end, low=False)
        out: list[tuple[bytes, int]] = []
        for entry_id in sorted(grp.pel):
            pend = grp.pel[entry_id]
            if lo <= entry_id <= hi and pend.consumer == consumer and len(out) < count:
                out.append((format_id(entry_id), pend.count))
        return out

    def xautoclaim(
        self,
        key: bytes,
        group: bytes,
        consumer: bytes,
        min_idle_ms: int,
        start: bytes,
        count: int,
    ) -> tuple[bytes, list[tuple[bytes, Fields]], list[bytes]]:
        """XAUTOCLAIM (Redis 7: deleted entries leave the PEL, reported apart)."""
        stream, grp = self._group(key, group)
        now, first = self._ms(), parse_id(start)
        got: list[tuple[bytes, Fields]] = []
        deleted: list[bytes] = []
        for entry_id in sorted(grp.pel):
            if entry_id < first:
                continue
            if len(got) + len(deleted) >= count:
                return format_id(entry_id), got, deleted
            pend = grp.pel[entry_id]
            if now - pend.delivered_ms < min_idle_ms:
                continue
            if entry_id not in stream.entries:
                del grp.pel[entry_id]
                deleted.append(format_id(entry_id))
                continue
            grp.pel[entry_id] = Pending(consumer, now, pend.count + 1)
            got.append((format_id(entry_id), dict(stream.entries[entry_id])))
        return b"0-0", got, deleted

    def xclaim(
        self,
        key: bytes,
        group: bytes,
        consumer: bytes,
        ids: Iterable[bytes],
        *,
        justid: bool,
        idle_ms: int | None,
        only_owned: bool,
    ) -> list[bytes] | list[tuple[bytes, Fields]]:
        """XCLAIM to ``consumer`` with a min-idle of 0 (``only_owned``: the
        Lua variant that skips entries another consumer owns)."""
        stream, grp = self._group(key, group)
        now = self._ms()
        ids_out: list[bytes] = []
        entries_out: list[tuple[bytes, Fields]] = []
        for raw in ids:
            entry_id = parse_id(raw)
            pend = grp.pel.get(entry_id)
            if pend is None:
                continue
            if pend.consumer != consumer:
                if only_owned:
                    continue
                self.violations.append(f"XCLAIM took {raw!r} from {pend.consumer!r}")
            if entry_id not in stream.entries:
                del grp.pel[entry_id]
                continue
            delivered = now - idle_ms if idle_ms is not None else now
            grp.pel[entry_id] = Pending(
                consumer, delivered, pend.count + (0 if justid else 1)
            )
            ids_out.append(raw)
            entries_out.append((raw, dict(stream.entries[entry_id])))
        return ids_out if justid else entries_out

    def xack(
        self,
        key: bytes,
        group: bytes,
        consumer: bytes,
        ids: Iterable[bytes],
        only_owned: bool,
    ) -> int:
        """XACK (``only_owned``: the Lua variant); ``consumer`` is who sends it."""
        _, grp = self._group(key, group)
        done = 0
        for raw in ids:
            entry_id = parse_id(raw)
            pend = grp.pel.get(entry_id)
            if pend is None:
                continue
            if pend.consumer != consumer:
                if only_owned:
                    continue
                self.violations.append(f"XACK removed {raw!r} of {pend.consumer!r}")
            del grp.pel[entry_id]
            self.acked.append((key, raw, consumer))
            done += 1
        return done

    def dead_letter(
        self,
        key: bytes,
        group: bytes,
        consumer: bytes,
        entries: Iterable[tuple[bytes, Fields]],
        only_owned: bool,
    ) -> int:
        """The atomic move: XADD to ``<key>:dead`` for each, then XACK them.

        A dead key of the wrong type raises before anything is acknowledged.
        """
        self._group(key, group)
        dead = key + b":dead"
        self._stream(dead, create=False)  # WRONGTYPE before any change
        moved = []
        _, grp = self._group(key, group)
        for raw, fields in entries:
            pend = grp.pel.get(parse_id(raw))
            if pend is None or (only_owned and pend.consumer != consumer):
                continue
            self.xadd(dead, fields)
            moved.append(raw)
        return self.xack(key, group, consumer, moved, only_owned)

    def pel(self, key: bytes, group: bytes) -> dict[bytes, Pending]:
        """The group's PEL by entry id (for tests)."""
        value = self.keys.get(key)
        if not isinstance(value, Stream) or group not in value.groups:
            return {}
        return {format_id(i): p for i, p in value.groups[group].pel.items()}


def _bound(raw: bytes, *, low: bool) -> Id:
    if raw == b"-":
        return (0, 0)
    if raw == b"+":
        return (1 << 63, 1 << 63)
    if raw.startswith(b"("):
        ms, seq = parse_id(raw[1:])
        return (ms, seq + 1) if low else (ms, seq - 1)
    return parse_id(raw)
