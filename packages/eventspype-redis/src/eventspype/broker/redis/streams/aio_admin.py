"""AsyncRedisStreamBroker's awaitable reads and repairs: dead letters, backlog.

The asyncio twins of ``DeadLetterAccess`` and ``stats().channels`` of the
threaded broker, on a ``redis.asyncio`` client of the broker's own (bytes
replies, no retries). The parsing and the transactions are
``streams.dead_letters``' and ``streams.stats``' (shared with the threaded
broker), only the round trips are awaited here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import redis.exceptions

from eventspype.broker.redis.streams.dead_letters import (
    DeadLetter,
    dead_letter_range,
    parse_dead_letters,
    republishing,
    stream_key,
)
from eventspype.broker.redis.streams.stats import ChannelBacklog

__all__ = ["AsyncStreamAdmin"]


class AsyncStreamAdmin:
    """Awaitable dead-letter access and backlog reads (a mixin).

    Needs ``_admin`` (the broker's own ``redis.asyncio`` client),
    ``_channel_prefix``, ``_group``, ``_maxlen`` and :meth:`_channels`.
    """

    _admin: Any
    _channel_prefix: str
    _group: str
    _maxlen: int | None

    def _channels(self) -> list[str]:
        raise NotImplementedError

    async def dead_letters(
        self, channel: str, count: int = 100, after: str = "0"
    ) -> list[DeadLetter]:
        """The oldest ``count`` dead letters of ``channel`` with an id above ``after``.

        Page with ``after=letters[-1].id``. Every group's letters are there;
        :attr:`DeadLetter.group` says whose.
        """
        stream = stream_key(self._channel_prefix, channel).encode()
        dead, start = dead_letter_range(stream, after)
        entries = await self._admin.xrange(dead, min=start, max="+", count=count)
        return parse_dead_letters(entries, channel)

    async def republish_dead_letters(
        self, channel: str, letters: list[DeadLetter] | None = None
    ) -> int:
        """Put dead letters back in the stream (all of them, or ``letters``).

        As ``RedisStreamBroker.republish_dead_letters``: each goes to the end
        of the stream as a new entry and leaves the dead-letter stream, in one
        transaction. Returns how many.
        """
        if letters is None:
            letters = []
            after = "0"
            while page := await self.dead_letters(channel, 1000, after):
                letters.extend(page)
                after = page[-1].id
        if not letters:
            return 0
        stream = stream_key(self._channel_prefix, channel).encode()
        await republishing(self._admin, stream, letters, self._maxlen).execute()
        return len(letters)

    async def backlog(self) -> Mapping[str, ChannelBacklog]:
        """Each subscribed channel's backlog for the group (``XINFO GROUPS``).

        What ``RedisStreamBroker.stats().channels`` reads; a channel whose
        backlog cannot be read now (Redis down, no group yet) is missing.
        """
        out: dict[str, ChannelBacklog] = {}
        group = self._group.encode()
        for channel in self._channels():
            stream = stream_key(self._channel_prefix, channel).encode()
            try:
                groups = await self._admin.xinfo_groups(stream)
            except (redis.exceptions.RedisError, OSError):
                continue
            for info in groups:
                name = info.get("name")
                if name in (group, self._group):
                    lag = info.get("lag")
                    out[channel] = ChannelBacklog(
                        pending=int(info.get("pending", 0)),
                        lag=None if lag is None else int(lag),
                    )
        return MappingProxyType(out)
