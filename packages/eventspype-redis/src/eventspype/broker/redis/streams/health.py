"""What probes need from a Streams consumer: liveness and readiness.

* Liveness: the reader is running and not stuck. A handler that hangs shows
  as the age of the oldest delivery still with the subscribers; past
  ``stuck_after`` the consumer is not live (restart the pod).
* Readiness: connected to Redis, and no stream key broken. A Redis outage
  makes a consumer not ready, never not live: restarting it would not help.

:func:`group_backlog` reads the group's figures (pending, lag, consumers,
dead letters) from Redis without joining the group, so that a probe or a
command-line tool can call it with nothing but a client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

from eventspype.broker.redis.streams.held import ConsumerHealth

__all__ = [
    "GroupBacklog",
    "StreamHealth",
    "backlog_of",
    "group_backlog",
    "read_backlogs",
    "stream_health",
    "trimmed_unread",
]


@dataclass(frozen=True)
class GroupBacklog:
    """One group's backlog on one stream, read from Redis.

    ``lag`` is ``None`` when Redis cannot tell (entries trimmed or deleted
    past the group's position); ``exists`` is ``False`` when the stream or
    the group is not there.
    """

    exists: bool
    pending: int = 0
    lag: int | None = None
    consumers: int = 0
    dead_letters: int = 0


@dataclass(frozen=True)
class StreamHealth:
    """A consumer's health, for liveness and readiness probes.

    Attributes:
        live: The reader runs and no delivery has been with the subscribers
            longer than ``stuck_after``.
        ready: Connected to Redis and every subscribed stream readable.
        connected: The reader's connection is up.
        down_for: Seconds since the connection was lost (``None`` when up).
        held: Entries held (read or claimed, not yet settled).
        oldest_running: Seconds the oldest delivery has been with the
            subscribers (``None`` when none is).
        paused: Reading is paused: ``prefetch`` entries are held.
        broken_streams: Stream keys Redis refused (WRONGTYPE, ACL).
        channels: Per channel, the group's backlog read from Redis (missing
            when it could not be read); filled by ``health(backlog=True)``.
    """

    live: bool
    ready: bool
    connected: bool
    down_for: float | None
    held: int
    oldest_running: float | None
    paused: bool
    broken_streams: tuple[str, ...]
    channels: Mapping[str, GroupBacklog] = field(
        default_factory=lambda: MappingProxyType({})
    )


def stream_health(
    consumers: Iterable[ConsumerHealth],
    running: bool,
    stuck_after: float,
    channels: Mapping[str, GroupBacklog] | None = None,
) -> StreamHealth:
    """Combine the health of a broker's consumers (one per cluster master).

    ``running`` says whether the reader threads (or task) are alive, or not
    needed yet (no subscription).
    """
    items = list(consumers)
    oldest = [h.oldest_running for h in items if h.oldest_running is not None]
    downs = [h.down_for for h in items if h.down_for is not None]
    broken = tuple(
        sorted({s.decode("utf-8", "replace") for h in items for s in h.broken_streams})
    )
    connected = all(h.connected for h in items)
    worst = max(oldest) if oldest else None
    return StreamHealth(
        live=running and (worst is None or worst < stuck_after),
        ready=running and connected and not broken,
        connected=connected,
        down_for=max(downs) if downs else None,
        held=sum(h.held for h in items),
        oldest_running=worst,
        paused=any(h.paused for h in items),
        broken_streams=broken,
        channels=MappingProxyType(dict(channels or {})),
    )


def group_backlog(client: Any, stream: bytes, group: str) -> GroupBacklog:
    """``group``'s backlog on ``stream`` and the stream's dead letters.

    Reads XINFO GROUPS and XLEN of ``<stream>:dead``; joins nothing.

    Raises:
        redis.RedisError: Redis cannot be reached, or refused (not a stream).
    """
    import redis

    dead = int(client.xlen(stream + b":dead"))
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError as error:
        if "no such key" in str(error).lower():
            return GroupBacklog(False, dead_letters=dead)
        raise
    return backlog_of(groups, group, dead)


def backlog_of(groups: Any, group: str, dead: int) -> GroupBacklog:
    """``group``'s backlog from an XINFO GROUPS reply (for the asyncio broker
    too, which awaits the round trips of :func:`group_backlog`)."""
    for info in groups:
        name = info.get("name")
        if name in (group, group.encode()):
            lag = info.get("lag")
            return GroupBacklog(
                True,
                pending=int(info.get("pending", 0)),
                lag=None if lag is None else int(lag),
                consumers=int(info.get("consumers", 0)),
                dead_letters=dead,
            )
    return GroupBacklog(False, dead_letters=dead)


def read_backlogs(
    on_owner: Callable[[bytes, Callable[[Any], GroupBacklog]], GroupBacklog],
    keys: Mapping[str, bytes],
    group: str,
) -> dict[str, GroupBacklog]:
    """:func:`group_backlog` per channel (``keys``: channel -> stream key),
    each on its node (``on_owner(key, call)``); channels whose backlog could
    not be read are left out."""
    import redis

    out: dict[str, GroupBacklog] = {}
    for channel, key in keys.items():
        try:
            out[channel] = on_owner(key, partial(_backlog_of, key, group))
        except redis.RedisError:
            continue
    return out


def _backlog_of(key: bytes, group: str, client: Any) -> GroupBacklog:
    return group_backlog(client, key, group)


def _id(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value or "0-0")
    ms, _, seq = text.partition("-")
    return int(ms or 0), int(seq or 0)


def trimmed_unread(client: Any, stream: bytes, group: bytes) -> bool:
    """Whether entries of ``stream`` were trimmed before ``group`` read them
    (Redis 7: more entries removed than the group had read). ``False`` when
    Redis cannot tell.

    Raises:
        redis.RedisError: Redis cannot be reached, or refused.
    """
    info = client.xinfo_stream(stream)
    removed = int(info.get("entries-added") or 0) - int(info.get("length") or 0)
    if removed <= 0:
        return False
    for group_info in client.xinfo_groups(stream):
        if group_info.get("name") in (group, group.decode("utf-8", "replace")):
            read = group_info.get("entries-read")
            if read is not None:
                return int(read) < removed
            return _id(group_info.get("last-delivered-id")) == (0, 0)
    return False
