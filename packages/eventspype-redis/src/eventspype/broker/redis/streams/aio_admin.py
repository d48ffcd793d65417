"""AsyncRedisStreamBroker's awaitable reads and repairs: dead letters, backlog.

The asyncio twins of ``DeadLetterAccess`` and ``health(backlog=True)`` of the
threaded broker, on a ``redis.asyncio`` client of the broker's own (bytes
replies, no retries). The rules, the parsing and the transactions are
``streams.dead_letters``' and ``streams.health``' (shared with the threaded
broker); only the round trips are awaited here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import redis.exceptions

from eventspype.broker.redis.streams.dead_letters import (
    DEAD_SUFFIX,
    DeadLetter,
    dead_letter_range,
    parse_dead_letters,
    republishable,
    republishing,
    stream_key,
    tag_channel,
)
from eventspype.broker.redis.streams.health import GroupBacklog, backlog_of

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication

__all__ = ["AsyncStreamAdmin"]


class AsyncStreamAdmin:
    """Awaitable dead-letter access and backlog reads (a mixin).

    Needs ``_admin`` (the broker's own ``redis.asyncio`` client),
    ``_channel_prefix``, ``_group``, ``_maxlen``, :meth:`_channels` and
    :meth:`_refusal` (why the receive checks would refuse an envelope).
    """

    _admin: Any
    _channel_prefix: str
    _group: str
    _maxlen: int | None

    def _channels(self) -> list[str]:
        raise NotImplementedError

    def _refusal(self, channel: str, data: bytes) -> str | None:
        raise NotImplementedError

    async def dead_letters(
        self, channel: str | EventPublication, count: int = 100, after: str = "0"
    ) -> list[DeadLetter]:
        """The oldest ``count`` dead letters of ``channel`` with an id above ``after``.

        As ``RedisStreamBroker.dead_letters``: ``channel`` is a channel name,
        a tag as written (``"invoice_due"``) or the publication. Page with
        ``after=letters[-1].id``.
        """
        name = await self._channel(channel)
        stream = stream_key(self._channel_prefix, name).encode()
        dead, start = dead_letter_range(stream, after)
        entries = await self._admin.xrange(dead, min=start, max="+", count=count)
        return parse_dead_letters(entries, name)

    async def republish_dead_letters(
        self,
        channel: str | EventPublication,
        letters: list[DeadLetter] | None = None,
    ) -> int:
        """Put dead letters back in the stream (all of them, or ``letters``).

        As ``RedisStreamBroker.republish_dead_letters``: each goes to the end
        of the stream as a new entry and leaves the dead-letter stream, in one
        transaction; a letter the receive checks would refuse again stays,
        with a warning. Returns how many were re-published.
        """
        name = await self._channel(channel)
        if letters is None:
            letters = []
            after = "0"
            while page := await self.dead_letters(name, 1000, after):
                letters.extend(page)
                after = page[-1].id
        chosen = republishable(name, letters, self._refusal)
        if not chosen:
            return 0
        stream = stream_key(self._channel_prefix, name).encode()
        await republishing(self._admin, stream, chosen, self._maxlen).execute()
        return len(chosen)

    async def backlog(self) -> Mapping[str, GroupBacklog]:
        """Per subscribed channel, the group's backlog and the dead letters.

        What ``RedisStreamBroker.health(backlog=True).channels`` holds: read
        from Redis (XINFO GROUPS, XLEN of the dead letters) without joining
        anything; a channel whose backlog cannot be read now is missing.
        """
        out: dict[str, GroupBacklog] = {}
        for channel in self._channels():
            stream = stream_key(self._channel_prefix, channel).encode()
            try:
                dead = int(await self._admin.xlen(stream + DEAD_SUFFIX.encode()))
                try:
                    groups = await self._admin.xinfo_groups(stream)
                except redis.exceptions.ResponseError as error:
                    if "no such key" not in str(error).lower():
                        raise
                    groups = []
            except (redis.exceptions.RedisError, OSError):
                continue
            out[channel] = backlog_of(groups, self._group, dead)
        return MappingProxyType(out)

    async def _channel(self, channel: str | EventPublication) -> str:
        """The channel a name, a tag as written or a publication means (the
        rule of ``DeadLetterAccess``)."""
        if not isinstance(channel, str):
            return str(channel.event_tag)
        normal = tag_channel(channel)
        if normal is None:
            return channel
        exact = (stream_key(self._channel_prefix, channel) + DEAD_SUFFIX).encode()
        return channel if await self._admin.exists(exact) else normal
