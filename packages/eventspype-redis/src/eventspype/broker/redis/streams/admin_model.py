"""What :class:`~streams.admin.StreamAdmin` reports: plain, immutable values.

Built from the replies of ``XINFO STREAM``, ``XINFO GROUPS`` and ``XINFO
CONSUMERS`` by :func:`stream_info` (no I/O), so the shapes of those replies
are read in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from eventspype.broker.redis.streams.dead_letters import DeadLetter

__all__ = [
    "ConsumerInfo",
    "GroupInfo",
    "Readiness",
    "Replay",
    "StreamInfo",
    "UnknownChannel",
    "UnknownGroup",
    "stream_info",
    "text",
]


class UnknownChannel(LookupError):
    """No stream (nor dead-letter stream) of that channel under the prefix."""


class UnknownGroup(LookupError):
    """No stream under the prefix has a consumer group of that name."""


@dataclass(frozen=True)
class ConsumerInfo:
    """One consumer of a group: ``idle`` is seconds since its last read or claim."""

    name: str
    pending: int
    idle: float


@dataclass(frozen=True)
class GroupInfo:
    """One consumer group of a stream (``XINFO GROUPS`` and ``XINFO CONSUMERS``).

    ``lag`` is ``None`` when Redis cannot tell (entries deleted or trimmed past
    the group's position).
    """

    name: str
    pending: int
    lag: int | None
    last_delivered_id: str
    consumers: tuple[ConsumerInfo, ...]


@dataclass(frozen=True)
class StreamInfo:
    """One channel's stream: size, age of its entries, groups and dead letters.

    ``first_entry``/``last_entry`` are the times (UTC) in the ids of its oldest
    and newest entries, ``None`` when it is empty.
    """

    channel: str
    key: str
    length: int
    first_entry: datetime | None
    last_entry: datetime | None
    groups: tuple[GroupInfo, ...]
    dead_letters: int


@dataclass(frozen=True)
class Readiness:
    """What a readiness probe needs, and its verdict (``StreamAdmin.readiness()``).

    ``lag`` sums what Redis knows (``None`` lags count as 0); ``reason`` is one
    line: why not ready, or a summary when ready.
    """

    ready: bool
    reason: str
    connected: bool
    streams: int = 0
    lag: int = 0
    pending: int = 0
    dead_letters: int = 0


@dataclass(frozen=True)
class Replay:
    """What :meth:`StreamAdmin.republish_dead_letters` did.

    ``refused`` holds each letter kept back and why: its envelope fails the
    receiver's shape checks (size, JSON, fields, tag of the channel), so it
    would only be refused again. The admin has no event classes: the payload
    is not checked against one.
    """

    republished: int
    refused: tuple[tuple[DeadLetter, str], ...]


def text(value: Any) -> str:
    """A reply's bytes as text (undecodable bytes replaced)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _id_time(entry: Any) -> datetime | None:
    """The time in the id of an ``XINFO STREAM`` entry ``[id, fields]``."""
    if not isinstance(entry, (list, tuple)) or not entry:
        return None
    millis = text(entry[0]).partition("-")[0]
    if not millis.isdigit():
        return None
    return datetime.fromtimestamp(int(millis) / 1000, tz=timezone.utc)


def stream_info(
    channel: str,
    key: str,
    stream: Mapping[str, Any] | None,
    groups: Sequence[Mapping[str, Any]],
    consumers: Sequence[Sequence[Mapping[str, Any]]],
    dead_letters: int,
) -> StreamInfo:
    """A :class:`StreamInfo` from the XINFO replies (``stream`` ``None``: no stream).

    ``consumers[i]`` is the ``XINFO CONSUMERS`` reply of ``groups[i]``.
    """
    stream = stream or {}
    return StreamInfo(
        channel=channel,
        key=key,
        length=int(stream.get("length", 0)),
        first_entry=_id_time(stream.get("first-entry")),
        last_entry=_id_time(stream.get("last-entry")),
        groups=tuple(
            GroupInfo(
                name=text(g.get("name")),
                pending=int(g.get("pending", 0)),
                lag=None if g.get("lag") is None else int(g["lag"]),
                last_delivered_id=text(g.get("last-delivered-id", "")),
                consumers=tuple(
                    ConsumerInfo(
                        text(c.get("name")),
                        int(c.get("pending", 0)),
                        int(c.get("idle", 0)) / 1000,
                    )
                    for c in members
                ),
            )
            for g, members in zip(groups, consumers, strict=True)
        ),
        dead_letters=dead_letters,
    )
