"""Channel names: the local one (``str(tag)``) and the one on the server."""

from __future__ import annotations

__all__ = ["ChannelNames"]

#: Channels remembered: tags may be generated, the cache must not grow forever.
_CACHE_LIMIT = 4096


class ChannelNames:
    """``<prefix><channel>`` encoded for the wire, computed once per channel.

    Thread-safe without a lock: the cache is replaced whole (copy-on-write),
    and a lost race only computes a name twice.
    """

    __slots__ = ("_cache", "encoding", "prefix")

    def __init__(self, prefix: str, encoding: str) -> None:
        self.prefix = prefix
        self.encoding = encoding
        self._cache: dict[str, bytes] = {}

    def wire(self, channel: str) -> bytes:
        """The name of ``channel`` on the server, as bytes."""
        wire = self._cache.get(channel)
        if wire is None:
            wire = (self.prefix + channel).encode(self.encoding)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache = {**self._cache, channel: wire}
        return wire
